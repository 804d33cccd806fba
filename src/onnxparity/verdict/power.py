"""A pass that could not have failed says so: how much a check could have caught.

Measured over a search's reference outputs, per output, with no extra inference:

- **scale** — the largest finite |expected| value;
- **variation** — how much the output moves with the input: the largest spread of one output
  position across the rows of a batch (rows are different inputs), or, where every example had
  one row, across all values seen;
- **band** — the tolerance at that scale (``atol + (rtol + scaled) · scale``; for an Agreement, the
  smallest change its metrics notice: SQNR ``10^(−sqnr_db / 20) · scale``, cosine
  ``sqrt(1/cosine² − 1) · scale`` for a change at right angles — but never below the default
  tolerance it passes anyway);
- **detectable change** — ``band / variation``: the smallest relative change of the
  input-dependent part of the output the check would catch. An output of 1e-10 under
  ``atol=1e-5`` passes a change by a factor of 10⁵; so does an output that is mostly a constant
  bias with an input-dependent part far below the band;
- **input dependent** — the variation exceeds the band (a float output), or a label took more
  than one value: an output that is the same for every input proves only that the graph makes
  that constant.

An output is weak when it does not depend on the inputs, or when its detectable change exceeds
:data:`WEAK_CHANGE` (or ten times what the policy allows at unit scale, for lossy policies that
allow more); a check is weak when any output is. Measured on in-tree architectures initialised
as torchvision/timm do (tests/zoo_torch_models.py): MobileNetV3-small and EfficientNet-B0
outputs of 6.6e-11 and 3.6e-13, and a ShuffleNetV2 whose output (0.058) is its classifier's
bias plus an input-dependent part of 6.8e-5 — a ×1.01 first convolution moved it by 1.4e-6,
inside the band — are weak; ResNet-18 (variation 0.14), ViT (0.17) and Swin (0.084) are not,
and the same ×1.01 change fails them.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Any, NamedTuple, cast

import numpy as np

from onnxparity.spec import DEFAULT_TOLERANCE, Policy, Tolerance
from onnxparity.verdict.compare import json_float

#: an output that would pass a relative change larger than this is weak (lossless policies).
WEAK_CHANGE = 0.01


class Summary(NamedTuple):
    """What power needs of one expected output array, computed once per example and shared by
    every variant that checks it: an exact output's first value and whether it varies; a float
    output's finite range and the largest spread of one position across a batch's rows."""

    exact: bool
    first: Any = None
    varies: bool = False
    low: float = math.inf
    high: float = -math.inf
    rows: float | None = None


def summarize(expected: np.ndarray) -> Summary | None:
    """The :class:`Summary` of one output array (None when it is empty or all non-finite)."""
    e = np.asarray(expected)
    if not e.size:
        return None
    if e.dtype.kind not in "fc":
        first = e.flat[0]
        return Summary(True, first, bool(np.any(e != first)))
    batched = e.ndim >= 1 and e.shape[0] >= 2
    if batched:  # the extremes across rows first, then theirs: two passes over the output, not four
        top, bottom = e.max(axis=0), e.min(axis=0)
        low, high = float(bottom.min()), float(top.max())
    else:
        low, high = float(e.min()), float(e.max())
    if math.isfinite(low) and math.isfinite(high):  # the common case: no NaN, no infinity
        rows = float((top - bottom).max()) if batched else None
        return Summary(False, low=low, high=high, rows=rows)
    finite = np.isfinite(e)
    if not finite.any():
        return None
    e = np.where(finite, e, np.nan)
    low, high = float(np.nanmin(e)), float(np.nanmax(e))
    rows = None
    if batched:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN positions
            spread = float(np.nanmax(np.nanmax(e, axis=0) - np.nanmin(e, axis=0)))
        rows = spread if math.isfinite(spread) else None
    return Summary(False, low=low, high=high, rows=rows)


class OutputRange:
    """The expected values of one output over a search: scale, variation, labels seen."""

    __slots__ = ("exact", "scale", "low", "high", "across_rows", "first", "varies")

    def __init__(self) -> None:
        self.exact = False
        self.scale = 0.0
        self.low = math.inf
        self.high = -math.inf
        #: the largest spread of one position across a batch's rows (None: no batch of 2+ rows)
        self.across_rows: float | None = None
        self.first = None
        self.varies = False

    def add(self, expected: np.ndarray) -> None:
        self.merge(summarize(expected))

    def merge(self, summary: Summary | None) -> None:
        if summary is None:
            return
        if summary.exact:
            self.exact = True
            if self.first is None:
                self.first = summary.first
            self.varies = self.varies or summary.varies or bool(summary.first != self.first)
            return
        self.low, self.high = min(self.low, summary.low), max(self.high, summary.high)
        self.scale = max(self.scale, abs(summary.low), abs(summary.high))
        if summary.rows is not None:
            self.across_rows = (
                summary.rows if self.across_rows is None else max(self.across_rows, summary.rows)
            )

    @property
    def variation(self) -> float:
        """How much the output moved with the input."""
        if self.across_rows is not None:
            return self.across_rows
        return self.high - self.low if self.high >= self.low else 0.0


def band(policy: Policy, scale: float) -> float:
    """The largest difference ``policy`` lets through at an output of ``scale``."""
    default = DEFAULT_TOLERANCE.atol + DEFAULT_TOLERANCE.rtol * scale
    if isinstance(policy, Tolerance):
        return policy.atol + (policy.rtol + policy.scaled) * scale
    if not policy.has_metrics:
        tolerance = cast(Tolerance, policy.float_tolerance)  # (never None without metrics)
        return tolerance.atol + (tolerance.rtol + tolerance.scaled) * scale
    # An Agreement passes an output within the default tolerance whatever its metrics.
    allowed = [10 ** (-policy.sqnr_db / 20) * scale] if policy.sqnr_db is not None else []
    if policy.cosine is not None:  # a change at right angles of relative size d: cosine 1/sqrt(1+d²)
        allowed.append(
            math.sqrt(max(0.0, 1 / policy.cosine**2 - 1)) * scale if policy.cosine > 0 else math.inf
        )
    if policy.tolerance is not None:
        allowed.append(policy.tolerance.atol + (policy.tolerance.rtol + policy.tolerance.scaled) * scale)
    return max(default, min(allowed, default=math.inf))


def detectable_change(policy: Policy, scale: float, variation: float | None = None) -> float:
    """The smallest relative change of an output's input-dependent part (``variation``, by
    default the whole ``scale``) that ``policy`` catches."""
    variation = scale if variation is None else variation
    return band(policy, scale) / variation if variation > 0 else math.inf


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
                    "inputs: declare the ranges the model sees in use (op.Input(..., low=, high=)) "
                    "or give data= with real rows"
                )
            outputs.append(power)
            continue
        if r.high < r.low:  # nothing finite seen
            continue
        variation = r.variation
        allowed = band(policy, r.scale)
        change = detectable_change(policy, r.scale, variation)
        dependent = variation > allowed
        outputs.append(OutputPower(name, r.scale, variation, allowed, change, dependent))
        if not dependent and examples > 1:
            reasons.append(
                f"output {name!r} moved by at most {variation:.3g} across {examples} inputs, inside the "
                f"tolerance band ({allowed:.3g}) at its scale ({r.scale:.3g}): it does not depend on them as "
                "far as this check can see; declare a tolerance scaled to the output "
                "(tolerance=op.Tolerance(atol=...)), widen the input ranges, or initialise the model as trained"
            )
        elif change > limit and examples > 1:  # (one input: how the output moves with it is not measured)
            by = f"a factor of {1 + change:.3g}" if change >= 1 else f"{100 * change:.3g}%"
            reasons.append(
                f"output {name!r} moved by at most {variation:.3g} across {examples} inputs (scale "
                f"{r.scale:.3g}; tolerance band {allowed:.3g}): a change of that input-dependent part by "
                f"{by} would pass; declare a tolerance scaled to it (tolerance=op.Tolerance(atol=...))"
            )
    return Power(weak=bool(reasons), reasons=tuple(reasons), outputs=tuple(outputs))


def _show(value: Any) -> str:
    text = repr(value.item() if hasattr(value, "item") else value)
    return text if len(text) <= 40 else text[:37] + "..."


def weak_message(name: str, power: Power) -> str:
    """The text of a :class:`~onnxparity.errors.WeakCheck` warning for a weak pass."""
    return f"{name} passed, but could not have failed:\n" + "\n".join(f"  {r}" for r in power.reasons)


@dataclass(frozen=True)
class OutputPower:
    """How much one output's check could have caught, measured over the search's examples."""

    name: str
    #: the largest |expected| value seen
    scale: float
    #: how much the expected values moved with the input (across a batch's rows, else overall)
    variation: float
    #: the tolerance band at ``scale`` (atol + rtol * scale; 0 for exact outputs)
    band: float
    #: the smallest relative change of the whole output the check would catch (inf: none)
    detectable_change: float
    #: the output moved beyond the band across the inputs drawn
    input_dependent: bool

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "scale": json_float(self.scale),
            "variation": json_float(self.variation),
            "band": json_float(self.band),
            "detectable_change": json_float(self.detectable_change),
            "input_dependent": self.input_dependent,
        }


@dataclass(frozen=True)
class Power:
    """Whether a passing check could have failed: ``weak`` with the reasons when not."""

    weak: bool
    reasons: tuple[str, ...] = ()
    outputs: tuple[OutputPower, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "weak": self.weak,
            "reasons": list(self.reasons),
            "outputs": [o.to_dict() for o in self.outputs],
        }
