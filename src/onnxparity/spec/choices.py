"""``Input(choices=...)``: whole values an input takes, one per example (an op's structured
argument: Split's sizes, Reshape's target shape, Resize's scales). Validated here, stored as
nested tuples (an :class:`~onnxparity.spec.Input` is hashable)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np

from onnxparity.errors import InvalidSpec
from onnxparity.spec.dtypes import INTEGERS


def nested(value: Any) -> Any:
    """A ``tolist()`` value (or nested lists and tuples) as nested tuples."""
    return tuple(nested(v) for v in value) if isinstance(value, (list, tuple)) else value


def checked_choices(item: Any, where: str, dtype: str) -> tuple[tuple[Any, ...], Any, Any]:
    """(the choices as nested tuples, ``low``, ``high``) of ``item`` (an Input being built):
    ``low``/``high`` as given, else the choices' extremes (a given range must hold them; bool
    inputs keep None). InvalidSpec naming what is wrong."""
    if item.kind != "values":
        raise InvalidSpec(f"{where}: choices= is for kind='values' inputs, not kind={item.kind!r}")
    clashes = [n for n in ("distinct", "special_ids", "categories") if getattr(item, n) is not None]
    clashes += [n for n in ("boundaries", "allow_nan") if getattr(item, n)]
    if clashes:
        raise InvalidSpec(f"{where}: choices= fixes whole values; drop {', '.join(f'{n}=' for n in clashes)}")
    if not all(isinstance(e, int) for e in item.shape):
        raise InvalidSpec(f"{where}: choices= needs a fixed shape (every choice is one value of it), not {item.shape}")
    given = item.choices
    if isinstance(given, (str, bytes)) or not isinstance(given, Iterable):
        raise InvalidSpec(f"{where}: choices={given!r}: give a non-empty list of values of shape {item.shape}")
    given = tuple(given)  # once: a generator is read here, not emptied by a check
    if not given:
        raise InvalidSpec(f"{where}: choices=(): give a non-empty list of values of shape {item.shape}")
    kept = []
    for index, choice in enumerate(given):
        array = _array(choice, dtype)
        if array is None or array.shape != item.shape:
            raise InvalidSpec(f"{where}: choices[{index}]={_short(choice)} is not a value of shape {item.shape}")
        if dtype in INTEGERS and array.dtype.kind == "f":
            raise InvalidSpec(f"{where}: choices[{index}]={_short(choice)} holds a fraction; {dtype} needs integers")
        if array.dtype.kind == "f" and not np.isfinite(array).all():
            raise InvalidSpec(f"{where}: choices[{index}]={_short(choice)} holds a value that is not finite")
        kept.append(nested(array.tolist()))
    choices = tuple(dict.fromkeys(kept))
    if dtype in ("bool", "str"):
        return choices, item.low, item.high
    values = [v for c in choices for v in flat(c)]  # python numbers: integers stay exact
    if not values:
        return choices, item.low, item.high
    bounds = (min(values), max(values)) if dtype in INTEGERS else (float(min(values)), float(max(values)))
    low, high = item.low, item.high
    if low is not None and bounds[0] < low:
        raise InvalidSpec(f"{where}: a choice holds {bounds[0]}, below low={low}; lower it or drop it")
    if high is not None and bounds[1] > high:
        raise InvalidSpec(f"{where}: a choice holds {bounds[1]}, above high={high}; raise it or drop it")
    return choices, bounds[0] if low is None else low, bounds[1] if high is None else high


def _array(choice: Any, dtype: str) -> np.ndarray | None:
    """``choice`` as an array of the kind ``dtype`` needs (integers kept exact: an int64 past
    2**53 is not a float64), or None where it is not one."""
    try:
        if dtype == "str":
            array = np.asarray(choice, dtype=object)
            return array if all(isinstance(v, str) for v in array.reshape(-1)) else None
        if dtype == "bool":
            return np.asarray(choice, dtype=np.bool_)
        array = np.asarray(choice)
        if array.dtype.kind in "iub":
            return array.astype(np.int64) if dtype in INTEGERS and array.dtype.kind != "u" else array
        array = array.astype(np.float64)
        if dtype in INTEGERS and np.isfinite(array).all() and (array == np.round(array)).all():
            return array.astype(np.int64)
        return array
    except (TypeError, ValueError, OverflowError):
        return None


def _short(choice: Any) -> str:
    text = repr(choice)
    return text if len(text) <= 80 else text[:77] + "..."


def flat(value: Any) -> list[Any]:
    """The numbers of a nested-tuple value, in order."""
    return [x for v in value for x in flat(v)] if isinstance(value, tuple) else [value]
