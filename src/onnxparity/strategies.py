"""Hypothesis strategies: specs -> concrete shapes and arrays.

Hypothesis chooses, numpy fills: Hypothesis draws the symbolic dims, one data *pattern* per
input and a seed; numpy fills the arrays from that seed. Drawing stays cheap whatever the
tensor size, and shrinking still reaches small shapes (dims shrink to their minimum), simple
patterns (``zeros`` first) and seed 0. Knows nothing of frameworks, ONNX Runtime or pytest.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
from hypothesis import strategies as st

from .spec import Input, ParitySpec

#: data patterns in shrink order: the simplest first.
PATTERNS = ("zeros", "constant", "uniform", "normal", "extremes", "sparse")

SEED_MAX = 2**32 - 1

#: fraction of non-zero values in the ``sparse`` pattern.
SPARSE_DENSITY = 0.1


@dataclass(frozen=True)
class Example:
    """One drawn example: concrete dims, a pattern per input, a seed. Hashable: a cache key."""

    dims: tuple[tuple[str, int], ...]
    patterns: tuple[str, ...]
    seed: int

    @property
    def dim_values(self) -> dict[str, int]:
        return dict(self.dims)

    def describe(self, spec: ParitySpec) -> str:
        """One line a person can read: shapes, patterns and seed."""
        values = self.dim_values
        parts = [
            f"{i.name}{list(i.concrete_shape(values))} {pattern}"
            for i, pattern in zip(spec.inputs, self.patterns)
        ]
        dims = ", ".join(f"{k}={v}" for k, v in self.dims)
        return (f"dims {dims}; " if dims else "") + "; ".join(parts) + f"; seed {self.seed}"

    def to_dict(self) -> dict:
        return {"dims": dict(self.dims), "patterns": list(self.patterns), "seed": self.seed}


def examples(spec: ParitySpec) -> st.SearchStrategy[Example]:
    """The strategy of examples over ``spec``'s declared input space."""
    dim_strategies = [
        st.integers(0, spec.dims[name].values_count - 1).map(spec.dims[name].value)
        for name in spec.symbolic_dims
    ]
    return st.builds(
        lambda dims, patterns, seed: Example(tuple(zip(spec.symbolic_dims, dims)), tuple(patterns), seed),
        st.tuples(*dim_strategies),
        st.tuples(*[st.sampled_from(PATTERNS) for _ in spec.inputs]),
        st.integers(0, SEED_MAX),
    )


def boundary_examples(spec: ParitySpec) -> list[Example]:
    """Examples at the corners of the input space, tried before any drawn one: all dims at
    their minimum, then all at their maximum (uniform data, seed 0)."""
    patterns = tuple("uniform" for _ in spec.inputs)
    corners = []
    for pick in ("first", "last"):
        dims = tuple((name, getattr(spec.dims[name], pick)) for name in spec.symbolic_dims)
        example = Example(dims, patterns, 0)
        if example not in corners:
            corners.append(example)
    return corners


def export_dims(spec: ParitySpec) -> dict[str, int]:
    """Dims for the example an exporter traces: each >= 2 and, where the ranges allow,
    distinct from each other and from the inputs' fixed sizes, so that no exporter can
    mistake one dim for another or specialise a dim to 1."""
    taken = {e for i in spec.inputs for e in i.shape if isinstance(e, int)}
    chosen: dict[str, int] = {}
    # The narrowest dims choose first, so a wide dim cannot take a narrow dim's only values.
    for name in sorted(spec.symbolic_dims, key=lambda n: spec.dims[n].values_count):
        dim = spec.dims[name]
        candidates = [dim.value(k) for k in range(min(dim.values_count, 4096))]
        preferred = [v for v in candidates if v >= 2]
        value = next((v for v in preferred if v not in taken), None)
        if value is None:
            value = preferred[0] if preferred else dim.last
        chosen[name] = value
        taken.add(value)
    return {name: chosen[name] for name in spec.symbolic_dims}


