"""Output declarations: :class:`Output`, an output whose rows have no fixed order (detections,
sets of boxes), compared as a set or in a canonical order instead of row by row."""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, cast

from onnxparity.errors import InvalidSpec
from onnxparity.spec.inputs import is_int


@dataclass(frozen=True)
class Output:
    """An output whose rows may come in another order: ``op.Output("boxes", unordered=True)``
    or ``op.Output("boxes", sort_by=0)``.

    Rows lie along ``axis`` (default 0, the first): a ``(N, 5)`` output of boxes
    ``(x1, y1, x2, y2, score)`` has N rows of 5 columns. Every axis before ``axis`` is a batch
    axis, its entries matched separately (``(batch, N, 6)`` detections: ``axis=1``); the axes
    after it make up one row, flattened when more than one (a ``(N, 17, 3)`` keypoint output
    has rows of 51 columns). A 1-D output's rows are its values.

    - ``unordered=True``: the rows are a set. Each reference row is paired with the ONNX row
      nearest to it, greedily (pairs with the fewest values beyond the tolerance first, then
      the smallest share of the tolerance used), and the pairs are then compared under the
      usual tolerance rule. A row left without a partner (the two sides hold different numbers
      of rows) is a failure.
    - ``sort_by=``: both sides' rows are sorted before they are compared. A column index of
      the row (negative counts from the end: ``sort_by=-1`` is the last column), or a list of
      them for lexicographic order (``sort_by=[4, 0]``: by score, then x1); ties are broken by
      the whole row. Sorting needs keys that do not tie within the tolerance: rows whose keys
      differ by less than the tolerance may still sort differently on each side (then use
      ``unordered=True``).

    ``together_with=("scores", "labels")`` names outputs whose row *i* belongs to this
    output's row *i* (torchvision's boxes, labels and scores): they are matched or sorted
    together, with one pairing, and each compared with its partner rows. They must have as
    many rows along ``axis`` as this output (and the same batch axes before it).

    The failure table names each value by the reference's row, with the ONNX row it was
    paired with. Output names are checked against the model's when it runs.
    """

    name: str
    unordered: bool = False
    #: column indices of a row (negative: from the end), in order of precedence
    sort_by: int | Sequence[int] | None = None  # (a tuple once built)
    #: the axis the rows lie along; axes before it are batch axes
    axis: int = 0
    #: outputs whose rows are this output's rows: matched or sorted with one pairing
    together_with: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise InvalidSpec(
                f"Output(name={self.name!r}): name must be a non-empty string (an output's name)"
            )
        where = f"Output({self.name!r})"
        if not isinstance(self.unordered, bool):
            raise InvalidSpec(f"{where}: unordered={self.unordered!r}: give True or False")
        object.__setattr__(self, "sort_by", _sort_by(self.sort_by, where))
        if self.unordered and self.sort_by is not None:
            raise InvalidSpec(
                f"{where}: unordered=True and sort_by={list(cast(tuple[int, ...], self.sort_by))} both given: "
                "choose one "
                "(unordered=True pairs rows by value; sort_by= sorts both sides by columns)"
            )
        if not self.unordered and self.sort_by is None:
            raise InvalidSpec(
                f"{where} declares nothing: give unordered=True (rows compared as a set) or "
                "sort_by=<column index> (rows sorted by that column first)"
            )
        if not is_int(self.axis) or self.axis < 0:
            raise InvalidSpec(
                f"{where}: axis={self.axis!r}: give the index (0, 1, ...) of the axis the rows lie along"
            )
        object.__setattr__(self, "axis", int(self.axis))
        object.__setattr__(self, "together_with", _names(self.together_with, where))
        if self.name in self.together_with:
            raise InvalidSpec(f"{where}: together_with names the output itself; list only the others")

    @property
    def members(self) -> tuple[str, ...]:
        """This output and the outputs matched with it, in that order."""
        return (self.name, *self.together_with)

    def describe(self) -> str:
        """The declaration as a user writes it."""
        parts = [repr(self.name)]
        if self.unordered:
            parts.append("unordered=True")
        if self.sort_by is not None:
            sort_by = cast(tuple[int, ...], self.sort_by)  # normalised by __post_init__
            parts.append(f"sort_by={sort_by[0] if len(sort_by) == 1 else list(sort_by)}")
        if self.axis:
            parts.append(f"axis={self.axis}")
        if self.together_with:
            parts.append(f"together_with={list(self.together_with)}")
        return f"op.Output({', '.join(parts)})"

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "unordered": self.unordered,
            "sort_by": None if self.sort_by is None else list(cast(tuple[int, ...], self.sort_by)),
            "axis": self.axis,
            "together_with": list(self.together_with),
        }


