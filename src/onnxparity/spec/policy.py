"""Parity policies: :class:`Tolerance` (elementwise) and :class:`Agreement` (rates and
metrics for lossy variants and labels)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from onnxparity.errors import InvalidSpec
from onnxparity.spec.inputs import is_real


@dataclass(frozen=True)
class Tolerance:
    """Elementwise closeness: ``|actual - expected| <= atol + rtol * |expected| + scaled * peak``,
    where ``peak`` is the output's largest finite ``|expected|`` in that example.

    ``scaled`` (default 0) lets a deep network's float32 rounding, which grows with the output's
    magnitude, pass on values near zero: logits of 5 with an error of 1e-4 on a logit of 0.001.
    NaN matches only NaN; an infinity matches only the same infinity; integer and bool
    outputs compare exactly whatever the tolerance.
    """

    atol: float = 1e-5
    rtol: float = 1e-4
    scaled: float = 0.0

    def __post_init__(self) -> None:
        for fname in ("atol", "rtol", "scaled"):
            value = getattr(self, fname)
            if not is_real(value) or not math.isfinite(value) or value < 0:
                raise InvalidSpec(f"Tolerance({fname}={value!r}): {fname} must be a finite number >= 0")
            object.__setattr__(self, fname, float(value))

    def describe(self) -> str:
        scaled = f", scaled={self.scaled:g}" if self.scaled else ""
        return f"atol={self.atol:g}, rtol={self.rtol:g}{scaled}"

    def to_dict(self) -> dict[str, Any]:
        scaled = {"scaled": self.scaled} if self.scaled else {}
        return {"kind": "tolerance", "atol": self.atol, "rtol": self.rtol, **scaled}

    def at_peak(self, peak: float) -> Tolerance:
        """The plain atol/rtol tolerance this one is on an output whose largest |value| is ``peak``."""
        if not self.scaled:
            return self
        return Tolerance(self.atol + self.scaled * peak, self.rtol)


#: the tolerance a lossless variant gets when the declaration names none.
DEFAULT_TOLERANCE = Tolerance()

#: what DEFAULT_TOLERANCE becomes on an output of a narrower float type: two units in the last
#: place at 1.0 (atol and rtol alike), since two correct computations each rounded once to
#: that type may differ by one: float16 2^-9 (10 stored mantissa bits), bfloat16 2^-6 (7),
#: float8 e4m3 2^-2 (3), e5m2 2^-1 (2), float4 e2m1 1 (1), float8 e8m0 2 (none: powers of two).
#: float32 and float64 keep DEFAULT_TOLERANCE.
PRECISION_TOLERANCES = {
    "float16": Tolerance(2.0**-9, 2.0**-9),
    "bfloat16": Tolerance(2.0**-6, 2.0**-6),
    "float8_e4m3fn": Tolerance(0.25, 0.25),
    "float8_e4m3fnuz": Tolerance(0.25, 0.25),
    "float8_e5m2": Tolerance(0.5, 0.5),
    "float8_e5m2fnuz": Tolerance(0.5, 0.5),
    "float4_e2m1fn": Tolerance(1.0, 1.0),
    "float8_e8m0fnu": Tolerance(2.0, 2.0),
}


def tolerance_for(tolerance: Tolerance, *dtypes: str) -> Tolerance:
    """The tolerance an output of these dtypes is compared under: ``tolerance`` as declared,
    or, when it is the undeclared :data:`DEFAULT_TOLERANCE`, its dtypes' precision's."""
    return precision_tolerance(*dtypes) if tolerance is DEFAULT_TOLERANCE else tolerance


def precision_tolerance(*dtypes: str) -> Tolerance:
    """The default tolerance on an output of these dtypes (the reference's and the variant's):
    the coarsest of theirs (:data:`PRECISION_TOLERANCES`), else :data:`DEFAULT_TOLERANCE`."""
    found = [PRECISION_TOLERANCES[d] for d in dtypes if d in PRECISION_TOLERANCES]
    return max(found, key=lambda t: t.rtol) if found else DEFAULT_TOLERANCE


@dataclass(frozen=True)
class Agreement:
    """A looser policy for lossy variants (int8, fp16) and for label outputs.

    Float outputs: ``cosine`` (cosine similarity) and ``sqnr_db`` (signal-to-quantization-noise
    ratio, ``10·log10(Σe² / Σ(a−e)²)``) must hold over the search, their sums taken over every
    value of **every example** (an output with little signal of its own, such as a constant
    image's, weighs by its energy instead of failing alone); ``top1`` (argmax over the last
    axis agrees) must hold for that fraction of rows counted over every example. When none of the three
    is given, float outputs compare elementwise with ``tolerance`` (default :class:`Tolerance`);
    when some are given, ``tolerance`` is checked too only if you pass it. An output that
    matches within the default elementwise tolerance passes whatever the metrics, and NaN or
    infinity where the reference is finite (or the reverse) always fails.

    Exact outputs (class labels, ids): at least a ``labels`` fraction of their values must
    agree, counted over every row of every example — ``Agreement(labels=0.999)`` accepts one
    flip in a thousand (e.g. float64 inputs to trees whose thresholds skl2onnx stored as float32).
    """

    labels: float = 1.0
    tolerance: Tolerance | None = None
    top1: float | None = None
    cosine: float | None = None
    sqnr_db: float | None = None

    def __post_init__(self) -> None:
        if not is_real(self.labels) or not 0 < self.labels <= 1:
            raise InvalidSpec(f"Agreement(labels={self.labels!r}): labels must be a fraction in (0, 1]")
        if self.tolerance is not None and not isinstance(self.tolerance, Tolerance):
            raise InvalidSpec(
                f"Agreement(tolerance={self.tolerance!r}): give op.Tolerance(atol=..., rtol=...)"
            )
        object.__setattr__(self, "labels", float(self.labels))
        if self.top1 is not None:
            if not is_real(self.top1) or not 0 < self.top1 <= 1:
                raise InvalidSpec(f"Agreement(top1={self.top1!r}): top1 must be a fraction in (0, 1]")
            object.__setattr__(self, "top1", float(self.top1))
        if self.cosine is not None:
            if not is_real(self.cosine) or not -1 < self.cosine <= 1:
                raise InvalidSpec(f"Agreement(cosine={self.cosine!r}): cosine must be in (-1, 1], e.g. 0.99")
            object.__setattr__(self, "cosine", float(self.cosine))
        if self.sqnr_db is not None:
            if not is_real(self.sqnr_db) or not math.isfinite(self.sqnr_db):
                raise InvalidSpec(f"Agreement(sqnr_db={self.sqnr_db!r}): give a finite number of dB, e.g. 20")
            object.__setattr__(self, "sqnr_db", float(self.sqnr_db))

    @property
    def has_metrics(self) -> bool:
        """True when float outputs are judged by cosine, SQNR or top-1 agreement."""
        return self.top1 is not None or self.cosine is not None or self.sqnr_db is not None

    @property
    def float_tolerance(self) -> Tolerance | None:
        """The elementwise tolerance float outputs must also meet, or None when the metrics decide."""
        if self.tolerance is not None:
            return self.tolerance
        return None if self.has_metrics else DEFAULT_TOLERANCE

    def describe(self) -> str:
        parts = [
            f"{k}={v:g}"
            for k, v in (("top1", self.top1), ("cosine", self.cosine), ("sqnr_db", self.sqnr_db))
            if v is not None
        ]
        if self.labels < 1:
            parts.insert(0, f"labels={self.labels:g}")
        text = f"Agreement({', '.join(parts)})"
        tolerance = self.float_tolerance
        return f"{text} with {tolerance.describe()}" if tolerance is not None else text

    def to_dict(self) -> dict[str, Any]:
        tolerance = self.float_tolerance
        return {
            "kind": "agreement",
            "labels": self.labels,
            "top1": self.top1,
            "cosine": self.cosine,
            "sqnr_db": self.sqnr_db,
            "tolerance": None if tolerance is None else tolerance.to_dict(),
        }


#: what a tolerance= value may be.
Policy = Tolerance | Agreement
