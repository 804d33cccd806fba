"""Sequence and optional inputs and outputs of an ONNX graph, as tensors: the form a check draws
and compares.

A graph taking ``seq(tensor(T))`` gets, in its place, a tensor input of the same name holding
the elements stacked along a new first axis (``<name>_length``, a symbolic dim) and split back
into the sequence inside the graph (``SplitToSequence``); an ``optional(tensor)`` input is drawn
present and fed as it is (ONNX Runtime and the evaluator take the array), an optional sequence is
drawn stacked, split and made a present ``Optional``. A ``seq(tensor)`` output becomes three: its elements flattened and
concatenated (``<name>:values``), their shapes concatenated (``<name>:shapes``) and their count
(``<name>:count``), so that the rule of tensors compares every value, shape and length; an
``optional(...)`` output adds ``<name>:present`` and gives the empty form where absent (an
optional tensor's value is ``<name>:value``: ``<name>`` is the optional's own). The same
conversions in numpy (:func:`to_reference_inputs`, :func:`to_tensor_outputs`) let a reference
callable that takes and returns lists (the ONNX reference evaluator) be compared with it.

An element's shape the graph leaves out is drawn 1-D (a note says so). Maps and sequences of
sequences are refused. Nothing is run here.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, cast

import numpy as np

from onnxparity.errors import InvalidSpec

if TYPE_CHECKING:
    from onnx import NodeProto

#: a value's kind: ("tensor", ONNX element type) | ("seq", kind) | ("optional", kind)
Kind = tuple[str, Any]

#: the metadata key of a tensor form the ONNX reference evaluator cannot run (an optional
#: output, of a tensor or a sequence): the ``onnx-reference`` variant is then unavailable, not failed
EVALUATOR_CANNOT = "onnxparity.evaluator_cannot_run_optional_sequences"


def kind_of(value_type: Any) -> Kind | None:
    """The kind of an ONNX TypeProto, or None for a map or an undefined type."""
    which = value_type.WhichOneof("value")
    if which == "tensor_type":
        return ("tensor", value_type.tensor_type.elem_type)
    if which in ("sequence_type", "optional_type"):
        inner = kind_of(getattr(value_type, which).elem_type)
        return None if inner is None else ("seq" if which == "sequence_type" else "optional", inner)
    return None


def unread(value_type: Any) -> str:
    """What a type :func:`kind_of` gives no kind for is, in words: "a map", "a sequence of maps"."""
    noun = _unread_noun(value_type)
    return f"{'an' if noun[0] in 'aeiou' else 'a'} {noun}"


def _unread_noun(value_type: Any) -> str:
    which = value_type.WhichOneof("value")
    if which == "sequence_type":
        return f"sequence of {_unread_noun(value_type.sequence_type.elem_type)}s"
    if which == "optional_type":
        return f"optional {_unread_noun(value_type.optional_type.elem_type)}"
    return {"map_type": "map", "sparse_tensor_type": "sparse tensor", "tensor_type": "tensor"}.get(
        which or "", "value of no declared type"
    )


#: the fix for scikit-learn's ZipMap output, the common map
ZIPMAP = (
    "a scikit-learn classifier's ZipMap: convert it with options={id(model): {'zipmap': False}} (skl2onnx) so "
    "the probabilities are one tensor"
)


def has_containers(proto: Any) -> bool:
    """Whether a graph input or output is a sequence or an optional."""
    return any(
        v.type.WhichOneof("value") in ("sequence_type", "optional_type")
        for v in (*proto.graph.input, *proto.graph.output)
    )


def _element(value_type: Any) -> Any:
    """The tensor type inside a seq/optional type, however deep (None where it holds a map)."""
    while value_type.WhichOneof("value") in ("sequence_type", "optional_type"):
        value_type = getattr(value_type, value_type.WhichOneof("value")).elem_type
    return value_type.tensor_type if value_type.WhichOneof("value") == "tensor_type" else None


def tensor_form(proto: Any) -> tuple[Any, dict[str, Any], list[str]]:
    """(a copy of ``proto`` whose graph inputs and outputs are tensors, the plan of what was
    converted — ``{"inputs": {name: kind}, "outputs": [[name, kind], ...]}`` with every output
    in order — and notes); InvalidSpec for a map or a sequence of sequences, input or output."""
    import onnx
    from onnx import helper

    form = onnx.ModelProto()
    form.CopyFrom(proto)
    graph = form.graph
    initializers = {t.name for t in graph.initializer}
    plan: dict[str, Any] = {"inputs": {}, "outputs": []}
    notes: list[str] = []
    builders, nodes, inputs = [], [], []
    lengths = _shared_lengths(graph)
    for value in graph.input:
        kind = kind_of(value.type)
        if value.name in initializers or kind is None or kind[0] == "tensor":
            if kind is None and value.name not in initializers:
                raise InvalidSpec(
                    f"ONNX input {value.name!r} is {unread(value.type)}: onnxparity draws tensors, sequences and "
                    "optionals of them; make it one of those, or an initializer of the file"
                )
            inputs.append(value)
            continue
        if kind[0] == "optional" and kind[1][0] == "tensor":  # ONNX Runtime and the evaluator take an array
            inputs.append(value)
            plan["inputs"][value.name] = kind
            continue
        element = _element(value.type)
        if element is None or _depth(kind) > 1:
            raise InvalidSpec(f"ONNX input {value.name!r} holds sequences of sequences: onnxparity draws one level")
        dims: list[Any] = [lengths.get(value.name, f"{value.name}_length")]
        if element.HasField("shape"):
            dims += [d.dim_value if d.HasField("dim_value") else (d.dim_param or f"{value.name}_{i}") for i, d in enumerate(element.shape.dim)]
        else:
            dims.append(f"{value.name}_size")
            notes.append(f"ONNX input {value.name!r}: its elements' shape is not declared; they are drawn 1-D")
        inner = f"{value.name}:{kind[0]}"
        inputs.append(helper.make_tensor_value_info(value.name, element.elem_type, dims))
        builders += _build(value.name, inner, optional=kind[0] == "optional")
        plan["inputs"][value.name] = kind
        _rename(graph, value.name, inner)
    outputs = []
    for value in graph.output:
        kind = kind_of(value.type)
        if kind is None:
            raise InvalidSpec(
                f"ONNX output {value.name!r} is {unread(value.type)}: onnxparity compares tensors, sequences and "
                f"optionals of them; if it is {ZIPMAP}"
            )
        if _depth(kind) > 1:
            raise InvalidSpec(
                f"ONNX output {value.name!r} is a sequence of sequences: onnxparity compares tensors, sequences of "
                "tensors and optionals of them; check the model with that output taken apart (SequenceAt)"
            )
        plan["outputs"].append([value.name, kind])
        if kind[0] == "tensor":
            outputs.append(value)
            continue
        built, names = _flatten(value.name, kind, value.name)
        nodes += built
        outputs += [helper.make_empty_tensor_value_info(name) for name in names]
    body = list(graph.node)
    graph.ClearField("node")
    graph.node.extend([*builders, *body, *nodes])  # the inputs' builders first, the outputs' last
    graph.ClearField("input")
    graph.input.extend(inputs)
    graph.ClearField("output")
    graph.output.extend(outputs)
    if any(kind[0] == "optional" for _, kind in plan["outputs"]):
        # (the reference evaluator's If returns an optional wrapped in one more list: a tensor's
        # value gains an axis, a sequence's Loop fails on it; measured with onnx 1.23; the
        # onnx-reference variant reads this)
        helper.set_model_props(form, {**{p.key: p.value for p in form.metadata_props}, EVALUATOR_CANNOT: "1"})
    return form, plan, notes


def _shared_lengths(graph: Any) -> dict[str, str]:
    """Sequence inputs that must be of one length (those one ``SequenceMap`` maps together), by
    name -> the length dim they share (the first one's)."""
    inputs = {v.name for v in graph.input if v.type.WhichOneof("value") == "sequence_type"}
    shared: dict[str, str] = {}
    for node in graph.node:
        if node.op_type == "SequenceMap":
            together = [n for n in node.input if n in inputs]
            for name in together:
                shared.setdefault(name, shared.get(together[0], f"{together[0]}_length"))
    return shared


def _depth(kind: Kind) -> int:
    """How many sequences deep the kind's tensors lie."""
    return 0 if kind[0] == "tensor" else (kind[0] == "seq") + _depth(kind[1])


def _holds_seq(kind: Kind) -> bool:
    return cast(bool, kind[0] == "seq" or (kind[0] == "optional" and kind[1][0] == "seq"))


def _build(name: str, inner: str, optional: bool = False) -> list[NodeProto]:
    """The nodes making the sequence ``inner`` (``optional``: a present optional sequence) from
    the stacked tensor input ``name``."""
    from onnx import helper

    items = f"{inner}.items" if optional else inner
    split = helper.make_node("SplitToSequence", [name], [items], axis=0, keepdims=0, name=f"{inner}.split")
    return [split, helper.make_node("Optional", [items], [inner], name=f"{inner}.wrap")] if optional else [split]


def _rename(graph: Any, old: str, new: str) -> None:
    """Every use of value ``old`` in ``graph`` and its subgraphs read ``new`` instead."""
    from onnxparity.graph.nodes import walk_nodes

    for node, _ in walk_nodes(graph):
        for i, name in enumerate(node.input):
            if name == old:
                node.input[i] = new
    for output in graph.output:
        if output.name == old:  # an input passed straight out: the output reads the container
            output.name = new


def structural_outputs(plan: Mapping[str, Any]) -> frozenset[str]:
    """The converted outputs that say how a container is made (a sequence's shapes and count,
    an optional's presence) rather than its values."""
    if not plan:
        return frozenset()
    return frozenset(n for name, kind in plan["outputs"] for n, part in _parts(name, kind) if part != "values")


def _parts(name: str, kind: Kind) -> list[tuple[str, str]]:
    """(tensor name, "values" or what of the container's structure it holds) of a converted output."""
    if kind[0] == "tensor":
        return [(name, "values")]
    if kind[0] == "seq":
        return [(f"{name}:values", "values"), (f"{name}:shapes", "shapes"), (f"{name}:count", "count")]
    if kind[1][0] == "tensor":  # its own name: ``name`` is the optional value's, defined in the graph
        return [(f"{name}:present", "present"), (f"{name}:value", "values")]
    return [(f"{name}:present", "present"), *_parts(name, kind[1])]


def output_names(plan: Mapping[str, Any]) -> list[str]:
    """The tensor outputs the converted graph has, in order."""
    return [n for name, kind in plan["outputs"] for n in _names(name, kind)]


def _names(name: str, kind: Kind) -> list[str]:
    return [n for n, _ in _parts(name, kind)]


def _flatten(source: str, kind: Kind, name: str) -> tuple[list[NodeProto], list[str]]:
    """Nodes turning the container value ``source`` into the tensors :func:`_names` lists."""
    from onnx import TensorProto, helper

    names = _names(name, kind)
    if kind[0] == "seq":  # a Loop over the elements (SequenceMap would need opset 17)
        element = kind[1][1]
        local = {k: f"{name}.{k}" for k in ("i", "cond", "e", "v", "s", "values", "shapes", "flat")}
        local.update({f"{k}_out": f"{name}.{k}_out" for k in ("cond", "values", "shapes")})
        body = helper.make_graph(  # (its names carry the output's: a subgraph may not shadow an outer name)
            [
                helper.make_node("SequenceAt", [source, local["i"]], [local["e"]]),
                helper.make_node("Reshape", [local["e"], local["flat"]], [local["v"]]),
                helper.make_node("Shape", [local["e"]], [local["s"]]),
                helper.make_node("Concat", [local["values"], local["v"]], [local["values_out"]], axis=0),
                helper.make_node("Concat", [local["shapes"], local["s"]], [local["shapes_out"]], axis=0),
                helper.make_node("Identity", [local["cond"]], [local["cond_out"]]),
            ],
            f"{name}.each",
            [
                helper.make_tensor_value_info(local["i"], TensorProto.INT64, []),
                helper.make_tensor_value_info(local["cond"], TensorProto.BOOL, []),
                helper.make_tensor_value_info(local["values"], element, [None]),
                helper.make_tensor_value_info(local["shapes"], TensorProto.INT64, [None]),
            ],
            [
                helper.make_tensor_value_info(local["cond_out"], TensorProto.BOOL, []),
                helper.make_tensor_value_info(local["values_out"], element, [None]),
                helper.make_tensor_value_info(local["shapes_out"], TensorProto.INT64, [None]),
            ],
            [helper.make_tensor(local["flat"], TensorProto.INT64, [1], [-1])],
        )
        start_values, start_shapes = _empty(f"{name}.no_values", element), _empty(f"{name}.no_shapes", TensorProto.INT64)
        always = helper.make_node(  # (the reference evaluator runs no trip of a Loop without a condition)
            "Constant", [], [f"{name}.always"], value=helper.make_tensor("t", TensorProto.BOOL, [], [True])
        )
        return [
            start_values[0],
            start_shapes[0],
            always,
            helper.make_node("SequenceLength", [source], [names[2]], name=f"{name}.count"),
            helper.make_node(
                "Loop",
                [names[2], f"{name}.always", start_values[1], start_shapes[1]],
                names[:2],
                body=body,
                name=f"{name}.each",
            ),
        ], names
    # optional: present, and the inner form where present, else its empty form
    inner = f"{name}.got"
    got = helper.make_node("OptionalGetElement", [source], [inner])
    if kind[1][0] == "tensor":
        then_nodes, then_names = [got], [inner]
    else:
        then_nodes, then_names = _flatten(inner, kind[1], f"{name}.then")
        then_nodes.insert(0, got)
    then_branch = helper.make_graph(
        then_nodes, f"{name}.then", [], [helper.make_empty_tensor_value_info(n) for n in then_names]
    )
    empties = [_empty(n, t) for n, t in zip(_names(f"{name}.else", kind[1]), _types(kind[1]))]
    else_branch = helper.make_graph(
        [e for e, _ in empties], f"{name}.else", [], [helper.make_empty_tensor_value_info(n) for _, n in empties]
    )
    return [
        helper.make_node("OptionalHasElement", [source], [names[0]], name=f"{name}.has"),
        helper.make_node("If", [names[0]], names[1:], then_branch=then_branch, else_branch=else_branch, name=f"{name}.if"),
    ], names


def _types(kind: Kind) -> list[int]:
    """The ONNX element types of :func:`_names`' tensors."""
    from onnx import TensorProto

    if kind[0] == "tensor":
        return [kind[1]]
    if kind[0] == "seq":
        return [kind[1][1], TensorProto.INT64, TensorProto.INT64]
    return [TensorProto.BOOL, *_types(kind[1])]


def _empty(name: str, element_type: int) -> tuple[Any, str]:
    """A Constant node of an empty 1-D tensor (a count: the scalar 0)."""
    from onnx import helper

    shape = [] if name.endswith(":count") else [0]
    values = [0] if not shape else []
    return helper.make_node("Constant", [], [name], value=helper.make_tensor(name, element_type, shape, values), name=name), name


# -- the same conversions in numpy, for a reference that takes and returns containers ----------
def to_reference_inputs(plan: Mapping[str, Any], feeds: Mapping[str, np.ndarray]) -> dict[str, Any]:
    """The feeds as a reference over the original graph takes them: a sequence input as the
    list of its stacked rows, an optional input as its value."""
    found = {}
    for name, array in feeds.items():
        kind = plan["inputs"].get(name)
        found[name] = array if kind is None or not _holds_seq(kind) else [np.array(row) for row in array]
    return found


def to_tensor_outputs(plan: Mapping[str, Any], outputs: Sequence[Any]) -> list[np.ndarray]:
    """A reference's outputs of the original graph (in order) in the converted graph's form."""
    found: list[np.ndarray] = []
    for (_, kind), value in zip(plan["outputs"], outputs):
        found += _as_tensors(kind, value)
    return found


def _as_tensors(kind: Kind, value: Any) -> list[np.ndarray]:
    from onnxparity.spec.dtypes import ONNX_DTYPES, numpy_dtype

    if kind[0] == "tensor":
        return [np.asarray(value)]
    if kind[0] == "seq":
        items = [np.asarray(v) for v in (value or [])]
        dtype = numpy_dtype(ONNX_DTYPES.get(kind[1][1], "float32"))
        values = np.concatenate([v.reshape(-1) for v in items]) if items else np.zeros(0, dtype)
        shapes = np.asarray([d for v in items for d in v.shape], dtype=np.int64)
        return [values.astype(dtype, copy=False), shapes, np.asarray(len(items), dtype=np.int64)]
    present = value is not None
    if present and kind[1][0] == "tensor" and isinstance(value, (list, tuple)) and len(value) == 1:
        value = value[0]  # (onnx's reference evaluator gives an optional tensor as a one-element list)
    inner = _as_tensors(kind[1], value) if present else _empties(kind[1])
    return [np.asarray(present), *inner]


def _empties(kind: Kind) -> list[np.ndarray]:
    from onnxparity.spec.dtypes import ONNX_DTYPES, numpy_dtype

    if kind[0] == "tensor":
        return [np.zeros(0, numpy_dtype(ONNX_DTYPES.get(kind[1], "float32")))]
    if kind[0] == "seq":
        return [np.zeros(0, numpy_dtype(ONNX_DTYPES.get(kind[1][1], "float32"))), np.zeros(0, np.int64), np.asarray(0, np.int64)]
    return [np.asarray(False), *_empties(kind[1])]
