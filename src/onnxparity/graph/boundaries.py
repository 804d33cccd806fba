"""The values an ONNX graph branches on, as boundaries of the inputs that reach them: what the
``boundary`` pattern draws at and next to (:mod:`.fills`).

Harvested: the constant operands of ``Clip`` and of comparisons, ``Where``, ``Max`` and
``Min``; activation kinks (``Relu`` and kin at 0, ``HardSigmoid``/``HardSwish`` where they
saturate); and tree ensembles' split thresholds, per feature (``ai.onnx.ml`` trees). A value
belongs to an input when the node sees that input directly or through shape-only and scalar
affine ops (``Cast``, ``Reshape``, ``Add``/``Sub``/``Mul``/``Div`` by a constant, ...): the
threshold is then mapped back to the input's scale (``x * 255 > 128`` makes ``128 / 255`` a
boundary of ``x``). A tree's feature ``j`` is column ``j`` of a 2-D input. Reads the graph
only; knows nothing of frameworks or runtimes.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from typing import NamedTuple

import numpy as np
import onnx
from onnx import numpy_helper

from onnxparity.graph.domains import output_bounds
from onnxparity.spec import ParitySpec

#: at most this many boundaries per input and per column (the smallest in magnitude first).
MAX_BOUNDARIES = 64

_BRANCHING = {"Clip", "Greater", "Less", "GreaterOrEqual", "LessOrEqual", "Equal", "Where", "Max", "Min"}
KINKS = {"Relu": (0.0,), "LeakyRelu": (0.0,), "PRelu": (0.0,), "Elu": (0.0,), "Celu": (0.0,)}
KINKS |= {"Selu": (0.0,), "ThresholdedRelu": (1.0,), "HardSwish": (-3.0, 3.0), "Shrink": (-0.5, 0.5)}
#: ops whose output holds the same values as their first input (in another shape or type)
_SAME_VALUES = {"Cast", "Identity", "Reshape", "Flatten", "Squeeze", "Unsqueeze", "Transpose", "Expand"}
_SAME_VALUES |= {"Slice", "Gather", "Concat", "Tile", "CastLike"}
_TREES = {"TreeEnsembleClassifier", "TreeEnsembleRegressor", "TreeEnsemble"}


def graph_constants(graph: onnx.GraphProto) -> dict[str, np.ndarray]:
    found = {}
    for tensor in graph.initializer:
        if _small(tensor.dims):
            try:
                found[tensor.name] = numpy_helper.to_array(tensor)
            except Exception:  # external data not loaded, an odd type: not a boundary we can read
                continue
    for node in graph.node:
        if node.op_type == "Constant" and node.output:
            for attribute in node.attribute:
                if attribute.name == "value" and _small(attribute.t.dims):
                    found[node.output[0]] = numpy_helper.to_array(attribute.t)
                elif attribute.name in ("value_float", "value_int"):
                    found[node.output[0]] = np.asarray(onnx.helper.get_attribute_value(attribute))
    return found


def _small(dims) -> bool:
    return int(np.prod(dims, dtype=np.int64)) <= MAX_BOUNDARIES


def constant_values(array: np.ndarray) -> list[float]:
    if array.dtype.kind not in "iuf":
        return []
    flat = array.astype(np.float64).ravel()
    return [float(v) for v in flat[np.isfinite(flat)]]


def _affine_step(node: onnx.NodeProto, source: str, constants) -> tuple[float, float] | None:
    """(scale, shift) of ``node``'s output as a function of its input ``source``, for the ops
    that keep values (1, 0) or apply a scalar affine map; None for any other."""
    if node.op_type in _SAME_VALUES and node.input and node.input[0] == source:
        return 1.0, 0.0
    if node.op_type not in ("Add", "Sub", "Mul", "Div") or len(node.input) != 2:
        return None
    first, second = node.input
    other = second if first == source else first if second == source else None
    if other is None or other not in constants or constants[other].size != 1:
        return None
    k = float(constants[other].ravel()[0])
    if node.op_type == "Add":
        return 1.0, k
    if node.op_type == "Mul":
        return (k, 0.0) if k != 0 else None
    if node.op_type == "Sub":
        return (1.0, -k) if first == source else (-1.0, k)
    return (1.0 / k, 0.0) if first == source and k != 0 else None


def _tree_thresholds(node: onnx.NodeProto) -> dict[int, list[float]]:
    attributes = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
    features = attributes.get("nodes_featureids", [])
    values = attributes.get("nodes_values") or attributes.get("nodes_values_as_tensor") or []
    if isinstance(values, onnx.TensorProto):
        values = numpy_helper.to_array(values).tolist()
    modes = attributes.get("nodes_modes", [])
    if node.op_type == "TreeEnsemble":  # ai.onnx.ml opset 5
        features = attributes.get("nodes_featureids", [])
        splits = attributes.get("nodes_splits")
        values = numpy_helper.to_array(splits).tolist() if splits is not None else []
        modes = []
    found: dict[int, list[float]] = {}
    for i, (feature, value) in enumerate(zip(features, values)):
        mode = modes[i] if i < len(modes) else b""
        if (mode.decode() if isinstance(mode, bytes) else str(mode)) == "LEAF":
            continue
        found.setdefault(int(feature), []).append(float(value))
    return found


def _walk(name: str, constants, readers) -> Iterator[tuple[onnx.NodeProto, float, float]]:
    """The nodes that read ``name``'s values, directly or through value-keeping and scalar
    affine ops, each with the (scale, shift) that maps the input to what the node sees."""
    stack, seen = [(name, 1.0, 0.0)], set()
    while stack:
        value, scale, shift = stack.pop()
        if value in seen:
            continue
        seen.add(value)
        for node in readers.get(value, ()):
            yield node, scale, shift
            step = _affine_step(node, value, constants)
            if step is not None and node.output:
                stack.append((node.output[0], step[0] * scale, step[0] * shift + step[1]))


class Site(NamedTuple):
    """One boundary of one input: the node that branches on it, and where (in the input's
    values; ``column``: a last-axis position, for a tree's feature)."""

    node: str
    op_type: str
    column: int | None
    value: float

    def describe(self, input_name: str) -> str:
        where = f"{input_name}[..., {self.column}]" if self.column is not None else input_name
        return f"{self.op_type} {self.node!r} at {where} = {self.value:.6g}"


def harvest_sites(proto: onnx.ModelProto) -> dict[str, list[Site]]:
    """Per graph input: every boundary the graph branches on there, with its node."""
    graph = proto.graph
    constants = graph_constants(graph)
    readers: dict[str, list[onnx.NodeProto]] = {}
    for node in graph.node:
        for value in node.input:
            readers.setdefault(value, []).append(node)
    found: dict[str, list[Site]] = {}
    for graph_input in graph.input:
        if graph_input.name in constants:
            continue
        sites: dict[tuple, Site] = {}
        for node, scale, shift in _walk(graph_input.name, constants, readers):
            seen: list[tuple[int | None, float]] = []
            if node.op_type in _BRANCHING:
                seen += [
                    (None, v) for name in node.input if name in constants for v in constant_values(constants[name])
                ]
            elif node.op_type in KINKS:
                seen += [(None, v) for v in KINKS[node.op_type]]
            elif node.op_type in _TREES:
                seen += [(c, v) for c, values in _tree_thresholds(node).items() for v in values]
            for column, value in seen:  # what the node sees is scale * x + shift
                if scale != 0:
                    site = Site(node.name or node.op_type, node.op_type, column, (value - shift) / scale)
                    sites.setdefault((site.column, site.value), site)
        if sites:
            found[graph_input.name] = list(sites.values())
    return found


def harvest(proto: onnx.ModelProto) -> dict[str, tuple]:
    """Per graph input: the (column or None, value) boundaries the graph branches on there."""
    return boundaries_of(harvest_sites(proto))


def boundaries_of(sites: dict[str, list[Site]]) -> dict[str, tuple]:
    """The (column or None, value) boundaries of each input's sites, capped."""
    return {name: _capped({(s.column, s.value) for s in found}) for name, found in sites.items()}


def _capped(pairs: set[tuple[int | None, float]]) -> tuple:
    by_column: dict[int | None, list[float]] = {}
    for column, value in pairs:
        by_column.setdefault(column, []).append(value)
    kept = [(c, v) for c, values in by_column.items() for v in sorted(values, key=abs)[:MAX_BOUNDARIES]]
    return tuple(sorted(kept, key=lambda p: (-1 if p[0] is None else p[0], p[1])))


def with_graph_boundaries(spec: ParitySpec, harvested: dict[str, tuple]) -> ParitySpec:
    """``spec`` with each numeric input's boundaries extended by ``harvested`` (:func:`harvest`;
    unchanged where it has none for an input)."""
    inputs = []
    for item in spec.inputs:
        extra = harvested.get(item.name, ())
        if extra and item.kind == "values" and item.dtype not in ("str", "bool"):
            item = replace(item, boundaries=tuple(item.boundaries) + tuple(extra))
        inputs.append(item)
    return spec if inputs == list(spec.inputs) else replace(spec, inputs=tuple(inputs))


class BoundaryCache:
    """Per exported model and declared inputs: the spec with the graph's boundaries, and the
    sites coverage is measured on; read from the graph once."""

    def __init__(self) -> None:
        self._found: dict[tuple, tuple] = {}

    def searched(
        self, key: str, path: str, spec: ParitySpec
    ) -> tuple[ParitySpec, dict[str, list[Site]], list[tuple[str, str, float]]]:
        """(``spec`` with the boundaries added to its inputs, the sites per input name, and the
        outputs whose size an input's values set: :func:`onnxparity.graph.domains.output_bounds` at
        the largest dims, for the resource guard), the graph read once for all three."""
        cache_key = (key, spec.input_digest)  # the inputs only: tolerances and options vary
        if cache_key not in self._found:
            proto = onnx.load(path, load_external_data=False)
            sites = harvest_sites(proto)
            largest = {name: spec.dims[name].last for name in spec.symbolic_dims}
            self._found[cache_key] = (
                with_graph_boundaries(spec, boundaries_of(sites)).inputs,
                sites,
                output_bounds(proto, spec.inputs, largest),
            )
        inputs, sites, bounds = self._found[cache_key]
        return (spec if inputs == spec.inputs else replace(spec, inputs=inputs)), sites, bounds
