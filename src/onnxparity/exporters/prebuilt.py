"""A prebuilt ONNX model (``onnx=``: a path, bytes or ``onnx.ModelProto``) and a callable
reference for it (``reference=``: numpy arrays in, arrays out), for models of any framework.

The ONNX file is checked as it is: its graph inputs are what the spec declares (read from the
graph when ``inputs=`` is not given), and the file is written into the session's work
directory when it came as bytes or a proto. Given with a framework model instead of
``reference=``, that model's own exporter supplies the reference.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Collection, Mapping, Sequence
from typing import Any, cast

import numpy as np

from onnxparity.errors import InvalidSpec, NoMapping
from onnxparity.exporters.base import (
    ExportedModel,
    Exporter,
    Reference,
    axis_name,
    specialised_dims,
)
from onnxparity.graph.files import (
    UnsafeLocation,
    check_external_data,
    file_digest,
    load_model,
    save_model,
    write_atomic,
)
from onnxparity.graph.nodes import default_opset
from onnxparity.spec import Dim, Input, ParitySpec
from onnxparity.spec.dtypes import ONNX_DTYPES

#: what a refusal of an element type says onnxparity draws instead
_DRAWS = (
    f"onnxparity draws none (it draws {', '.join(sorted(set(ONNX_DTYPES.values())))}); check the part "
    "of the model that takes one of those"
)


def element_type_name(number: int) -> str:
    """An ONNX element type's name (``tensor(float16)``'s ``float16``), never its bare number."""
    import onnx

    try:
        return cast(str, onnx.TensorProto.DataType.Name(number).lower())
    except ValueError:
        return f"element type {number}"


def _type_name(value_type: Any) -> str:
    """How ONNX writes a value's type: tensor(float), seq(tensor(int64)), optional(...)."""
    which = value_type.WhichOneof("value")
    if which == "tensor_type":
        return f"tensor({element_type_name(value_type.tensor_type.elem_type)})"
    if which == "sequence_type":
        return f"seq({_type_name(value_type.sequence_type.elem_type)})"
    if which == "optional_type":
        return f"optional({_type_name(value_type.optional_type.elem_type)})"
    if which == "map_type":
        return f"map({element_type_name(value_type.map_type.key_type)}, {_type_name(value_type.map_type.value_type)})"
    return which or "an undefined type"


def value_kind(value: Any) -> str:
    """``tensor_type``, ``sequence_type``, ``optional_type``, ``map_type`` ("" when unset)."""
    return value.type.WhichOneof("value") or ""


def drawn_tensor(value: Any) -> Any:
    """The tensor type drawn for a graph input: its own, or an optional tensor's (drawn present:
    ONNX Runtime and the evaluator take an array for it); None for any other kind."""
    if value_kind(value) == "optional_type" and value.type.optional_type.elem_type.WhichOneof("value") == "tensor_type":
        return value.type.optional_type.elem_type.tensor_type
    return value.type.tensor_type if value_kind(value) == "tensor_type" else None


def tensor_proto(proto: Any) -> tuple[Any, dict[str, Any] | None, list[str]]:
    """``proto`` with its sequence inputs and outputs and optional outputs as tensors
    (:mod:`onnxparity.graph.containers`), what was converted (None: nothing) and notes."""
    from onnxparity.graph.containers import has_containers, tensor_form

    if not has_containers(proto):
        return proto, None, []
    return tensor_form(proto)


