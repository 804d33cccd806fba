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
outputs matched exactly or differed by NaN/infinity, gets a line saying why instead. A report is
untrusted input: a policy the spec would refuse, a measured number out of its range (a cosine of
1e308) or advice beyond the largest float also gets such a line, so every advice printed
constructs; names print as string literals. Pure.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, cast

from onnxparity.errors import InvalidSpec
from onnxparity.report.gate import dig, number
from onnxparity.spec.policy import Agreement, Tolerance

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
    """``value`` rounded up to one significant digit (0 for 0 or less; an overflow is inf). From
    its decimal digits, not powers of ten, which underflow to 0 for the smallest floats."""
    if value != value or value == math.inf:
        return value
    if value <= 0:
        return 0.0
    mantissa, exponent = f"{value:.15e}".split("e")
    return float(f"{math.ceil(round(float(mantissa), 9))}e{int(exponent)}")


def _down(value: float, digits: int) -> float:
    """``value`` rounded down to ``digits`` decimals (as it is where that overflows)."""
    factor = 10**digits
    scaled = value * factor
    return math.floor(scaled) / factor if math.isfinite(scaled) else value


def _half_db_down(value: float) -> float:
    """``value`` rounded down to half a dB (as it is where that overflows)."""
    return math.floor(2 * value) / 2 if math.isfinite(2 * value) else value


def _times(*values: float) -> float:
    """The product of ``values``, in their order (the declared tolerance first: a margin times a
    large share may overflow alone); the smallest float where positive numbers' product
    underflows (advice of 0 would demand exact equality where some error was seen)."""
    product = math.prod(values)
    return math.ulp(0.0) if product == 0 and all(v > 0 for v in values) else product


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
    if used < 0:
        why = f"result.distribution.worst_tolerance_used is {used:g} (a share of a tolerance is 0 or more)"
        return Advice(*base, None, f"{why}; no advice", examples)
    if used == 0:
        return Advice(
            *base,
            None,
            f"every value matched exactly over {examples} examples: any tolerance passes",
            examples,
        )
    declared = {key: number(policy.get(key) or 0.0) for key in ("atol", "rtol", "scaled")}
    problem = _invalid(Tolerance, declared)
    if problem:
        return Advice(*base, None, f"result.policy is no policy onnxparity accepts: {problem}; no advice")
    floor = FLOAT32_ROUNDINGS * _ULP * _scale(result)
    # (numbers: a policy with a None rule is refused above)
    atol = max(_up(_times(cast(float, declared["atol"]), used, margin)), _up(floor))
    rtol = _up(_times(cast(float, declared["rtol"]), used, margin))
    scaled = _up(_times(cast(float, declared["scaled"]), used, margin))
    advised = {"atol": atol, "rtol": rtol, **({"scaled": scaled} if scaled else {})}
    shown = f"atol={declared['atol']:g}, rtol={declared['rtol']:g}"
    share = f"{used:.2%}" if 1e-4 <= used < 100 else f"{used:.3g}x"
    basis = f"worst {share} of {shown} over {examples} examples, x{margin:g}"
    problem = _invalid(Tolerance, advised, printed=True)
    if problem:  # a product beyond the largest float
        return Advice(*base, None, f"{basis}: no valid tolerance ({problem}); no advice", examples)
    parts = ", ".join(f"{key}={value:g}" for key, value in advised.items())
    return Advice(*base, f"op.Tolerance({parts})", basis, examples, used > 1, used)


#: the range of the bounded numbers an Agreement item records per output (a report is untrusted
#: input); a computed cosine may exceed 1 by a rounding
_MEASURED = {
    "cosine": (-1 - 1e-6, 1 + 1e-6),
    "min_cosine": (-1 - 1e-6, 1 + 1e-6),
    "top1_rate": (0.0, 1.0),
    "mismatched_rate": (0.0, 1.0),
}


