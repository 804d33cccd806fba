"""The smallest model that shows a divergence: the nodes that compute the first diverging value
from agreeing ones, cut out of the graph with their boundary values as graph inputs (and the
initializers and constants they read), plus the values to run it with and the framework's
value it should produce. Polygraphy's ``debug reduce`` bisects a model toward such a graph;
here the localization already names the nodes, so the cut is exact."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import onnx
from onnx import helper

from onnxparity.forensics import Divergence
from onnxparity.graph.nodes import node_names


@dataclass(frozen=True)
class Subgraph:
    model: onnx.ModelProto
    #: graph input name -> value (the framework's where it paired, else ONNX Runtime's)
    inputs: dict[str, np.ndarray]
    #: the diverging tensor -> the framework's value of it
    expected: dict[str, np.ndarray]
    #: the diverging tensor -> the ONNX model's value of it
    actual: dict[str, np.ndarray]
    nodes: tuple[str, ...]
    #: whose values ``inputs`` and ``expected`` are, as the reproducer's README names them
    inputs_by: str = "the framework's"
    expected_by: str = "the framework's"


def _info(name: str, value: np.ndarray) -> onnx.ValueInfoProto:
    value = np.asarray(value)
    return helper.make_tensor_value_info(
        name, helper.np_dtype_to_tensor_dtype(value.dtype), list(value.shape)
    )


def extract(
    proto: onnx.ModelProto,
    divergence: Divergence,
    expected: Mapping[str, np.ndarray],
    actual: Mapping[str, np.ndarray],
    feeds: Mapping[str, np.ndarray],
    by: tuple[str, str] = ("the framework's", "the framework's"),
) -> Subgraph | None:
    """The nodes of ``divergence`` as a model of their own; None where a boundary value is
    unknown (nothing is guessed)."""
    graph = proto.graph
    names = node_names(graph.node)
    wanted = set(divergence.nodes or (divergence.node,))
    span = [node for name, node in zip(names, graph.node) if name in wanted]
    produced = {out for node in span for out in node.output}
    initializers = {t.name: t for t in graph.initializer}
    constants = {out: node for node in graph.node if node.op_type == "Constant" for out in node.output}
    inputs, kept, extra_nodes = {}, [], []
    for node in span:
        for value in node.input:
            if not value or value in produced or value in inputs:
                continue
            if value in initializers:
                if initializers[value] not in kept:
                    kept.append(initializers[value])
            elif value in constants:
                if constants[value] not in extra_nodes:
                    extra_nodes.append(constants[value])
            else:
                known = next((v[value] for v in (expected, feeds, actual) if value in v), None)
                if known is None:
                    return None
                inputs[value] = np.asarray(known)
    tensor = divergence.tensor
    if tensor not in expected or tensor not in actual:
        return None
    sub = helper.make_graph(
        [*extra_nodes, *span],
        f"first_divergence_{divergence.op_type}",
        [_info(n, v) for n, v in inputs.items()],
        [_info(tensor, expected[tensor])],
        kept,
    )
    model = helper.make_model(sub, opset_imports=list(proto.opset_import), ir_version=proto.ir_version)
    model.functions.extend(proto.functions)
    return Subgraph(
        model,
        inputs,
        {tensor: np.asarray(expected[tensor])},
        {tensor: np.asarray(actual[tensor])},
        tuple(n.name for n in span),
        *by,
    )
