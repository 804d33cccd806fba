"""TensorFlow / Keras -> ONNX, and the model itself (``training=False``, CPU) as the reference.

Accepted models: a Keras 3 model (Sequential, functional, subclassed), a ``tf.function`` (or a
``tf.Module`` whose ``__call__`` is one) with an input signature, and a SavedModel directory
path (its ``serving_default`` signature). Export path: tf2onnx over a ``tf.function`` whose
input signature has ``None`` for every symbolic dim — it keeps the dims dynamic — frozen with
its captured tensors as constants (see :func:`_via_tf2onnx`); Keras' own
``model.export(format="onnx")`` is the fallback for Keras models
(``tf2onnx.convert.from_keras`` fails on Keras 3). Every export runs ``onnx.checker`` with
``full_check``: tf2onnx can emit nodes invalid at its opset (a ``gelu`` becomes ``Erfc``,
registered from opset 20 only) and only the checker says so.

tf2onnx names dims ``unk__N`` and outputs ``Identity:0``: they are renamed to the spec's dim
and input names and to the model's output names. Outputs are flattened as ``tf.nest`` does:
a tensor is ``output``, a list/tuple ``output_0``..., a dict by **sorted** key. A functional
model's inputs keep its names (a dict model's: its keys) and are passed as the list or dict it
was built with. A graph input the spec does not declare is an export error naming it.

The default tolerance adds ``scaled=2e-4`` (:data:`TF_TOLERANCE`): TensorFlow's CPU kernels sum in
another order than ONNX Runtime's, and on Keras applications with trained-like statistics the
two differed by up to 6.2e-5 of the output's largest value (MobileNetV2, ResNet50; each as far
from a float64 run as the other), beyond ``atol=1e-5`` on logits near zero, while a first
kernel scaled by 1.001 or every weight rounded through float16 moved the outputs by at least
1.3e-3 of it: ``2e-4`` is 3x the largest error and 1/6 of the smallest planted change (``3e-4``
made a random ResNet50's nearly uniform softmax a weak check).

TensorFlow is imported only when a TF model is checked; ``TF_CPP_MIN_LOG_LEVEL`` is set to 2
before that import (unless you set it) to keep its C++ log lines out of your output.
"""

from __future__ import annotations

import hashlib
import os
import sys
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from onnxparity.draw import arrays_for_dims, export_dims
from onnxparity.environment import quiet
from onnxparity.errors import ExportError, InvalidSpec, NoMapping
from onnxparity.exporters.base import (
    ExportedModel,
    Exporter,
    Reference,
    axis_name,
    class_root,
    export_folder,
    exported_model,
    flatten_outputs,
    require,
    root_cause,
)
from onnxparity.graph.files import file_digest, load_model, rename_dim_params, rename_values, save_model
from onnxparity.spec import Input, ParitySpec, Tolerance

#: lossless variants' default for TensorFlow models: see the module's docstring.
TF_TOLERANCE = Tolerance(atol=1e-5, rtol=1e-4, scaled=2e-4)

_LOGGERS = ("tensorflow", "tf2onnx", "absl", "keras", "h5py")


def _tf() -> Any:
    if "tensorflow" not in sys.modules:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    return require("tensorflow", "tensorflow", "tensorflow", *_LOGGERS)


def _tf2onnx() -> Any:
    return require("tf2onnx", "tf2onnx", "tensorflow", *_LOGGERS)


def _keras_tree() -> Any:
    return require("keras", "keras", "tensorflow", *_LOGGERS).tree


def _is_keras(model: Any) -> bool:
    return any((c.__module__ or "").split(".")[0] == "keras" for c in type(model).__mro__)