def read_proto(onnx_model: Any) -> Any:
    """The ModelProto of a path, bytes or proto (without external data); InvalidSpec for an
    empty, unreadable or output-less model."""
    import onnx

    if isinstance(onnx_model, (str, os.PathLike)):
        path = os.fspath(onnx_model)
        what = f"onnx={path!r}"
        if not os.path.isfile(path):
            raise InvalidSpec(f"{what}: no such file; give the path of an .onnx file")
        if os.path.getsize(path) == 0:
            raise InvalidSpec(f"{what} is empty (0 bytes): was the export interrupted?")
        try:
            proto = load_model(path)
        except Exception as exc:  # onnx raises DecodeError and others
            raise InvalidSpec(f"{what} is not a readable ONNX model: {exc}") from exc
    elif isinstance(onnx_model, (bytes, bytearray)):
        what = f"onnx=<{len(onnx_model)} bytes>"
        if not onnx_model:
            raise InvalidSpec(f"{what} is empty: give the bytes of an ONNX model")
        try:
            proto = onnx.load_from_string(bytes(onnx_model))
        except Exception as exc:
            raise InvalidSpec(f"{what} is not an ONNX model: {exc}") from exc
    elif isinstance(onnx_model, onnx.ModelProto):
        what, proto = "onnx=<ModelProto>", onnx_model
    else:
        raise InvalidSpec(
            f"onnx={type(onnx_model).__name__}: give a path, the model's bytes or an onnx.ModelProto"
        )
    if not proto.graph.output:
        raise InvalidSpec(
            f"{what} has no graph outputs, so there is nothing to compare; is it an ONNX model?"
        )
    return proto


def least_graph_dims(
    onnx_model: Any, inputs: Sequence[Input], dims: Mapping[str, Dim], names: Collection[str]
) -> dict[str, Dim]:
    """:func:`onnxparity.graph.sizes.least_dims` of the file (in its tensor form, as its inputs are read)."""
    from onnxparity.graph.sizes import least_dims

    return least_dims(tensor_proto(read_proto(onnx_model))[0], inputs, dims, names)


def graph_inputs(onnx_model: Any) -> tuple[Input, ...]:
    """The inputs an ONNX graph declares (initializers excluded): names, dtypes, shapes with a
    dim name for every dynamic axis, and the value ranges the graph states (:func:`within_domains`);
    a rank-2 input named ``...attention_mask`` is a mask (``kind="mask"``)."""
    proto, plan, _ = tensor_proto(read_proto(onnx_model))  # a sequence input: its elements stacked
    stacked = {n for n, kind in (plan or {}).get("inputs", {}).items() if "seq" in (kind[0], kind[1][0])}
    initializers = {t.name for t in proto.graph.initializer}
    inputs = []
    for value in proto.graph.input:
        if value.name in initializers:
            continue
        tensor = drawn_tensor(value)
        if tensor is None:
            raise InvalidSpec(
                f"ONNX input {value.name!r} is a {_type_name(value.type)}: onnxparity draws tensors, sequences of "
                "tensors and optional tensors; check the part of the model after it (its tensors) instead"
            )
        dtype = ONNX_DTYPES.get(tensor.elem_type)
        if dtype is None:
            raise InvalidSpec(f"ONNX input {value.name!r} is a {_type_name(value.type)}: {_DRAWS}")
        shape = tuple(
            d.dim_value
            if d.HasField("dim_value")
            else d.dim_param  # a sequence's length (its own dim: not a batch shared with other inputs)
            if axis == 0 and value.name in stacked
            else axis_name(value.name, axis, d.dim_param)
            for axis, d in enumerate(tensor.shape.dim)
        )
        mask = value.name.endswith("attention_mask") and len(shape) == 2 and dtype != "str"
        # Hugging Face's (and Optimum's) name for a 0/1 mask of real tokens: drawn as one
        # (every row with a real token), not as integers 0..100 no tokenizer makes
        inputs.append(
            Input(value.name, shape, dtype=dtype, kind="mask")
            if mask
            else Input(value.name, shape, dtype=dtype)
        )
    return within_domains(proto, inputs)