def materialize(spec: ParitySpec, example: Example) -> dict[str, np.ndarray]:
    """The arrays an example stands for, in input order; the same example gives the same arrays."""
    rng = np.random.default_rng(example.seed)
    dims = example.dim_values
    return {
        item.name: fill(item, item.concrete_shape(dims), pattern, rng)
        for item, pattern in zip(spec.inputs, example.patterns)
    }


def arrays_for_dims(spec: ParitySpec, dims: Mapping[str, int], seed: int = 0) -> dict[str, np.ndarray]:
    """Uniform arrays at the given dims (used for the export example)."""
    example = Example(
        tuple((n, dims[n]) for n in spec.symbolic_dims), tuple("uniform" for _ in spec.inputs), seed
    )
    return materialize(spec, example)


def fill(item: Input, shape: tuple[int, ...], pattern: str, rng: np.random.Generator) -> np.ndarray:
    """An array of ``shape`` for ``item`` filled by ``pattern``, within ``[low, high]``."""
    dtype = np.dtype(item.dtype)
    if dtype == np.bool_:
        return _fill_bool(shape, pattern, rng)
    if dtype.kind in "iu":
        return _fill_int(item, shape, pattern, rng).astype(dtype, copy=False)
    return _fill_float(item, shape, pattern, rng).astype(dtype, copy=False)


def _fill_float(item: Input, shape, pattern: str, rng: np.random.Generator) -> np.ndarray:
    low, high = float(item.low), float(item.high)
    span = high - low
    rest = min(max(0.0, low), high)  # zero where the range allows it, else the nearest bound
    if pattern == "zeros":
        return np.full(shape, rest, dtype=np.float32 if item.dtype != "float64" else np.float64)
    if pattern == "constant":
        return np.full(shape, low + span * rng.random(), dtype=np.float64)
    if pattern == "uniform":
        return low + span * rng.random(shape, dtype=np.float64 if item.dtype == "float64" else np.float32)
    if pattern == "normal":
        values = rng.standard_normal(shape, dtype=np.float32) * np.float32(span / 6) + np.float32(
            low + span / 2
        )
        return np.clip(values, low, high)
    if pattern == "extremes":
        return np.where(rng.random(shape, dtype=np.float32) < 0.5, low, high)
    if pattern == "sparse":
        values = np.full(shape, rest, dtype=np.float32)
        mask = rng.random(shape, dtype=np.float32) < SPARSE_DENSITY
        values[mask] = low + span * rng.random(int(mask.sum()), dtype=np.float32)
        return values
    raise ValueError(f"unknown pattern {pattern!r}; known: {', '.join(PATTERNS)}")


def _fill_int(item: Input, shape, pattern: str, rng: np.random.Generator) -> np.ndarray:
    low, high = int(item.low), int(item.high)
    rest = min(max(0, low), high)
    if pattern == "zeros":
        return np.full(shape, rest, dtype=np.int64)
    if pattern == "constant":
        return np.full(shape, rng.integers(low, high, endpoint=True), dtype=np.int64)
    if pattern == "uniform":
        return rng.integers(low, high, size=shape, endpoint=True)
    if pattern == "normal":
        values = rng.normal((low + high) / 2, (high - low) / 6, size=shape)
        return np.clip(np.rint(values), low, high).astype(np.int64)
    if pattern == "extremes":
        return np.where(rng.random(shape) < 0.5, low, high)
    if pattern == "sparse":
        values = np.full(shape, rest, dtype=np.int64)
        mask = rng.random(shape) < SPARSE_DENSITY
        values[mask] = rng.integers(low, high, size=int(mask.sum()), endpoint=True)
        return values
    raise ValueError(f"unknown pattern {pattern!r}; known: {', '.join(PATTERNS)}")


def _fill_bool(shape, pattern: str, rng: np.random.Generator) -> np.ndarray:
    if pattern == "zeros":
        return np.zeros(shape, dtype=np.bool_)
    if pattern == "constant":
        return np.full(shape, bool(rng.integers(0, 2)), dtype=np.bool_)
    if pattern == "extremes":
        return np.ones(shape, dtype=np.bool_)
    density = SPARSE_DENSITY if pattern == "sparse" else 0.5
    return rng.random(shape) < density
