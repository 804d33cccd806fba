"""The release gate: this run's report against a stored baseline report, and report diffs.

The gate fails on (each reason names the item and both numbers):

- an item that passed in the baseline and fails (or errors) now;
- an item in the baseline that did not run now, or was skipped (lost coverage);
- an output's max abs error that grew by more than ``max_error_growth`` (default 2×), when it
  is also above ``error_floor`` (noise near zero must not trip it);
- a latency regression beyond ``max_latency_regression`` (default 20%), only for latency items
  enforced in this run (the ratio where the budget is a ratio, else the variant's p50).

Comparing reports whose environment keys differ (ONNX Runtime version, execution providers)
or whose items ran at different opsets warns, naming what differs. A report from an interrupted
or incomplete run is refused on either side: it is no release result. Pure functions over
report documents (checked against the schema; the free-form parts — ``measured``, ``budget`` —
are read defensively); the pytest plugin and the ``onnxparity gate`` command both call
:func:`gate`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, cast

from onnxparity.config import DEFAULT_MAX_ERROR_GROWTH, DEFAULT_MAX_LATENCY_REGRESSION
from onnxparity.report import error_value
from onnxparity.report.document import completeness, environment_key

#: errors below this never trip the growth check (noise near zero).
DEFAULT_ERROR_FLOOR = 1e-6

_BAD = ("failed", "error")


@dataclass(frozen=True)
class GateResult:
    """Why the gate fails (empty: it passes), and what makes the comparison doubtful."""

    reasons: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()
    compared: int = 0
    #: why the gate could not judge at all (an interrupted run on either side); "" when it could
    refused: str = ""

    @property
    def passed(self) -> bool:
        return not self.reasons and not self.refused


def number(value: Any) -> float | None:
    """A stored number as a float (see :func:`error_value`); None for anything else, including
    an integer too large for a float."""
    try:
        return error_value(value)
    except OverflowError:
        return None


def dig(value: Any, *keys: str) -> Any:
    """``value[k1][k2]...``, or None where a level is missing or not an object."""
    for key in keys:
        value = value.get(key) if isinstance(value, Mapping) else None
    return value


def _by_id(document: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    return {item["nodeid"]: item for item in document["items"]}


def output_errors(item: Mapping[str, Any]) -> dict[str, float]:
    """Max abs error per output of a parity item (those that have one; see :func:`error_value`)."""
    found = {}
    for out in dig(item, "result", "outputs") or []:
        value = number(out.get("max_abs_error"))
        if value is not None:
            found[out["name"]] = value
    return found


def latency_of(item: Mapping[str, Any]) -> tuple[str, float] | None:
    """The latency item's measure (what, value), when it has a number for it."""
    if dig(item, "result", "budget", "max_ratio") is not None:
        what, value = "ratio", number(dig(item, "result", "measured", "ratio"))
    else:
        what, value = "p50 ms", number(dig(item, "result", "measured", "variant", "p50"))
    return None if value is None or dig(item, "result", "measured", "variant") is None else (what, value)


def _first_line(item: Mapping[str, Any]) -> str:
    message = (item.get("result") or {}).get("message") or ""
    return message.strip().splitlines()[0] if message.strip() else item["status"]


def gate(
    current: Mapping[str, Any],
    baseline: Mapping[str, Any],
    *,
    max_error_growth: float = DEFAULT_MAX_ERROR_GROWTH,
    error_floor: float = DEFAULT_ERROR_FLOOR,
    max_latency_regression: float = DEFAULT_MAX_LATENCY_REGRESSION,
) -> GateResult:
    for document, side in ((current, "this report"), (baseline, "the baseline")):
        incomplete = completeness(document)
        if incomplete is not None:
            return GateResult(refused=f"{side}: {incomplete}; an incomplete report is no release result")
    now, before = _by_id(current), _by_id(baseline)
    reasons: list[str] = []
    warnings: list[str] = [
        f"{side} is a schema_version 1 report: it cannot say whether its run was complete"
        for document, side in ((current, "this report"), (baseline, "the baseline"))
        if document.get("schema_version") == 1
    ]
    key_now, key_before = environment_key(current["environment"]), environment_key(baseline["environment"])
    for name in key_now:
        if key_now[name] != key_before[name]:
            warnings.append(
                f"environment differs: {name} is {key_now[name]} now, {key_before[name]} in the baseline; "
                "numbers may not be comparable"
            )
    for nodeid, old in before.items():
        new = now.get(nodeid)
        if new is None:
            reasons.append(f"{nodeid}: in the baseline ({old['status']}) but did not run now (lost coverage)")
            continue
        if old.get("opset") != new.get("opset") or _model_opset(old) != _model_opset(new):
            warnings.append(f"{nodeid}: opset {_model_opset(new)} now, {_model_opset(old)} in the baseline")
        if old["status"] == "passed" and new["status"] in _BAD:
            reasons.append(f"{nodeid}: passed in the baseline, {new['status']} now: {_first_line(new)}")
            continue
        if old["status"] == "passed" and new["status"] == "skipped":
            reasons.append(
                f"{nodeid}: passed in the baseline, skipped now (lost coverage): {_first_line(new)}"
            )
            continue
        for output, value in output_errors(new).items():
            was = output_errors(old).get(output)
            if was is None:
                continue
            if value > error_floor and value > max_error_growth * max(was, error_floor / max_error_growth):
                reasons.append(
                    f"{nodeid}: output {output!r} max abs error grew from {was:.3g} to {value:.3g} "
                    f"(more than {max_error_growth:g}x; floor {error_floor:g})"
                )
        latency_new, latency_old = latency_of(new), latency_of(old)
        enforced = dig(new, "result", "measured", "mode") == "enforce"
        if latency_new and latency_old and enforced and latency_new[0] == latency_old[0]:
            (what, value), (_, was) = latency_new, latency_old
            if was > 0 and value > was * (1 + max_latency_regression):
                reasons.append(
                    f"{nodeid}: latency {what} regressed from {was:.3g} to {value:.3g} "
                    f"(+{100 * (value / was - 1):.0f}%, more than {100 * max_latency_regression:g}%)"
                )
    return GateResult(tuple(reasons), tuple(warnings), len(before))


def _model_opset(item: Mapping[str, Any]) -> Any:
    return item.get("opset") or (item.get("model") or {}).get("opset")


def diff(before: Mapping[str, Any], after: Mapping[str, Any]) -> list[str]:
    """What changed between two reports, one line per changed item (empty: nothing)."""
    old, new = _by_id(before), _by_id(after)
    lines = []
    for nodeid in sorted(set(old) | set(new)):
        a, b = old.get(nodeid), new.get(nodeid)
        if a is None:
            lines.append(f"+ {nodeid}: {cast(Mapping[str, Any], b)['status']} (new)")  # (in one of the two)
            continue
        if b is None:
            lines.append(f"- {nodeid}: {a['status']} (gone)")
            continue
        changes = []
        if a["status"] != b["status"]:
            changes.append(f"{a['status']} -> {b['status']}")
        ea, eb = output_errors(a), output_errors(b)
        for output in sorted(set(ea) & set(eb)):
            if ea[output] != eb[output]:
                changes.append(f"{output} max abs error {ea[output]:.3g} -> {eb[output]:.3g}")
        la, lb = latency_of(a), latency_of(b)
        if la and lb and la[0] == lb[0] and la[1] != lb[1]:
            changes.append(f"latency {la[0]} {la[1]:.3g} -> {lb[1]:.3g}")
        if changes:
            lines.append(f"~ {nodeid}: " + "; ".join(changes))
    return lines
