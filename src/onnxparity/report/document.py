"""The JSON report: one versioned document per run, the contract a release gate reads.

Shape (``schema.json`` beside this file is the JSON Schema)::

    {"schema": "onnxparity-report", "schema_version": 1, "created": "...",
     "environment": {...versions, providers, CPU/GPU, threads...},
     "settings": {...examples, threads, latency mode...},
     "items": [{"nodeid", "test", "item", "kind", "variant", "opset", "status",
                "model": {...}, "result": {...}}, ...],
     "summary": {"passed": n, "failed": n, "error": n, "skipped": n}}

Items are generic — a kind (``parity``, ``opset``, ``latency``) and a result object — so new
variants and budgets slot in without changing the schema. Items are sorted by node id, so a
serial run and an xdist run write the same document. Writes are atomic (temp file + rename).
Knows nothing of pytest or frameworks.
"""

from __future__ import annotations

import datetime
import json
import os
from collections.abc import Iterable, Mapping
from typing import Any

from .. import onnxutils
from .._machine import environment  # the report's form; ``document.environment`` stays importable
from ..compare import json_float
from . import STATUSES, worst_error

SCHEMA = "onnxparity-report"
SCHEMA_VERSION = 1


class ReportError(ValueError):
    """A report file is missing, unreadable or not an onnxparity report."""


def environment_key(env: Mapping[str, Any]) -> dict[str, Any]:
    """What must match for two reports' numbers to be comparable (opsets are per item)."""
    versions = env.get("versions", {})
    return {
        "onnxruntime": versions.get("onnxruntime-gpu") or versions.get("onnxruntime"),
        "execution_providers": sorted(env.get("execution_providers", [])),
    }


def entry(
    nodeid: str, test: str, item: Any, status: str, result: Mapping[str, Any], checked: Any = None
) -> dict:
    """One item's entry: its ids, kind, verdict, the model's export and the result's data.
    ``item`` is a :class:`~onnxparity.spec.Item`; ``checked`` the CheckResult, when there is one."""
    model = None
    if checked is not None:
        model = {
            "name": checked.name,
            "exporter": checked.exporter,
            "opset": checked.opset,
            "notes": list(checked.notes),
        }
    return {
        "nodeid": nodeid,
        "test": test,
        "item": item.id,
        "kind": item.kind,
        "variant": item.variant,
        "opset": item.opset,
        "status": status,
        "model": model,
        "result": jsonable(result),
    }


def junit_properties(entry: Mapping[str, Any]) -> list[tuple[str, Any]]:
    """An entry's key numbers, as ``record_property`` pairs for JUnit XML."""
    result = entry["result"]
    properties: list[tuple[str, Any]] = [("onnx_parity_status", entry["status"])]
    worst = worst_error(result.get("outputs") or [])
    if worst is not None:
        properties.append(("onnx_parity_max_abs_error", worst))
    if result.get("examples"):
        properties.append(("onnx_parity_examples", result["examples"]))
    measured = result.get("measured") or {}
    if "variant" in measured:
        properties += [
            ("onnx_parity_latency_p50_ms", measured["variant"]["p50"]),
            ("onnx_parity_latency_ratio", measured["ratio"]),
        ]
    if entry["model"] and entry["model"]["opset"] is not None:
        properties.append(("onnx_parity_opset", entry["model"]["opset"]))
    return properties


def build(
    entries: Iterable[Mapping[str, Any]],
    *,
    env: Mapping[str, Any] | None = None,
    settings: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """A report document from item entries (any order; sorted by node id here)."""
    items = sorted((dict(e) for e in entries), key=lambda e: e["nodeid"])
    summary = {status: 0 for status in STATUSES}
    for item in items:
        summary[item["status"]] = summary.get(item["status"], 0) + 1
    return {
        "schema": SCHEMA,
        "schema_version": SCHEMA_VERSION,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "environment": dict(env) if env is not None else environment(),
        "settings": dict(settings or {}),
        "items": items,
        "summary": summary,
    }


def write_atomic(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` to ``path`` atomically (temp file in the same directory, then a rename)."""
    onnxutils.write_atomic(path, text)


def dumps(document: Mapping[str, Any]) -> str:
    return json.dumps(jsonable(document), indent=2, sort_keys=False, allow_nan=False) + "\n"


def jsonable(value: Any) -> Any:
    """``value`` with non-finite floats as the strings "inf", "-inf", "nan" (strict JSON) and
    tuples as lists."""
    if value is None or type(value) in (bool, int, str):
        return value
    if isinstance(value, str):  # a str subclass (torch's TorchVersion): xdist sends exact types only
        return str(value)
    if isinstance(value, float):
        return json_float(float(value))
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if hasattr(value, "item") and callable(value.item):  # numpy scalars
        return jsonable(value.item())
    if isinstance(value, int):
        return int(value)
    return str(value)


def save(document: Mapping[str, Any], path: str | os.PathLike) -> None:
    write_atomic(path, dumps(document))


def load(path: str | os.PathLike) -> dict[str, Any]:
    """Read a report; ReportError naming the file and what is wrong with it."""
    path = os.fspath(path)
    try:
        with open(path, encoding="utf-8") as f:
            document = json.load(f)
    except FileNotFoundError:
        raise ReportError(f"{path}: no such report") from None
    except (OSError, json.JSONDecodeError) as exc:
        raise ReportError(f"{path}: not a readable JSON report ({exc})") from None
    check_document(document, path)
    return document


def check_document(document: Any, where: str = "report") -> None:
    if not isinstance(document, dict) or document.get("schema") != SCHEMA:
        raise ReportError(f'{where}: not an onnxparity report (no "schema": "{SCHEMA}")')
    version = document.get("schema_version")
    if version != SCHEMA_VERSION:
        raise ReportError(
            f"{where}: schema_version {version!r}, but this onnxparity reads version {SCHEMA_VERSION}; "
            "re-create it with this version"
        )
    if not isinstance(document.get("items"), list):
        raise ReportError(f'{where}: "items" must be a list')


def merge(documents: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """One report from several (sharded CI jobs): items by node id; an item in more than one
    keeps its last occurrence. Environment and settings come from the first; the others'
    environments are kept under ``merged_environments`` when they differ."""
    documents = list(documents)
    if not documents:
        raise ReportError("nothing to merge: give at least one report")
    items: dict[str, Any] = {}
    for document in documents:
        for item in document["items"]:
            items[item["nodeid"]] = item
    first = documents[0]
    merged = build(items.values(), env=first["environment"], settings=first.get("settings"))
    others = [d["environment"] for d in documents[1:] if d["environment"] != first["environment"]]
    if others:
        merged["merged_environments"] = others
    return merged


def schema() -> dict[str, Any]:
    """The report's JSON Schema (``schema.json``, shipped in the package)."""
    with open(os.path.join(os.path.dirname(__file__), "schema.json"), encoding="utf-8") as f:
        return json.load(f)
