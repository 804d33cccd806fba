"""What a search's examples looked like, in bounded size: per example, the share of the
tolerance its worst value used and its worst absolute error (log-scale histograms), its SQNR
under an Agreement, and a fixed-size sample of (input magnitude, input size, error, share)
points. The HTML report plots them and the tolerance advisor reads them; a report stays small
for hundreds of items (a histogram and at most :data:`MAX_POINTS` points each, not every
example).
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from onnxparity.verdict.compare import json_float

#: bin edges: the share of the tolerance (1 = at the limit), four bins a decade from 1e-6 to 100
USED_EDGES = tuple(float(f"{10 ** (k / 4):.4g}") for k in range(-24, 9))
#: bin edges: the worst absolute error, two bins a decade from 1e-12 to 1e4
ERROR_EDGES = tuple(float(f"{10 ** (k / 2):.4g}") for k in range(-24, 9))
#: bin edges: SQNR in dB, 5 dB wide from -10 to 100
SQNR_EDGES = tuple(float(k) for k in range(-10, 105, 5))
#: the (input magnitude, input size, error, share) points kept per item
MAX_POINTS = 100


class Histogram:
    """Counts over fixed edges: ``counts[0]`` below the first edge (zero included),
    ``counts[i]`` in ``[edges[i-1], edges[i])``, ``counts[-1]`` at or above the last (and
    infinity); NaN is counted apart."""

    def __init__(self, edges: Sequence[float]) -> None:
        self.edges = tuple(edges)
        self.counts = [0] * (len(self.edges) + 1)
        self.nan = 0

    def add(self, value: float) -> None:
        if value != value:
            self.nan += 1
            return
        lo, hi = 0, len(self.edges)
        while lo < hi:  # bisect_right over the edges
            middle = (lo + hi) // 2
            if value < self.edges[middle]:
                hi = middle
            else:
                lo = middle + 1
        self.counts[lo] += 1

    def to_dict(self) -> dict[str, Any]:
        return {"edges": list(self.edges), "counts": list(self.counts), "nan": self.nan}


def input_size(feeds: Mapping[str, Any]) -> tuple[float, int]:
    """(the largest finite |value| over the numeric inputs (token ids too), every input's
    element count)."""
    magnitude, size = 0.0, 0
    for value in feeds.values():
        array = np.asarray(value)
        size += int(array.size)
        if array.size and array.dtype.kind in "fiu":
            for v in (float(array.max()), float(array.min())):  # NaN anywhere: not counted
                if math.isfinite(v):
                    magnitude = max(magnitude, abs(v))
    return magnitude, size


def _round(value: float | None) -> Any:
    if value is None:
        return None
    return json_float(float(f"{value:.4g}")) if math.isfinite(value) else json_float(value)


class Distribution:
    """The per-example numbers of one search, accumulated in bounded size."""

    def __init__(self) -> None:
        self.used = Histogram(USED_EDGES)
        self.error = Histogram(ERROR_EDGES)
        self.sqnr = Histogram(SQNR_EDGES)
        self.examples = 0
        self.worst_used = 0.0
        self.points: list[list[Any]] = []
        self._random = random.Random(0)  # the same points for the same examples

    def add(self, verdict: Any, inputs: tuple[float, int]) -> None:
        """One example: its verdict (every output) and its inputs' (max |value|, size)."""
        floats = [o for o in verdict.outputs if not o.exact and o.problem not in ("shape", "dtype")]
        if not floats:
            return
        used = max(o.tolerance_used for o in floats)
        error = max(o.max_abs_error for o in floats)
        sqnrs = [o.sqnr_db for o in floats if o.sqnr_db is not None]
        self.examples += 1
        self.worst_used = max(self.worst_used, used)
        self.used.add(used)
        self.error.add(error)
        sqnr = min(sqnrs) if sqnrs else None
        if sqnr is not None:
            self.sqnr.add(sqnr)
        magnitude, size = inputs
        point = [_round(magnitude), size, _round(error), _round(used), _round(sqnr)]
        if len(self.points) < MAX_POINTS:
            self.points.append(point)
        else:  # reservoir sampling: every example equally likely to be kept
            slot = self._random.randrange(self.examples)
            if slot < MAX_POINTS:
                self.points[slot] = point

    def to_dict(self) -> dict[str, Any] | None:
        if not self.examples:
            return None
        return {
            "examples": self.examples,
            "worst_tolerance_used": json_float(self.worst_used),
            "tolerance_used": self.used.to_dict(),
            "max_abs_error": self.error.to_dict(),
            "sqnr_db": self.sqnr.to_dict() if any(self.sqnr.counts) else None,
            "points": {
                "columns": ["input_max_abs", "input_values", "max_abs_error", "tolerance_used", "sqnr_db"],
                "rows": self.points,
            },
        }
