"""Declared outputs (:class:`~onnxparity.spec.Output`): rows of the reference paired with rows
of the variant before the tolerance rule compares them.

An ``unordered`` output's rows are a set: each reference row is paired with the variant's row
nearest to it, greedily — rows equal bit for bit first, then the pairs with the fewest values
beyond the tolerance, then the smallest share of the tolerance used — and a row left without a
partner is a failure. A
``sort_by`` output's rows are sorted on both sides (by its columns, ties broken by the whole
row) and paired in that order. Outputs ``together_with`` it share its pairing.

Rows are paired only where the outputs in their given order fail: a pass in order is a pass,
and costs nothing more. Where they are paired, the comparison runs on the paired rows, and its
worst-mismatch table names each value by the reference's row and the variant's row it was
paired with (:class:`RowMatch` says how many rows moved and which had no partner).

An undeclared float output that fails in order but whose rows are the reference's in another
order (:func:`reordered_axis`) says so, with the declaration to paste."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, cast

import numpy as np

from onnxparity.errors import InvalidSpec
from onnxparity.spec import Output, Tolerance
from onnxparity.verdict.rule import elementwise, value_kind, widen

if TYPE_CHECKING:
    from onnxparity.verdict.compare import OutputComparison

#: row pairs whose costs are computed at once (and candidates kept per pairing round)
PAIRS = 1 << 20
#: row indices listed per side in a RowMatch
MAX_LISTED = 5


@dataclass(frozen=True)
class RowMatch:
    """How a declared output's rows were paired on one example."""

    declared: str  # the declaration, as written: op.Output('boxes', unordered=True)
    rule: str  # "unordered" or "sort_by"
    rows: int  # reference rows (over every batch entry)
    #: reference rows paired with a variant row at another position
    moved: int = 0
    #: reference rows with no partner, and the variant's (their count; the first few, each
    #: its batch indices and row)
    missing: int = 0
    extra: int = 0
    missing_rows: tuple[tuple[int, ...], ...] = ()
    extra_rows: tuple[tuple[int, ...], ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "declared": self.declared,
            "rule": self.rule,
            "rows": self.rows,
            "moved": self.moved,
            "missing": self.missing,
            "extra": self.extra,
            "missing_rows": [list(r) for r in self.missing_rows],
            "extra_rows": [list(r) for r in self.extra_rows],
        }

    def lines(self) -> list[str]:
        """What the pairing did, for a failure's explanation."""
        how = (
            "rows compared as a set, each reference row paired with the nearest ONNX row"
            if self.rule == "unordered"
            else "rows sorted on both sides, then paired in that order"
        )
        lines = [
            f"  {how} ({self.declared}): {self.moved} of {self.rows} reference rows paired with an "
            "ONNX row at another position"
        ]
        for count, listed, what in (
            (self.missing, self.missing_rows, "reference row(s) with no ONNX row"),
            (self.extra, self.extra_rows, "ONNX row(s) with no reference row"),
        ):
            if count:
                more = ", ..." if count > len(listed) else ""
                rows = ", ".join(str(list(r)) for r in listed)
                lines.append(f"  {count} {what} (each a failure): {rows}{more}")
        return lines


@dataclass(frozen=True)
class Pairing:
    """One declared output's pairing on one example: for every batch entry, which reference
    row (``rows_e``) is compared with which variant row (``rows_a``), each of shape
    ``batch + (pairs,)``."""

    match: RowMatch
    axis: int
    rows_e: np.ndarray
    rows_a: np.ndarray

    def arrays(self, expected: np.ndarray, actual: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The paired rows of an output of the group: (reference's, variant's), same shape."""
        paired_e = _take(np.asarray(expected), self.rows_e, self.axis)
        return paired_e, _take(np.asarray(actual), self.rows_a, self.axis)

    def settle(self, result: OutputComparison, expected: np.ndarray, actual: np.ndarray) -> OutputComparison:
        """``result`` (the comparison of :meth:`arrays`) as the output's: indices in the
        reference's rows (and the variant's row where it differs), the real shapes, and each
        row without a partner counted as failed values."""
        expected, actual = np.asarray(expected), np.asarray(actual)
        worst = tuple(replace(m, **self._indices(m.index)) for m in result.worst)
        row_size = int(np.prod(expected.shape[self.axis + 1 :], dtype=np.int64))
        unpaired = (self.match.missing + self.match.extra) * row_size
        mismatched = result.mismatched + unpaired
        return replace(
            result,
            passed=result.passed and not unpaired,
            problem=result.problem if result.problem or not unpaired else "values",
            expected_shape=tuple(expected.shape),
            actual_shape=tuple(actual.shape),
            size=max(int(expected.size), int(actual.size)),
            mismatched=mismatched,
            tolerance_used=float("inf") if unpaired else result.tolerance_used,
            worst=worst,
            rows=self.match,
        )

    def _indices(self, index: tuple[int, ...]) -> dict[str, Any]:
        """A paired value's index as the reference's, and the variant's where it differs."""
        at = index[: self.axis + 1]
        mine = list(index)
        mine[self.axis] = int(self.rows_e[at])
        theirs = list(index)
        theirs[self.axis] = int(self.rows_a[at])
        return {"index": tuple(mine), "actual_index": tuple(theirs) if theirs != mine else None}