class _Callable:
    """The model as a TensorFlow callable, with what it says about its own inputs."""

    def __init__(self, model: Any) -> None:
        tf = _tf()
        self.model = model
        self.keras = _is_keras(model)
        self.input_names: list[str] | None = None  # keyword inputs (SavedModel signatures)
        self.declared: list[tuple[str | None, tuple[Any, ...]]] | None = None  # (name, shape) the model fixes
        self.structure: Any = None  # a functional Keras model's input structure
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
                names = [getattr(t, "name", None) for t in model.inputs]
                self.declared = [(n, tuple(t.shape)) for n, t in zip(names, model.inputs)]
            except (AttributeError, ValueError):
                self.declared = None  # a subclassed model: no declared inputs
            try:  # a functional model's inputs: a tensor, list or dict (Sequential: positional)
                self.structure = model.input if self.declared is not None else None
            except (AttributeError, ValueError):
                self.structure = None
            if isinstance(self.structure, Mapping):
                # the model is called with a dict: its keys (in model.inputs order) name the inputs
                keys = _keras_tree().flatten({k: k for k in self.structure})
                self.declared = [(k, shape) for k, (_, shape) in zip(keys, self.declared or ())]  # (set above)
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

    def __call__(self, *tensors: Any) -> Any:
        """Call the model with ``tensors`` in its declared input order."""
        if self.input_names is not None:
            return self.fn(**dict(zip(self.input_names, tensors)))
        if self.structure is not None:
            # Keras takes several inputs as one list or dict, never as positional arguments
            # (``model(a, b, training=False)`` is "multiple values for argument 'training'")
            return self.fn(_keras_tree().pack_sequence_as(self.structure, list(tensors)), training=False)
        if self.keras:
            return self.fn(*tensors, training=False)
        return self.fn(*tensors)

    def order(self, spec: ParitySpec) -> list[Input]:
        """The spec's inputs in the model's order (by name when they name its inputs)."""
        names = [n for n, _ in self.declared or ()]
        by_name: dict[str | None, Input] = {i.name: i for i in spec.inputs}
        if len(names) == len(by_name) and set(names) == set(by_name):
            return [by_name[n] for n in names]
        return list(spec.inputs)


def identity(model: Any) -> Any:
    """What a model's export depends on besides its weights (:func:`.states.keras_identity`)."""
    from onnxparity.exporters.states import keras_identity

    return keras_identity(model, saved_model=_is_saved_model(model), keras_model=_is_keras(model))


def fingerprint(model: Any) -> str:
    """A digest of the class and weights (a SavedModel's files), and the identity (config, code)."""
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
    h.update(identity(model).digest.encode())  # empty but for Keras models
    return h.hexdigest()


def check_fit(model: Any, spec: ParitySpec | None = None) -> None:
    """Raise when the model is not a TF model we can call, or contradicts ``spec``."""
    _Callable(model)
    if spec is not None:
        check_spec(model, spec)


def check_spec(model: Any, spec: ParitySpec) -> None:
    """Raise when the spec contradicts the inputs the model declares, before any export."""
    call = _Callable(model)
    declared = call.declared
    if declared is None:
        return
    if len(declared) != len(spec.inputs):
        raise InvalidSpec(
            f"the model takes {len(declared)} input(s) {[n for n, _ in declared]} "
            f"but the spec declares {len(spec.inputs)} {[i.name for i in spec.inputs]}"
        )
    for item, (name, shape) in zip(call.order(spec), declared):
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


def _show(shape: tuple[Any, ...]) -> str:
    return "(" + ", ".join("None" if d is None else str(d) for d in shape) + ")"


def _named_outputs(outputs: Any) -> list[tuple[str, Any]]:
    tf = _tf()
    return flatten_outputs(outputs, lambda v: isinstance(v, (tf.Tensor, np.ndarray)), sort_keys=True)


