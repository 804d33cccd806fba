"""The JSON report: one versioned document per run, the contract a release gate reads.

Shape (``schema.json`` beside this file is the JSON Schema)::

    {"schema": "onnxparity-report", "schema_version": 3, "created": "...",
     "interrupted": false, "interruption": null, "items_planned": n, "items_reported": n,
     "environment": {...versions, providers, CPU/GPU, threads...},
     "settings": {...examples, threads, latency mode...},
     "items": [{"nodeid", "test", "item", "kind", "variant", "opset", "status",
                "model": {...}, "result": {...}}, ...],
     "summary": {"passed": n, "failed": n, "error": n, "skipped": n}}

Items are generic — a kind (``parity``, ``opset``, ``latency``) and a result object — so new
variants and budgets slot in without changing the schema. Items are sorted by node id, so a
serial run and an xdist run write the same document. Writes are atomic (temp file + rename).
Knows nothing of pytest or frameworks.

A report is untrusted input: :func:`load` checks it against the shipped schema in plain Python
(no jsonschema at runtime) and names the file and the field of the first problem. Version 1
reports (before the completeness fields) stay readable: they load with ``interrupted`` false
and ``items_planned`` null, and keep ``schema_version`` 1 so the gate can say that their
completeness is unknown. Version 3 adds each parity result's ``distribution`` (per-example numbers
in bounded size, for the HTML report and the tolerance advisor); version 2 reports read as they
are, without it.
"""

from __future__ import annotations

import datetime
import functools
import json
import os
from collections.abc import Callable, Iterable, Mapping
from typing import Any, cast

import onnxparity.graph.files as onnxutils
from onnxparity.environment import environment as environment  # the report's form (re-exported)
from onnxparity.report import STATUSES, worst_error
from onnxparity.verdict.compare import json_float

SCHEMA = "onnxparity-report"
SCHEMA_VERSION = 3
#: the versions :func:`load` reads (older ones are upgraded in memory)
READABLE_VERSIONS = (1, 2, 3)
#: deeper JSON than this is not a report (ours nest about 8 levels), and would exhaust recursion
MAX_DEPTH = 64


class ReportError(ValueError):
    """A report file is missing, unreadable or not an onnxparity report."""


class IncompleteReport(ReportError):
    """A report written by an interrupted or incomplete run: it is no release result."""


def environment_key(env: Mapping[str, Any]) -> dict[str, Any]:
    """What must match for two reports' numbers to be comparable (opsets are per item)."""
    versions = env.get("versions", {})
    return {
        "onnxruntime": versions.get("onnxruntime-gpu") or versions.get("onnxruntime"),
        "execution_providers": sorted(env.get("execution_providers", [])),
    }


def entry(
    nodeid: str, test: str, item: Any, status: str, result: Mapping[str, Any], checked: Any = None
) -> dict[str, Any]:
    """One item's entry: its ids, kind, verdict, the model's export and the result's data.
    ``item`` is a :class:`~onnxparity.spec.Item`; ``checked`` the CheckResult, when there is one."""
    model = None
    if checked is not None:
        model = {
            "name": checked.name,
            "exporter": checked.exporter,
            "opset": checked.opset,
            "notes": list(checked.notes),
            "cache": getattr(checked, "cache", ""),
            "export": export_entry(checked),
        }
    return {**planned_entry(nodeid, test, item), "status": status, "model": model, "result": jsonable(result)}


def export_entry(checked: Any) -> dict[str, Any]:
    """The export's key and who exported it: this process (``host:pid``), or None where the
    export came from the persistent cache."""
    import socket

    cache = str(getattr(checked, "cache", ""))
    by = None if cache.startswith("reused") else f"{socket.gethostname()}:{os.getpid()}"
    return {"key": str(getattr(checked, "export_key", ""))[:48], "by": by}


def exports(document: Mapping[str, Any]) -> int:
    """How many exports the run's processes made: distinct (process, export key) pairs among
    its items (an export reused from the persistent cache is none)."""
    made = set()
    for item in document.get("items", ()):
        export = (item.get("model") or {}).get("export") or {}
        if export.get("by") and export.get("key"):
            made.add((export["by"], export["key"]))
    return len(made)


