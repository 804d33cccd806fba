"""Conditioning-aware verdicts: an example on which rounding alone moves the framework's output
is not a parity failure unless the variant is farther off than rounding moves it.

On a failing example the framework also runs in float64, where the model source can
(``ModelPair.reference64``: a PyTorch model's float64 copy), twice: on the example's inputs and
on the same inputs each rounded one float32 step (a relative 2**-24, up or down by a fixed
pattern). That gives two measures of how much the output hangs on rounding, per output:

- ``|f32 - f64|``: how far the framework's own float32 lands from its float64;
- ``|f64(x') - f64(x)|``: how far one rounding of the inputs moves the float64 value — the
  error any backward-stable float32 computation may make there (condition number x epsilon).

The second is needed because the first can be 0 by luck: a GroupNorm over a near-constant
waveform divides rounding noise by sqrt(epsilon), and PyTorch's float32 may land on float64
where ONNX Runtime's, summing in another order, does not (measured on
tests/parity_models.GroupNormAudio: a band-limited input, PyTorch within 5e-6 of float64, ONNX
Runtime 3.6e-5 off). The larger of the two, the output's max, is its **rounding distance**.
Where ten times it (:data:`ALLOWANCE`) exceeds the tolerance at some position, the example is
**ill-conditioned** (measured over constant waveforms: float32 against float64 2e-3 on a tiny
Wav2Vec2, 2.5 on a tiny HuBERT), and the variant is judged against float64 with that allowance:

    |variant - f64| <= atol + rtol * |f64| + 10 * rounding distance      (per output)

— within what rounding does to that output, an order of magnitude either way (float32 rounding
on an ill-conditioned value varies with the order of summation; the distance is the output's
max because where the true value is 0, as a normalization of a constant is, every float32 value
is rounding noise of that size, wherever it lands). On a well-conditioned example ten times the
rounding distance is below the tolerance, and the tolerance stands alone: a bug that shows
there is judged as before, and a bug shows on the well-conditioned examples of the search.
Within the allowance, the example passes and is counted as ill-conditioned, with the distances;
beyond it, it still fails, and the failure says how far each side is from float64. A NaN or an
infinity on one side only is never rounding. A model source without a float64 reference leaves
the verdict as it is.

What it cannot tell apart: a change whose only effect is where the model is ill-conditioned
(a first convolution scaled x1.01 in front of a GroupNorm, which cancels the scale everywhere
but under its epsilon) is, on those inputs, no larger than rounding, and passes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from onnxparity.spec import Agreement, Policy, Tolerance
from onnxparity.verdict.agreement import agreement_parts
from onnxparity.verdict.compare import applied_tolerance

#: the variant may be this many times as far from float64 as rounding moves the framework on an
#: output (measured on a tiny Wav2Vec2 over constant waveforms: ONNX Runtime's GroupNorm lands
#: 3.7 to 8.4 times as far from float64 as PyTorch's own float32; on drawn waveforms both are
#: 7e-7 off)
ALLOWANCE = 10.0

#: the relative size of one float32 rounding of an input
ROUNDING = float(np.finfo(np.float32).eps) / 2


def rounded(feeds: Mapping[str, Any]) -> dict[str, Any]:
    """``feeds`` with each float value moved one float32 rounding (relative :data:`ROUNDING`),
    up or down by a fixed pattern, in float64; other values as they are."""
    signs = np.random.default_rng(0)
    moved = {}
    for name, value in feeds.items():
        array = np.asarray(value)
        if array.dtype.kind == "f" and array.size:
            step = signs.choice((-ROUNDING, ROUNDING), size=array.shape)
            moved[name] = array.astype(np.float64) * (1.0 + step)
        else:
            moved[name] = value
    return moved


@dataclass(frozen=True)
class Conditioning:
    """How far rounding moves the framework's outputs, and the variant's from float64."""

    #: ten times the framework's rounding distance exceeds the tolerance on some output
    ill: bool
    #: the variant stays within the allowance (see the module docstring)
    excused: bool
    #: max |f32 - f64|, max |f64(x') - f64(x)| and max |variant - f64| over the outputs compared
    framework: float
    rounding: float
    variant: float

    def line(self) -> str:
        verdict = (
            f"within tolerance + {ALLOWANCE:g}x that: not counted as a parity failure"
            if self.excused
            else f"beyond tolerance + {ALLOWANCE:g}x that: still a failure"
        )
        return (
            "ill-conditioned: on this input the framework's value hangs on rounding: its float32 is "
            f"{self.framework:.3g} from its float64, one float32 rounding of the inputs moves float64 by "
            f"{self.rounding:.3g}; the variant is {self.variant:.3g} from float64, {verdict}"
        )


def conditioning(
    expected: Sequence[np.ndarray],
    expected64: Sequence[np.ndarray],
    actual: Sequence[np.ndarray],
    policy: Policy,
    rounded64: Sequence[np.ndarray] | None = None,
) -> Conditioning | None:
    """The example's conditioning from the framework's float32 outputs (``expected``), its float64
    ones on the inputs (``expected64``) and on the inputs rounded once (``rounded64``,
    :func:`rounded`), and the variant's (``actual``); None where the outputs are not float or do
    not pair."""
    if not isinstance(policy, Tolerance) or len(expected64) != len(expected) or len(actual) != len(expected):
        return None
    if rounded64 is None or len(rounded64) != len(expected):
        rounded64 = expected64
    framework = rounding = variant = 0.0
    ill, excused, compared = False, True, False
    for e32, e64, r64, a in zip(expected, expected64, rounded64, actual):
        e32, e64, r64, a = (np.asarray(v) for v in (e32, e64, r64, a))
        if e32.dtype.kind != "f" or not (e32.shape == e64.shape == r64.shape == a.shape):
            continue
        compared = True
        f64 = e64.astype(np.float64)
        own = np.abs(e32.astype(np.float64) - f64)
        moved = np.abs(r64.astype(np.float64) - f64)
        off = np.abs(a.astype(np.float64) - f64)
        tolerance = applied_tolerance(policy, e32, a)
        band = tolerance.atol + tolerance.rtol * np.abs(f64)
        finite = np.isfinite(f64) & np.isfinite(own) & np.isfinite(moved) & np.isfinite(off)
        if not finite.all() and not np.array_equal(np.isnan(f64), np.isnan(a.astype(np.float64))):
            excused = False  # a NaN or infinity on one side only is never rounding
        if not finite.any():
            continue
        distance = max(float(own[finite].max()), float(moved[finite].max()))
        framework = max(framework, float(own[finite].max()))
        rounding = max(rounding, float(moved[finite].max()))
        variant = max(variant, float(off[finite].max()))
        ill = ill or bool((ALLOWANCE * distance > band[finite]).any())
        excused = excused and bool((off[finite] <= band[finite] + ALLOWANCE * distance).all())
    if not compared:
        return None
    return Conditioning(ill, ill and excused, framework, rounding, variant)


#: an example set aside under an Agreement may be this many dB below what rounding its inputs
#: alone gives the framework (a 10 dB worse SQNR: about 3x the noise amplitude)
AGREEMENT_MARGIN_DB = 10.0

#: about the SQNR rounding the inputs gives a well-conditioned output: float16's 11 significant
#: bits (2**-11 relative: 66 dB), 8 bits over a range (~50 dB). An example is ill-conditioned
#: where rounding alone gives 20 dB less (its noise amplified ten times), not merely where a
#: policy asks more than the precision gives (then every example would be set aside)
NOMINAL_DB = {"float16": 66.0, "uint8": 50.0}


def round_inputs(feeds: Mapping[str, Any], how: str) -> dict[str, Any]:
    """``feeds`` with each float input rounded at a lossy variant's precision: ``float16`` (a
    round trip, as fp16's first cast), or ``uint8`` (8 bits over the input's own range with 0
    in it, as ONNX's DynamicQuantizeLinear; int8-static's calibrated range may differ); other
    inputs as they are."""
    moved = {}
    for name, value in feeds.items():
        array = np.asarray(value)
        if array.dtype.kind != "f" or not array.size or not np.isfinite(array).all():
            moved[name] = value
        elif how == "float16":
            moved[name] = array.astype(np.float16).astype(array.dtype)
        else:
            low, high = min(0.0, float(array.min())), max(0.0, float(array.max()))
            scale = (high - low) / 255 or 1.0
            zero = np.clip(np.rint(-low / scale), 0, 255)
            steps = np.clip(np.rint(array / scale) + zero, 0, 255)
            moved[name] = ((steps - zero) * scale).astype(array.dtype)
    return moved


@dataclass(frozen=True)
class RoundedConditioning:
    """An example agreeing less than an Agreement asks, measured against what rounding its
    inputs at the variant's precision (:func:`round_inputs`) moves the framework (its worst
    output's SQNR and cosine)."""

    #: rounding the inputs alone leaves the framework below the Agreement on some output, and
    #: 20 dB below what it gives a well-conditioned one (:data:`NOMINAL_DB`)
    ill: bool
    #: on each output below the Agreement, the variant is within the margin of that rounding
    excused: bool
    #: the rounding's noise share (1 / SQNR as a ratio) on the worst output: larger is worse
    framework: float
    how: str
    output: str
    rounding_sqnr: float
    rounding_cosine: float
    variant_sqnr: float
    variant_cosine: float

    def line(self) -> str:
        verdict = (
            "not counted in the pooled agreement"
            if self.excused
            else f"more than {AGREEMENT_MARGIN_DB:g} dB below that: counted"
        )
        return (
            "ill-conditioned: on this input the framework's value hangs on rounding: rounding its "
            f"inputs to {'float16' if self.how == 'float16' else '8 bits over their range'} alone moves its "
            f"float32 output {self.output!r} to SQNR {self.rounding_sqnr:.1f} dB, cosine {self.rounding_cosine:.4f}; "
            f"the variant is at SQNR {self.variant_sqnr:.1f} dB, cosine {self.variant_cosine:.4f}: {verdict}"
        )


