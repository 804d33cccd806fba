"""A pass that could not have failed says so: how much a check could have caught.

Measured over a search's reference outputs, per output, with no extra inference:

- **scale** — the largest finite |expected| value, and **spread** — how far the expected values
  moved across every input drawn (max − min);
- **band** — the tolerance at that scale (``atol + rtol · scale``);
- **detectable change** — the smallest *relative* change of the whole output the policy would
  catch: ``rtol + atol / scale`` for an elementwise tolerance (an output of 1e-10 under
  ``atol=1e-5`` passes a change by a factor of 10⁵); for an Agreement with SQNR,
  ``10^(−sqnr_db / 20)``, but never below what its elementwise floor lets through;
- **input dependent** — the output moved beyond the band across the inputs (a float output),
  or took more than one value (a label): an output that is the same for every input proves only
  that the graph makes that constant.

An output is weak when it does not depend on the inputs, or when it would pass a change of
more than :data:`WEAK_CHANGE` (or ten times what the policy allows at scale 1, for lossy
policies that allow more); a check is weak when any output is. Measured on the survey's
random-initialised MobileNetV3/EfficientNet/ShuffleNet (outputs 1e-10…1e-14): detectable
changes of 10⁵ and more, where ResNet-18 (outputs O(1)) detects 1e-4.
"""

from __future__ import annotations

import math

import numpy as np

from .report import OutputPower, Power
from .spec import DEFAULT_TOLERANCE, Policy, Tolerance

#: an output that would pass a relative change larger than this is weak (lossless policies).
WEAK_CHANGE = 0.01


class OutputRange:
    """The expected values of one output over a search: scale, range, whether labels varied."""

    __slots__ = ("exact", "scale", "low", "high", "first", "varies")

    def __init__(self) -> None:
        self.exact = False
        self.scale = 0.0
        self.low = math.inf
        self.high = -math.inf
        self.first = None
        self.varies = False

    def add(self, expected: np.ndarray) -> None:
        e = np.asarray(expected)
        if not e.size:
            return
        if e.dtype.kind not in "fc":
            self.exact = True
            if self.first is None:
                self.first = e.flat[0]
            if not self.varies:
                self.varies = bool(np.any(e != self.first))
            return
        low, high = float(np.min(e)), float(np.max(e))
        if not (math.isfinite(low) and math.isfinite(high)):
            finite = e[np.isfinite(e)]
            if not finite.size:
                return
            low, high = float(finite.min()), float(finite.max())
        self.low, self.high = min(self.low, low), max(self.high, high)
        self.scale = max(self.scale, abs(low), abs(high))


def _tolerance_change(tolerance: Tolerance, scale: float) -> float:
    return tolerance.rtol + tolerance.atol / scale if scale > 0 else math.inf


def detectable_change(policy: Policy, scale: float) -> float:
    """The smallest relative change of a float output of ``scale`` that ``policy`` catches."""
    if isinstance(policy, Tolerance):
        return _tolerance_change(policy, scale)
    if not policy.has_metrics:
        return _tolerance_change(policy.float_tolerance, scale)
    # An Agreement passes an output within the default tolerance whatever its metrics.
    floor = _tolerance_change(DEFAULT_TOLERANCE, scale)
    metrics = [10 ** (-policy.sqnr_db / 20)] if policy.sqnr_db is not None else []
    if policy.tolerance is not None:
        metrics.append(_tolerance_change(policy.tolerance, scale))
    return max(floor, min(metrics, default=math.inf))


def _band(policy: Policy, scale: float) -> float:
    tolerance = policy if isinstance(policy, Tolerance) else (policy.float_tolerance or DEFAULT_TOLERANCE)
    return tolerance.atol + tolerance.rtol * scale


def weak_change(policy: Policy) -> float:
    """The detectable change above which a check of this policy is weak."""
    return max(WEAK_CHANGE, 10 * detectable_change(policy, 1.0))


def measure(ranges: dict[str, OutputRange], policy: Policy, examples: int) -> Power:
    """The power of a passing search from its outputs' ranges."""
    outputs, reasons = [], []
    limit = weak_change(policy)
    for name, r in ranges.items():
        if r.exact:
            power = OutputPower(name, 0.0, 0.0, 0.0, 0.0 if r.varies else math.inf, r.varies)
            if not r.varies and examples > 1:
                reasons.append(
                    f"output {name!r} took one value ({_show(r.first)}) for every one of {examples} "
                    "inputs: widen the input ranges or give data= with real rows"
                )
            outputs.append(power)
            continue
        if r.high < r.low:  # nothing finite seen
            continue
        spread = r.high - r.low
        band = _band(policy, r.scale)
        change = detectable_change(policy, r.scale)
        dependent = spread > band
        outputs.append(OutputPower(name, r.scale, spread, band, change, dependent))
        if change > limit:
            if math.isinf(change):
                by = "any factor"
            elif change >= 1:
                by = f"a factor of {1 + change:.3g}"
            else:
                by = f"{100 * change:.3g}%"
            reasons.append(
                f"output {name!r} peaks at {r.scale:.3g}, inside the tolerance band ({band:.3g}): scaling the "
                f"whole output by {by} would pass; declare a tolerance scaled to the output "
                "(tolerance=op.Tolerance(atol=...)) or initialise the model as trained"
            )
        elif not dependent and examples > 1:
            reasons.append(
                f"output {name!r} stayed within {spread:.3g} (the band is {band:.3g}) over {examples} inputs: "
                "it does not depend on them; widen the input ranges or give data= with real rows"
            )
    return Power(weak=bool(reasons), reasons=tuple(reasons), outputs=tuple(outputs))


def _show(value) -> str:
    text = repr(value.item() if hasattr(value, "item") else value)
    return text if len(text) <= 40 else text[:37] + "..."


def weak_message(name: str, power: Power) -> str:
    """The text of a :class:`~onnxparity.errors.WeakCheck` warning for a weak pass."""
    return f"{name} passed, but could not have failed:\n" + "\n".join(f"  {r}" for r in power.reasons)
