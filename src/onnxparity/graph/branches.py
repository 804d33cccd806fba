"""The branching nodes inside a network — ``Clip`` bounds, ``Relu`` and kin, comparisons against
constants, ``Where``/``If`` conditions — and the sides of each: what the search's inner coverage
(:mod:`onnxparity.search.coverage`) watches. Reads the graph; runs nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from collections.abc import Set as AbstractSet
from typing import NamedTuple

import numpy as np
import onnx

from onnxparity.graph.boundaries import KINKS, constant_values, graph_constants
from onnxparity.graph.nodes import node_source

#: at most this many inner branching nodes are watched per model (in graph order)
MAX_BRANCHES = 256


_COMPARISONS = {"Greater", "Less", "GreaterOrEqual", "LessOrEqual", "Equal"}


class Side(NamedTuple):
    """One side of an inner branch: ``test`` is "below", "above" or "equal" (``value``), or
    "true"/"false" (a condition); ``label`` is how a line names it when it was never reached."""

    test: str
    value: float
    label: str


class Branch(NamedTuple):
    """An inner node that branches on the values of ``tensor`` (``source``: the framework's
    module or layer it came from, where the exporter recorded it)."""

    node: str
    op_type: str
    tensor: str
    sides: tuple[Side, ...]
    source: str | None = None

    def describe(self) -> str:
        return f"{self.op_type} {self.node!r}" + (f" ({self.source})" if self.source else "")


def _bounds(values: list[float], labels: tuple[str, str] | None = None) -> tuple[Side, ...]:
    sides = []
    for v in values[:4]:
        below, above = labels or (f"no value below {v:.6g}", f"no value above {v:.6g}")
        sides += [Side("below", v, below), Side("above", v, above)]
    return tuple(sides)


def _clip_bounds(node: onnx.NodeProto, constants: Mapping[str, np.ndarray]) -> tuple[Side, ...]:
    attributes = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
    low, high = attributes.get("min"), attributes.get("max")  # opset < 11
    if len(node.input) > 1 and node.input[1] in constants and constants[node.input[1]].size == 1:
        low = float(constants[node.input[1]].ravel()[0])
    if len(node.input) > 2 and node.input[2] in constants and constants[node.input[2]].size == 1:
        high = float(constants[node.input[2]].ravel()[0])
    sides = []
    if low is not None and np.isfinite(low):
        sides.append(Side("below", float(low), f"lower bound {float(low):.6g} never reached"))
    if high is not None and np.isfinite(high):
        sides.append(Side("above", float(high), f"upper bound {float(high):.6g} never reached"))
    return tuple(sides)


def _branch(node: onnx.NodeProto, constants: Mapping[str, np.ndarray]) -> tuple[str, tuple[Side, ...]] | None:
    """(the tensor ``node`` branches on, its sides), or None where it does not branch on one
    non-constant tensor against constants."""
    op = node.op_type
    if op in KINKS and node.input:
        return node.input[0], _bounds(list(KINKS[op]))
    if op == "Clip" and node.input:
        return node.input[0], _clip_bounds(node, constants)
    if op in ("Where", "If") and node.input:
        return node.input[0], (
            Side("true", 1, "condition never true"),
            Side("false", 0, "condition never false"),
        )
    if op in _COMPARISONS | {"Max", "Min"} and len(node.input) == 2:
        first, second = node.input
        tensor, constant = (first, second) if second in constants else (second, first)
        if constant not in constants or tensor in constants:
            return None
        values = constant_values(constants[constant])
        sides = _bounds(sorted(set(values), key=abs))
        if op == "Equal":
            sides += tuple(Side("equal", v, f"no value equal to {v:.6g}") for v in values[:4])
        return tensor, sides
    return None


def harvest_branches(proto: onnx.ModelProto, skip: AbstractSet[str] = frozenset()) -> list[Branch]:
    """The main graph's inner branching nodes (not those in ``skip``: the input-level sites'
    nodes), in graph order, at most :data:`MAX_BRANCHES`."""
    graph = proto.graph
    constants = graph_constants(graph)
    initializers = {t.name for t in graph.initializer}
    found = []
    for index, node in enumerate(graph.node):
        name = node.name or f"{node.op_type}#{index}"
        if (node.name or node.op_type) in skip:
            continue
        branch = _branch(node, constants)
        if branch is None or not branch[1]:
            continue
        tensor, sides = branch
        if not tensor or tensor in constants or tensor in initializers:
            continue
        found.append(Branch(name, node.op_type, tensor, sides, node_source(node)))
        if len(found) >= MAX_BRANCHES:
            break
    return found
