"""The HTML report: one self-contained page a release owner opens before a release.

A matrix of tests × items (variants, opset matrix entries, budgets) coloured by status and by
**headroom** (the share of the tolerance the worst value used, so "passes at 95% of the
tolerance" stands out); per item, on a click: the diagnosis and its localization, the error
distribution over the examples (histograms) and the error against the input's magnitude or
size (scatter), budget bars with the measured spread, the advised tolerance, the change from a
baseline and the trend over earlier reports. Charts are drawn by Chart.js (MIT, inlined from
``assets/``); the page needs no network and no server. The payload is the report's own numbers
(bounded per item: :mod:`onnxparity.verdict.distribution`), so the page stays small for hundreds of
items. Pure: a report document in, a string out.
"""

from __future__ import annotations

import html
import json
import math
import os
import re
from collections.abc import Mapping, Sequence
from functools import cache
from typing import Any, cast

from onnxparity.report import worst_error
from onnxparity.report.advise import DEFAULT_MARGIN, advise
from onnxparity.report.document import completeness
from onnxparity.report.gate import dig, latency_of, number, output_errors
from onnxparity.report.render import rows, weak_reasons

_ASSETS = os.path.join(os.path.dirname(__file__), "assets")


@cache
def _asset(name: str) -> str:
    with open(os.path.join(_ASSETS, name), encoding="utf-8") as f:
        return f.read()


def _finite(value: Any) -> float | None:
    found = number(value)
    return found if found is not None and math.isfinite(found) else None


def headroom(item: Mapping[str, Any]) -> float | None:
    """The share of its tolerance the item's worst value used (None: not recorded, or an
    Agreement item, whose metrics are pooled over the search)."""
    if dig(item, "result", "policy", "kind") == "agreement":
        return None
    return number(dig(item, "result", "distribution", "worst_tolerance_used"))


def _label(document: Mapping[str, Any], fallback: str) -> str:
    return str(document.get("created") or fallback)


def _place(item: Mapping[str, Any]) -> tuple[str, str]:
    """(row, column) of an item in the matrix: a test per row and a variant per column; an
    opset matrix's items (``ort-cpu-opset17``) get a row per opset, budgets a column each."""
    name, variant = str(item["item"]), item.get("variant")
    if item["kind"] == "parity" and variant and name != variant and name.startswith(f"{variant}-"):
        return f"{item['test']} · {name[len(variant) + 1 :]}", str(variant)
    return str(item["test"]), name


