"""The tolerance advisor: for each item of a report, the tightest policy that would have passed
with a stated margin over what the search observed, as marker arguments to paste.

- **Tolerance** items: every example records the largest share of the declared tolerance one
  of its values used (``|a - e| / (atol + rtol·|e|)``); the advice is the declared tolerance
  scaled by ``margin`` × the worst share, each number rounded up to one significant digit, and
  never below a few float32 roundings of the output's scale (``FLOAT32_ROUNDINGS`` ulps: values
  this close move with summation order on other inputs).
- **Agreement** items: each rule the policy declares, from the worst single example's value
  (cosine and SQNR; a value pooled over any set of those examples is at least the worst one's,
  while the pooled value itself moved by 10 dB between two seeds of the tiny encoder's int8-static
  check), with the margin applied to what was lost: ``cosine = 1 - margin·(1 - cosine)``,
  ``sqnr_db`` lower by ``10·log10(margin)`` dB (margin × the noise power); ``top1``/``labels``
  with margin × the disagreement rate over the search. A passing item is never advised looser
  than it declared.

Advice needs the per-example numbers of a schema-3 report; an item without them, or whose
outputs matched exactly or differed by NaN/infinity, gets a line saying why instead. Pure.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .gate import dig, number

#: the default margin over the observed worst case
DEFAULT_MARGIN = 2.0
#: an advised atol stays at or above this many float32 ulps of the output's largest value
FLOAT32_ROUNDINGS = 4
_ULP = 2.0**-23


@dataclass(frozen=True)
class Advice:
    nodeid: str
    test: str
    variant: str
    #: the policy to paste (``op.Tolerance(...)`` / ``op.Agreement(...)``); None: no advice
    expression: str | None
    #: what it rests on, or why there is none
    basis: str
    examples: int = 0
    #: the advice is looser than what was declared (the item failed): only if that error is fine
    looser: bool = False
    #: how much was lost (the worst share of the tolerance; under an Agreement, minus the worst
    #: SQNR): of two items of one variant (an opset matrix), the larger one's advice is pasted
    lost: float = 0.0


def _up(value: float) -> float:
    """``value`` rounded up to one significant digit."""
    if value <= 0:
        return 0.0
    scale = 10 ** math.floor(math.log10(value))
    digit = math.ceil(round(value / scale, 9))
    return float(f"{digit * scale:.1g}")


def _down(value: float, digits: int) -> float:
    factor = 10**digits
    return math.floor(value * factor) / factor


def _scale(result: Mapping[str, Any]) -> float:
    """The largest |expected| value over the item's outputs (0 when not recorded)."""
    scales = [number(o.get("scale")) for o in dig(result, "power", "outputs") or []]
    return max((s for s in scales if s is not None and math.isfinite(s)), default=0.0)


def _tolerance(item: Mapping[str, Any], policy: Mapping[str, Any], margin: float) -> Advice:
    result, base = item["result"], _base(item)
    distribution = result.get("distribution")
    if not distribution:
        return Advice(*base, None, "no per-example numbers (a report from before schema 3, or nothing ran)")
    used = number(distribution.get("worst_tolerance_used"))
    examples = int(distribution.get("examples") or 0)
    if used is None or not math.isfinite(used):
        return Advice(*base, None, "NaN or infinity differed: no tolerance passes this", examples)
    if used == 0:
        return Advice(
            *base,
            None,
            f"every value matched exactly over {examples} examples: any tolerance passes",
            examples,
        )
    factor = margin * used
    floor = FLOAT32_ROUNDINGS * _ULP * _scale(result)
    atol = max(_up(float(policy.get("atol", 0.0)) * factor), _up(floor))
    rtol = _up(float(policy.get("rtol", 0.0)) * factor)
    scaled = _up(float(policy.get("scaled", 0.0) or 0.0) * factor)
    parts = [f"atol={atol:g}", f"rtol={rtol:g}"] + ([f"scaled={scaled:g}"] if scaled else [])
    declared = f"atol={policy.get('atol', 0):g}, rtol={policy.get('rtol', 0):g}"
    basis = f"worst {used:.2%} of {declared} over {examples} examples, x{margin:g}"
    return Advice(*base, f"op.Tolerance({', '.join(parts)})", basis, examples, used > 1, used)


