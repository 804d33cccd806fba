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
from typing import Any, cast

from onnxparity.environment import version
from onnxparity.exporters.base import ExportedModel, Exporter, export_folder
from onnxparity.exporters.identity import fingerprinted, onnxparity_digest
from onnxparity.graph.files import load_model

KIND = "exports"


def export_key(source: Exporter, subject: Any, spec: Any) -> tuple[str | None, str]:
    """(the key of ``subject``'s export under ``spec``, "") or (None, why it has none)."""
    from onnxparity.persist import digest

    identity = subject.identity if subject.identity is not None else source.identity(subject.model)
    for found in (identity, subject.origin):
        if found is not None and found.why:
            return None, found.why
    parts = {
        "source": source.name,
        "fingerprint": subject.key,
        "code": identity.digest,
        "origin": subject.origin.digest if subject.origin is not None else "",
        "inputs": spec.input_digest,
        "opset": spec.opset,
        "versions": {p: version(p) for p in source.packages},
        "onnxparity": onnxparity_digest(),
        "python": platform.python_version_tuple()[:2],
    }
    return digest(parts), ""


def graph_digest(path: str) -> str:
    """A digest of what the ONNX file at ``path`` computes: its graph and weights, without the
    names and notes an exporter may draw at random (skl2onnx names each graph by a uuid) or
    fill with the machine's paths (doc strings, metadata)."""
    import hashlib

    import onnx

    from onnxparity.graph.files import external_data_files

    proto = onnx.load(path, load_external_data=False)
    proto.doc_string = ""
    proto.ClearField("metadata_props")
    graphs = [proto.graph]
    while graphs:
        graph = graphs.pop()
        graph.name, graph.doc_string = "", ""
        for node in graph.node:
            node.doc_string = ""
            node.ClearField("metadata_props")
            graphs += [a.g for a in node.attribute if a.HasField("g")]
            graphs += [g for a in node.attribute for g in a.graphs]
    h = hashlib.blake2b(proto.SerializeToString(deterministic=True), digest_size=16)
    folder = os.path.dirname(path)
    for location in external_data_files(path, proto):
        with open(os.path.join(folder, location), "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
    return h.hexdigest()


def _meta(exported: ExportedModel) -> dict[str, Any]:
    tolerance = exported.default_tolerance
    return {
        "file": os.path.basename(exported.path),
        "input_names": list(exported.input_names),
        "output_names": list(exported.output_names),
        "exporter": exported.exporter,
        "opset": exported.opset,
        "key": exported.key,
        "notes": list(exported.notes),
        "renamed": dict(exported.renamed),
        "default_tolerance": None if tolerance is None else dataclasses.asdict(tolerance),
        "graph": graph_digest(exported.path),
    }


def _strings(value: Any) -> tuple[str, ...] | None:
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return tuple(value)
    return None


def _exported(meta: Any, folder: str, key: str) -> ExportedModel | None:
    """The export a stored entry describes, or None where its metadata is malformed or its
    file does not parse (a miss: searched again, never an error)."""
    from onnxparity.spec import Tolerance

    if not isinstance(meta, dict):
        return None
    names = [_strings(meta.get(k)) for k in ("input_names", "output_names", "notes")]
    file, opset, tolerance = meta.get("file"), meta.get("opset"), meta.get("default_tolerance")
    if (
        any(n is None for n in names)
        or not isinstance(file, str)
        or os.path.basename(file) != file
        or file in ("", ".", "..")
        or not (opset is None or (isinstance(opset, int) and not isinstance(opset, bool)))
        or not all(isinstance(meta.get(k), str) for k in ("exporter", "key", "graph"))
        or not (tolerance is None or isinstance(tolerance, dict))
    ):
        return None
    renamed = meta.get("renamed", {})
    if not (isinstance(renamed, dict) and all(isinstance(v, str) for v in (*renamed, *renamed.values()))):
        return None
    path = os.path.join(folder, file)
    try:
        default = None if tolerance is None else Tolerance(**tolerance)
        # it parses (the store checked every file's bytes against their digests already)
        load_model(path).graph  # noqa: B018
    except Exception:  # not an ONNX file, or a tolerance that is not one
        return None
    return ExportedModel(
        path,
        cast("tuple[str, ...]", names[0]),  # none is None (checked above)
        cast("tuple[str, ...]", names[1]),
        meta["exporter"],
        opset,
        meta["key"],
        cast("tuple[str, ...]", names[2]),
        default,
        cache="reused from the persistent cache",
        cache_key=key,
        graph=meta["graph"],
        renamed=renamed,
    )


def load(store: Any, key: str, workdir: str, *, label: str = "cached") -> ExportedModel | None:
    """The cached export of ``key``, its files copied into this session's ``workdir``."""
    folder = export_folder(workdir, f"{label}-{key}")
    meta = store.get(KIND, key, folder)
    if meta is None:
        return None
    found = _exported(meta, folder, key)
    if found is None:
        store.discard(KIND, key)  # malformed: searched again, and stored anew
        store.counts["corrupt"] += 1
    return found


def save(store: Any, key: str, exported: ExportedModel) -> bool:
    """Store ``exported``'s folder (the model and its external data; not what the exporter
    printed, :attr:`ExportedModel.log`) under ``key``."""
    folder = os.path.dirname(exported.path)
    log = os.path.abspath(exported.log) if exported.log else None
    files = [
        os.path.join(folder, n)
        for n in sorted(os.listdir(folder))
        if os.path.isfile(os.path.join(folder, n)) and os.path.abspath(os.path.join(folder, n)) != log
    ]
    return cast(bool, store.put(KIND, key, files, _meta(exported)))


def export_cached(
    store: Any, source: Exporter, subject: Any, spec: Any, workdir: str, counts: Any, *, verify: bool = False
) -> ExportedModel:
    """``subject``'s export: from ``store`` when it holds it, else exported (and stored).
    ``verify``: always exported, and compared with what the store would have returned (a
    difference is the export's ``cache_error``, and the entry is replaced)."""
    key, why = export_key(source, subject, spec) if store is not None else (None, "")
    stored = None
    if key is not None:
        stored = load(store, key, workdir, label="verify" if verify else "cached")
        if stored is not None and not verify:
            counts["cached_exports"] += 1
            return stored
    with fingerprinted(subject.model, subject.key[len(source.name) + 1 :]):
        exported = source.export(subject.model, spec, workdir=workdir, opset=spec.opset)
    counts["exports"] += 1
    if store is None:
        return exported
    if key is None:
        return dataclasses.replace(exported, cache=f"not cached: {why}")
    if stored is not None:
        fresh = graph_digest(exported.path)
        if fresh == stored.graph:
            return dataclasses.replace(
                exported, cache=f"verified: the cached export is the fresh one (graph {fresh})", cache_key=key,
                graph=fresh,
            )
        store.discard(KIND, key)
        save(store, key, exported)
        error = (
            f"cache error: the cache held graph {stored.graph} for this export, a fresh export is graph "
            f"{fresh}: its key (entry {key}) misses something the export depends on; the entry was "
            "replaced"
        )
        return dataclasses.replace(exported, cache=error, cache_key=key, graph=fresh, cache_error=error)
    if not save(store, key, exported):
        return dataclasses.replace(exported, cache="not cached: the cache folder cannot be written")
    return dataclasses.replace(exported, cache="stored in the persistent cache", cache_key=key)