def make_reference(model: Any, spec: ParitySpec) -> Reference:
    """The model on CPU, ``training=False`` for Keras, numpy in -> numpy out."""
    tf = _tf()
    call = _Callable(model)
    names = [i.name for i in call.order(spec)]

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
    ordered = call.order(spec)
    key = f"tf-{fingerprint(model)}-{spec.input_digest}-opset{opset}"
    folder = export_folder(workdir, key)
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, "model.onnx")

    arrays = arrays_for_dims(spec, export_dims(spec))
    try:
        output_names = [n for n, _ in _named_outputs(call(*[tf.constant(arrays[i.name]) for i in ordered]))]
    except Exception as exc:
        shapes = ", ".join(f"{n}{list(a.shape)} {a.dtype}" for n, a in arrays.items())
        raise ExportError(
            f"{type(model).__name__} raised on the export example ({shapes}): {root_cause(exc)}; "
            "check that op.Input shapes, dtypes and ranges match the model (ids within an Embedding's input_dim)"
        ) from exc
    signature = signature_of(spec, ordered)
    attempts: list[str] = []
    run: Callable[[], None]
    for exporter, run in (
        ("tf2onnx from_function", lambda: _via_tf2onnx(call, signature, opset, path)),
        ("Keras model.export", lambda: _via_keras(call, signature, opset, path)),
    ):
        if exporter.startswith("Keras") and not call.keras:
            continue
        try:
            with quiet(*_LOGGERS):
                run()
            proto = load_model(path, external_data=True)
            _rename(proto, ordered, output_names)
            onnx.checker.check_model(proto, full_check=True)
        except Exception as exc:
            attempts.append(f"{exporter}: {root_cause(exc)}")
            continue
        save_model(proto, path)
        notes = [f"{a}; used {exporter}" for a in attempts]
        return exported_model(path, proto, spec, exporter=exporter, key=key, notes=notes)
    hints = {
        "ValidationError": "a ValidationError is onnx.checker rejecting a node tf2onnx emitted: tf2onnx "
        "targets opsets up to 18, and some layers, such as gelu, have no valid conversion there",
        "graph inputs the spec": "a graph input the spec does not declare is a value the exporter did "
        "not freeze into a constant, such as a tensor the model captures outside its variables: no feed of "
        "the model's own inputs can run that ONNX model",
    }
    raise ExportError(
        f"could not export {type(model).__name__} to a valid ONNX model:\n  "
        + "\n  ".join(attempts)
        + "".join(f"\n  ({h})" for k, h in hints.items() if any(k in a for a in attempts))
    )


def signature_of(spec: ParitySpec, ordered: list[Input]) -> list[Any]:
    """The ``tf.TensorSpec`` input signature the export traces with (declared dynamic dims None)."""
    tf = _tf()
    return [
        tf.TensorSpec(
            [
                None if isinstance(e, str) and spec.dims[e].values_count > 1 else _fixed(e, spec)
                for e in i.shape
            ],
            tf.as_dtype(i.dtype),
            name=i.name,
        )
        for i in ordered
    ]


def _fixed(entry: int | str, spec: ParitySpec) -> int:
    return entry if isinstance(entry, int) else spec.dims[entry].first


def _via_tf2onnx(call: _Callable, signature: list[Any], opset: int | None, path: str) -> None:
    """Freeze the traced function with only the signature's tensors as inputs.

    ``tf2onnx.convert.from_function`` makes every non-variable tensor the function captures a
    graph input: an eager constant a layer computed outside ``call`` (Keras' ``Normalization``
    keeps ``mean``/``variance`` as such tensors, so EfficientNet's ONNX graph asked for
    ``normalization/Sub/y:0`` and ``Sqrt/x:0`` as inputs). Freezing itself turns those captures
    into constants; only the input list was wrong, so pass the real one to ``from_graph_def``.
    """
    tf = _tf()
    tf2onnx = _tf2onnx()
    from tf2onnx import tf_loader

    function = tf.function(lambda *args: call(*args), input_signature=signature)
    concrete = function.get_concrete_function()
    captured = {t.ref() for t in concrete.graph.internal_captures}
    inputs = [t.name for t in concrete.inputs if t.dtype != tf.resource and t.ref() not in captured]
    outputs = [t.name for t in concrete.outputs if t.dtype != tf.resource]
    frozen = tf_loader.from_function(concrete, inputs, outputs)
    tf2onnx.convert.from_graph_def(
        frozen, name=concrete.name, input_names=inputs, output_names=outputs, opset=opset, output_path=path
    )