def pair_rows(
    declared: Sequence[Output],
    names: Sequence[str],
    expected: Sequence[np.ndarray],
    actual: Sequence[np.ndarray],
    failed: Callable[[int], bool],
    rule: Callable[[np.ndarray, np.ndarray], Tolerance | None],
) -> dict[int, Pairing]:
    """The pairing of each declared output (and those ``together_with`` it), by output
    position, where one of them ``failed(position)`` in order and the two sides can be paired
    (same dtype kinds, same shapes but for the row count). ``rule(expected, actual)`` is the
    tolerance an output pair is judged under (None: exactly). Raises InvalidSpec where a
    declaration does not fit the reference's outputs (a scalar, a column out of range)."""
    position = {n: i for i, n in enumerate(names)}
    pairings: dict[int, Pairing] = {}
    for item in declared:
        members = [position[n] for n in item.members]
        es = [widen(np.asarray(expected[p])) for p in members]
        as_ = [widen(np.asarray(actual[p])) for p in members]
        width = _check_fits(item, es)
        if not any(failed(p) for p in members) or not _pairable(item, es, as_):
            continue
        rules = [rule(e, a) if value_kind(e.dtype) == "float" else None for e, a in zip(es, as_)]
        pairing = _pairing(item, es, as_, rules, width)
        pairings.update({p: pairing for p in members})
    return pairings


def reordered_axis(expected: np.ndarray, actual: np.ndarray, rule: Tolerance) -> int | None:
    """The axis (0 or 1) along which a float output's rows on the variant's side are the
    reference's in another order: equal within ``rule`` once both sides' rows are sorted
    (None: along neither, or over :data:`PAIRS` values, not sorted). What the failure of an
    undeclared output says, with the declaration to paste where the order means nothing."""
    expected, actual = widen(np.asarray(expected)), widen(np.asarray(actual))
    if expected.shape != actual.shape or expected.size > PAIRS:
        return None
    for axis in (0, 1)[: expected.ndim]:
        if expected.shape[axis] < 2:
            continue
        width = int(np.prod(expected.shape[axis + 1 :], dtype=np.int64))
        for entry in np.ndindex(*expected.shape[:axis]):
            e, a = _rows(expected[entry], rule), _rows(actual[entry], rule)
            if not elementwise(e[_order(e, (), width)], a[_order(a, (), width)], rule)[3].all():
                break
        else:
            return axis
    return None


def _check_fits(item: Output, es: list[np.ndarray]) -> int:
    """InvalidSpec where ``item`` does not fit the reference's outputs; the row's width."""
    main, axis = es[0], item.axis
    if main.ndim <= axis:
        raise InvalidSpec(
            f"{item.describe()}: output {item.name!r} has shape {list(main.shape)}, no axis {axis} "
            "to take rows along; declare axis= below its rank, or drop the declaration"
        )
    for name, e in zip(item.together_with, es[1:]):
        if e.shape[: axis + 1] != main.shape[: axis + 1]:
            raise InvalidSpec(
                f"{item.describe()}: {name!r} has shape {list(e.shape)} but {item.name!r} has "
                f"{list(main.shape)}: an output together_with it needs its rows along axis {axis} "
                "(and the axes before it)"
            )
    width = int(np.prod(main.shape[axis + 1 :], dtype=np.int64))
    for column in cast("tuple[int, ...]", item.sort_by or ()):  # (a tuple: Output normalises it)
        if not -width <= column < width:
            raise InvalidSpec(
                f"{item.describe()}: sort_by={column} is out of range: rows of {item.name!r} "
                f"(shape {list(main.shape)}, rows along axis {axis}) have {width} columns "
                f"(0..{width - 1}, or -{width}..-1 from the end)"
            )
    return width


