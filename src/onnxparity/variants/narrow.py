"""Narrow tensor types through ONNX Runtime's Python API: bfloat16, the float8 kinds, float4,
int4, uint4, int2 and uint2, which it exchanges with numpy only as typed ``OrtValue`` s of raw
bytes.

``session.run`` refuses ml_dtypes' arrays ("Numpy_type 256 can't be converted to MLDataType")
and ``OrtValue.numpy()`` refuses these outputs ("No corresponding Numpy type"); an OrtValue
allocated with the ONNX element type and filled with the values' bytes is accepted, and an
output's bytes are read from its buffer. 4-bit values are packed two per byte, the first in the
low nibble, 2-bit values four per byte, the first in the lowest bits (the ONNX layout;
ml_dtypes keeps one per byte). Measured with onnxruntime 1.32.
"""

from __future__ import annotations

import ctypes
import math
from collections.abc import Mapping, Sequence
from typing import Any, cast

import numpy as np

from onnxparity.spec.dtypes import NARROW_FLOAT_DTYPES, NARROW_INT_DTYPES, ONNX_DTYPES, onnx_name

#: ONNX Runtime's type string -> (ml_dtypes' name, the ONNX element type): ``tensor(float8e4m3fn)``
#: for ml_dtypes' ``float8_e4m3fn``
NARROW: dict[str, tuple[str, int]] = {
    f"tensor({onnx_name(name)})": (name, number)
    for number, name in ONNX_DTYPES.items()
    if name in NARROW_FLOAT_DTYPES or name in NARROW_INT_DTYPES
}

#: the kinds packed several to a byte, by their bits per value
PACKED = {"int4": 4, "uint4": 4, "float4_e2m1fn": 4, "int2": 2, "uint2": 2}


def narrow_values(values: Sequence[Any]) -> dict[str, tuple[str, int]]:
    """The session inputs or outputs (``NodeArg`` s) of a narrow type, by name."""
    return {v.name: NARROW[v.type] for v in values if v.type in NARROW}


def run_typed(
    inference: Any,
    feeds: Mapping[str, np.ndarray],
    output_names: Sequence[str],
    inputs: Mapping[str, tuple[str, int]],
    outputs: Mapping[str, tuple[str, int]],
    run_options: Any,
) -> list[np.ndarray]:
    """One run of ``inference`` (an ``onnxruntime.InferenceSession``) with every input as an
    OrtValue (the narrow ones from their bytes) and the outputs read back, the narrow ones as
    ml_dtypes arrays."""
    import onnxruntime as ort

    values = {}
    for name, array in feeds.items():
        if name in inputs:
            values[name] = to_ortvalue(ort, np.asarray(array), *inputs[name])
        else:
            values[name] = ort.OrtValue.ortvalue_from_numpy(np.ascontiguousarray(array))
    found = inference.run_with_ort_values(list(output_names), values, run_options)
    return [
        from_ortvalue(value, outputs[name][0]) if name in outputs else value.numpy()
        for name, value in zip(output_names, found)
    ]


def to_ortvalue(ort: Any, array: np.ndarray, kind: str, element_type: int) -> Any:
    """An OrtValue of ONNX ``element_type`` holding ``array`` (an ml_dtypes array of ``kind``)."""
    import ml_dtypes

    array = np.ascontiguousarray(array.astype(getattr(ml_dtypes, kind), copy=False))
    data = pack(array, PACKED[kind]) if kind in PACKED else array.view(np.uint8 if array.itemsize == 1 else np.uint16)
    value = ort.OrtValue.ortvalue_from_shape_and_type(list(array.shape), element_type)
    if value.tensor_size_in_bytes() != data.nbytes:
        raise ValueError(f"{kind} {list(array.shape)}: {data.nbytes} bytes for {value.tensor_size_in_bytes()}")
    if data.nbytes:
        ctypes.memmove(value.data_ptr(), np.ascontiguousarray(data).ctypes.data, data.nbytes)
    return value


def from_ortvalue(value: Any, kind: str) -> np.ndarray:
    """An output OrtValue of a narrow type as an ml_dtypes array of ``kind``."""
    import ml_dtypes

    shape = tuple(value.shape())
    size = value.tensor_size_in_bytes()
    raw = np.ctypeslib.as_array((ctypes.c_uint8 * size).from_address(value.data_ptr())).copy() if size else (
        np.zeros(0, np.uint8)
    )
    dtype = np.dtype(getattr(ml_dtypes, kind))
    if kind in PACKED:
        return unpack(raw, math.prod(shape), kind, PACKED[kind]).reshape(shape)
    return cast(np.ndarray, raw.view(np.uint8 if dtype.itemsize == 1 else np.uint16).view(dtype).reshape(shape))


def pack(array: np.ndarray, bits: int) -> np.ndarray:
    """Values of ``bits`` bits (one per byte, as ml_dtypes keeps them) ``8 // bits`` per byte,
    the first in the lowest bits; the last byte padded with zeros."""
    per = 8 // bits
    values = array.reshape(-1).view(np.uint8) & np.uint8(2**bits - 1)
    if values.size % per:
        values = np.concatenate([values, np.zeros(per - values.size % per, np.uint8)])
    packed = np.zeros(values.size // per, np.uint8)
    for slot in range(per):
        packed |= values[slot::per] << np.uint8(slot * bits)
    return packed


def unpack(raw: np.ndarray, count: int, kind: str, bits: int) -> np.ndarray:
    """``count`` values of ``bits`` bits from packed bytes, as ml_dtypes' ``kind`` (the signed
    integer kinds sign-extended; float4's bits as they are)."""
    import ml_dtypes

    per = 8 // bits
    values = np.empty(raw.size * per, np.uint8)
    for slot in range(per):
        values[slot::per] = (raw >> np.uint8(slot * bits)) & np.uint8(2**bits - 1)
    values = values[:count]
    if kind in ("int4", "int2"):
        sign = np.int8(2 ** (bits - 1))
        return cast(
            np.ndarray, ((values.astype(np.int8) ^ sign) - sign).astype(np.int8).astype(getattr(ml_dtypes, kind))
        )
    return values.view(getattr(ml_dtypes, kind))
