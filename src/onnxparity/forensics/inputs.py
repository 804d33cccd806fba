"""Inputs that explain a failure by themselves: a failing example whose values no caller sends
or that the frameworks treat differently, named as the likely cause from the values themselves.

- **Subnormal floats** (0 < |x| < the type's smallest normal): TensorFlow (and PyTorch with
  ``set_flush_denormal``) flushes them to zero on CPU; ONNX Runtime computes with them.
- **A mask row with no real token** (an input named like ``*mask*``, values in {0, 1}, a row
  all 0): attention over nothing is undefined — PyTorch returns 0 or NaN for that row where the
  export computes something else; no caller sends such a row. The line prints the
  ``kind="mask"`` declaration to paste, with the input's declared shape.
- **A 0/1 mask declared as plain values whose rows start with padding** (``0 0 1 1``): under
  causal attention a position before a row's first real token attends to nothing; declared
  ``kind="mask", padding="left"``, those positions are left out of the comparison
  (:mod:`onnxparity.search.padding`).
- **An all-zero input under an int8 variant** (a blank image): every quantized activation is
  then a bias, a step or two of a scale calibrated for real inputs, so the output holds little
  signal and its error is quantization's, not the export's.
- **A constant row into a normalization** (every value of a row that a normalization node of
  the diverging span reads is equal: its ONNX value was computed): the variance is 0, and the
  result hangs on an epsilon and on the order of summation (:func:`constant_row`).

Each is printed only when the failing input (or the computed value) holds it, with the value
that shows it; the claim that the exported graph means something else is then withheld.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from onnxparity.spec import Input

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
        "export (flush-to-zero); they are drawn only where the input says allow_subnormal=True"
    )


def _mask_like(name: str, value: np.ndarray, declared: Input | None) -> bool:
    """Named like a mask, 2-d or more, every value 0 or 1, and not declared a mask."""
    if "mask" not in name.lower() or value.ndim < 2 or not value.size:
        return False
    if declared is not None and declared.kind != "values":
        return False
    return bool(np.isin(value, (0, 1)).all())


def mask_declaration(name: str, value: np.ndarray, declared: Input | None = None, padding: str = "") -> str:
    """The ``op.Input(...)`` line that declares ``name`` a mask: the declared shape (its dim
    names) where known, else the value's shape; its dtype where it is not int64 (the default)."""
    shape = declared.shape if declared is not None else tuple(value.shape)
    dtype = declared.dtype if declared is not None else value.dtype.name
    axes = [f'"{e}"' if isinstance(e, str) else str(e) for e in shape]
    parts = [f'"{name}"', f"({', '.join(axes)}{',' if len(axes) == 1 else ''})"]
    parts += [f'dtype="{dtype}"'] if dtype != "int64" else []
    parts += ['kind="mask"'] + ([f'padding="{padding}"'] if padding else [])
    return f"op.Input({', '.join(parts)})"


def empty_mask_row(name: str, value: np.ndarray, declared: Input | None = None) -> str:
    if not _mask_like(name, value, declared):
        return ""
    rows = _rows(value)
    empty = np.flatnonzero(~rows.astype(bool).any(axis=1))
    if not empty.size:
        return ""
    if declared is None:  # no declaration to quote: the generic form
        fix = 'declare the input op.Input(..., kind="mask") so every drawn row has a real token'
    else:
        fix = (
            f"declare it {mask_declaration(name, value, declared)} so every drawn row has a real token "
            '(add padding="left" where callers pad on the left, as decoder-only generation does)'
        )
    return (
        f"likely cause: input {name!r} has {empty.size} row(s) with no real token (row {int(empty[0])} is all "
        "0): attention over nothing is undefined, and the framework and the export answer it differently — "
        f"no caller sends such a row; {fix}"
    )


def leading_padding(name: str, value: np.ndarray, declared: Input | None = None) -> str:
    """The likely-cause line where a 0/1 mask declared as plain values has rows that start
    with padding (and none empty: :func:`empty_mask_row` says that); "" otherwise."""
    if not _mask_like(name, value, declared):
        return ""
    rows = _rows(value).astype(bool)
    if not rows.any(axis=1).all():
        return ""
    led = np.flatnonzero(~rows[:, 0])
    if not led.size:
        return ""
    return (
        f"likely cause: input {name!r} is a 0/1 mask declared as plain values, and {led.size} row(s) start "
        f"with padding (row {int(led[0])} begins with 0): under causal attention a position before a row's "
        "first real token attends to nothing, and the framework and the export answer it differently — no "
        f"caller reads the output there; declare it {mask_declaration(name, value, declared, 'left')} "
        "and padded positions are left out of the comparison"
    )


def blank_input(name: str, value: np.ndarray, variant: str = "") -> str:
    """The likely-cause line where a float input is all zeros under an int8 variant."""
    if not variant.startswith("int8") or value.dtype.kind != "f" or value.ndim < 2 or not value.size:
        return ""
    if np.any(value):
        return ""
    return (
        f"likely cause: input {name!r} is all zeros (a blank image or signal): under {variant} every quantized "
        "activation is then a bias, a step or two of a scale calibrated for real inputs, so the output holds "
        "little signal and its error is the quantization's, not the export's — the agreement pooled over "
        "the search is what decides; where every calibration feed is blank too, every calibrated range is "
        "a bias's: calibrate on real inputs (calibration= feeds)"
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


def declared_fix(causes: Sequence[str]) -> str:
    """The declaration the first likely cause asks for ("declare it op.Input(...)", with what
    it changes), for a failure's ``next:`` line; "" where no cause names one."""
    for line in causes:
        head, found, fix = line.partition("; declare it op.Input(")
        if found and head.startswith("likely cause: "):
            return "declare it op.Input(" + fix
    return ""


def degenerate(feeds: Mapping[str, Any], inputs: Sequence[Input] = (), variant: str = "") -> list[str]:
    """The likely-cause lines for what the failing ``feeds`` hold (subnormal floats, a mask row
    with no real token or rows that start with padding, an all-zero input under int8; see the
    module docstring); ``inputs``: the declarations (a mask's line quotes its dims), ``variant``:
    the failing variant's name."""
    declared = {i.name: i for i in inputs}
    lines = []
    for name, value in feeds.items():
        array = np.asarray(value)
        if array.dtype.kind in "biuf":
            found = (
                subnormals(name, array),
                empty_mask_row(name, array, declared.get(name)),
                leading_padding(name, array, declared.get(name)) if name in declared else "",
                blank_input(name, array, variant),
            )
            lines += [line for line in found if line]
    return lines