def _agreement(item: Mapping[str, Any], policy: Mapping[str, Any], margin: float) -> Advice:
    result, base = item["result"], _base(item)
    outputs = result.get("outputs") or []
    examples = int(result.get("examples") or 0)

    def least(key: str) -> float | None:
        values = [number(o.get(key)) for o in outputs]
        return min((v for v in values if v is not None and math.isfinite(v)), default=None)

    parts, seen, looser = [], [], False
    passed = item["status"] == "passed"
    # the worst example's cosine and SQNR where recorded, else the pooled values
    cosine, sqnr = least("min_cosine"), least("min_sqnr_db")
    cosine = least("cosine") if cosine is None else cosine
    sqnr = least("sqnr_db") if sqnr is None else sqnr
    top1 = least("top1_rate")
    labels = [
        o.get("mismatched_rate") for o in outputs if o.get("top1_rate") is None and o.get("cosine") is None
    ]
    rules = {
        "labels": (None if not labels else 1 - max(labels), lambda v: _down(1 - margin * (1 - v), 4)),
        "top1": (top1, lambda v: _down(1 - margin * (1 - v), 3)),
        "cosine": (cosine, lambda v: _down(1 - margin * (1 - v), 6)),
        "sqnr_db": (sqnr, lambda v: math.floor(2 * (v - 10 * math.log10(margin))) / 2),
    }
    for rule, (observed, advised) in rules.items():
        declared = policy.get(rule)
        if declared is None or (rule == "labels" and declared == 1.0):
            continue
        if observed is None:
            parts.append(f"{rule}={declared:g}")
            continue
        value = advised(observed)
        if passed and value < declared:  # the declared rule passed: nothing looser is advised
            value = declared
        looser = looser or value < declared
        parts.append(f"{rule}={value:g}")
        seen.append(f"{rule} {observed:.6g}")
    if not seen:
        return Advice(
            *base, None, "no metric was measured (every value within the default tolerance)", examples
        )
    basis = f"worst example's {', '.join(seen)} over {examples} examples, margin x{margin:g}"
    lost = -sqnr if sqnr is not None else (1 - cosine if cosine is not None else 0.0)
    return Advice(*base, f"op.Agreement({', '.join(parts)})", basis, examples, looser, lost)


def _base(item: Mapping[str, Any]) -> tuple[str, str, str]:
    variant = item.get("variant") or dig(item, "result", "variant") or item["item"]
    return item["nodeid"], item["test"], str(variant)


def advise(document: Mapping[str, Any], margin: float = DEFAULT_MARGIN) -> list[Advice]:
    """Advice for every parity item that ran (skipped and errored items have no numbers)."""
    if not margin >= 1:
        raise ValueError(f"margin must be 1 or more, got {margin!r}")
    found = []
    for item in document["items"]:
        if item["kind"] != "parity" or item["status"] not in ("passed", "failed"):
            continue
        policy = dig(item, "result", "policy") or {}
        if policy.get("kind") == "agreement":
            found.append(_agreement(item, policy, margin))
        else:
            found.append(_tolerance(item, policy, margin))
    return found


def marker_lines(advice: list[Advice]) -> list[str]:
    """The advice as ``tolerance={...}`` marker arguments, one block per test: paste them into
    ``@pytest.mark.onnx_parity(...)`` (or ``check(...)``)."""
    by_test: dict[str, dict[str, Advice]] = {}
    for entry in advice:
        chosen = by_test.setdefault(entry.test, {})
        kept = chosen.get(entry.variant)
        if kept is None or (entry.expression and (not kept.expression or entry.lost > kept.lost)):
            chosen[entry.variant] = entry  # an opset matrix: the advice that fits both items
    lines = []
    for test, variants in by_test.items():
        lines.append(test)
        usable = {v: a for v, a in variants.items() if a.expression}
        if usable:
            body = ", ".join(f'"{v}": {a.expression}' for v, a in usable.items())
            lines.append(f"    tolerance={{{body}}},")
        for variant, entry in variants.items():
            warning = (
                "  LOOSER than declared: the check failed; only if this error is acceptable"
                if entry.looser
                else ""
            )
            lines.append(f"    # {variant}: {entry.basis}{warning}")
    return lines