def _sort_by(given: Any, where: str) -> tuple[int, ...] | None:
    """``sort_by=`` as a tuple of column indices (None: not given)."""
    if given is None:
        return None
    columns = (given,) if is_int(given) else given
    if isinstance(columns, (str, bytes)) or not isinstance(columns, Iterable):
        raise InvalidSpec(
            f"{where}: sort_by={given!r}: give a column index of a row (sort_by=4) or a list of "
            "them for lexicographic order (sort_by=[4, 0])"
        )
    columns = tuple(columns)
    if not columns:
        raise InvalidSpec(f"{where}: sort_by=[] sorts by nothing: give at least one column index")
    for column in columns:
        if not is_int(column):
            raise InvalidSpec(
                f"{where}: sort_by={given!r}: {column!r} is not a column index; give ints "
                "(negative ones count from the end of the row)"
            )
    columns = tuple(int(c) for c in columns)
    if len(set(columns)) != len(columns):
        raise InvalidSpec(f"{where}: sort_by={list(columns)} names a column twice")
    return columns


def _names(given: Any, where: str) -> tuple[str, ...]:
    """``together_with=`` as a tuple of output names."""
    names = (given,) if isinstance(given, str) else given
    if not isinstance(names, Iterable) or not all(isinstance(n, str) and n for n in names):
        raise InvalidSpec(f"{where}: together_with={given!r}: give a list of output names")
    names = tuple(names)
    if len(set(names)) != len(names):
        raise InvalidSpec(f"{where}: together_with={list(names)} names an output twice")
    return names


def declared_outputs(given: Any) -> tuple[Output, ...]:
    """``outputs=`` of a declaration as a tuple of :class:`Output`, each output declared once
    (as a declaration's name or in its ``together_with``)."""
    if given is None:
        return ()
    if isinstance(given, Output):
        given = (given,)
    if isinstance(given, (str, bytes)) or not isinstance(given, Iterable):
        raise InvalidSpec(f"outputs={given!r}: give a list of op.Output(name, unordered=True or sort_by=...)")
    outputs = tuple(given)
    seen: dict[str, str] = {}
    for item in outputs:
        if not isinstance(item, Output):
            raise InvalidSpec(f"outputs: {item!r} is not an op.Output(name, unordered=True or sort_by=...)")
        for name in item.members:
            if name in seen:
                raise InvalidSpec(
                    f"outputs: {name!r} is declared twice ({seen[name]} and {item.describe()}); "
                    "declare each output once"
                )
            seen[name] = item.describe()
    return outputs


def check_names(outputs: Sequence[Output], names: Sequence[str]) -> None:
    """InvalidSpec when a declaration names an output the model does not have (known when the
    model runs: the export decides the names), naming the model's outputs."""
    for item in outputs:
        for name in item.members:
            if name in names:
                continue
            close = difflib.get_close_matches(name, list(names), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise InvalidSpec(
                f"{item.describe()}: the model has no output {name!r} "
                f"(its outputs: {', '.join(map(repr, names)) or 'none'}){hint}"
            )