def _change(old: Mapping[str, Any] | None, new: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """How an item moved from the baseline: worse, better, same, new or gone, with the numbers."""
    if old is None and new is None:
        return None
    if old is None:
        return {"change": "new", "text": f"new: {cast(Mapping[str, Any], new)['status']}"}  # (not both None)
    if new is None:
        return {"change": "gone", "text": f"gone: was {old['status']}"}
    rank = {"passed": 0, "skipped": 1, "failed": 2, "error": 2}
    notes, direction = [], 0
    if old["status"] != new["status"]:
        notes.append(f"{old['status']} → {new['status']}")
        direction = rank.get(new["status"], 1) - rank.get(old["status"], 1)
    before, after = output_errors(old), output_errors(new)
    for output in sorted(set(before) & set(after)):
        a, b = before[output], after[output]
        if a != b and max(a, b) > 0:
            notes.append(f"{output} max abs error {a:.3g} → {b:.3g}")
            if not direction and (b > 2 * a or a > 2 * b):
                direction = 1 if b > a else -1
    la, lb = latency_of(old), latency_of(new)
    if la and lb and la[0] == lb[0] and la[1] > 0:
        notes.append(f"latency {la[0]} {la[1]:.3g} → {lb[1]:.3g}")
        if not direction and abs(lb[1] / la[1] - 1) > 0.2:
            direction = 1 if lb[1] > la[1] else -1
    change = "worse" if direction > 0 else "better" if direction < 0 else "same"
    return {"change": change, "text": "; ".join(notes) or "unchanged", "before": old["status"]}


def _history_points(nodeid: str, reports: Sequence[tuple[str, Mapping[str, Any]]]) -> list[dict[str, Any]]:
    points: list[dict[str, Any]] = []
    for label, document in reports:
        item = next((i for i in document["items"] if i["nodeid"] == nodeid), None)
        if item is None:
            points.append({"label": label, "status": None, "error": None, "latency": None})
            continue
        latency = latency_of(item)
        points.append(
            {
                "label": label,
                "status": item["status"],
                "error": _finite(worst_error(dig(item, "result", "outputs") or [])),
                "latency": None if latency is None else latency[1],
            }
        )
    return points


def payload(
    document: Mapping[str, Any],
    baseline: Mapping[str, Any] | None = None,
    history: Sequence[tuple[str, Mapping[str, Any]]] = (),
    margin: float = DEFAULT_MARGIN,
) -> dict[str, Any]:
    """What the page's script draws: the report's items with their numbers, the advice, and
    the baseline's and the history's view of each."""
    advice = {a.nodeid: a for a in advise(document, margin)}
    cells = rows(document)
    before = {i["nodeid"]: i for i in baseline["items"]} if baseline else {}
    items = []
    for item, cell in zip(document["items"], cells):
        result = item.get("result") or {}
        given = advice.get(item["nodeid"])
        row, column = _place(item)
        items.append(
            {
                "id": item["nodeid"],
                "test": row,
                "column": column,
                "kind": item["kind"],
                "status": item["status"],
                "weak": weak_reasons(item),
                "headroom": headroom(item),
                "worst": cell[3],
                "room": cell[4],
                "policy": cell[5],
                "examples": result.get("examples"),
                "cached": (result.get("cached") or {}).get("from")
                if isinstance(result.get("cached"), Mapping)
                else None,
                "message": result.get("message") or "",
                "divergence": result.get("divergence"),
                "distribution": result.get("distribution"),
                "coverage": result.get("coverage"),
                "budget": result.get("budget"),
                "measured": result.get("measured"),
                "model": item.get("model"),
                "advice": None
                if given is None
                else {"expression": given.expression, "basis": given.basis, "looser": given.looser},
                "baseline": _change(before.get(item["nodeid"]), item) if baseline else None,
                "history": _history_points(item["nodeid"], history) if history else None,
            }
        )
    gone = [
        {"id": nodeid, "test": old["test"], "status": old["status"]}
        for nodeid, old in before.items()
        if nodeid not in {i["nodeid"] for i in document["items"]}
    ]
    environment = document.get("environment") or {}
    return {
        "created": document.get("created"),
        "summary": document.get("summary"),
        "incomplete": completeness(document),
        "environment": {
            "python": environment.get("python"),
            "cpu": environment.get("cpu"),
            "providers": environment.get("execution_providers"),
            "versions": environment.get("versions"),
        },
        "tests": list(dict.fromkeys(i["test"] for i in items)),
        "columns": sorted(dict.fromkeys(i["column"] for i in items), key=_column_order),
        "items": items,
        "baseline": None if baseline is None else {"label": _label(baseline, "baseline"), "gone": gone},
        "history": [label for label, _ in history],
        "margin": margin,
    }


def _column_order(column: str) -> tuple[int, str]:
    """Lossless variants first, lossy ones next, budgets last."""
    if column == "opset" or column.startswith("latency-"):
        return 2, column
    if column.startswith(("int8", "fp16")):
        return 1, column
    return 0, column


def _clean(value: Any) -> Any:
    """``value`` with non-finite floats as the report writes them ("inf", "-inf", "nan")."""
    if isinstance(value, float) and not math.isfinite(value):
        return "nan" if value != value else ("inf" if value > 0 else "-inf")
    if isinstance(value, Mapping):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    return value


def _json_for_script(value: Any) -> str:
    """JSON safe inside a <script> element (no ``</script>`` or ``<!--`` can end it early)."""
    text = json.dumps(_clean(value), allow_nan=False, default=str)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def page(
    document: Mapping[str, Any],
    baseline: Mapping[str, Any] | None = None,
    history: Sequence[tuple[str, Mapping[str, Any]]] = (),
    title: str = "ONNX parity report",
    margin: float = DEFAULT_MARGIN,
) -> str:
    """The whole page for ``document`` (against ``baseline``, over ``history``: (label, report)
    pairs, oldest first, the current report last)."""
    parts = {
        "title": html.escape(title),
        "style": _asset("report.css"),
        "chartjs": _asset("chart.umd.min.js").replace("</script", "<\\/script"),
        "app": _asset("report.js"),
        "data": _json_for_script(payload(document, baseline, history, margin)),
    }
    # one pass over the template: a placeholder inside an inlined part is left alone
    return re.sub(r"\{\{(\w+)\}\}", lambda m: parts[m.group(1)], _asset("page.html"))
