"""Exports reused across runs through the persistent cache (:mod:`onnxparity.persist`).

An export's key holds everything that determines the file: the model source, the model's
fingerprint (weights, fitted state), the digest of the user's code behind it
(:meth:`~onnxparity.exporters.Exporter.cache_identity`), the declared inputs and dims, the
opset, the versions of the packages the export runs through and of onnxparity itself, and the
Python version. A model whose code cannot be pinned down is exported every run and its report
says why (``model.cache``).
"""

from __future__ import annotations

import dataclasses
import os
import platform
from typing import Any

from .._machine import version
from . import ExportedModel, Exporter, export_folder
from .identity import NotCacheable, onnxparity_digest

KIND = "exports"


def export_key(source: Exporter, subject: Any, spec: Any) -> tuple[str | None, str]:
    """(the key of ``subject``'s export under ``spec``, "") or (None, why it has none)."""
    from ..persist import digest

    try:
        code = source.cache_identity(subject.model)
    except NotCacheable as exc:
        return None, str(exc)
    parts = {
        "source": source.name,
        "fingerprint": subject.key,
        "code": code,
        "inputs": spec.input_digest,
        "opset": spec.opset,
        "versions": {p: version(p) for p in source.packages},
        "onnxparity": onnxparity_digest(),
        "python": platform.python_version_tuple()[:2],
    }
    return digest(parts), ""


def _meta(exported: ExportedModel) -> dict:
    tolerance = exported.default_tolerance
    return {
        "file": os.path.basename(exported.path),
        "input_names": list(exported.input_names),
        "output_names": list(exported.output_names),
        "exporter": exported.exporter,
        "opset": exported.opset,
        "key": exported.key,
        "notes": list(exported.notes),
        "default_tolerance": None if tolerance is None else dataclasses.asdict(tolerance),
    }


def load(store: Any, key: str, workdir: str) -> ExportedModel | None:
    """The cached export of ``key``, its files copied into this session's ``workdir``."""
    from ..spec import Tolerance

    folder = export_folder(workdir, f"cached-{key}")
    meta = store.get(KIND, key, folder)
    if meta is None:
        return None
    tolerance = meta.get("default_tolerance")
    return ExportedModel(
        os.path.join(folder, meta["file"]),
        tuple(meta["input_names"]),
        tuple(meta["output_names"]),
        meta["exporter"],
        meta["opset"],
        meta["key"],
        tuple(meta["notes"]),
        None if tolerance is None else Tolerance(**tolerance),
        cache="reused from the persistent cache",
        cache_key=key,
    )


def save(store: Any, key: str, exported: ExportedModel) -> bool:
    """Store ``exported``'s folder (the model and its external data) under ``key``."""
    folder = os.path.dirname(exported.path)
    files = [
        os.path.join(folder, n) for n in sorted(os.listdir(folder)) if os.path.isfile(os.path.join(folder, n))
    ]
    return store.put(KIND, key, files, _meta(exported))


def export_cached(
    store: Any, source: Exporter, subject: Any, spec: Any, workdir: str, counts: Any
) -> ExportedModel:
    """``subject``'s export: from ``store`` when it holds it, else exported (and stored)."""
    key, why = export_key(source, subject, spec) if store is not None else (None, "")
    if key is not None:
        found = load(store, key, workdir)
        if found is not None:
            counts["cached_exports"] += 1
            return found
    exported = source.export(subject.model, spec, workdir=workdir, opset=spec.opset)
    counts["exports"] += 1
    if store is None:
        return exported
    if key is None:
        return dataclasses.replace(exported, cache=f"not cached: {why}")
    if not save(store, key, exported):
        return dataclasses.replace(exported, cache="not cached: the cache folder cannot be written")
    return dataclasses.replace(exported, cache="stored in the persistent cache", cache_key=key)
