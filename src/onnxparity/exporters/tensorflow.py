"""TensorFlow / Keras -> ONNX, and the model itself (``training=False``, CPU) as the reference.

Accepted models: a Keras 3 model (Sequential, functional, subclassed), a ``tf.function`` (or a
``tf.Module`` whose ``__call__`` is one) with an input signature, and a SavedModel directory
path (its ``serving_default`` signature). Export path: ``tf2onnx.convert.from_function`` over a
``tf.function`` whose input signature has ``None`` for every symbolic dim — it keeps the dims
dynamic; Keras' own ``model.export(format="onnx")`` is the fallback for Keras models
(``tf2onnx.convert.from_keras`` fails on Keras 3). Every export runs ``onnx.checker`` with
``full_check``: tf2onnx can emit nodes invalid at its opset (a ``gelu`` becomes ``Erfc``,
registered from opset 20 only) and only the checker says so.

tf2onnx names dims ``unk__N`` and outputs ``Identity:0``: they are renamed to the spec's dim
and input names and to the model's output names. Outputs are flattened as ``tf.nest`` does:
a tensor is ``output``, a list/tuple ``output_0``..., a dict by **sorted** key.

TensorFlow is imported only when a TF model is checked; ``TF_CPP_MIN_LOG_LEVEL`` is set to 2
before that import (unless you set it) to keep its C++ log lines out of your output.
"""

from __future__ import annotations

import hashlib
import os
import sys
from collections.abc import Mapping
from typing import Any

import numpy as np

from ..errors import ExportError, InvalidSpec
from ..onnxutils import file_digest, load_model, quiet, rename_dim_params, rename_values, save_model
from ..spec import Input, ParitySpec
from ..strategies import arrays_for_dims, export_dims
from . import (
    ExportedModel,
    Exporter,
    Reference,
    axis_name,
    class_root,
    exported_model,
    flatten_outputs,
    register_exporter,
    require,
    root_cause,
)

_LOGGERS = ("tensorflow", "tf2onnx", "absl", "keras", "h5py")


def _tf():
    if "tensorflow" not in sys.modules:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    return require("tensorflow", "tensorflow", "tensorflow", *_LOGGERS)


def _tf2onnx():
    return require("tf2onnx", "tf2onnx", "tensorflow", *_LOGGERS)


def _is_keras(model: Any) -> bool:
    return any((c.__module__ or "").split(".")[0] == "keras" for c in type(model).__mro__)


class _Callable:
    """The model as a TensorFlow callable, with what it says about its own inputs."""

    def __init__(self, model: Any) -> None:
        tf = _tf()
        self.model = model
        self.keras = _is_keras(model)
        self.input_names: list[str] | None = None  # keyword inputs (SavedModel signatures)
        self.declared: list[tuple[str | None, tuple]] | None = None  # (name, shape) the model fixes
        if isinstance(model, (str, os.PathLike)):
            loaded = tf.saved_model.load(os.fspath(model))
            if "serving_default" not in loaded.signatures:
                raise ExportError(f"SavedModel {os.fspath(model)!r} has no 'serving_default' signature")
            self._loaded = loaded  # keeps the signature's variables alive
            self.fn = loaded.signatures["serving_default"]
            specs = self.fn.structured_input_signature[1]
            self.input_names = list(specs)
            self.declared = [(n, tuple(specs[n].shape)) for n in self.input_names]
        elif self.keras:
            self.fn = model
            try:
                self.declared = [(getattr(t, "name", None), tuple(t.shape)) for t in model.inputs]
            except (AttributeError, ValueError):
                self.declared = None  # a subclassed model: no declared inputs
        else:
            fn = model if hasattr(model, "input_signature") else model.__call__
            signature = getattr(fn, "input_signature", None)
            if signature is None:
                raise ExportError(
                    f"{type(model).__name__}: a tf.function or tf.Module needs an input_signature "
                    "(@tf.function(input_signature=[tf.TensorSpec([None, ...], tf.float32)]))"
                )
            self.fn = fn
            self.declared = [(s.name, tuple(s.shape)) for s in signature]

    def __call__(self, *tensors):
        if self.input_names is not None:
            return self.fn(**dict(zip(self.input_names, tensors)))
        if self.keras:
            return self.fn(*tensors, training=False)
        return self.fn(*tensors)


def fingerprint(model: Any) -> str:
    """A digest of the model's class and weights (or of a SavedModel's files)."""
    h = hashlib.blake2b(digest_size=16)
    if isinstance(model, (str, os.PathLike)):
        root = os.fspath(model)
        for folder, _, files in sorted(os.walk(root)):
            for name in sorted(files):
                h.update(name.encode())
                h.update(file_digest(os.path.join(folder, name)).encode())
        return h.hexdigest()
    h.update(f"{type(model).__module__}.{type(model).__qualname__}".encode())
    variables = getattr(model, "weights", None) or getattr(model, "variables", None) or ()
    if not variables and not _is_keras(model):
        h.update(str(id(model)).encode())  # a bare tf.function: identity is all we can key by
    for var in variables:
        value = np.asarray(var.numpy() if hasattr(var, "numpy") else var)
        h.update(getattr(var, "path", getattr(var, "name", "")).encode())
        h.update(str(value.shape).encode() + value.dtype.str.encode() + value.tobytes())
    return h.hexdigest()


