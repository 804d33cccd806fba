"""Input declarations: :class:`Dim` (a symbolic dimension's range) and :class:`Input` (a
named tensor with a shape over dims, a dtype and a value domain: a range, token ids with
special ids, an attention mask, per-row lengths)."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, cast

import numpy as np

from onnxparity.errors import InvalidSpec
from onnxparity.spec.choices import checked_choices
from onnxparity.spec.dtypes import (  # noqa: F401  (re-exported: the names inputs.* had)
    DEFAULT_RANGES,
    FLOAT_DTYPES,
    FLOAT_MAX,
    FLOATS,
    INT_DTYPES,
    INT_LIMITS,
    INTEGERS,
    NARROW_FLOAT_DTYPES,
    NARROW_INT_DTYPES,
    POSITIVE_ONLY,
    SUPPORTED_DTYPES,
    IntLimits,
    numpy_dtype,
    onnx_name,
)

#: what an :class:`Input`'s values are: plain values in a range, a 0/1 mask of real tokens,
#: or per-row lengths.
KINDS = ("values", "mask", "lengths")

#: which end of a mask row the padding (the zeros) goes to.
PADDINGS = ("right", "left")


def is_int(value: Any) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def is_real(value: Any) -> bool:
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
            if not is_int(value):
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
            is_int(value)
            and self.first <= value <= self.last  # type: ignore[operator]
            and value % self.multiple_of == 0  # type: ignore[operator]
        )


DimLike = int | str


@dataclass(frozen=True)
class Input:
    """One model input: name, shape (ints and symbolic dim names), dtype and value domain.

    ``low`` and ``high`` are inclusive bounds of the values drawn; for integer inputs (token
    ids, indices) both are integers. Booleans take no range. String inputs (``dtype="str"``,
    tabular categories) draw from ``categories`` (given here, or learned from ``data=``).
    ``allow_subnormal=True`` (Hypothesis' own name) lets float inputs hold subnormal values
    (0 < |x| < the type's smallest normal, e.g. 1e-45 drawn one float step from a boundary at 0).
    By default none is drawn: TensorFlow flushes them to zero on CPU and ONNX Runtime does not,
    so a correct model fails on them; a value that would be subnormal is drawn as the smallest
    normal of its sign instead. ``distinct=r`` (integer inputs): the values along the last axis
    are distinct modulo ``r`` — an axes list of a rank-``r`` tensor names each axis once, as
    ``a`` or ``a - r``; the prebuilt-file path sets it where the graph takes a list of axes.

    ``choices=([2, 4], [3, 3], [1, 5])``: the whole values the input takes, one per example —
    an op's structured argument whose parts must agree (Split's sizes adding up to the axis,
    Reshape's target keeping the element count, Resize's scales per axis). The shape must be
    fixed and every choice of that shape; ``low``/``high`` default to the smallest and largest
    value in them. Patterns: ``first`` (the first choice: the simplest, what a failure shrinks
    toward) and ``choice`` (one drawn at random). The prebuilt-file path sets it from the graph.

    ``allow_nan=True`` lets float inputs contain NaN (a ``nan`` data pattern); by default no
    NaN is drawn, since frameworks and ONNX models often disagree on NaN by design.

    Token ids: ``special_ids=(0, 101, 102)`` (integer inputs, each within ``[low, high]``)
    adds a ``special`` pattern that mixes those ids and the vocabulary's edges into ordinary
    ids, and the ``extremes`` pattern draws from the edges and the special ids. For a
    vocabulary of ``vocab_size``: ``low=0, high=vocab_size - 1``.

    ``kind`` says what the values mean (default ``"values"``: anything in ``[low, high]``):

    - ``kind="mask"``: an attention mask, 1 for a real token and 0 for padding, along the last
      axis; every leading axis is rows (``("batch", "seq")``). Every row holds at least one
      real token, in one block: ones then zeros (``padding="right"``, the default) or zeros
      then ones (``padding="left"``, as decoder-only generation pads). Its patterns draw the
      real lengths per row: ``full`` (no padding), ``shortest`` (one real token per row),
      ``ragged`` (one row full, the others shorter and different from each other: a batch
      padded to its longest row), ``uniform`` and ``extremes`` (each row 1 or full). No
      pattern, drawn or shrunk, has a row without a real token: no caller sends one.
      dtype defaults to int64 (Hugging Face's); bool and float masks hold False/True, 0./1.
    - ``kind="lengths"``: each value is a row's real length along the dim ``within`` names
      (a dim name, or a fixed size): ``op.Input("lengths", ("batch",), kind="lengths",
      within="seq")`` draws values in ``[1, seq]`` with the mask's patterns. Integer dtypes
      only (default int64).

    Masks and lengths take no ``low``/``high``: their domain is set by the sequence length.

    Padding is don't-care: outputs whose leading axes are a mask's (or lengths') rows and
    sequence are compared at real positions only, the values left out counted
    (:mod:`onnxparity.search.padding`); ``compare_padded=True`` on the mask compares them all.

    ``boundaries=(0.5, 1.0)``: values where the model changes behaviour (a threshold, a clip
    bound) for numeric inputs; a ``boundary`` pattern draws at them and at the next representable
    float32/float64 values either side, mixed with ordinary values. A ``(column, value)`` pair
    applies to one position of the last axis (a tabular feature's split). The runner adds the
    constants the ONNX graph branches on (:mod:`onnxparity.graph.boundaries`).
    """

    name: str
    shape: tuple[DimLike, ...]
    #: default: float32, or int64 for masks and lengths
    dtype: str | None = None
    low: float | None = None
    high: float | None = None
    categories: tuple[str, ...] | None = None
    allow_nan: bool = False
    kind: str = "values"
    #: masks only: "right" (ones then zeros, the default) or "left" (zeros then ones)
    padding: str | None = None
    special_ids: tuple[int, ...] | None = None
    #: lengths only: the dim (name or fixed size) the lengths lie within
    within: DimLike | None = None
    #: (column or None, value) pairs, sorted: see the class docstring
    boundaries: tuple[Any, ...] = ()
    #: masks and lengths only: compare outputs at padded positions too (see the class docstring)
    compare_padded: bool = False
    #: float inputs may hold subnormal values (below the type's smallest normal): see the docstring
    allow_subnormal: bool = False
    #: integer inputs: the values along the last axis are distinct modulo this (an axes list of a
    #: rank-``distinct`` tensor, where -1 and ``distinct - 1`` name the same axis); None: no rule
    distinct: int | None = None
    #: whole values, one per example (see the class docstring); None: values drawn in the range
    choices: Sequence[Any] | None = None  # (a tuple of nested tuples once built)

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
            elif is_int(entry):
                if entry < 0:  # 0: a zero-length axis, which ONNX allows and some graphs fix
                    raise InvalidSpec(f"{where}: axis {axis} has size {entry}; sizes must be >= 0")
            else:
                raise InvalidSpec(
                    f"{where}: axis {axis} is {entry!r}; use an int or a dim name declared in dims="
                )
        object.__setattr__(self, "shape", tuple(e if isinstance(e, str) else int(e) for e in shape))

        if self.kind not in KINDS:
            raise InvalidSpec(
                f"{where}: kind={self.kind!r} is unknown; use one of {', '.join(map(repr, KINDS))}"
            )
        default_dtype = "float32" if self.kind == "values" else "int64"
        dtype = _canonical_dtype(default_dtype if self.dtype is None else self.dtype, where)
        object.__setattr__(self, "dtype", dtype)
        if self.allow_nan and dtype not in FLOATS:
            raise InvalidSpec(f"{where}: allow_nan=True needs a float dtype, not {dtype}")
        if not isinstance(self.allow_subnormal, bool):
            raise InvalidSpec(f"{where}: allow_subnormal={self.allow_subnormal!r}: give True or False")
        if self.allow_subnormal and dtype not in FLOATS:
            raise InvalidSpec(f"{where}: allow_subnormal=True needs a float dtype, not {dtype}")
        if self.distinct is not None:
            last = self.shape[-1] if self.shape else None
            if dtype not in INTEGERS or not is_int(self.distinct) or self.distinct < 1:
                raise InvalidSpec(f"{where}: distinct={self.distinct!r} needs an integer dtype and a count >= 1")
            if not self.shape or (is_int(last) and cast(int, last) > self.distinct):
                raise InvalidSpec(
                    f"{where}: distinct={self.distinct} cannot hold {last if self.shape else 'no'} distinct values "
                    "along the last axis"
                )
        self._check_domain(where, dtype)
        if self.choices is not None:
            choices, low, high = checked_choices(self, where, dtype)
            object.__setattr__(self, "choices", choices)
            object.__setattr__(self, "low", low)
            object.__setattr__(self, "high", high)
        object.__setattr__(self, "boundaries", _boundaries(self.boundaries, where))
        if self.boundaries and (self.kind != "values" or dtype in ("str", "bool")):
            raise InvalidSpec(f"{where}: boundaries= is for numeric inputs (kind='values'), not {dtype}")
        if self.kind != "values":
            return

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
            if not is_real(value) or not math.isfinite(value):
                raise InvalidSpec(f"{where}: {fname}={value!r} must be a finite number")
        if dtype in INT_LIMITS:
            for fname, value in (("low", low), ("high", high)):
                if not is_int(value) and float(value) != int(value):  # (an int is exact; its float may not be)
                    raise InvalidSpec(f"{where}: {fname}={value!r} must be an integer for dtype {dtype}")
            low, high = int(low), int(high)
            info = INT_LIMITS[dtype]
            if low < info.min or high > info.max:
                raise InvalidSpec(
                    f"{where}: range [{low}, {high}] does not fit dtype {dtype} ([{info.min}, {info.max}])"
                )
        else:
            low, high = float(low), float(high)
            largest = FLOAT_MAX.get(dtype)
            if dtype in POSITIVE_ONLY and low <= 0:
                raise InvalidSpec(
                    f"{where}: {dtype} holds only positive values (powers of two), so low={low} cannot be drawn; "
                    "give low > 0"
                )
            if largest is not None and max(abs(low), abs(high)) > largest:
                raise InvalidSpec(f"{where}: range [{low}, {high}] does not fit {dtype} (±{largest:g})")
        if low > high:
            raise InvalidSpec(
                f"{where}: low={low} is larger than high={high} (both are inclusive); swap them"
            )
        object.__setattr__(self, "low", low)
        object.__setattr__(self, "high", high)
        self._check_special_ids(where)
        if self.distinct is not None:  # every axis needs a form (a or a - distinct) in the range
            missing = [a for a in range(self.distinct) if not (low <= a <= high or low <= a - self.distinct <= high)]
            if missing:
                raise InvalidSpec(
                    f"{where}: distinct={self.distinct} needs each of 0..{self.distinct - 1}, or its negative "
                    f"form, within low={low}..high={high}; {missing[0]} is not: widen the range, e.g. "
                    f"low={-self.distinct}, high={self.distinct - 1}"
                )

    def _check_domain(self, where: str, dtype: str) -> None:
        """Validate (and normalise) ``kind``, ``padding`` and ``within``."""
        kind = self.kind
        if self.padding is not None and kind != "mask":
            raise InvalidSpec(f"{where}: padding={self.padding!r} is for kind='mask' inputs only")
        if self.compare_padded not in (False, True) or (self.compare_padded and kind == "values"):
            raise InvalidSpec(f"{where}: compare_padded= is True or False, for kind='mask' or 'lengths' only")
        object.__setattr__(self, "compare_padded", bool(self.compare_padded))
        if self.within is not None and kind != "lengths":
            raise InvalidSpec(f"{where}: within={self.within!r} is for kind='lengths' inputs only")
        if kind == "values":
            if self.special_ids is not None and dtype not in INT_LIMITS:
                raise InvalidSpec(f"{where}: special_ids= is for integer token ids, not dtype {dtype}")
            return
        if self.special_ids is not None:
            raise InvalidSpec(
                f"{where}: special_ids= is for token-id inputs (kind='values'), not kind={kind!r}"
            )
        if self.categories is not None or self.allow_nan:
            raise InvalidSpec(f"{where}: kind={kind!r} takes no categories= or allow_nan=")
        if kind == "mask":
            if dtype == "str":
                raise InvalidSpec(f"{where}: a mask holds 0/1; give dtype='int64' (or bool, float32)")
            if not self.shape:
                raise InvalidSpec(f"{where}: a mask needs a sequence axis (its last); shape is ()")
            padding = "right" if self.padding is None else self.padding
            if padding not in PADDINGS:
                raise InvalidSpec(
                    f"{where}: padding={self.padding!r} is unknown; use 'right' (ones then zeros) "
                    "or 'left' (zeros then ones)"
                )
            object.__setattr__(self, "padding", padding)
            bounds: tuple[int, int | None] = (0, 1)
        else:
            if dtype not in INT_LIMITS:
                raise InvalidSpec(
                    f"{where}: lengths are integers; give dtype='int64' (or int32), not {dtype}"
                )
            within = self.within
            if within is None:
                raise InvalidSpec(
                    f"{where}: kind='lengths' needs within=: the dim the lengths lie within, e.g. within='seq'"
                )
            if not (isinstance(within, str) and within.isidentifier()) and not (
                is_int(within) and cast(int, within) >= 1
            ):
                raise InvalidSpec(f"{where}: within={within!r} must be a dim name or a size >= 1")
            if is_int(within):
                within = int(within)
                if within > INT_LIMITS[dtype].max:
                    raise InvalidSpec(f"{where}: within={within} does not fit dtype {dtype}")
                object.__setattr__(self, "within", within)
            bounds = (1, within if isinstance(within, int) else None)
        # low/high are set by the domain; dataclasses.replace() passes the set ones back in.
        for fname, value in zip(("low", "high"), bounds):
            given = getattr(self, fname)
            if given is not None and given != value:
                domain = "a mask holds 0 and 1" if kind == "mask" else f"lengths lie in [1, {self.within}]"
                raise InvalidSpec(f"{where}: {fname}={given!r}, but {domain}; drop {fname}=")
            object.__setattr__(self, fname, value)

    def boundary_values(self, column: int | None = None) -> tuple[float, ...]:
        """The boundaries inside ``[low, high]`` that apply everywhere (``column`` None) or to
        one last-axis position."""
        return tuple(
            v
            for c, v in self.boundaries
            if c == column and self.low <= v <= self.high
        )

    def _check_special_ids(self, where: str) -> None:
        ids = self.special_ids
        if ids is None:
            return
        if isinstance(ids, (str, bytes)) or not isinstance(ids, Iterable):
            ids = (ids,) if is_int(ids) else None
        ids = tuple(ids) if ids is not None else ()
        if not ids:
            raise InvalidSpec(
                f"{where}: special_ids={self.special_ids!r}: give a non-empty tuple of token ids"
            )
        for value in ids:
            if not is_int(value):
                raise InvalidSpec(f"{where}: special_ids has {value!r}; token ids are integers")
            if not cast(float, self.low) <= value <= cast(float, self.high):  # set before this check
                raise InvalidSpec(
                    f"{where}: special_ids has {value}, outside [{self.low}, {self.high}]; special ids "
                    f"lie in the vocabulary: give high=vocab_size - 1 (or drop {value})"
                )
        object.__setattr__(self, "special_ids", tuple(dict.fromkeys(int(v) for v in ids)))

    @property
    def dim_names(self) -> tuple[str, ...]:
        return tuple(e for e in self.shape if isinstance(e, str))

    def concrete_shape(self, dims: Mapping[str, int]) -> tuple[int, ...]:
        return tuple(dims[e] if isinstance(e, str) else e for e in self.shape)


#: ONNX's spelling of each narrow dtype -> its canonical (ml_dtypes') name
ONNX_SPELLINGS = {onnx_name(name): name for name in (*NARROW_FLOAT_DTYPES, *NARROW_INT_DTYPES) if onnx_name(name) != name}


def _canonical_dtype(dtype: Any, where: str) -> str:
    if dtype in (str, "str", "string", "object", object):
        return "str"
    if isinstance(dtype, str) and dtype in ONNX_SPELLINGS:
        return ONNX_SPELLINGS[dtype]  # ONNX spells float8e4m3fn, ml_dtypes float8_e4m3fn
    if isinstance(dtype, str) and dtype in (*NARROW_FLOAT_DTYPES, *NARROW_INT_DTYPES):
        return dtype  # (numpy knows these names only once ml_dtypes is imported)
    try:
        name = np.dtype(dtype).name
    except TypeError:
        name = None
    if name in ("complex64", "complex128"):
        raise InvalidSpec(
            f"{where}: dtype {name} is not drawn: ONNX Runtime has no complex tensors on its Python API; "
            "check the model's real-valued part"
        )
    if name not in SUPPORTED_DTYPES:
        raise InvalidSpec(f"{where}: unsupported dtype {dtype!r}; use one of {', '.join(SUPPORTED_DTYPES)}")
    return cast(str, name)


def freeze_mapping(value: Mapping[str, Any]) -> Mapping[str, Any]:
    return MappingProxyType(dict(value))


def _boundaries(given: Any, where: str) -> tuple[tuple[int | None, float], ...]:
    """``boundaries=`` as sorted (column or None, value) pairs."""
    if isinstance(given, (str, bytes)) or not isinstance(given, Iterable):
        raise InvalidSpec(f"{where}: boundaries={given!r}: give a tuple of values or (column, value) pairs")
    pairs = set()
    for entry in given:
        column, value = (
            (None, entry)
            if is_real(entry)
            else tuple(entry)
            if isinstance(entry, (tuple, list))
            else (None, None)
        )
        if (
            not is_real(value)
            or not math.isfinite(value)
            or not (column is None or (is_int(column) and column >= 0))
        ):
            raise InvalidSpec(
                f"{where}: boundaries has {entry!r}; give finite values, or (column, value) pairs with a column >= 0"
            )
        pairs.add((None if column is None else int(column), float(value)))
    return tuple(sorted(pairs, key=lambda p: (-1 if p[0] is None else p[0], p[1])))
