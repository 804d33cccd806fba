"""Input declarations: :class:`Dim` (a symbolic dimension's range) and :class:`Input` (a
named tensor with a shape over dims, a dtype and a value range)."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

import numpy as np

from ..errors import InvalidSpec

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


def _freeze_mapping(value: Mapping[str, Any]) -> Mapping[str, Any]:
    return MappingProxyType(dict(value))
