"""The dtypes an :class:`~onnxparity.spec.Input` may declare, by canonical name: numpy's floats
and integers, the narrow kinds ``ml_dtypes`` adds (what ONNX's bfloat16, float8, float4, int4
and int2 tensors are in numpy), their default ranges and limits."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, cast

import numpy as np

#: float dtypes numpy has natively, and the narrow ones ``ml_dtypes`` adds (what ONNX's
#: bfloat16, float8, float4, int4 and int2 tensors are in numpy), by canonical name.
FLOAT_DTYPES = ("float16", "float32", "float64")
NARROW_FLOAT_DTYPES = (
    "bfloat16",
    "float8_e4m3fn",
    "float8_e4m3fnuz",
    "float8_e5m2",
    "float8_e5m2fnuz",
    "float8_e8m0fnu",
    "float4_e2m1fn",
)
INT_DTYPES = ("int8", "uint8", "int16", "uint16", "int32", "uint32", "int64", "uint64")
NARROW_INT_DTYPES = ("int4", "uint4", "int2", "uint2")

#: ONNX's spelling of a narrow type where it is not ml_dtypes' less its underscores
#: (``float8e4m3fn`` is ``float8_e4m3fn``): ONNX drops the ``fn``/``fnu`` suffix of these two
ONNX_NAMES = {"float8_e8m0fnu": "float8e8m0", "float4_e2m1fn": "float4e2m1"}

#: every float and every integer dtype, narrow ones included
FLOATS = frozenset((*FLOAT_DTYPES, *NARROW_FLOAT_DTYPES))
INTEGERS = frozenset((*INT_DTYPES, *NARROW_INT_DTYPES))

#: dtypes an :class:`Input` may declare, by canonical name.
SUPPORTED_DTYPES = (*FLOAT_DTYPES, *NARROW_FLOAT_DTYPES, *INT_DTYPES, *NARROW_INT_DTYPES, "bool", "str")

#: value range used when an Input gives no ``low``/``high``: [-1, 1] for floats (float8_e8m0fnu,
#: which holds only positive powers of two, [1/8, 8]), an int8 or uint8 (and int4, uint4, int2,
#: uint2) input's whole range, [0, 100] for wider integers.
DEFAULT_RANGES: dict[str, tuple[float, float]] = {
    **{name: (-1.0, 1.0) for name in FLOATS},
    **{name: (0, 100) for name in INT_DTYPES},
    "int8": (-128, 127),
    "uint8": (0, 255),
    "int4": (-8, 7),
    "uint4": (0, 15),
    "int2": (-2, 1),
    "uint2": (0, 3),
    "float8_e8m0fnu": (0.125, 8.0),
    "bool": (0, 1),
    "str": (0, 1),
}


def numpy_dtype(name: str) -> np.dtype:
    """The numpy dtype of a canonical dtype name (``ml_dtypes``' for the narrow kinds)."""
    if name == "str":
        return np.dtype(object)
    if name in NARROW_FLOAT_DTYPES or name in NARROW_INT_DTYPES:
        import ml_dtypes

        return cast("np.dtype[Any]", np.dtype(getattr(ml_dtypes, name)))
    return np.dtype(name)


@dataclass(frozen=True)
class IntLimits:
    """An integer dtype's smallest and largest value (``np.iinfo``'s ``min`` and ``max``)."""

    min: int
    max: int


def _int_limits(name: str) -> IntLimits:
    """Written out for int4, uint4, int2 and uint2: ``ml_dtypes.iinfo`` would import ml_dtypes,
    0.44 s, with ``import onnxparity`` (measured: 513 ms in all, against 80 ms without it)."""
    if name in NARROW_INT_DTYPES:
        bits = 4 if name.endswith("4") else 2
        return IntLimits(-(2 ** (bits - 1)), 2 ** (bits - 1) - 1) if name[0] == "i" else IntLimits(0, 2**bits - 1)
    info = np.iinfo(name)
    return IntLimits(int(info.min), int(info.max))


INT_LIMITS = {name: _int_limits(name) for name in INTEGERS}

#: the largest finite value of each float dtype (a declared range must fit it)
FLOAT_MAX = {
    "float16": 65504.0,
    "bfloat16": 3.3895e38,
    "float8_e4m3fn": 448.0,
    "float8_e4m3fnuz": 240.0,
    "float8_e5m2": 57344.0,
    "float8_e5m2fnuz": 57344.0,
    "float8_e8m0fnu": 1.7014118e38,
    "float4_e2m1fn": 6.0,
}

#: float dtypes that hold no value at or below 0 (a declared range must be positive)
POSITIVE_ONLY = frozenset(("float8_e8m0fnu",))

#: ONNX element types an inferred input may have (TensorProto numbers -> canonical dtypes)
ONNX_DTYPES = {
    1: "float32",
    2: "uint8",
    3: "int8",
    4: "uint16",
    5: "int16",
    6: "int32",
    7: "int64",
    8: "str",
    9: "bool",
    10: "float16",
    11: "float64",
    12: "uint32",
    13: "uint64",
    16: "bfloat16",
    17: "float8_e4m3fn",
    18: "float8_e4m3fnuz",
    19: "float8_e5m2",
    20: "float8_e5m2fnuz",
    21: "uint4",
    22: "int4",
    23: "float4_e2m1fn",
    24: "float8_e8m0fnu",
    25: "uint2",
    26: "int2",
}


def onnx_name(name: str) -> str:
    """ONNX's (and ONNX Runtime's) spelling of a canonical dtype: ``float8e4m3fn`` for
    ``float8_e4m3fn``, ``float4e2m1`` for ``float4_e2m1fn``."""
    return ONNX_NAMES.get(name, name.replace("_", ""))