def _agreement(item: Mapping[str, Any], policy: Mapping[str, Any], margin: float) -> Advice:
    result, base = item["result"], _base(item)
    outputs = [o for o in result.get("outputs") or [] if isinstance(o, Mapping)]
    examples = int(result.get("examples") or 0)
    for output in outputs:
        for key, (low, high) in _MEASURED.items():
            value = number(output.get(key))
            if value is not None and math.isfinite(value) and not low <= value <= high:
                where = f"output {str(output.get('name'))!r} records {key} {value:g}"
                return Advice(*base, None, f"{where}, outside [{low:g}, {high:g}]; no advice", examples)

    def least(key: str) -> float | None:
        values = [number(o.get(key)) for o in outputs]
        found = min((v for v in values if v is not None and math.isfinite(v)), default=None)
        return None if found is None else min(max(found, -1.0), 1.0) if "cosine" in key else found

    declared = {key: number(policy.get(key)) for key in ("labels", "top1", "cosine", "sqnr_db")}
    problem = _invalid(Agreement, {k: v for k, v in declared.items() if policy.get(k) is not None})
    if problem:
        return Advice(*base, None, f"result.policy is no policy onnxparity accepts: {problem}; no advice")
    parts, seen, looser = {}, [], False
    passed = item["status"] == "passed"
    # the worst example's cosine and SQNR where recorded, else the pooled values
    cosine, sqnr = least("min_cosine"), least("min_sqnr_db")
    cosine = least("cosine") if cosine is None else cosine
    sqnr = least("sqnr_db") if sqnr is None else sqnr
    top1 = least("top1_rate")
    exact = [o for o in outputs if o.get("top1_rate") is None and o.get("cosine") is None]
    rates = [number(o.get("mismatched_rate")) for o in exact]
    rates = [r for r in rates if r is not None and math.isfinite(r)]
    rules: dict[str, tuple[float | None, Callable[[float], float]]] = {
        "labels": (
            1 - max(cast(list[float], rates)) if rates else None,  # (the Nones filtered out)
            lambda v: _down(1 - margin * (1 - v), 4),
        ),
        "top1": (top1, lambda v: _down(1 - margin * (1 - v), 3)),
        "cosine": (cosine, lambda v: _down(1 - margin * (1 - v), 6)),
        "sqnr_db": (sqnr, lambda v: _half_db_down(v - 10 * math.log10(margin))),
    }
    for rule, (observed, advised) in rules.items():
        value = declared[rule]
        if value is None or (rule == "labels" and value == 1.0):
            continue
        if observed is not None:
            wanted = advised(observed)
            value = value if passed and wanted < value else wanted  # passed: nothing looser
            looser = looser or value < cast(float, declared[rule])
            seen.append(f"{rule} {observed:.6g}")
        parts[rule] = value
    if not seen:
        return Advice(
            *base, None, "no metric was measured (every value within the default tolerance)", examples
        )
    basis = f"worst example's {', '.join(seen)} over {examples} examples, margin x{margin:g}"
    problem = _invalid(Agreement, parts, printed=True)
    if problem:  # a failed item's metric so poor that the margin leaves no valid rule
        return Advice(*base, None, f"{basis}: no valid rule ({problem}); no advice", examples)
    lost = -sqnr if sqnr is not None else (1 - cosine if cosine is not None else 0.0)
    text = ", ".join(f"{rule}={value:g}" for rule, value in parts.items())
    return Advice(*base, f"op.Agreement({text})", basis, examples, looser, lost)


def _invalid(policy: type, rules: Mapping[str, float | None], printed: bool = False) -> str | None:
    """Why ``policy(**rules)`` (``printed``: as its numbers print, ``:g``) is no policy the spec
    accepts, or None: a report is untrusted input, and pasted advice must construct."""
    if printed:
        rules = {key: None if v is None else float(f"{v:g}") for key, v in rules.items()}
    try:
        policy(**rules)
    except InvalidSpec as exc:
        return str(exc)
    return None


def _base(item: Mapping[str, Any]) -> tuple[str, str, str]:
    variant = item.get("variant") or dig(item, "result", "variant") or item["item"]
    return item["nodeid"], item["test"], str(variant)


def advise(document: Mapping[str, Any], margin: float = DEFAULT_MARGIN) -> list[Advice]:
    """Advice for every parity item that ran (skipped and errored items have no numbers)."""
    if not math.isfinite(margin):
        raise ValueError(f"margin must be a finite number, 1 or more, got {margin!r}")
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
    ``@pytest.mark.onnx_parity(...)`` (or ``check(...)``). Names come from the report, which is
    untrusted: keys are string literals and comments stay on their line, so no name is code."""
    by_test: dict[str, dict[str, Advice]] = {}
    for entry in advice:
        chosen = by_test.setdefault(entry.test, {})
        kept = chosen.get(entry.variant)
        if kept is None or (entry.expression and (not kept.expression or entry.lost > kept.lost)):
            chosen[entry.variant] = entry  # an opset matrix: the advice that fits both items
    lines = []
    for test, variants in by_test.items():
        lines.append(_shown(test))
        usable = {v: a for v, a in variants.items() if a.expression}
        if usable:
            body = ", ".join(f"{_literal(v)}: {a.expression}" for v, a in usable.items())
            lines.append(f"    tolerance={{{body}}},")
        for variant, entry in variants.items():
            warning = (
                "  LOOSER than declared: the check failed; only if this error is acceptable"
                if entry.looser
                else ""
            )
            lines.append(f"    # {_shown(variant)}: {entry.basis}{warning}")
    return lines


def _literal(name: str) -> str:
    """``name`` as a Python string literal (:func:`repr`), in double quotes where it has none."""
    text = repr(name)
    return f'"{text[1:-1]}"' if text.startswith("'") and '"' not in name else text


def _shown(name: str) -> str:
    """``name`` as it is where every character prints, else as a literal: a line break or a
    terminal control sequence in a report's name stays inert."""
    return name if name.isprintable() else repr(name)
