"""Inputs that explain a failure by themselves: a failing example whose values no caller sends
or that the frameworks treat differently, named as the likely cause from the values themselves.

- **Subnormal floats** (0 < |x| < the type's smallest normal): TensorFlow (and PyTorch with
  ``set_flush_denormal``) flushes them to zero on CPU; ONNX Runtime computes with them.
- **A mask row with no real token** (an input named like ``*mask*``, values in {0, 1}, a row
  all 0): attention over nothing is undefined — PyTorch returns 0 or NaN for that row where the
  export computes something else; no caller sends such a row.
- **A constant row into a normalization** (every value of a row that a normalization node of
  the diverging span reads is equal: its ONNX value was computed): the variance is 0, and the
  result hangs on an epsilon and on the order of summation (:func:`constant_row`).

Each is printed only when the failing input (or the computed value) holds it, with the value
that shows it; the claim that the exported graph means something else is then withheld.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

#: ops after which a constant row makes a 0 variance (or a 0 norm) the result depends on
NORMALIZATIONS = frozenset(
    {
        "LayerNormalization",
        "MeanVarianceNormalization",
        "InstanceNormalization",
        "GroupNormalization",
        "LpNormalization",
        "RMSNormalization",
        "SimplifiedLayerNormalization",
        "SkipLayerNormalization",
    }
)


def _rows(value: np.ndarray) -> np.ndarray:
    """``value`` as rows along its last axis (a 1-d value is one row)."""
    return value.reshape(-1, value.shape[-1]) if value.ndim >= 1 and value.shape[-1] else value.reshape(0, 0)


def subnormals(name: str, value: np.ndarray) -> str:
    if value.dtype.kind != "f" or not value.size:
        return ""
    tiny = np.finfo(value.dtype).tiny
    magnitude = np.abs(value)
    found = (magnitude > 0) & (magnitude < tiny)
    if not found.any():
        return ""
    example = float(value[np.unravel_index(int(np.argmax(found)), value.shape)])
    return (
        f"likely cause: input {name!r} holds {int(found.sum())} subnormal floats (e.g. {example:.3g}, below "
        f"{float(tiny):.3g}): TensorFlow flushes them to zero on CPU (PyTorch too under "
        "torch.set_flush_denormal), ONNX Runtime computes with them — a difference of the input, not of the "
        "export"
    )


def empty_mask_row(name: str, value: np.ndarray) -> str:
    if "mask" not in name.lower() or value.ndim < 2 or not value.size:
        return ""
    if not np.isin(value, (0, 1)).all():
        return ""
    rows = _rows(value)
    empty = np.flatnonzero(~rows.astype(bool).any(axis=1))
    if not empty.size:
        return ""
    return (
        f"likely cause: input {name!r} has {empty.size} row(s) with no real token (row {int(empty[0])} is all "
        "0): attention over nothing is undefined, and the framework and the export answer it differently — "
        "no caller sends such a row; declare the input op.Input(..., kind=\"mask\") so every drawn row has a "
        "real token"
    )


def constant_row(node: str, name: str, value: np.ndarray) -> str:
    """The likely-cause line where ``value`` (what normalization ``node`` reads, as ``name``)
    has a row whose values are all equal; "" otherwise."""
    if value.dtype.kind != "f" or value.ndim < 1 or value.shape[-1] < 2 or not value.size:
        return ""
    rows = _rows(value)
    flat = np.flatnonzero((rows == rows[:, :1]).all(axis=1))
    if not flat.size:
        return ""
    return (
        f"likely cause: {node} reads {name!r} with {flat.size} constant row(s) (row {int(flat[0])} is all "
        f"{float(rows[flat[0], 0]):.3g}): its variance is 0, so the result hangs on an epsilon and the order "
        "of summation, not on the export's meaning"
    )


def degenerate(feeds: Mapping[str, Any]) -> list[str]:
    """The likely-cause lines for what the failing ``feeds`` hold (subnormal floats, a mask row
    with no real token; see the module docstring)."""
    lines = []
    for name, value in feeds.items():
        array = np.asarray(value)
        if array.dtype.kind in "biuf":
            lines += [line for line in (subnormals(name, array), empty_mask_row(name, array)) if line]
    return lines