def within_domains(proto: Any, inputs: list[Input]) -> tuple[Input, ...]:
    """``inputs`` with the value ranges the graph states for them (:mod:`onnxparity.graph.domains`);
    InvalidSpec naming the input and the op where no drawn value would be valid."""
    from onnxparity.graph.domains import DEFAULT_STRINGS, derive, graph_strings
    from onnxparity.graph.domains.types import Undrawable
    from onnxparity.spec.dtypes import INT_LIMITS

    found = derive(proto, inputs)
    ranged = []
    strings = None
    for item in inputs:
        if item.dtype == "str" and item.categories is None:  # the graph's own strings, and some of every kind
            strings = strings if strings is not None else graph_strings(proto)
            ranged.append(Input(item.name, item.shape, dtype="str", categories=(*strings, *DEFAULT_STRINGS)))
            continue
        domain = found.get(item.name)
        if isinstance(domain, Undrawable):
            shape = tuple(item.shape)
            symbols = [d for d in shape if not isinstance(d, int)]
            written = f"({', '.join(str(d) for d in shape)}{',' if len(shape) == 1 else ''})"
            example = (  # choices= are whole values of one fixed shape: a symbolic dim must be given as a number
                f"op.Input({item.name!r}, {shape}, dtype={item.dtype!r}, choices=[value, ...]) (or low=v, high=v: "
                "every element v)"
                if not symbols
                else f"op.Input({item.name!r}, {written}, dtype={item.dtype!r}, choices=[value, ...]) with "
                f"{', '.join(map(str, symbols))} a number (choices= are whole values of one shape)"
            )
            raise InvalidSpec(
                f"ONNX input {item.name!r}: {domain.why}, so drawn values would be rejected; declare inputs= "
                f"with the values it takes, e.g. {example}, or make it an initializer of the file"
            )
        if domain is not None and domain.choices is not None and item.kind == "values" and item.dtype != "str":
            try:  # whole values (Split's sizes, Reshape's target): each must fit the input's type
                ranged.append(Input(item.name, item.shape, dtype=item.dtype, choices=domain.choices))
            except InvalidSpec as exc:
                raise InvalidSpec(
                    f"ONNX input {item.name!r}: {domain.why}, which it cannot hold ({exc}); declare inputs= with "
                    f"op.Input({item.name!r}, ..., choices=[value, ...]) of values its type holds, or make it an "
                    "initializer of the file"
                ) from None
            continue
        if domain is None or item.dtype in ("bool", "str") or item.kind != "values":
            ranged.append(item)
            continue
        low, high = domain.low, domain.high
        if item.dtype in INT_LIMITS:
            limits = INT_LIMITS[item.dtype]
            low, high = max(int(np.ceil(low)), int(limits.min)), min(int(np.floor(high)), int(limits.max))
        if low > high:
            raise InvalidSpec(f"ONNX input {item.name!r}: {domain.why}, which no {item.dtype} value fits")
        # the domain's edges are boundaries too: the boundary pattern draws at them (an index at
        # the table's last row, a length equal to the sequence: where off-by-one exports break)
        edges = (low, high) if high > low and not domain.distinct else ()
        ranged.append(
            Input(item.name, item.shape, dtype=item.dtype, low=low, high=high, boundaries=edges, distinct=domain.distinct)
        )
    return tuple(ranged)


def check_input_names(model_proto: Any, spec: ParitySpec) -> None:
    """Raise when the spec's inputs and the ONNX graph's inputs do not correspond."""
    initializers = {t.name for t in model_proto.graph.initializer}
    graph_names = [i.name for i in model_proto.graph.input if i.name not in initializers]
    declared = [i.name for i in spec.inputs]
    missing = [n for n in declared if n not in graph_names]
    extra = [n for n in graph_names if n not in declared]
    if missing or extra:
        raise InvalidSpec(
            f"the ONNX model's inputs are {graph_names} but the spec declares {declared}; "
            "name each op.Input after an ONNX graph input"
        )