def check_fit(model: Any, spec: ParitySpec | None = None) -> None:
    """Raise when the model is not a TF model we can call, or contradicts ``spec``."""
    _Callable(model)
    if spec is not None:
        check_spec(model, spec)


def check_spec(model: Any, spec: ParitySpec) -> None:
    """Raise when the spec contradicts the inputs the model declares, before any export."""
    declared = _Callable(model).declared
    if declared is None:
        return
    if len(declared) != len(spec.inputs):
        raise InvalidSpec(
            f"the model takes {len(declared)} input(s) {[n for n, _ in declared]} "
            f"but the spec declares {len(spec.inputs)} {[i.name for i in spec.inputs]}"
        )
    for item, (name, shape) in zip(spec.inputs, declared):
        if len(shape) != len(item.shape):
            raise InvalidSpec(
                f"Input({item.name!r}) has rank {len(item.shape)} but the model's input "
                f"{name!r} has shape {_show(shape)} (rank {len(shape)})"
            )
        for axis, (entry, fixed) in enumerate(zip(item.shape, shape)):
            if fixed is None:
                continue
            if isinstance(entry, int) and entry != fixed:
                raise InvalidSpec(
                    f"Input({item.name!r}) axis {axis} is {entry} but the model's input {name!r} "
                    f"has shape {_show(shape)}: declare {fixed}"
                )
            if isinstance(entry, str) and spec.dims[entry].values_count > 1:
                raise InvalidSpec(
                    f"Input({item.name!r}) axis {axis} is the dynamic dim {entry!r} but the model's "
                    f"input {name!r} fixes it at {fixed} (shape {_show(shape)}): declare {fixed}, "
                    "or rebuild the model with None on that axis"
                )


def _show(shape: tuple) -> str:
    return "(" + ", ".join("None" if d is None else str(d) for d in shape) + ")"


def _named_outputs(outputs: Any) -> list[tuple[str, Any]]:
    tf = _tf()
    return flatten_outputs(outputs, lambda v: isinstance(v, (tf.Tensor, np.ndarray)), sort_keys=True)


def make_reference(model: Any, spec: ParitySpec) -> Reference:
    """The model on CPU, ``training=False`` for Keras, numpy in -> numpy out."""
    tf = _tf()
    call = _Callable(model)
    names = [i.name for i in spec.inputs]

    def reference(feeds: Mapping[str, np.ndarray]) -> list[np.ndarray]:
        with tf.device("/CPU:0"):
            outputs = call(*[tf.constant(feeds[n]) for n in names])
        return [np.asarray(t) for _, t in _named_outputs(outputs)]

    return reference


def export(model: Any, spec: ParitySpec, *, workdir: str, opset: int | None = None) -> ExportedModel:
    tf = _tf()
    import onnx

    call = _Callable(model)
    check_spec(model, spec)
    key = f"tf-{fingerprint(model)}-{spec.input_digest}-opset{opset}"
    folder = os.path.join(workdir, f"export-{key[:48]}")
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, "model.onnx")

    arrays = arrays_for_dims(spec, export_dims(spec))
    try:
        output_names = [
            n for n, _ in _named_outputs(call(*[tf.constant(arrays[i.name]) for i in spec.inputs]))
        ]
    except Exception as exc:
        shapes = ", ".join(f"{n}{list(a.shape)} {a.dtype}" for n, a in arrays.items())
        raise ExportError(
            f"{type(model).__name__} raised on the export example ({shapes}): {root_cause(exc)}; "
            "check that op.Input shapes and dtypes match the model"
        ) from exc
    signature = [
        tf.TensorSpec(
            [
                None if isinstance(e, str) and spec.dims[e].values_count > 1 else _fixed(e, spec)
                for e in i.shape
            ],
            tf.as_dtype(i.dtype),
            name=i.name,
        )
        for i in spec.inputs
    ]

    attempts: list[str] = []
    for exporter, run in (
        ("tf2onnx from_function", lambda: _via_tf2onnx(call, signature, opset, path)),
        ("Keras model.export", lambda: _via_keras(model, signature, opset, path)),
    ):
        if exporter.startswith("Keras") and not call.keras:
            continue
        try:
            with quiet(*_LOGGERS):
                run()
            proto = load_model(path, external_data=True)
            _rename(proto, spec, output_names)
            onnx.checker.check_model(proto, full_check=True)
        except Exception as exc:
            attempts.append(f"{exporter}: {root_cause(exc)}")
            continue
        save_model(proto, path)
        notes = [f"{a}; used {exporter}" for a in attempts]
        return exported_model(path, proto, spec, exporter=exporter, key=key, notes=notes)
    raise ExportError(
        f"could not export {type(model).__name__} to a valid ONNX model:\n  "
        + "\n  ".join(attempts)
        + "\n  (a ValidationError is onnx.checker rejecting a node tf2onnx emitted: tf2onnx targets "
        "opsets up to 18, and some layers, such as gelu, have no valid conversion there)"
    )