def _pairable(item: Output, es: list[np.ndarray], as_: list[np.ndarray]) -> bool:
    """Whether the two sides differ at most in their row count (and the same one for every
    output of the group; none for sorted rows): else the comparison reports their shapes."""
    axis = item.axis
    counts = {a.shape[axis] if a.ndim > axis else -1 for a in as_}
    if len(counts) != 1 or (item.sort_by is not None and counts != {es[0].shape[axis]}):
        return False
    return all(
        e.ndim == a.ndim
        and e.shape[:axis] == a.shape[:axis]
        and e.shape[axis + 1 :] == a.shape[axis + 1 :]
        and value_kind(e.dtype) == value_kind(a.dtype)
        for e, a in zip(es, as_)
    )


def _pairing(
    item: Output, es: list[np.ndarray], as_: list[np.ndarray], rules: list[Tolerance | None], width: int
) -> Pairing:
    """Pair the rows of every batch entry (see the module docstring)."""
    axis = item.axis
    batch = es[0].shape[:axis]
    n, m = es[0].shape[axis], as_[0].shape[axis]
    pairs = min(n, m)
    rows_e = np.zeros((*batch, pairs), dtype=np.int64)
    rows_a = np.zeros((*batch, pairs), dtype=np.int64)
    moved = missing = extra = 0
    missing_rows: list[tuple[int, ...]] = []
    extra_rows: list[tuple[int, ...]] = []
    for entry in np.ndindex(*batch):
        e_rows = [_rows(e[entry], rule) for e, rule in zip(es, rules)]
        a_rows = [_rows(a[entry], rule) for a, rule in zip(as_, rules)]
        if item.sort_by is not None:
            partner = np.empty(n, dtype=np.int64)
            # (sort_by: a tuple, as Output normalises it)
            partner[_order(e_rows[0], cast("tuple[int, ...]", item.sort_by), width)] = _order(
                a_rows[0], cast("tuple[int, ...]", item.sort_by), width
            )
        else:
            partner = _unordered(e_rows, a_rows, rules)
        paired = np.flatnonzero(partner >= 0)
        rows_e[entry], rows_a[entry] = paired, partner[paired]
        moved += int((partner[paired] != paired).sum())
        lost = np.flatnonzero(partner < 0)
        spare = np.setdiff1d(np.arange(m), partner[paired])
        missing, extra = missing + lost.size, extra + spare.size
        missing_rows += [(*entry, int(r)) for r in lost[: MAX_LISTED - len(missing_rows)]]
        extra_rows += [(*entry, int(r)) for r in spare[: MAX_LISTED - len(extra_rows)]]
    rule = "unordered" if item.unordered else "sort_by"
    match = RowMatch(
        item.describe(),
        rule,
        n * int(np.prod(batch, dtype=np.int64)),
        moved,
        missing,
        extra,
        tuple(missing_rows),
        tuple(extra_rows),
    )
    return Pairing(match, axis, rows_e, rows_a)


def _rows(array: np.ndarray, rule: Tolerance | None) -> np.ndarray:
    """One batch entry's rows as a 2-D array (rows, columns): float64 where a tolerance
    applies, as they are where values compare exactly."""
    rows = array.reshape(array.shape[0], int(np.prod(array.shape[1:], dtype=np.int64)))
    return rows.astype(np.float64) if rule is not None else rows


def _order(rows: np.ndarray, columns: tuple[int, ...], width: int) -> np.ndarray:
    """The order of ``rows`` sorted by ``columns`` (the first the primary key), ties broken by
    the whole row."""
    keys = [rows[:, c] for c in reversed(range(width))] + [rows[:, c % width] for c in reversed(columns)]
    if rows.dtype == object:  # strings: lexsort compares them only as numpy strings
        keys = [k.astype(str) for k in keys]
    return np.lexsort(keys) if keys else np.arange(rows.shape[0])


def _unordered(e_rows: list[np.ndarray], a_rows: list[np.ndarray], rules: list[Tolerance | None]) -> np.ndarray:
    """Each reference row's partner (-1: none): rows equal bit for bit first (what the greedy
    pairing would pair first, and the common case: the same rows in another order), in place
    where they can stay; the rest by :func:`_greedy`. Measured: 1000 rows in another order,
    0.5 s through the greedy pairing alone, a few ms so."""
    n, m = e_rows[0].shape[0], a_rows[0].shape[0]
    waiting: dict[tuple[Any, ...], list[int]] = {}
    for j, key in enumerate(_row_keys(a_rows)):
        waiting.setdefault(key, []).append(j)
    partner = np.full(n, -1, dtype=np.int64)
    keys = _row_keys(e_rows)
    for stay in (True, False):
        for i, key in enumerate(keys):
            free = waiting.get(key)
            if partner[i] >= 0 or not free or (stay and i not in free):
                continue
            partner[i] = i if stay else free[0]
            free.remove(partner[i])
    left_e = np.flatnonzero(partner < 0)
    left_a = np.setdiff1d(np.arange(m), partner[partner >= 0])
    if left_e.size and left_a.size:
        rest = _greedy([r[left_e] for r in e_rows], [r[left_a] for r in a_rows], rules)
        partner[left_e[rest >= 0]] = left_a[rest[rest >= 0]]
    return partner