#: what a search learns of a failing or poorly agreeing example's conditioning
Judged = Conditioning | RoundedConditioning


def rounded_conditioning(
    reference: Any, feeds: Mapping[str, Any], expected: Sequence[np.ndarray], verdict: Any, policy: Agreement,
    how: str, padded: Any = None,
) -> RoundedConditioning | None:
    """For an example on which some float output agrees less than ``policy``'s cosine or SQNR
    (per example, in ``verdict``): the framework run again on the inputs rounded as the variant
    rounds them (:func:`round_inputs`; ``padded(outputs)`` sets padded positions as the
    comparison did) and measured against its own outputs. None where no output is below."""
    below = [
        (p, o) for p, o in enumerate(verdict.outputs)
        if not o.exact and o.sqnr_db is not None and o.cosine is not None and not o.problem
        and _short(policy, o.sqnr_db, o.cosine)
    ]
    floats = any(np.asarray(v).dtype.kind == "f" for v in feeds.values())
    if not below or not floats or len(verdict.outputs) != len(expected):  # (token ids alone: nothing rounds)
        return None
    try:
        moved = list(reference(round_inputs(feeds, how)))
        moved = list(padded(moved)) if padded is not None else moved
    except Exception:  # the framework refuses the rounded inputs: nothing is known
        return None
    ill, excused, worst = False, True, None
    for p, out in below:
        e, m = np.asarray(expected[p]), np.asarray(moved[p]) if p < len(moved) else None
        if m is None or e.shape != m.shape:
            return None
        cosine, sqnr = agreement_parts(e, m)[0].metrics()
        short = _short(policy, sqnr, cosine) and sqnr < NOMINAL_DB.get(how, 50.0) - 20
        ill = ill or short
        excused = excused and short and out.sqnr_db >= sqnr - AGREEMENT_MARGIN_DB
        share = 10 ** (-sqnr / 10)
        if worst is None or share > worst[0]:
            worst = (share, out.name, sqnr, cosine, out.sqnr_db, out.cosine)
    assert worst is not None
    return RoundedConditioning(ill, ill and excused, worst[0], how, *worst[1:])


def _short(policy: Agreement, sqnr: float, cosine: float) -> bool:
    """Below the Agreement's SQNR or cosine."""
    return (policy.sqnr_db is not None and sqnr < policy.sqnr_db) or (
        policy.cosine is not None and cosine < policy.cosine
    )