def _fixed(entry, spec: ParitySpec) -> int:
    return entry if isinstance(entry, int) else spec.dims[entry].first


def _via_tf2onnx(call: _Callable, signature, opset, path: str) -> None:
    tf = _tf()
    tf2onnx = _tf2onnx()
    function = tf.function(lambda *args: call(*args), input_signature=signature)
    tf2onnx.convert.from_function(function, input_signature=signature, opset=opset, output_path=path)


def _via_keras(model, signature, opset, path: str) -> None:
    kwargs = {"opset_version": opset} if opset is not None else {}
    model.export(path, format="onnx", verbose=False, input_signature=signature, **kwargs)


def _rename(proto, spec: ParitySpec, output_names: list[str]) -> None:
    """Spec names for inputs and dims, the model's names for outputs."""
    graph_inputs = [i for i in proto.graph.input if i.name not in {t.name for t in proto.graph.initializer}]
    renames = {}
    dims = {}
    for value, item in zip(graph_inputs, spec.inputs):
        renames[value.name] = item.name
        for entry, dim in zip(item.shape, value.type.tensor_type.shape.dim):
            if isinstance(entry, str) and dim.dim_param:
                dims[dim.dim_param] = entry
    if len(proto.graph.output) == len(output_names):
        renames.update({o.name: n for o, n in zip(proto.graph.output, output_names)})
    rename_values(proto, renames)
    rename_dim_params(proto, dims)


def declared_inputs(model: Any, data: Any = None) -> tuple[Input, ...] | None:
    """The inputs a Keras model, ``tf.function`` signature or SavedModel declares (None for a
    subclassed Keras model, which declares none)."""
    call = _Callable(model)
    if call.declared is None:
        return None
    if call.input_names is not None:
        specs = call.fn.structured_input_signature[1]
        dtypes = [np.dtype(specs[n].dtype.as_numpy_dtype).name for n in call.input_names]
    elif call.keras:
        dtypes = [np.dtype(str(getattr(t, "dtype", "float32"))).name for t in model.inputs]
    else:
        dtypes = [np.dtype(s.dtype.as_numpy_dtype).name for s in call.fn.input_signature]
    inputs = []
    for index, ((name, shape), dtype) in enumerate(zip(call.declared, dtypes)):
        name = name or f"input_{index}"
        shape = tuple(axis_name(name, a, None) if d is None else int(d) for a, d in enumerate(shape))
        inputs.append(Input(name, shape, dtype=dtype))
    return tuple(inputs)


def _is_saved_model(model: Any) -> bool:
    return isinstance(model, (str, os.PathLike)) and os.path.isfile(
        os.path.join(os.fspath(model), "saved_model.pb")
    )


class TensorFlowExporter(Exporter):
    r"""Keras 3 models, ``tf.function``\ s / ``tf.Module``\ s with an input signature, and
    SavedModel directories."""

    name = "tensorflow"
    extra = "tensorflow"

    def detects(self, model: Any) -> bool:
        return _is_saved_model(model) or bool({"keras", "tensorflow", "tf_keras"} & set(class_root(model)))

    def declared_inputs(self, model: Any, data: Any = None) -> tuple[Input, ...] | None:
        return declared_inputs(model, data)

    def fingerprint(self, model: Any) -> str:
        return fingerprint(model)

    def check_fit(self, model: Any, spec: ParitySpec) -> None:
        check_fit(model, spec)

    def export(self, model: Any, spec: ParitySpec, *, workdir: str, opset: int | None) -> ExportedModel:
        return export(model, spec, workdir=workdir, opset=opset)

    def reference(self, model: Any, spec: ParitySpec, exported: ExportedModel) -> Reference:
        return make_reference(model, spec)

    def seed(self, seed: int) -> None:
        keras = sys.modules.get("keras")
        if keras is not None:
            keras.utils.set_random_seed(seed)  # also seeds tensorflow's global generator
        elif "tensorflow" in sys.modules:
            sys.modules["tensorflow"].random.set_seed(seed)

    def model_name(self, model: Any) -> str:
        if isinstance(model, (str, os.PathLike)):
            return os.path.basename(os.path.normpath(os.fspath(model)))
        return type(model).__name__


register_exporter(TensorFlowExporter(), replace=True)
