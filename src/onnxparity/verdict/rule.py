"""The one tolerance rule, value by value: ``|actual - expected| <= atol + rtol * |expected|``,
where NaN matches only NaN and an infinity only the same infinity; and the kinds of dtype a
comparison tells apart (float, integer, bool, string). Shared by the comparison
(:mod:`.compare`), the pairing of declared outputs' rows (:mod:`.outputs`) and forensics."""

from __future__ import annotations

import numpy as np

from onnxparity.spec import Tolerance
from onnxparity.spec.dtypes import NARROW_FLOAT_DTYPES, NARROW_INT_DTYPES
from onnxparity.verdict.agreement import same_nonfinite

_KINDS = {"b": "bool", "O": "string", "U": "string", "S": "string", "i": "integer", "u": "integer"}
_NAMES: dict[np.dtype, str] = {}


def dtype_name(dtype: np.dtype) -> str:
    """``dtype.name``, remembered: numpy builds the name on every access (~4 us), and a search
    asks for it several times per output and example."""
    name = _NAMES.get(dtype)
    if name is None:
        name = _NAMES[dtype] = dtype.name
    return name


def widen(array: np.ndarray) -> np.ndarray:
    """``ml_dtypes``' narrow floats (bfloat16, float8, float4) as float32 and the narrow integers
    (int4, uint4, int2, uint2) as int8/uint8:
    numpy computes on them only through these (every value is exact in the wider type)."""
    name = dtype_name(array.dtype)
    if name in NARROW_FLOAT_DTYPES:
        return array.astype(np.float32)
    if name in NARROW_INT_DTYPES:
        return array.astype(np.uint8 if name[0] == "u" else np.int8)
    return array


def value_kind(dtype: np.dtype) -> str:
    """The kind a comparison tells apart: float, integer, bool or string (else the dtype's name)."""
    return _KINDS.get(dtype.kind, "float" if dtype.kind in "fc" else dtype_name(dtype))


def elementwise(e: np.ndarray, a: np.ndarray, tolerance: Tolerance) -> tuple[np.ndarray, ...]:
    """(finite pairs, ``|a - e|`` there (0 elsewhere), what is allowed, which values pass) of
    float64 arrays (broadcast against each other) under a plain tolerance: the rule,
    ``|a - e| <= atol + rtol * |e|``, where NaN matches only NaN and an infinity only the same
    infinity."""
    finite = np.isfinite(e) & np.isfinite(a)
    with np.errstate(invalid="ignore", over="ignore"):
        diff = np.where(finite, np.abs(a - e), 0.0)
        allowed = tolerance.atol + tolerance.rtol * np.abs(np.where(finite, e, 0.0))
    return finite, diff, allowed, same_nonfinite(e, a) | (finite & (diff <= allowed))
