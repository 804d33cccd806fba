"""Declarations of what a model accepts and what parity means: validated, immutable values.

Knows nothing of frameworks, ONNX Runtime or pytest. Every constructor validates its
arguments and raises :class:`InvalidSpec` naming the bad value and the fix.
"""

from __future__ import annotations

import fnmatch
import functools
import hashlib
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import numpy as np

from .errors import InvalidSpec

#: dtypes an :class:`Input` may declare, by canonical name.
SUPPORTED_DTYPES = ("float16", "float32", "float64", "int8", "uint8", "int32", "int64", "bool", "str")

#: value range used when an Input gives no ``low``/``high``.
DEFAULT_RANGES: dict[str, tuple[float, float]] = {
    "float16": (-1.0, 1.0),
    "float32": (-1.0, 1.0),
    "float64": (-1.0, 1.0),
    "int8": (-128, 127),
    "uint8": (0, 255),
    "int32": (0, 100),
    "int64": (0, 100),
    "bool": (0, 1),
    "str": (0, 1),
}

_INT_LIMITS = {name: np.iinfo(name) for name in ("int8", "uint8", "int32", "int64")}


def _is_int(value: Any) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def _is_real(value: Any) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(
        value, (bool, np.bool_)
    )


@dataclass(frozen=True)
class Dim:
    """A symbolic dimension's range: every value in ``[min, max]`` divisible by ``multiple_of``."""

    min: int
    max: int
    multiple_of: int = 1

    def __post_init__(self) -> None:
        for fname in ("min", "max", "multiple_of"):
            value = getattr(self, fname)
            if not _is_int(value):
                raise InvalidSpec(
                    f"Dim({fname}={value!r}): {fname} must be an integer, got {type(value).__name__}"
                )
            object.__setattr__(self, fname, int(value))
        if self.min < 1:
            raise InvalidSpec(f"Dim(min={self.min}): min must be at least 1")
        if self.multiple_of < 1:
            raise InvalidSpec(f"Dim(multiple_of={self.multiple_of}): multiple_of must be at least 1")
        if self.min > self.max:
            raise InvalidSpec(f"Dim(min={self.min}, max={self.max}): min is larger than max; swap them")
        if not self.values_count:
            raise InvalidSpec(
                f"Dim(min={self.min}, max={self.max}, multiple_of={self.multiple_of}): "
                f"no multiple of {self.multiple_of} lies in [{self.min}, {self.max}]"
            )

    @property
    def first(self) -> int:
        """The smallest allowed value."""
        m = self.multiple_of
        return -(-self.min // m) * m

    @property
    def last(self) -> int:
        """The largest allowed value."""
        return (self.max // self.multiple_of) * self.multiple_of

    @property
    def values_count(self) -> int:
        return max(0, (self.last - self.first) // self.multiple_of + 1)

    def value(self, index: int) -> int:
        """The ``index``-th allowed value (0 is :attr:`first`)."""
        return self.first + index * self.multiple_of

    def __contains__(self, value: object) -> bool:
        return (
            _is_int(value)
            and self.first <= value <= self.last  # type: ignore[operator]
            and value % self.multiple_of == 0  # type: ignore[operator]
        )


DimLike = int | str


@dataclass(frozen=True)
class Input:
    """One model input: name, shape (ints and symbolic dim names), dtype and value range.

    ``low`` and ``high`` are inclusive bounds of the values drawn; for integer inputs (token
    ids, indices) both are integers. Booleans take no range. String inputs (``dtype="str"``,
    tabular categories) draw from ``categories`` (given here, or learned from ``data=``).
    ``allow_nan=True`` lets float inputs contain NaN (a ``nan`` data pattern); by default no
    NaN is drawn, since frameworks and ONNX models often disagree on NaN by design.
    """

    name: str
    shape: tuple[DimLike, ...]
    dtype: str = "float32"
    low: float | None = None
    high: float | None = None
    categories: tuple[str, ...] | None = None
    allow_nan: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise InvalidSpec(f"Input(name={self.name!r}): name must be a non-empty string")
        where = f"Input({self.name!r})"
        shape = self.shape
        if isinstance(shape, (str, bytes)) or not isinstance(shape, Iterable):
            raise InvalidSpec(f"{where}: shape must be a tuple of ints and dim names, got {shape!r}")
        shape = tuple(shape)
        for axis, entry in enumerate(shape):
            if isinstance(entry, str):
                if not entry.isidentifier():
                    raise InvalidSpec(f"{where}: dim name {entry!r} at axis {axis} must be an identifier")
            elif _is_int(entry):
                if entry < 1:
                    raise InvalidSpec(f"{where}: axis {axis} has size {entry}; sizes must be >= 1")
            else:
                raise InvalidSpec(
                    f"{where}: axis {axis} is {entry!r}; use an int or a dim name declared in dims="
                )
        object.__setattr__(self, "shape", tuple(e if isinstance(e, str) else int(e) for e in shape))

        dtype = _canonical_dtype(self.dtype, where)
        object.__setattr__(self, "dtype", dtype)
        if self.allow_nan and dtype not in ("float16", "float32", "float64"):
            raise InvalidSpec(f"{where}: allow_nan=True needs a float dtype, not {dtype}")

        if dtype == "str":
            if self.low is not None or self.high is not None:
                raise InvalidSpec(f"{where}: str inputs take categories=[...], not low/high")
            if self.categories is not None:
                categories = tuple(self.categories) if not isinstance(self.categories, str) else ()
                if not categories or not all(isinstance(c, str) for c in categories):
                    raise InvalidSpec(f"{where}: categories must be a non-empty list of strings")
                object.__setattr__(self, "categories", tuple(dict.fromkeys(categories)))
            return
        if self.categories is not None:
            raise InvalidSpec(f"{where}: categories= is for dtype='str' inputs only")

        if dtype == "bool":
            if self.low is not None or self.high is not None:
                raise InvalidSpec(f"{where}: bool inputs take no low/high")
            object.__setattr__(self, "low", 0)
            object.__setattr__(self, "high", 1)
            return
        low, high = DEFAULT_RANGES[dtype]
        low = low if self.low is None else self.low
        high = high if self.high is None else self.high
        for fname, value in (("low", low), ("high", high)):
            if not _is_real(value) or not math.isfinite(value):
                raise InvalidSpec(f"{where}: {fname}={value!r} must be a finite number")
        if dtype in _INT_LIMITS:
            for fname, value in (("low", low), ("high", high)):
                if float(value) != int(value):
                    raise InvalidSpec(f"{where}: {fname}={value!r} must be an integer for dtype {dtype}")
            low, high = int(low), int(high)
            info = _INT_LIMITS[dtype]
            if low < info.min or high > info.max:
                raise InvalidSpec(
                    f"{where}: range [{low}, {high}] does not fit dtype {dtype} ([{info.min}, {info.max}])"
                )
        else:
            low, high = float(low), float(high)
            if dtype == "float16" and max(abs(low), abs(high)) > 65504:
                raise InvalidSpec(f"{where}: range [{low}, {high}] does not fit float16 (±65504)")
        if low >= high:
            raise InvalidSpec(f"{where}: low={low} must be smaller than high={high} (both are inclusive)")
        object.__setattr__(self, "low", low)
        object.__setattr__(self, "high", high)

    @property
    def dim_names(self) -> tuple[str, ...]:
        return tuple(e for e in self.shape if isinstance(e, str))

    def concrete_shape(self, dims: Mapping[str, int]) -> tuple[int, ...]:
        return tuple(dims[e] if isinstance(e, str) else e for e in self.shape)


def _canonical_dtype(dtype: Any, where: str) -> str:
    if dtype in (str, "str", "string", "object", object):
        return "str"
    try:
        name = np.dtype(dtype).name
    except TypeError:
        name = None
    if name not in SUPPORTED_DTYPES:
        raise InvalidSpec(f"{where}: unsupported dtype {dtype!r}; use one of {', '.join(SUPPORTED_DTYPES)}")
    return name


@dataclass(frozen=True)
class Tolerance:
    """Elementwise closeness: ``|actual - expected| <= atol + rtol * |expected|``.

    NaN matches only NaN; an infinity matches only the same infinity; integer and bool
    outputs compare exactly whatever the tolerance.
    """

    atol: float = 1e-5
    rtol: float = 1e-4

    def __post_init__(self) -> None:
        for fname in ("atol", "rtol"):
            value = getattr(self, fname)
            if not _is_real(value) or not math.isfinite(value) or value < 0:
                raise InvalidSpec(f"Tolerance({fname}={value!r}): {fname} must be a finite number >= 0")
            object.__setattr__(self, fname, float(value))

    def describe(self) -> str:
        return f"atol={self.atol:g}, rtol={self.rtol:g}"

    def to_dict(self) -> dict:
        return {"kind": "tolerance", "atol": self.atol, "rtol": self.rtol}


#: the tolerance a lossless variant gets when the declaration names none.
DEFAULT_TOLERANCE = Tolerance()


@dataclass(frozen=True)
class Agreement:
    """A looser policy for lossy variants (int8, fp16) and for label outputs.

    Float outputs: ``cosine`` (cosine similarity of the whole output tensor, per example) and
    ``sqnr_db`` (signal-to-quantization-noise ratio, ``10·log10(Σe² / Σ(a−e)²)``, per example)
    must each hold on every example; ``top1`` (argmax over the last axis agrees) must hold for
    that fraction of rows counted over **every example** of the search. When none of the three
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
        if not _is_real(self.labels) or not 0 < self.labels <= 1:
            raise InvalidSpec(f"Agreement(labels={self.labels!r}): labels must be a fraction in (0, 1]")
        if self.tolerance is not None and not isinstance(self.tolerance, Tolerance):
            raise InvalidSpec(
                f"Agreement(tolerance={self.tolerance!r}): give op.Tolerance(atol=..., rtol=...)"
            )
        object.__setattr__(self, "labels", float(self.labels))
        if self.top1 is not None:
            if not _is_real(self.top1) or not 0 < self.top1 <= 1:
                raise InvalidSpec(f"Agreement(top1={self.top1!r}): top1 must be a fraction in (0, 1]")
            object.__setattr__(self, "top1", float(self.top1))
        if self.cosine is not None:
            if not _is_real(self.cosine) or not -1 < self.cosine <= 1:
                raise InvalidSpec(f"Agreement(cosine={self.cosine!r}): cosine must be in (-1, 1], e.g. 0.99")
            object.__setattr__(self, "cosine", float(self.cosine))
        if self.sqnr_db is not None:
            if not _is_real(self.sqnr_db) or not math.isfinite(self.sqnr_db):
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

    def to_dict(self) -> dict:
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


def _freeze_mapping(value: Mapping[str, Any]) -> Mapping[str, Any]:
    return MappingProxyType(dict(value))


@dataclass(frozen=True)
class ParitySpec:
    """Everything one parity check declares, validated as a whole.

    ``tolerance`` is one :class:`Tolerance` for every variant, or a mapping from a variant
    name or glob pattern (``"int8-*"``) to its policy (:class:`Tolerance` or
    :class:`Agreement`). Which applies to a variant: its exact name, else the longest matching
    pattern other than ``"*"``, else the variant's own default (lossy variants default to an
    :class:`Agreement`), else a ``"*"`` entry (a bare ``tolerance=op.Tolerance(...)`` is one),
    else :data:`DEFAULT_TOLERANCE`. So a bare Tolerance tunes the lossless variants and leaves
    ``int8-*``/``fp16`` on their documented defaults unless named.

    ``variant_options`` maps a variant name to the options its builder takes (e.g.
    ``{"ort-gpu": {"device_id": 1}, "int8-static": {"method": "entropy"}}``).
    """

    inputs: tuple[Input, ...]
    dims: Mapping[str, Dim] = field(default_factory=dict)
    variants: tuple[str, ...] = ("ort-cpu",)
    tolerance: Mapping[str, Tolerance] = field(default_factory=dict)
    opset: int | None = None
    examples: int | None = None
    variant_options: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        inputs = self.inputs
        if isinstance(inputs, Input):
            inputs = (inputs,)
        if isinstance(inputs, (str, bytes)) or not isinstance(inputs, Iterable):
            raise InvalidSpec(f"inputs={inputs!r}: give a list of op.Input(...)")
        inputs = tuple(inputs)
        if not inputs:
            raise InvalidSpec("inputs=[]: declare at least one op.Input(name, shape, ...)")
        for item in inputs:
            if not isinstance(item, Input):
                raise InvalidSpec(f"inputs: {item!r} is not an op.Input(name, shape, ...)")
        names = [i.name for i in inputs]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise InvalidSpec(f"inputs: the name {dupes[0]!r} is declared more than once")
        object.__setattr__(self, "inputs", inputs)

        if not isinstance(self.dims, Mapping):
            raise InvalidSpec(f"dims={self.dims!r}: give a dict of dim name -> op.Dim(min, max)")
        for name, dim in self.dims.items():
            if not isinstance(dim, Dim):
                raise InvalidSpec(f"dims[{name!r}]={dim!r}: use op.Dim(min, max)")
        used = {n for i in inputs for n in i.dim_names}
        for item in inputs:
            for axis, entry in enumerate(item.shape):
                if isinstance(entry, str) and entry not in self.dims:
                    known = ", ".join(sorted(self.dims)) or "none declared"
                    raise InvalidSpec(
                        f"Input({item.name!r}): unknown dim name {entry!r} at axis {axis} "
                        f"(known: {known}); declare it in dims={{{entry!r}: op.Dim(min, max)}}"
                    )
        unused = sorted(set(self.dims) - used)
        if unused:
            raise InvalidSpec(f"dims declares {unused[0]!r} but no input uses it; check its spelling")
        object.__setattr__(self, "dims", _freeze_mapping(self.dims))

        variants = self.variants
        if isinstance(variants, str):
            variants = (variants,)
        variants = tuple(variants)
        if not variants or not all(isinstance(v, str) and v for v in variants):
            raise InvalidSpec(f"variants={self.variants!r}: give a list of variant names")
        object.__setattr__(self, "variants", variants)

        tolerance = self.tolerance
        if isinstance(tolerance, (Tolerance, Agreement)):
            tolerance = {"*": tolerance}
        if not isinstance(tolerance, Mapping):
            raise InvalidSpec(
                f"tolerance={tolerance!r}: give op.Tolerance(...) or a dict variant -> Tolerance"
            )
        for key, value in tolerance.items():
            if not isinstance(key, str) or not isinstance(value, (Tolerance, Agreement)):
                raise InvalidSpec(
                    f"tolerance[{key!r}]={value!r}: keys are variant names or patterns, "
                    "values op.Tolerance(atol=..., rtol=...) or op.Agreement(labels=...)"
                )
        object.__setattr__(self, "tolerance", _freeze_mapping(tolerance))

        if self.opset is not None and (not _is_int(self.opset) or self.opset < 7):
            raise InvalidSpec(f"opset={self.opset!r}: give an ONNX opset number such as 17")
        if self.examples is not None and (not _is_int(self.examples) or self.examples < 1):
            raise InvalidSpec(f"examples={self.examples!r}: give a positive number of examples")

        options = self.variant_options or {}
        if not isinstance(options, Mapping) or not all(
            isinstance(k, str) and isinstance(v, Mapping) and all(isinstance(o, str) for o in v)
            for k, v in options.items()
        ):
            raise InvalidSpec(
                f"variant_options={options!r}: give a dict variant name -> dict of options, "
                "e.g. {'int8-static': {'method': 'entropy'}}"
            )
        object.__setattr__(
            self, "variant_options", _freeze_mapping({k: _freeze_mapping(v) for k, v in options.items()})
        )

    @property
    def symbolic_dims(self) -> tuple[str, ...]:
        """Dim names in order of first use across the inputs."""
        seen: dict[str, None] = {}
        for item in self.inputs:
            for name in item.dim_names:
                seen.setdefault(name, None)
        return tuple(seen)

    @functools.cached_property
    def input_digest(self) -> str:
        """A short digest of the inputs and dims: what an export and its examples depend on.
        Cached: it keys the reference cache on every drawn example."""
        text = repr((self.inputs, sorted(self.dims.items())))
        return hashlib.blake2b(text.encode(), digest_size=8).hexdigest()

    def policy_for(self, variant: str, default: Policy | None = None) -> Policy:
        """What applies to ``variant`` (see the class docstring for the order); ``default`` is
        the variant's own default policy, if it has one."""
        if variant in self.tolerance:
            return self.tolerance[variant]
        patterns = [p for p in self.tolerance if p != "*" and fnmatch.fnmatchcase(variant, p)]
        if patterns:
            return self.tolerance[max(patterns, key=len)]
        if default is not None:
            return default
        return self.tolerance.get("*", DEFAULT_TOLERANCE)

    def options_for(self, variant: str) -> Mapping[str, Any]:
        """The builder options declared for ``variant`` (empty when none)."""
        return self.variant_options.get(variant, MappingProxyType({}))
