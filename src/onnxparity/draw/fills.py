"""Numpy fills of one input by data pattern, within its declared domain (no Hypothesis here:
:mod:`.strategies` draws the pattern and the seed, this module fills the array from them).

Numeric inputs: ``zeros``, ``constant``, ``uniform``, ``normal``, ``extremes``, ``sparse``;
``band`` (values in a sub-interval of the range, the unit band half of the time) and
``boundary`` (values at and next to the input's boundaries); ``nan`` and ``special`` where
the input allows them. Masks and lengths: :data:`MASK_PATTERNS`, a row never empty.
"""

from __future__ import annotations

import functools
import math
import statistics
import sys
from typing import cast

import numpy as np

from onnxparity.spec import Input
from onnxparity.spec.dtypes import FLOATS, INTEGERS, numpy_dtype

#: data patterns in shrink order: the simplest first.
PATTERNS = ("zeros", "constant", "uniform", "normal", "extremes", "sparse")

#: numeric inputs also draw values confined to a sub-interval of [low, high] (``band``: a
#: traced branch on the range, e.g. ``if x.max() > 1: x = x / 255``, is only reached there)
#: and, where they have boundaries (their own, or constants the graph branches on), values at
#: and next to them (``boundary``).
BAND_PATTERN = "band"
BOUNDARY_PATTERN = "boundary"
#: the explicit example's band: values in the unit band (:func:`unit_band`); not drawn.
UNIT_PATTERN = "unit"
#: fraction of positions the ``boundary`` pattern puts at or next to a boundary.
BOUNDARY_DENSITY = 0.5

#: patterns over real rows (``data=``), tried before the synthetic ones: resampled rows, and
#: resampled rows with small noise (1% of each column's spread) to probe split thresholds.
ROW_PATTERNS = ("rows", "jitter")

#: patterns of an input with ``choices=``: the first choice (the simplest), one at random.
CHOICE_PATTERNS = ("first", "choice")

#: patterns of masks and lengths (each row's real length), in shrink order: see ``op.Input``.
MASK_PATTERNS = ("full", "shortest", "ragged", "uniform", "extremes")

#: token ids with ``special_ids``: ordinary ids with special ids and the vocabulary's edges mixed in.
SPECIAL_PATTERN = "special"
#: fraction of positions the ``special`` pattern gives a special id or a vocabulary edge.
SPECIAL_DENSITY = 0.3

#: fraction of NaN values in the ``nan`` pattern (inputs with ``allow_nan=True``).
NAN_DENSITY = 0.1

#: relative size of the ``jitter`` pattern's noise, per column spread.
JITTER_SCALE = 0.01

SEED_MAX = 2**32 - 1

#: fraction of non-zero values in the ``sparse`` pattern (about: positions are drawn with replacement).
SPARSE_DENSITY = 0.1


def has_boundaries(item: Input) -> bool:
    return item.kind == "values" and any(item.low <= v <= item.high for _, v in item.boundaries)


def unit_band(item: Input) -> tuple[float, float] | None:
    """[0, 1], else [-1, 1], where it lies inside a declared range wider than 2 (pixels of
    0-255, epoch seconds): the band of the explicit band example, drawn half of the time."""
    if (
        item.dtype not in FLOATS
        or item.choices is not None
        or cast(float, item.high) - cast(float, item.low) <= 2  # [-1, 1] and narrower: none
    ):
        return None
    for low, high in ((0.0, 1.0), (-1.0, 1.0)):
        if cast(float, item.low) <= low and high <= cast(float, item.high):
            return low, high
    return None


def _band(item: Input, rng: np.random.Generator) -> tuple[float, float]:
    """The ``band`` pattern's sub-interval: the unit band half of the time (where it applies),
    else a log-uniform width (1/1000 of the range to all of it) at a uniform position."""
    low, high = float(cast(float, item.low)), float(cast(float, item.high))
    unit = unit_band(item)
    if unit is not None and rng.random() < 0.5:
        return unit
    width = (high - low) * 10.0 ** (-3.0 * rng.random())
    start = low + (high - low - width) * rng.random()
    return start, start + width