def _row_keys(rows: list[np.ndarray]) -> list[tuple[Any, ...]]:
    """Each row's values over the outputs of a group, as a hashable key (bit for bit)."""
    columns = [
        [tuple(row) for row in r.tolist()] if r.dtype == object else [row.tobytes() for row in r]
        for r in rows
    ]
    return list(zip(*columns))


def _greedy(e_rows: list[np.ndarray], a_rows: list[np.ndarray], rules: list[Tolerance | None]) -> np.ndarray:
    """Each reference row's partner (-1: none), greedily: of the pairs still free, the one with
    the fewest values beyond the tolerance, then the smallest sum of tolerance shares, then
    one that keeps its position, first.
    At most :data:`PAIRS` costs are kept a round (each row's nearest), so a round pairs at
    least one row and memory stays bounded."""
    n, m = e_rows[0].shape[0], a_rows[0].shape[0]
    width = sum(r.shape[1] for r in e_rows) or 1
    partner = np.full(n, -1, dtype=np.int64)
    free_e, free_a = np.arange(n), np.arange(m)
    while free_e.size and free_a.size:
        keep = min(free_a.size, max(1, PAIRS // free_e.size))
        chunk = max(1, PAIRS // (free_a.size * width))
        keys, firsts, seconds = [], [], []
        for start in range(0, free_e.size, chunk):
            rows = free_e[start : start + chunk]
            key = _cost(e_rows, a_rows, rules, rows, free_a)
            nearest = (
                np.argpartition(key, keep - 1, axis=1)[:, :keep]
                if keep < free_a.size
                else np.broadcast_to(np.arange(free_a.size), key.shape)
            )
            keys.append(np.take_along_axis(key, nearest, axis=1).ravel())
            firsts.append(np.repeat(rows, nearest.shape[1]))
            seconds.append(free_a[nearest].ravel())
        key, first, second = np.concatenate(keys), np.concatenate(firsts), np.concatenate(seconds)
        taken: set[int] = set()
        wanted = min(free_e.size, free_a.size)
        for pick in np.lexsort((first != second, key)):  # on a tie, a row stays where it is
            i, j = int(first[pick]), int(second[pick])
            if partner[i] >= 0 or j in taken:
                continue
            partner[i] = j
            taken.add(j)
            if len(taken) == wanted:
                break
        free_e = free_e[partner[free_e] < 0]
        free_a = free_a[~np.isin(free_a, list(taken))]
    return partner


def _cost(
    e_rows: list[np.ndarray],
    a_rows: list[np.ndarray],
    rules: list[Tolerance | None],
    rows: np.ndarray,
    cols: np.ndarray,
) -> np.ndarray:
    """The cost of pairing reference rows ``rows`` with variant rows ``cols``: the number of
    values beyond the tolerance, plus s / (1 + s) of the sum s of the shares of the tolerance
    used (below 1: the count decides first)."""
    fails = np.zeros((rows.size, cols.size), dtype=np.float64)
    shares = np.zeros((rows.size, cols.size), dtype=np.float64)
    for e, a, rule in zip(e_rows, a_rows, rules):
        left, right = e[rows][:, None, :], a[cols][None, :, :]
        if rule is None:
            fails += (~np.asarray(left == right, dtype=bool)).sum(axis=-1)
            continue
        _, diff, allowed, ok = elementwise(left, right, rule)
        fails += (~ok).sum(axis=-1)
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            share = np.where(allowed > 0, diff / np.where(allowed > 0, allowed, 1.0), diff)
        shares += np.minimum(share, 1e300).sum(axis=-1)
    with np.errstate(invalid="ignore", over="ignore"):
        return fails + np.nan_to_num(shares / (1.0 + shares), nan=1.0, posinf=1.0)


def _take(array: np.ndarray, rows: np.ndarray, axis: int) -> np.ndarray:
    """``array``'s rows ``rows`` (batch + (pairs,)) along ``axis``, per batch entry."""
    index = rows.reshape(rows.shape + (1,) * (array.ndim - axis - 1))
    return np.take_along_axis(array, index, axis=axis)