def check_input_types(model_proto: Any, spec: ParitySpec) -> None:
    """InvalidSpec where a declared input contradicts the graph's: its rank, its element type,
    or a size both fix differently. A dim declared dynamic that the graph fixes is not refused:
    that is a baked shape, what the check is for (it becomes a note and shows in the search)."""
    graph_inputs = {v.name: v for v in model_proto.graph.input}
    for item in spec.inputs:
        tensor = drawn_tensor(graph_inputs[item.name]) or graph_inputs[item.name].type.tensor_type
        elem = ONNX_DTYPES.get(tensor.elem_type)
        if drawn_tensor(graph_inputs[item.name]) is None:
            raise InvalidSpec(
                f"Input({item.name!r}) is declared a tensor but the ONNX graph's input is a "
                f"{_type_name(graph_inputs[item.name].type)}: onnxparity draws tensors only"
            )
        if elem is None and tensor.elem_type:
            raise InvalidSpec(
                f"Input({item.name!r}): the ONNX graph's input is a {_type_name(graph_inputs[item.name].type)}: "
                f"{_DRAWS}"
            )
        if elem is not None and elem != item.dtype:
            raise InvalidSpec(
                f"Input({item.name!r}) is declared {item.dtype} but the ONNX graph's input is {elem}: "
                f"declare dtype={elem!r}"
            )
        if not tensor.HasField("shape"):
            continue
        dims = tensor.shape.dim
        shown = (
            "("
            + ", ".join(str(d.dim_value) if d.HasField("dim_value") else (d.dim_param or "?") for d in dims)
            + ")"
        )
        if len(dims) != len(item.shape):
            raise InvalidSpec(
                f"Input({item.name!r}) has shape {item.shape} (rank {len(item.shape)}) but the ONNX graph's "
                f"input is {shown} (rank {len(dims)}): declare a shape of rank {len(dims)}"
            )
        for axis, (entry, dim) in enumerate(zip(item.shape, dims)):
            if isinstance(entry, int) and dim.HasField("dim_value") and dim.dim_value != entry:
                raise InvalidSpec(
                    f"Input({item.name!r}) axis {axis} is {entry} but the ONNX graph's input is {shown}: "
                    f"declare {dim.dim_value}"
                )


def load(onnx_model: Any, spec: ParitySpec, workdir: str) -> ExportedModel:
    """The user's ONNX model on disk (written under ``workdir`` unless it is a path; a graph
    with sequence inputs or outputs is checked in its tensor form, written there too)."""
    proto = read_proto(onnx_model)
    converted, plan, converted_notes = tensor_proto(proto)
    if isinstance(onnx_model, (str, os.PathLike)):
        path = os.path.abspath(os.fspath(onnx_model))
        try:
            check_external_data(path, proto)
        except UnsafeLocation as exc:
            raise InvalidSpec(f"onnx={os.fspath(onnx_model)!r}: {exc}") from None
        key = "file-" + file_digest(path)
        if plan is not None:  # its weights come along (the tensor form is written elsewhere)
            converted = tensor_proto(load_model(path, external_data=True))[0]
    else:
        data = (
            bytes(onnx_model)
            if isinstance(onnx_model, (bytes, bytearray))
            else onnx_model.SerializeToString()
        )
        kind = "bytes" if isinstance(onnx_model, (bytes, bytearray)) else "proto"
        key = f"{kind}-" + hashlib.blake2b(data, digest_size=16).hexdigest()
        path = os.path.join(workdir, key, "model.onnx")
        if not os.path.exists(path) and plan is None:
            write_atomic(path, data)
    if plan is not None:
        key = "tensors-" + key
        path = os.path.join(workdir, key, "model.onnx")
        if not os.path.exists(path):
            save_model(converted, path)
        proto = converted
    check_input_names(proto, spec)
    check_input_types(proto, spec)
    return ExportedModel(
        path=path,
        input_names=tuple(i.name for i in spec.inputs),
        output_names=tuple(o.name for o in proto.graph.output),
        exporter="prebuilt ONNX",
        opset=default_opset(proto),
        key=key,
        notes=(*converted_notes, *specialised_dims(proto, spec), *declared_outside(proto, spec)),
        containers=plan or {},
    )