def _near(value: float, dtype: np.dtype) -> list[float]:
    """A boundary (three times: the value itself is where a rounding bug flips) and its
    neighbours: the next float32 and float64 values either side (ints: one either side)."""
    if dtype.kind in "iu":
        return [math.floor(value), math.ceil(value), math.floor(value) - 1, math.ceil(value) + 1]
    single = np.float32(value)
    return [
        value,
        value,
        value,
        float(single),
        float(np.nextafter(single, np.float32(-np.inf))),
        float(np.nextafter(single, np.float32(np.inf))),
        float(np.nextafter(value, -np.inf)),
        float(np.nextafter(value, np.inf)),
    ]


def _boundary(item: Input, values: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """``values`` with a :data:`BOUNDARY_DENSITY` share of positions at or next to a boundary:
    per last-axis column its own (``(column, value)`` pairs) and the ones for every position."""
    low, high = cast(float, item.low), cast(float, item.high)
    everywhere = [c for v in item.boundary_values() for c in _near(v, values.dtype)]
    columns = values.shape[-1] if values.ndim else 1
    flat = values.reshape(-1, columns)
    for column in range(columns):  # a column's own boundaries (a feature's splits), else the shared ones
        pool = [c for v in item.boundary_values(column) for c in _near(v, values.dtype)] or everywhere
        pool = [c for c in pool if low <= c <= high]
        if not pool:
            continue
        picked = rng.random(len(flat)) < BOUNDARY_DENSITY
        flat[picked, column] = np.asarray(pool)[rng.integers(0, len(pool), int(picked.sum()))]
    return values


def _numpy_dtype(item: Input) -> np.dtype:
    return numpy_dtype(cast(str, item.dtype))


def fill(
    item: Input, shape: tuple[int, ...], pattern: str, rng: np.random.Generator, *, within: int | None = None
) -> np.ndarray:
    """An array of ``shape`` for ``item`` filled by ``pattern``, within its domain (``within``:
    the sequence length a ``lengths`` input's values lie within). Shape ``()`` gives a 0-d
    array, never a numpy scalar (arrays are made read-only, which a scalar cannot be)."""
    values = np.asarray(_fill_any(item, shape, pattern, rng, within))
    if values.dtype.kind == "f" and not item.allow_subnormal and values.size:
        if pattern not in SCALAR_PATTERNS or _holds_subnormal(_scalars(item, values, pattern)):
            values = normal_only(values)
    return values


#: float patterns whose values are one or two scalars (the rest value, a constant, the bounds):
#: those scalars are checked for subnormals instead of every value (18 us at 8x3x64x64).
SCALAR_PATTERNS = ("zeros", "constant", "extremes")


def _scalars(item: Input, values: np.ndarray, pattern: str) -> np.ndarray:
    """Every value a :data:`SCALAR_PATTERNS` fill can hold, in ``values``' dtype."""
    if pattern == "extremes":
        return np.asarray((item.low, item.high)).astype(values.dtype)
    return values.reshape(-1)[:1]  # zeros and constant: one value everywhere


def _holds_subnormal(values: np.ndarray) -> bool:
    magnitude = np.abs(values)
    return bool(((magnitude > 0) & (magnitude < np.finfo(values.dtype).tiny)).any())


def normal_only(values: np.ndarray) -> np.ndarray:
    """``values`` with each subnormal (0 < |x| < the smallest normal) drawn as the smallest
    normal of its sign: no subnormal reaches a model unless its input allows them."""
    tiny = np.finfo(values.dtype).tiny
    magnitude = np.abs(values)
    subnormal = (magnitude > 0) & (magnitude < tiny)
    if subnormal.any():
        values = np.where(subnormal, np.copysign(tiny, values), values).astype(values.dtype, copy=False)
    return values


def _fill_any(
    item: Input, shape: tuple[int, ...], pattern: str, rng: np.random.Generator, within: int | None
) -> np.ndarray:
    if item.choices is not None:
        if pattern not in CHOICE_PATTERNS:
            raise ValueError(f"unknown pattern {pattern!r} for choices; known: {', '.join(CHOICE_PATTERNS)}")
        picked = item.choices[0 if pattern == "first" else int(rng.integers(len(item.choices)))]
        return cast(
            np.ndarray,
            np.asarray(picked, dtype=object if item.dtype == "str" else None).astype(
                numpy_dtype(cast(str, item.dtype))
            ).reshape(shape),
        )
    if item.kind == "mask":
        return _fill_mask(item, shape, pattern, rng)
    if item.kind == "lengths":
        rows = int(np.prod(shape, dtype=np.int64))
        return cast(
            np.ndarray,
            row_lengths(pattern, rows, int(cast(int, within)), rng).reshape(shape).astype(item.dtype),
        )
    if item.dtype == "str":
        return _fill_str(item, shape, pattern, rng)
    if pattern == "nan":
        values = np.asarray(
            _fill_float(item, shape, "uniform", rng).astype(numpy_dtype(cast(str, item.dtype)))
        )
        values[rng.random(shape) < NAN_DENSITY] = np.nan
        return values
    dtype = numpy_dtype(cast(str, item.dtype))
    if dtype == np.bool_:
        return _fill_bool(shape, pattern, rng)
    if item.dtype in INTEGERS:
        return _fill_int(item, shape, pattern, rng).astype(dtype, copy=False)
    return _fill_float(item, shape, pattern, rng).astype(dtype, copy=False)


def _fill_float(item: Input, shape: tuple[int, ...], pattern: str, rng: np.random.Generator) -> np.ndarray:
    low, high = float(cast(float, item.low)), float(cast(float, item.high))
    span = high - low
    rest = min(max(0.0, low), high)  # zero where the range allows it, else the nearest bound
    if pattern == "zeros":
        return np.full(shape, rest, dtype=np.float32 if item.dtype != "float64" else np.float64)
    if pattern == "constant":  # in the input's own dtype: one rounding, no float64 copy
        return np.full(shape, low + span * rng.random(), dtype=_numpy_dtype(item))
    if pattern == "uniform":
        values = _unit(rng, shape, np.float64 if item.dtype == "float64" else np.float32)
        values *= span  # in place: low + span * values, without two temporaries
        values += low
        return values
    if pattern == "normal":
        return _normal(shape, low, high, rng)
    if pattern == "extremes":  # one random bit per value picks a bound: 0.38 -> 0.085 ms at 8x3x64x64
        bounds = np.asarray((high, low), dtype=np.float32)
        size = math.prod(shape)
        bits = np.unpackbits(np.frombuffer(rng.bytes((size + 7) // 8), dtype=np.uint8), count=size)
        return np.take(bounds, bits).reshape(shape)
    if pattern in (BAND_PATTERN, UNIT_PATTERN):
        start, end = _band(item, rng) if pattern == BAND_PATTERN else (unit_band(item) or (low, high))
        kind = np.float64 if item.dtype == "float64" else np.float32
        return start + (end - start) * _unit(rng, shape, kind)
    if pattern == BOUNDARY_PATTERN:
        kind = np.float64 if item.dtype == "float64" else np.float32
        return _boundary(item, low + span * _unit(rng, shape, kind), rng)
    if pattern == "sparse":  # scatter to drawn positions: 5.5 -> 1 ms at 8x3x224x224
        values = np.full(shape, rest, dtype=np.float32)
        size = values.size
        count = int(rng.binomial(size, SPARSE_DENSITY)) if size else 0
        flat = values.reshape(-1)
        flat[rng.integers(0, size, count)] = low + span * rng.random(count, dtype=np.float32)
        return values
    raise ValueError(f"unknown pattern {pattern!r}; known: {', '.join(PATTERNS)}")


def _unit(rng: np.random.Generator, shape: tuple[int, ...], dtype: type[np.floating]) -> np.ndarray:
    """Uniform values in [0, 1): the values ``rng.random(shape, dtype)`` gives, the float32 ones
    from the generator's raw 64-bit words (two per word, low half first, as numpy's own float32
    path takes them; its per-value loop is the cost): 0.125 -> 0.095 ms at 8x3x64x64."""
    if dtype is not np.float32 or sys.byteorder != "little":
        return rng.random(shape, dtype=dtype)
    values = _bits24(rng, math.prod(shape)).astype(np.float32)  # every float32 in [0, 1) on the 2**-24 grid
    values *= np.float32(2.0**-24)
    return values.reshape(shape)


def _bits24(rng: np.random.Generator, size: int) -> np.ndarray:
    """``size`` random 24-bit integers (uint32): the top 24 bits of each half of the generator's
    raw 64-bit words, low half first (numpy's float32 ``random`` takes its bits so); twice as fast
    as ``rng.integers(0, 2**24, size, dtype=np.uint32)`` (157 -> 77 us for 98,304 values)."""
    if sys.byteorder != "little":
        return rng.integers(0, 2**24, size, dtype=np.uint32)
    bits = rng.bit_generator.random_raw(-(-size // 2)).view(np.uint32)[:size]
    bits >>= 8
    return bits


#: the ``normal`` pattern's quantile table: 2**NORMAL_CELLS_BITS cells over [0, 1), each
#: interpolated linearly over 2**(24 - NORMAL_CELLS_BITS) steps (24 random bits per value).
NORMAL_CELLS_BITS = 12


@functools.cache
def _normal_knots() -> tuple[np.ndarray, np.ndarray]:
    """The standard normal's quantiles at k / 2**NORMAL_CELLS_BITS, clipped to [-3, 3] (the
    pattern's range is mean ± 3 sd; the tails' mass lands on the bounds, as a clip would put
    it), and each cell's step per random bit."""
    cells, inverse = 2**NORMAL_CELLS_BITS, statistics.NormalDist().inv_cdf
    knots = np.array([-3.0] + [min(3.0, max(-3.0, inverse(k / cells))) for k in range(1, cells)] + [3.0])
    return knots[:-1], np.diff(knots) / 2 ** (24 - NORMAL_CELLS_BITS)


def _normal(shape: tuple[int, ...], low: float, high: float, rng: np.random.Generator) -> np.ndarray:
    """Normal values, mean the range's middle and sd a sixth of it, clipped to [low, high]: the
    inverse CDF tabulated and interpolated from 24 random bits per value. Arithmetic only, so
    the same seed gives the same values on every CPU (a Box-Muller transform was faster, but
    numpy's float32 ``log``/``cos`` differ by SIMD path), and 2.3x as fast as numpy's float32
    ``standard_normal`` (0.73 -> 0.32 ms at 8x3x64x64; 0.23 ms with :func:`_bits24`). Values are
    as distinct as float32 uniform draws (16M levels), unlike a table of precomputed normals,
    whose repeats make ties."""
    starts, steps = _normal_knots()
    middle, sd = low + (high - low) / 2, (high - low) / 6
    starts, steps = (starts * sd + middle).astype(np.float32), (steps * sd).astype(np.float32)
    bits = _bits24(rng, math.prod(shape))  # flat: a 0-d take is a scalar
    cell = bits >> (24 - NORMAL_CELLS_BITS)
    values = np.take(steps, cell)
    values *= (bits & (2 ** (24 - NORMAL_CELLS_BITS) - 1)).astype(np.float32)
    values += np.take(starts, cell)
    return np.clip(values, low, high, out=values).reshape(shape)


def _fill_int(item: Input, shape: tuple[int, ...], pattern: str, rng: np.random.Generator) -> np.ndarray:
    if item.distinct:
        return _distinct(item, shape, pattern, rng)
    low, high = int(cast(float, item.low)), int(cast(float, item.high))
    rest = min(max(0, low), high)
    if pattern == "zeros":
        return np.full(shape, rest, dtype=np.int64)
    if pattern == "constant":
        return np.full(shape, rng.integers(low, high, endpoint=True), dtype=np.int64)
    if pattern == "uniform":
        return rng.integers(low, high, size=shape, endpoint=True)
    if pattern == "normal":
        values: np.ndarray = rng.normal((low + high) / 2, (high - low) / 6, size=shape)
        return cast(np.ndarray, np.clip(np.rint(values), low, high).astype(np.int64))
    if pattern == "extremes" and item.special_ids:  # the vocabulary's edges and its special ids
        edges = np.asarray((low, high, *item.special_ids), dtype=np.int64)
        return edges[rng.integers(0, len(edges), size=shape)]
    if pattern == "extremes":
        return np.where(rng.random(shape) < 0.5, low, high)
    if pattern == SPECIAL_PATTERN:
        values = rng.integers(low, high, size=shape, endpoint=True)
        pool = np.asarray((*cast(tuple[int, ...], item.special_ids), low, high), dtype=np.int64)
        picked = rng.random(shape) < SPECIAL_DENSITY
        values[picked] = pool[rng.integers(0, len(pool), size=int(picked.sum()))]
        return values
    if pattern == BAND_PATTERN:
        start, end = _band(item, rng)
        return rng.integers(
            math.ceil(start), max(math.ceil(start), math.floor(end)), size=shape, endpoint=True
        )
    if pattern == BOUNDARY_PATTERN:
        return _boundary(item, rng.integers(low, high, size=shape, endpoint=True), rng)
    if pattern == "sparse":
        values = np.full(shape, rest, dtype=np.int64)
        mask = rng.random(shape) < SPARSE_DENSITY
        values[mask] = rng.integers(low, high, size=int(mask.sum()), endpoint=True)
        return values
    raise ValueError(f"unknown pattern {pattern!r}; known: {', '.join(PATTERNS)}")


def _distinct(item: Input, shape: tuple[int, ...], pattern: str, rng: np.random.Generator) -> np.ndarray:
    """Rows (the last axis) of values distinct modulo ``item.distinct`` within [low, high]: an
    axes list names each axis once. ``zeros`` gives 0, 1, 2, ... (the simplest); other patterns
    a random choice of axes, each written as itself or as its negative form where the range
    allows both."""
    modulus, low, high = (
        int(cast(int, item.distinct)),
        int(cast(float, item.low)),
        int(cast(float, item.high)),
    )
    size = shape[-1] if shape else 1
    rows = int(np.prod(shape[:-1], dtype=np.int64)) if shape else 1
    if pattern == "zeros" or not rows * size:
        residues = np.broadcast_to(np.arange(size), (rows, size))
    else:
        residues = np.argsort(rng.random((rows, modulus)), axis=1)[:, :size]
    positive, negative = residues, residues - modulus
    use_negative = positive > high  # (Input checks that every axis has a form within [low, high])
    if pattern != "zeros":
        use_negative |= (negative >= low) & (rng.random(residues.shape) < 0.5)
    return np.where(use_negative, negative, positive).astype(np.int64).reshape(shape)


def row_lengths(pattern: str, rows: int, seq: int, rng: np.random.Generator) -> np.ndarray:
    """The real length of each of ``rows`` rows of length ``seq`` under a mask pattern: each in
    ``[1, seq]``, never 0."""
    if pattern == "full":
        return np.full(rows, seq, dtype=np.int64)
    if pattern == "shortest":
        return np.ones(rows, dtype=np.int64)
    if pattern == "uniform":
        return rng.integers(1, seq, size=rows, endpoint=True)
    if pattern == "extremes":
        return np.where(rng.random(rows) < 0.5, 1, seq).astype(np.int64)
    if pattern == "ragged":
        lengths = np.full(rows, seq, dtype=np.int64)
        if rows > 1 and seq > 1:  # one row stays full; the others differ where seq - 1 allows
            others = np.delete(np.arange(rows), rng.integers(rows))
            lengths[others] = rng.choice(np.arange(1, seq), size=rows - 1, replace=rows - 1 > seq - 1)
        return lengths
    raise ValueError(f"unknown mask pattern {pattern!r}; known: {', '.join(MASK_PATTERNS)}")


def _fill_mask(item: Input, shape: tuple[int, ...], pattern: str, rng: np.random.Generator) -> np.ndarray:
    seq = shape[-1]
    rows = int(np.prod(shape[:-1], dtype=np.int64))
    lengths = row_lengths(pattern, rows, seq, rng)[:, None]
    positions = np.arange(seq)[None, :]
    real = positions < lengths if item.padding == "right" else positions >= seq - lengths
    return real.reshape(shape).astype(item.dtype)


def _fill_str(item: Input, shape: tuple[int, ...], pattern: str, rng: np.random.Generator) -> np.ndarray:
    if not item.categories:
        raise ValueError(f"Input({item.name!r}) is a str input without categories")
    categories = np.asarray(item.categories, dtype=object)
    if pattern == "zeros":
        return np.full(shape, categories[0], dtype=object)
    if pattern == "constant":
        return np.full(shape, categories[rng.integers(0, len(categories))], dtype=object)
    if pattern == "extremes":
        return cast(
            np.ndarray, np.where(rng.random(shape) < 0.5, categories[0], categories[-1]).astype(object)
        )
    return categories[rng.integers(0, len(categories), size=shape)]


def _fill_bool(shape: tuple[int, ...], pattern: str, rng: np.random.Generator) -> np.ndarray:
    if pattern == "zeros":
        return np.zeros(shape, dtype=np.bool_)
    if pattern == "constant":
        return np.full(shape, bool(rng.integers(0, 2)), dtype=np.bool_)
    if pattern == "extremes":
        return np.ones(shape, dtype=np.bool_)
    density = SPARSE_DENSITY if pattern == "sparse" else 0.5
    return rng.random(shape) < density