def _via_keras(call: _Callable, signature: list[Any], opset: int | None, path: str) -> None:
    kwargs = {"opset_version": opset} if opset is not None else {}
    if call.structure is not None:
        signature = [_keras_tree().pack_sequence_as(call.structure, signature)]
    call.model.export(path, format="onnx", verbose=False, input_signature=signature, **kwargs)


def _rename(proto: Any, inputs: list[Input], output_names: list[str]) -> None:
    """Spec names for inputs (matched by name, ``x:0`` being ``x``, else by position) and
    dims, the model's names for outputs; raise on graph inputs the spec does not declare."""
    initializers = {t.name for t in proto.graph.initializer}
    graph_inputs = [i for i in proto.graph.input if i.name not in initializers]
    by_name = {i.name.removesuffix(":0"): i for i in graph_inputs}
    pairs = [(by_name.pop(item.name, None), item) for item in inputs]
    rest = iter(value for value in graph_inputs if value.name.removesuffix(":0") in by_name)
    pairs = [(next(rest, None) if value is None else value, item) for value, item in pairs]
    extra = list(rest)
    if extra:
        raise ExportError(
            f"graph inputs the spec does not declare: {[v.name for v in extra]} "
            f"(declared: {[i.name for i in inputs]})"
        )
    renames = {}
    dims = {}
    for value, item in pairs:
        if value is None:
            continue
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
    # integer inputs of a model with Embedding layers are token ids: within the smallest vocabulary
    vocab = min((int(layer.input_dim) for layer in getattr(model, "layers", ()) if hasattr(layer, "input_dim")), default=0)
    inputs = []
    for index, ((name, shape), dtype) in enumerate(zip(call.declared, dtypes)):
        name, ids = name or f"input_{index}", vocab and np.dtype(dtype).kind in "iu"
        shape = tuple(axis_name(name, a, None) if d is None else int(d) for a, d in enumerate(shape))
        inputs.append(Input(name, shape, dtype=dtype, low=0 if ids else None, high=vocab - 1 if ids else None))
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
    default_tolerance = TF_TOLERANCE

    def detects(self, model: Any) -> bool:
        return _is_saved_model(model) or bool({"keras", "tensorflow", "tf_keras"} & set(class_root(model)))

    declared_inputs = staticmethod(declared_inputs)
    fingerprint = staticmethod(fingerprint)
    packages = ("tensorflow", "keras", "tf2onnx", "onnx")

    identity = staticmethod(identity)
    check_fit = staticmethod(check_fit)
    export = staticmethod(export)

    def reference(self, model: Any, spec: ParitySpec, exported: ExportedModel) -> Reference:
        return make_reference(model, spec)

    source_kind = "layer"

    def intermediates(
        self, model: Any, spec: ParitySpec, feeds: Mapping[str, Any], graph: Any
    ) -> dict[str, Any]:
        from onnxparity.exporters.keras_values import by_tensor_name, intermediates

        call = _Callable(model)
        ordered = call.order(spec)
        try:  # node by node: tf2onnx names values after the TensorFlow tensors
            values = by_tensor_name(call, signature_of(spec, ordered), ordered, feeds, graph)
        except Exception:  # a trace that cannot be pruned: the layers' outputs, below
            values = {}
        if values:
            return values
        if not call.keras:
            raise NoMapping(
                "the traced function's tensors do not pair with the ONNX values, and only Keras "
                "models expose layer outputs"
            )
        return intermediates(model, spec, ordered, feeds, graph)

    def source_of(self, node: Any) -> str | None:
        from onnxparity.exporters.keras_values import source_of

        return source_of(node)

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


#: the built-in instance (:data:`onnxparity.exporters.BUILTINS` names it)
EXPORTER = TensorFlowExporter()
