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


def checked_choices(item: Any, where: str, dtype: str) -> tuple[tuple, Any, Any]:
    """(the choices as nested tuples, ``low``, ``high``) of ``item`` (an Input being built):
    ``low``/``high`` as given, else the choices' extremes (a given range must hold them; bool
    inputs keep None). InvalidSpec naming what is wrong."""
    if item.kind != "values" or dtype == "str":
        raise InvalidSpec(f"{where}: choices= is for numeric or bool inputs (kind='values'), not {dtype}")
    clashes = [n for n in ("distinct", "special_ids") if getattr(item, n) is not None]
    clashes += [n for n in ("boundaries", "allow_nan") if getattr(item, n)]
    if clashes:
        raise InvalidSpec(f"{where}: choices= fixes whole values; drop {', '.join(f'{n}=' for n in clashes)}")
    if not all(isinstance(e, int) for e in item.shape):
        raise InvalidSpec(f"{where}: choices= needs a fixed shape (every choice is one value of it), not {item.shape}")
    given = item.choices
    if isinstance(given, (str, bytes)) or not isinstance(given, Iterable) or not len(tuple(given)):
        raise InvalidSpec(f"{where}: choices={given!r}: give a non-empty list of values of shape {item.shape}")
    kept = []
    for index, choice in enumerate(given):
        try:
            array = np.asarray(choice, dtype=np.float64 if dtype != "bool" else np.bool_)
        except (TypeError, ValueError):
            array = None
        if array is None or array.shape != item.shape or (dtype != "bool" and not np.isfinite(array).all()):
            raise InvalidSpec(f"{where}: choices[{index}]={choice!r} is not a finite value of shape {item.shape}")
        if dtype in INTEGERS and not (array == np.round(array)).all():
            raise InvalidSpec(f"{where}: choices[{index}]={choice!r} holds a fraction; {dtype} needs integers")
        kept.append(nested((array.astype(np.int64) if dtype in INTEGERS else array).tolist()))
    choices = tuple(dict.fromkeys(kept))
    flat = np.concatenate([np.asarray(c, dtype=np.float64).reshape(-1) for c in choices])
    if dtype == "bool" or not flat.size:
        return choices, item.low, item.high
    bounds = (float(flat.min()), float(flat.max()))
    if dtype in INTEGERS:
        bounds = (int(bounds[0]), int(bounds[1]))
    low, high = item.low, item.high
    if low is not None and bounds[0] < low:
        raise InvalidSpec(f"{where}: a choice holds {bounds[0]}, below low={low}; lower it or drop it")
    if high is not None and bounds[1] > high:
        raise InvalidSpec(f"{where}: a choice holds {bounds[1]}, above high={high}; raise it or drop it")
    return choices, bounds[0] if low is None else low, bounds[1] if high is None else high