def planned_entry(nodeid: str, test: str, item: Any) -> dict[str, Any]:
    """What is known of an item before it runs: its ids, kind, variant and opset."""
    return {
        "nodeid": nodeid,
        "test": test,
        "item": item.id,
        "kind": item.kind,
        "variant": item.variant,
        "opset": item.opset,
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


def placeholder(planned: Mapping[str, Any], status: str, message: str) -> dict[str, Any]:
    """The entry of an item that produced no result of its own (it errored or was skipped
    before its check, or its xdist worker crashed): its planned ids, ``status`` and why."""
    return {**planned, "status": status, "model": None, "result": {"status": status, "message": message}}


def build(
    entries: Iterable[Mapping[str, Any]],
    *,
    env: Mapping[str, Any] | None = None,
    settings: Mapping[str, Any] | None = None,
    planned: int | None = None,
    interruption: str | None = None,
    run: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """A report document from item entries (any order; sorted by node id here). ``planned``:
    how many items the run collected (None: unknown); ``interruption``: why the run is
    incomplete (None: it is complete); ``run``: a shard's ``shard`` and its whole run's
    ``run_plan`` (node ids), kept top-level where given (:mod:`.shards`)."""
    items = sorted((dict(e) for e in entries), key=lambda e: e["nodeid"])
    summary = {status: 0 for status in STATUSES}
    for item in items:
        summary[item["status"]] = summary.get(item["status"], 0) + 1
    return {
        "schema": SCHEMA,
        "schema_version": SCHEMA_VERSION,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "interrupted": interruption is not None,
        "interruption": interruption,
        "items_planned": planned,
        "items_reported": len(items),
        "environment": dict(env) if env is not None else environment(),
        "settings": dict(settings or {}),
        "items": items,
        "summary": summary,
        **{k: v for k, v in (run or {}).items() if k in ("shard", "run_plan", "shards") and v is not None},
    }


def write_atomic(path: str | os.PathLike[str], text: str) -> None:
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


def save(document: Mapping[str, Any], path: str | os.PathLike[str]) -> None:
    write_atomic(path, dumps(document))


def load(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a report; ReportError naming the file and what is wrong with it (and where)."""
    path = os.fspath(path)
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except FileNotFoundError:
        raise ReportError(f"{path}: no such report") from None
    except OSError as exc:
        raise ReportError(f"{path}: cannot read it ({exc.strerror or exc})") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ReportError(
            f"{path}: not a readable JSON report (not UTF-8: byte 0x{raw[exc.start]:02x} at offset {exc.start})"
        ) from None
    try:
        document = json.loads(text)
    except (ValueError, RecursionError) as exc:
        reason = exc if isinstance(exc, ValueError) else f"nested more than {MAX_DEPTH} levels deep"
        raise ReportError(f"{path}: not a readable JSON report ({reason})") from None
    return check_document(document, path)


def check_document(document: Any, where: str = "report") -> dict[str, Any]:
    """``document`` checked against the schema (ReportError naming ``where`` and the first bad
    field), upgraded to the current version's fields when it is an older one."""
    if not isinstance(document, dict) or document.get("schema") != SCHEMA:
        raise ReportError(f'{where}: not an onnxparity report (no "schema": "{SCHEMA}")')
    version = document.get("schema_version")
    if not any(_same(version, v) for v in READABLE_VERSIONS):
        readable = ", ".join(map(str, READABLE_VERSIONS[:-1])) + f" and {READABLE_VERSIONS[-1]}"
        newer = type(version) is int and version > SCHEMA_VERSION
        raise ReportError(
            f"{where}: schema_version {_show(version)} is "
            + (
                f"newer than this onnxparity reads ({readable}): upgrade onnxparity"
                if newer
                else f"not a version this onnxparity reads ({readable}); re-create the report"
            )
        )
    if _too_deep(document, MAX_DEPTH):
        raise ReportError(f"{where}: nested more than {MAX_DEPTH} levels deep: not an onnxparity report")
    problem = _problem(document, _schema())
    if problem is not None:
        raise ReportError(f"{where}: {problem}")
    if version == 1:
        items_reported = len(document["items"])
        document = {"interrupted": False, "interruption": None, "items_planned": None, **document}
        document["items_reported"] = items_reported
    return cast(dict[str, Any], document)  # (a dict: checked above)


def completeness(document: Mapping[str, Any]) -> str | None:
    """Why ``document``'s run is incomplete, with its counts; None when it is complete."""
    if not document.get("interrupted"):
        return None
    planned, reported = document.get("items_planned"), document.get("items_reported")
    counts = (
        f"{reported} of {planned} planned items reported"
        if planned is not None
        else f"{reported} items reported, how many were planned is unknown"
    )
    return f"the run was interrupted ({document.get('interruption') or 'no reason recorded'}; {counts})"


def check_complete(document: Mapping[str, Any], where: str = "report") -> None:
    """IncompleteReport when ``document`` comes from an interrupted or incomplete run."""
    incomplete = completeness(document)
    if incomplete is not None:
        raise IncompleteReport(
            f"{where}: {incomplete}; an incomplete report is no release result: rerun the suite to completion"
        )


def merge(documents: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """One report from several (sharded CI jobs): items by node id; an item in more than one
    keeps its last occurrence. Environment and settings come from the first; the others'
    environments are kept under ``merged_environments`` when they differ. The merge is
    interrupted when any part is, and knows how many items were planned when every part says
    and no item is in two parts. Where the parts are shards that recorded their run's plan, an
    item that plan holds and no part reported makes the merge incomplete, naming it: a shard's
    report is missing (:func:`.shards.unreported`)."""
    from onnxparity.report.shards import unreported

    documents = list(documents)
    if not documents:
        raise ReportError("nothing to merge: give at least one report")
    items: dict[str, Any] = {}
    for document in documents:
        for item in document["items"]:
            items[item["nodeid"]] = item
    first = documents[0]
    parts = [d.get("items_planned") for d in documents]
    disjoint = len(items) == sum(len(d["items"]) for d in documents)
    reasons = [
        f"part {n}: {d.get('interruption') or 'interrupted'}"
        for n, d in enumerate(documents, 1)
        if d.get("interrupted")
    ]
    missing, run_planned = unreported(documents)
    if missing:
        shown = ", ".join(missing[:3]) + (f" and {len(missing) - 3} more" if len(missing) > 3 else "")
        reasons.append(
            f"{len(missing)} item(s) the run planned were reported by no part ({shown}): a shard's or a job's "
            "report is missing from the merge"
        )
    shards = [d["shard"] for d in documents if isinstance(d.get("shard"), dict)]
    merged = build(
        items.values(),
        env=first["environment"],
        settings=first.get("settings"),
        planned=run_planned
        if run_planned is not None
        else (sum(cast(list[int], parts)) if disjoint and None not in parts else None),
        interruption="; ".join(reasons) or None,
        run={
            "run_plan": sorted({str(n) for d in documents for n in d.get("run_plan") or ()}) if run_planned else None,
            "shards": shards or None,
        },
    )
    others = [d["environment"] for d in documents[1:] if d["environment"] != first["environment"]]
    if others:
        merged["merged_environments"] = others
    return merged


# -- the schema, checked in plain Python ------------------------------------------------------
#: what a JSON Schema type is called in a message
_TYPES = {"object": "an object", "array": "a list", "string": "a string", "integer": "an integer"}
_TYPES.update({"number": "a number", "boolean": "true or false", "null": "null"})
#: the keywords :func:`_problem` applies; a test checks ``schema.json`` uses no other
KEYWORDS = frozenset(
    {"type", "const", "enum", "anyOf", "allOf", "if", "then", "required", "properties"}
    | {"additionalProperties", "items", "minimum", "minItems", "maxItems", "$ref"}
)
ANNOTATIONS = frozenset({"$schema", "$id", "$defs", "title", "description"})


def _is_type(value: Any, name: str) -> bool:
    if name in ("integer", "number"):
        number = isinstance(value, (int, float)) and not isinstance(value, bool)
        return number and (name == "number" or isinstance(value, int) or value.is_integer())
    return isinstance(
        value, {"object": dict, "array": list, "string": str, "boolean": bool}.get(name, type(None))
    )


def _same(a: Any, b: Any) -> bool:
    """JSON equality: 2 equals 2.0, but true is not 1."""
    return a == b and (isinstance(a, bool) == isinstance(b, bool)) and type(a) in (type(b), int, float)


def _show(value: Any) -> str:
    if isinstance(value, (dict, list)):
        return "an object" if isinstance(value, dict) else "a list"
    if isinstance(value, int) and abs(value) > 10**30:
        return f"a {len(str(abs(value)))}-digit integer"
    text = json.dumps(value) if value is None or isinstance(value, bool) else repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _describe(rule: Mapping[str, Any]) -> str:
    rule = _resolve(rule["$ref"]) if "$ref" in rule else rule
    if "enum" in rule or "const" in rule:
        return "one of " + ", ".join(json.dumps(v) for v in rule.get("enum", [rule.get("const")]))
    kinds = rule.get("type", [])
    return " or ".join(_TYPES[k] for k in ([kinds] if isinstance(kinds, str) else kinds)) or "another shape"


def _resolve(ref: str) -> Mapping[str, Any]:
    target: Any = _schema()
    for part in ref.removeprefix("#/").split("/"):
        target = target[part]
    return cast(Mapping[str, Any], target)


def _at(path: str, key: Any) -> str:
    key = str(key)
    return (f"{path}.{key}" if path else key) if key.isidentifier() else f"{path}[{json.dumps(key)}]"


def _problem(value: Any, rule: Mapping[str, Any], path: str = "") -> str | None:
    """The first way ``value`` breaks ``rule`` (part of the schema), naming the field; None if none."""
    at = f"{path}: " if path else ""
    kinds = rule.get("type")
    kinds = [kinds] if isinstance(kinds, str) else kinds
    checks: list[tuple[object, Callable[[], str]]] = [
        (kinds and not any(_is_type(value, k) for k in kinds), lambda: f"expected {_describe(rule)}"),
        ("const" in rule and not _same(value, rule.get("const")), lambda: f"expected {_describe(rule)}"),
        (
            "enum" in rule and not any(_same(value, v) for v in rule["enum"]),
            lambda: f"expected {_describe(rule)}",
        ),
        (
            "anyOf" in rule and all(_problem(value, alt, path) for alt in rule["anyOf"]),
            lambda: "expected " + " or ".join(_describe(alt) for alt in rule["anyOf"]),
        ),
    ]
    for failed, expected in checks:
        if failed:
            return f"{at}{expected()}, got {_show(value)}"
    nested = [_resolve(rule["$ref"])] if "$ref" in rule else []
    nested += rule.get("allOf", [])
    if "then" in rule and _problem(value, rule["if"], path) is None:
        nested.append(rule["then"])
    for part in nested:
        found = _problem(value, part, path)
        if found is not None:
            return found
    if _is_type(value, "number") and (abs(value) > 1e308 if isinstance(value, int) else False):
        return f"{at}{_show(value)} is too large for a number"  # float() of it would overflow
    if _is_type(value, "number") and value < rule.get("minimum", value):
        return f"{at}{_show(value)} is below the minimum {rule['minimum']}"
    if isinstance(value, dict):
        missing = [key for key in rule.get("required", ()) if key not in value]
        if missing:
            return f"{at}missing required key {json.dumps(missing[0])}"
        for key, item in value.items():
            sub = rule.get("properties", {}).get(key, rule.get("additionalProperties", True))
            found = f"{at}unexpected key {json.dumps(key)}" if sub is False else None
            found = found or (_problem(item, sub, _at(path, key)) if isinstance(sub, dict) else None)
            if found is not None:
                return found
    if isinstance(value, list):
        if not rule.get("minItems", 0) <= len(value) <= rule.get("maxItems", len(value)):
            low, high = rule.get("minItems", 0), rule.get("maxItems", "any")
            return f"{at}expected {low if low == high else f'{low} to {high}'} values, got {len(value)}"
        for index, item in enumerate(value if "items" in rule else ()):
            found = _problem(item, rule["items"], f"{path}[{index}]")
            if found is not None:
                return found
    return None


def _too_deep(value: Any, limit: int) -> bool:
    level = [value]
    for _ in range(limit):
        level = [
            c
            for v in level
            if isinstance(v, (dict, list))
            for c in (v.values() if isinstance(v, dict) else v)
        ]
        if not level:
            return False
    return True


@functools.lru_cache(maxsize=1)
def _schema() -> dict[str, Any]:
    with open(os.path.join(os.path.dirname(__file__), "schema.json"), encoding="utf-8") as f:
        return cast(dict[str, Any], json.load(f))


def schema() -> dict[str, Any]:
    """The report's JSON Schema (``schema.json``, shipped in the package)."""
    return cast(dict[str, Any], json.loads(json.dumps(_schema())))