def declared_outside(proto: Any, spec: ParitySpec) -> list[str]:
    """A note for each declared input whose range reaches past what the graph states for it
    (:mod:`onnxparity.graph.domains`): the check will draw values the graph's ops reject."""
    from onnxparity.graph.domains import derive
    from onnxparity.graph.domains.types import Domain, Undrawable

    try:
        found = derive(proto, spec.inputs)
    except Exception:  # reading domains is a help: a graph it cannot read gets no note
        return []
    notes = []
    for item in spec.inputs:
        domain = found.get(item.name)
        if item.dtype in ("bool", "str") or item.low is None:
            continue
        if isinstance(domain, Domain) and domain.choices is not None:
            fixed = item.choices is None and item.low == item.high  # one value, yours to choose
            if not fixed and (item.choices is None or not set(item.choices) <= set(domain.choices)):
                declared = "with other choices" if item.choices is not None else f"{item.low:g}…{item.high:g}"
                notes.append(
                    f"Input({item.name!r}) is declared {declared}, but the graph takes whole values there "
                    f"({domain.why}), e.g. {list(domain.choices[:3])}: other values may be rejected (declare "
                    "choices=)"
                )
        elif isinstance(domain, Domain) and (item.low < domain.low or cast(float, item.high) > domain.high):
            notes.append(
                f"Input({item.name!r}) is declared {item.low:g}…{item.high:g}, but the graph takes "
                f"{domain.low:g}…{domain.high:g} there ({domain.why}): values outside are rejected"
            )
        elif isinstance(domain, Undrawable) and item.low != item.high:
            notes.append(
                f"Input({item.name!r}): {domain.why}; drawn values may be rejected (declare low=high)"
            )
    return notes


class CallableExporter(Exporter):
    """A user's callable as the reference of a prebuilt ONNX model: numpy arrays in spec order
    in; an array, a sequence of arrays or a dict by output name out. It never exports."""

    name = "callable"

    def detects(self, model: Any) -> bool:
        return False  # chosen by reference=, never detected

    def fingerprint(self, model: Any) -> str:
        # Unique while the session lives: its cached model pair keeps the callable alive.
        return str(id(model))

    def export(self, model: Any, spec: ParitySpec, *, workdir: str, opset: int | None) -> ExportedModel:
        raise InvalidSpec("reference= needs onnx= (the ONNX model to check against it)")

    def reference(self, model: Callable[..., Any], spec: ParitySpec, exported: ExportedModel) -> Reference:
        from onnxparity.graph.containers import to_reference_inputs, to_tensor_outputs

        names = [i.name for i in spec.inputs]
        plan = exported.containers  # a graph checked in its tensor form: the callable takes lists
        outputs = [name for name, _ in plan["outputs"]] if plan else list(exported.output_names)

        def call(feeds: Mapping[str, np.ndarray]) -> list[np.ndarray]:
            given = {n: np.array(feeds[n]) for n in names}  # a copy: the feeds are shared
            given = to_reference_inputs(plan, given) if plan else given
            out = model(*[given[n] for n in names])
            if isinstance(out, Mapping):
                keys = [k for k in outputs if k in out] or list(out)
                out = [out[k] for k in keys]
            elif not isinstance(out, (list, tuple)) or (plan and _one_sequence(plan) and not _one_listed(out)):
                out = [out]  # one output (a single sequence, as a list of its elements)
            if plan:
                return to_tensor_outputs(plan, out)
            return [np.asarray(o) for o in out]

        return call

    def intermediates(
        self, model: Any, spec: ParitySpec, feeds: Mapping[str, Any], graph: Any
    ) -> dict[str, Any]:
        raise NoMapping(
            "the reference (a callable, or stored outputs) exposes no intermediate values; with the framework "
            "model itself as the reference (op.check(model, onnx=...)) the first diverging node is named"
        )

    def model_name(self, model: Any) -> str:
        return "model"


def _one_sequence(plan: Mapping[str, Any]) -> bool:
    return len(plan["outputs"]) == 1 and plan["outputs"][0][1][0] == "seq"


def _one_listed(out: Any) -> bool:
    """Whether a callable's result for a graph of one container output is already the list of
    outputs (``[elements]``, as the ONNX reference evaluator returns it), not that one output."""
    return len(out) == 1 and (isinstance(out[0], (list, tuple)) or out[0] is None)


#: the built-in instance (:data:`onnxparity.exporters.BUILTINS` names it)
EXPORTER = CallableExporter()
