"""Agreement metrics of a float output pair: cosine similarity, SQNR and top-1 agreement, from
sums (:class:`Energies`) that add up over the examples of a search. Computed block by block,
so no whole-output float64 copy is ever made."""

from __future__ import annotations

from typing import NamedTuple, cast

import numpy as np

from onnxparity.spec import DEFAULT_TOLERANCE

#: elements compared at a time: float64 working copies stay at a few blocks of 8 MB, whatever
#: the output's size (a (100000, 4096) output once needed 3 GiB of float64 copies at once).
BLOCK = 1 << 20


def same_nonfinite(e: np.ndarray, a: np.ndarray) -> np.ndarray:
    """Where both sides are NaN, or the same infinity: the only way a non-finite value matches."""
    return cast(np.ndarray, (np.isnan(e) & np.isnan(a)) | (np.isinf(e) & (a == e)))


class Energies(NamedTuple):
    """Sums over finite values (expected e, actual a): e·e, (a-e)·(a-e), e·a and a·a. Cosine and
    SQNR come from them, for one example or (summed with :meth:`plus`) a whole search."""

    signal: float = 0.0
    noise: float = 0.0
    cross: float = 0.0
    power: float = 0.0

    def plus(self, other: Energies) -> Energies:
        return Energies(*(x + y for x, y in zip(self, other)))

    def metrics(self) -> tuple[float, float]:
        """(cosine, SQNR in dB): 1 and inf when nothing differs; cosine 0 when exactly one
        side is all zeros."""
        if self.noise == 0.0:
            return 1.0, float("inf")
        norms = np.sqrt(self.signal) * np.sqrt(self.power)
        cosine = float(self.cross / norms) if norms > 0 else 0.0
        sqnr = 10.0 * np.log10(self.signal / self.noise) if self.signal > 0 else float("-inf")
        return cosine, float(sqnr)


def agreement_metrics(expected: np.ndarray, actual: np.ndarray) -> tuple[float, float, int, int, int]:
    """(cosine, sqnr_db, top-1 rows agreeing, top-1 rows, non-finite disagreements) of a float
    output pair of equal shape (see :func:`agreement_parts`)."""
    energies, agree, rows, nonfinite = agreement_parts(expected, actual)
    return (*energies.metrics(), agree, rows, nonfinite)


def agreement_parts(expected: np.ndarray, actual: np.ndarray) -> tuple[Energies, int, int, int]:
    """(:class:`Energies`, top-1 rows agreeing, top-1 rows, non-finite disagreements) of a
    float output pair of equal shape, computed block by block.

    Cosine and SQNR are over the whole tensor's finite values (both 1/inf when the tensors are
    equal; cosine 0 when exactly one is all zeros). Top-1 compares the argmax over the last
    axis row by row (only for a last axis of 2 or more); a row whose reference values at both
    argmaxes tie within the default tolerance counts as agreeing.
    """
    expected, actual = np.asarray(expected), np.asarray(actual)
    ranked = expected.ndim >= 1 and expected.shape[-1] >= 2 and expected.size > 0
    width = expected.shape[-1] if ranked else 1
    signal = noise = cross = power = 0.0
    agree = rows = nonfinite = 0
    step = max(1, BLOCK // width)  # whole rows per block: top-1 is per row
    e_rows, a_rows = expected.reshape(-1, width), actual.reshape(-1, width)
    for start in range(0, len(e_rows), step):
        e = e_rows[start : start + step].astype(np.float64)
        a = a_rows[start : start + step].astype(np.float64)
        finite_e, finite_a = np.isfinite(e), np.isfinite(a)
        both = finite_e & finite_a
        nonfinite += int((~both & ~same_nonfinite(e, a)).sum())
        ev, av = e[both], a[both]
        signal += float(np.dot(ev, ev))
        noise += float(np.dot(av - ev, av - ev))
        cross += float(np.dot(ev, av))
        power += float(np.dot(av, av))
        if ranked:
            re = np.where(finite_e, e, np.nan_to_num(e, nan=-np.inf))
            ra = np.where(finite_a, a, np.nan_to_num(a, nan=-np.inf))
            top_e, top_a = re.argmax(axis=1), ra.argmax(axis=1)
            index = np.arange(len(re))
            best, chosen = re[index, top_e], re[index, top_a]
            with np.errstate(invalid="ignore", over="ignore"):  # inf - inf, huge - (-huge)
                tied = best - chosen <= DEFAULT_TOLERANCE.atol + DEFAULT_TOLERANCE.rtol * np.abs(best)
            rows += len(re)
            agree += int(((top_e == top_a) | tied).sum())
    return Energies(signal, noise, cross, power), agree, rows, nonfinite
