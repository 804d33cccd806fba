"""Specs the model already tells: input names, ranks, dtypes and dynamic axes, read from the
model, so that a user declares only what the model cannot know (dim and value ranges).

Sources: a prebuilt ONNX file's graph inputs; a Keras model's ``inputs``; a ``tf.function``'s
or SavedModel's input signature; a fitted scikit-learn estimator (``n_features_in_``, or its
``feature_names_in_`` with dtypes from ``data=``). PyTorch modules declare nothing.

Naming: a dynamic first axis is ``batch`` (shared by all inputs); another dynamic axis keeps
the ONNX graph's dim name when it is an identifier, else ``<input>_<axis>``. Every symbolic dim
the user does not declare gets :data:`DEFAULT_DIM`; values get the dtype's default range.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import numpy as np

from .errors import InvalidSpec
from .exporters import framework_of
from .spec import Dim, Input, ParitySpec

#: the range of an inferred symbolic dim the user did not declare.
DEFAULT_DIM = Dim(1, 16)

_ONNX_DTYPES = {
    1: "float32",
    2: "uint8",
    3: "int8",
    6: "int32",
    7: "int64",
    8: "str",
    9: "bool",
    10: "float16",
    11: "float64",
}


def infer_inputs(model: Any = None, onnx: Any = None, data: Any = None) -> tuple[Input, ...]:
    """The inputs ``model`` (or the ONNX model) declares; InvalidSpec when it declares none."""
    if onnx is not None:
        return _from_onnx(onnx)
    framework = framework_of(model) if model is not None else None
    if framework == "tensorflow":
        return _from_tensorflow(model)
    if framework == "sklearn":
        return _from_sklearn(model, data)
    what = type(model).__name__ if model is not None else "the model"
    raise InvalidSpec(
        f"{what} does not declare its inputs: give inputs=[op.Input(name, shape, dtype=...)] "
        "(on the onnx_parity marker or in check())"
    )


def build_spec(
    model: Any = None, *, onnx: Any = None, data: Any = None, inputs=None, dims=None, **rest
) -> ParitySpec:
    """A ParitySpec from the declaration, inferring the inputs from the model when not given.

    ``calibration=`` (feeds for int8-static) is shorthand for
    ``variant_options={"int8-static": {"calibration": ...}}``."""
    calibration = rest.pop("calibration", None)
    if calibration is not None:
        if isinstance(calibration, (str, bytes, Mapping)) or not hasattr(calibration, "__iter__"):
            raise InvalidSpec(
                "calibration= must be a list of feeds: dicts of input name -> array, e.g. [{'x': batch}, ...]"
            )
        options = {k: dict(v) for k, v in (rest.pop("variant_options", None) or {}).items()}
        options.setdefault("int8-static", {})["calibration"] = list(calibration)
        rest["variant_options"] = options
    if inputs is None:
        inputs = infer_inputs(model, onnx, data)
        dims = default_dims(inputs, dims or {})
    return ParitySpec(
        inputs=tuple(inputs) if not isinstance(inputs, Input) else (inputs,), dims=dict(dims or {}), **rest
    )


def default_dims(inputs: tuple[Input, ...], declared: Mapping[str, Dim]) -> dict[str, Dim]:
    """``declared`` plus :data:`DEFAULT_DIM` for every other symbolic dim the inputs use."""
    dims = dict(declared)
    for item in inputs:
        for name in item.dim_names:
            dims.setdefault(name, DEFAULT_DIM)
    return dims


def _axis_name(input_name: str, axis: int, hint: str | None) -> str:
    if axis == 0:
        return "batch"
    if hint and hint.isidentifier() and not hint.startswith("unk__"):
        return hint
    base = "".join(c if c.isalnum() or c == "_" else "_" for c in input_name).strip("_") or "input"
    return f"{base}_{axis}" if base[0].isalpha() else f"x_{base}_{axis}"


def _from_onnx(onnx_model: Any) -> tuple[Input, ...]:
    import onnx

    if isinstance(onnx_model, (str, os.PathLike)):
        proto = onnx.load(os.fspath(onnx_model), load_external_data=False)
    elif isinstance(onnx_model, (bytes, bytearray)):
        proto = onnx.load_from_string(bytes(onnx_model))
    else:
        proto = onnx_model
    initializers = {t.name for t in proto.graph.initializer}
    inputs = []
    for value in proto.graph.input:
        if value.name in initializers:
            continue
        tensor = value.type.tensor_type
        dtype = _ONNX_DTYPES.get(tensor.elem_type)
        if dtype is None:
            raise InvalidSpec(
                f"ONNX input {value.name!r} has element type {tensor.elem_type}: declare inputs= yourself"
            )
        shape = tuple(
            d.dim_value
            if d.HasField("dim_value") and d.dim_value > 0
            else _axis_name(value.name, axis, d.dim_param)
            for axis, d in enumerate(tensor.shape.dim)
        )
        inputs.append(_input(value.name, shape, dtype))
    return tuple(inputs)


def _input(name: str, shape: tuple, dtype: str) -> Input:
    if dtype == "str":
        return Input(name, shape, dtype="str")  # categories come from data=
    return Input(name, shape, dtype=dtype)


def _from_tensorflow(model: Any) -> tuple[Input, ...]:
    from .exporters.tensorflow import _Callable

    call = _Callable(model)
    if call.declared is None:
        raise InvalidSpec(
            f"{type(model).__name__} (a subclassed model) does not declare its inputs: "
            "give inputs=[op.Input(name, shape, dtype=...)]"
        )
    dtypes = _tf_dtypes(model, call)
    inputs = []
    for index, ((name, shape), dtype) in enumerate(zip(call.declared, dtypes)):
        name = name or f"input_{index}"
        inputs.append(
            _input(
                name,
                tuple(_axis_name(name, a, None) if d is None else int(d) for a, d in enumerate(shape)),
                dtype,
            )
        )
    return tuple(inputs)


def _tf_dtypes(model: Any, call) -> list[str]:
    if call.input_names is not None:
        specs = call.fn.structured_input_signature[1]
        return [np.dtype(specs[n].dtype.as_numpy_dtype).name for n in call.input_names]
    if call.keras:
        return [np.dtype(str(getattr(t, "dtype", "float32"))).name for t in model.inputs]
    return [np.dtype(s.dtype.as_numpy_dtype).name for s in call.fn.input_signature]


def _column(name: str, column: Any) -> Input:
    """One DataFrame column as an input: strings by category, numbers over their observed range."""
    if column.dtype == object or str(column.dtype) in ("string", "str", "category"):
        return Input(name, ("batch", 1), dtype="str")
    low, high = float(column.min()), float(column.max())
    return Input(name, ("batch", 1), dtype="float32", low=low, high=high if high > low else low + 1.0)


def _from_sklearn(model: Any, data: Any) -> tuple[Input, ...]:
    names = getattr(model, "feature_names_in_", None)
    if names is not None:
        if data is None or not hasattr(data, "dtypes"):
            raise InvalidSpec(
                f"{type(model).__name__} was fitted on named columns {list(names)}: give data= "
                "(a DataFrame of real rows) to infer their dtypes, or inputs=[op.Input(...)] per column"
            )
        return tuple(_column(str(n), data[n]) for n in names)
    n_features = getattr(model, "n_features_in_", None)
    if n_features is None:
        raise InvalidSpec(f"{type(model).__name__} does not say how many features it takes: give inputs=")
    return (Input("X", ("batch", int(n_features))),)
