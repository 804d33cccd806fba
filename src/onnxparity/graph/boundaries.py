"""The values an ONNX graph branches on, as boundaries of the inputs that reach them: what the
``boundary`` pattern draws at and next to (:mod:`.fills`).

Harvested: the constant operands of ``Clip`` and of comparisons, ``Where``, ``Max`` and
``Min``; activation kinks (``Relu`` and kin at 0, ``HardSigmoid``/``HardSwish`` where they
saturate), ``Binarizer``'s threshold; and tree ensembles' split thresholds, per feature
(``ai.onnx.ml`` trees). A value belongs to an input when the node sees that input directly or
through the ops :mod:`.columns` follows — shape-only ops, affine ops by a constant (``x * 255``,
a ``Scaler``), and column selection (``Gather``/``ArrayFeatureExtractor``, ``Slice``,
``Split``, ``Concat`` along the last axis: a ``ColumnTransformer``'s plumbing): the threshold is
then mapped back to the input's scale (``x * 255 > 128`` makes ``128 / 255`` a boundary of
``x``) and to the column it came from (a KBinsDiscretizer's bin edges of column 2 are column 2's
boundaries; a tree's feature ``j`` is whichever input column the tree's input holds at ``j``). A
value compared with every column alike is a boundary of all of them (column None). Reads the
graph only; knows nothing of frameworks or runtimes.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, NamedTuple

import numpy as np
import onnx
from onnx import numpy_helper

from onnxparity.graph.columns import Trace, Widths, step
from onnxparity.graph.domains import output_bounds
from onnxparity.graph.domains.types import attribute
from onnxparity.spec import ParitySpec

if TYPE_CHECKING:
    from onnxparity.spec import Input

#: (column or None, value) boundaries of one input, as :func:`harvest` gives them
Boundaries = tuple[tuple[int | None, float], ...]

#: at most this many boundaries per input and per column (the smallest in magnitude first).
MAX_BOUNDARIES = 64

_BRANCHING = {"Clip", "Greater", "Less", "GreaterOrEqual", "LessOrEqual", "Equal", "Where", "Max", "Min"}
KINKS: dict[str, tuple[float, ...]] = {
    "Relu": (0.0,), "LeakyRelu": (0.0,), "PRelu": (0.0,), "Elu": (0.0,), "Celu": (0.0,)
}
KINKS |= {"Selu": (0.0,), "ThresholdedRelu": (1.0,), "HardSwish": (-3.0, 3.0), "Shrink": (-0.5, 0.5)}
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
                elif attribute.name in ("value_float", "value_int", "value_floats", "value_ints"):
                    found[node.output[0]] = np.asarray(onnx.helper.get_attribute_value(attribute))
    return found


def _small(dims: Sequence[int]) -> bool:
    return int(np.prod(dims, dtype=np.int64)) <= MAX_BOUNDARIES


def constant_values(array: np.ndarray) -> list[float]:
    if array.dtype.kind not in "iuf":
        return []
    flat = array.astype(np.float64).ravel()
    return [float(v) for v in flat[np.isfinite(flat)]]


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


def _traced(
    graph: onnx.GraphProto, item: onnx.ValueInfoProto, constants: Mapping[str, np.ndarray], width: Widths
) -> Iterator[tuple[onnx.NodeProto, Trace]]:
    """The nodes that read ``item``'s values (directly, or through the value-keeping, affine
    and column-selecting ops of :mod:`.columns`), in graph order, each with how what it reads
    holds the input's values."""
    traces = {item.name: Trace.start(item)}
    for node in graph.node:
        read = {i: traces[v] for i, v in enumerate(node.input) if v in traces}
        if not read:
            continue
        for trace in dict.fromkeys(read.values()):
            yield node, trace
        for name, trace in step(node, read, constants, width):
            traces.setdefault(name, trace)


def _applied(trace: Trace, array: np.ndarray) -> list[tuple[int | None, float | None]]:
    """(column, input value) of each constant a node compares ``trace``'s value with: one per
    position along the last axis where the constant has one per position, else each everywhere."""
    positions = trace.one_by_one() if array.ndim and array.shape[-1] == trace.size != 1 else None
    if positions is not None:
        return [
            (s.column, s.inverse(v))
            for j, s in enumerate(positions)
            if s is not None
            for v in constant_values(array[..., j])
        ]
    return [(s.column, s.inverse(v)) for v in constant_values(array) for s in trace.everywhere()]


def _branched(
    node: onnx.NodeProto, trace: Trace, constants: Mapping[str, np.ndarray]
) -> list[tuple[int | None, float]]:
    """The (column or None, input value) boundaries ``node`` branches on, for the input ``trace`` follows."""
    op = node.op_type
    found: list[tuple[int | None, float | None]] = []
    if op in _BRANCHING:
        found = [p for name in node.input if name in constants for p in _applied(trace, constants[name])]
    elif op in KINKS or op == "Binarizer":
        values: Sequence[float] = KINKS.get(op) or (float(attribute(node, "threshold", 0.0)),)
        found = [(s.column, s.inverse(v)) for v in values for s in trace.everywhere()]
    elif op in _TREES:
        for feature, values in _tree_thresholds(node).items():
            source = trace.at(feature)
            found += [(source.column, source.inverse(v)) for v in values] if source is not None else []
    return [(c, v) for c, v in found if v is not None and np.isfinite(v)]


def _collapsed(pairs: list[tuple[int | None, float]], columns: int | None) -> list[tuple[int | None, float]]:
    """``pairs`` with a value found in every one of the input's ``columns`` as one for all (None)."""
    if not columns:
        return pairs
    where: dict[float, set[int | None]] = {}
    for column, value in pairs:
        where.setdefault(value, set()).add(column)
    everywhere = {v for v, found in where.items() if found >= set(range(columns))}
    return [(c, v) for c, v in pairs if v not in everywhere] + [(None, v) for v in sorted(everywhere)]



def _columns(item: onnx.ValueInfoProto) -> int | None:
    """How many columns (last-axis positions) a graph input has, where fixed."""
    dims = item.type.tensor_type.shape.dim if item.type.HasField("tensor_type") else ()
    return int(dims[-1].dim_value) if dims and dims[-1].HasField("dim_value") else None


class _Widths:
    """The size of each value's last axis where the graph fixes it: declared, or found by ONNX's
    shape inference (run once, when a Concat needs a width its own traces do not give)."""

    def __init__(self, proto: onnx.ModelProto) -> None:
        self.proto = proto
        self.known: dict[str, int] | None = None

    def __call__(self, name: str) -> int | None:
        if self.known is None:
            self.known = {t.name: int(t.dims[-1]) if t.dims else 1 for t in self.proto.graph.initializer}
            graph = self.proto.graph
            try:
                graph = onnx.shape_inference.infer_shapes(self.proto).graph
            except Exception:  # noqa: BLE001 - an op it does not know, a graph too large: declared shapes only
                pass
            for info in (*graph.input, *graph.value_info, *graph.output):
                dims = info.type.tensor_type.shape.dim if info.type.HasField("tensor_type") else ()
                if dims and dims[-1].HasField("dim_value"):
                    self.known.setdefault(info.name, int(dims[-1].dim_value))
        return self.known.get(name)


class Site(NamedTuple):
    """One boundary of one input: the node that branches on it, and where (in the input's
    values; ``column``: a last-axis position, for a tree's feature)."""

    node: str
    op_type: str
    column: int | None
    value: float
    #: whether the side below, and the side above, lie past what the graph lets the input hold
    #: (:mod:`onnxparity.graph.domains`: an index of a 10-row Gather is never above 9)
    beyond: tuple[bool, bool] = (False, False)

    def describe(self, input_name: str) -> str:
        where = f"{input_name}[..., {self.column}]" if self.column is not None else input_name
        return f"{self.op_type} {self.node!r} at {where} = {self.value:.6g}"


def harvest_sites(proto: onnx.ModelProto) -> dict[str, list[Site]]:
    """Per graph input: every boundary the graph branches on there, with its node."""
    graph = proto.graph
    constants = graph_constants(graph)
    width = _Widths(proto)
    found: dict[str, list[Site]] = {}
    for graph_input in graph.input:
        if graph_input.name in constants:
            continue
        sites: dict[tuple[int | None, float], Site] = {}
        columns = _columns(graph_input)
        for node, trace in _traced(graph, graph_input, constants, width):
            found_here = _branched(node, trace, constants)
            for column, value in found_here if node.op_type in _TREES else _collapsed(found_here, columns):
                site = Site(node.name or node.op_type, node.op_type, column, value)
                sites.setdefault((site.column, site.value), site)
        if sites:
            found[graph_input.name] = list(sites.values())
    return found


def harvest(proto: onnx.ModelProto) -> dict[str, Boundaries]:
    """Per graph input: the (column or None, value) boundaries the graph branches on there."""
    return boundaries_of(harvest_sites(proto))


def boundaries_of(sites: dict[str, list[Site]]) -> dict[str, Boundaries]:
    """The (column or None, value) boundaries of each input's sites, capped."""
    return {name: _capped({(s.column, s.value) for s in found}) for name, found in sites.items()}


def _capped(pairs: set[tuple[int | None, float]]) -> Boundaries:
    by_column: dict[int | None, list[float]] = {}
    for column, value in pairs:
        by_column.setdefault(column, []).append(value)
    kept = [(c, v) for c, values in by_column.items() for v in sorted(values, key=abs)[:MAX_BOUNDARIES]]
    return tuple(sorted(kept, key=lambda p: (-1 if p[0] is None else p[0], p[1])))


def with_graph_boundaries(spec: ParitySpec, harvested: Mapping[str, Boundaries]) -> ParitySpec:
    """``spec`` with each numeric input's boundaries extended by ``harvested`` (:func:`harvest`;
    unchanged where it has none for an input, and for an input with ``choices=``: its whole
    values are given, nothing is drawn near a boundary)."""
    inputs = []
    for item in spec.inputs:
        extra = harvested.get(item.name, ())
        if extra and item.kind == "values" and item.dtype not in ("str", "bool") and item.choices is None:
            item = replace(item, boundaries=tuple(item.boundaries) + tuple(extra))
        inputs.append(item)
    return spec if inputs == list(spec.inputs) else replace(spec, inputs=tuple(inputs))


class BoundaryCache:
    """Per exported model and declared inputs: the spec with the graph's boundaries, and the
    sites coverage is measured on; read from the graph once."""

    def __init__(self) -> None:
        self._found: dict[
            tuple[str, str], tuple[tuple[Input, ...], dict[str, list[Site]], list[tuple[str, str, float]]]
        ] = {}

    def searched(
        self, key: str, path: str, spec: ParitySpec
    ) -> tuple[ParitySpec, dict[str, list[Site]], list[tuple[str, str, float]]]:
        """(``spec`` with the boundaries added to its inputs, the sites per input name, and the
        outputs whose size an input's values set: :func:`onnxparity.graph.domains.output_bounds` at
        the largest dims, for the resource guard), the graph read once for all three."""
        cache_key = (key, spec.input_digest)  # the inputs only: tolerances and options vary
        if cache_key not in self._found:
            proto = onnx.load(path, load_external_data=False)
            sites = _within_graph_domains(harvest_sites(proto), proto, spec)
            largest = {name: spec.dims[name].last for name in spec.symbolic_dims}
            self._found[cache_key] = (
                with_graph_boundaries(spec, boundaries_of(sites)).inputs,
                sites,
                output_bounds(proto, spec.inputs, largest),
            )
        inputs, sites, bounds = self._found[cache_key]
        return (spec if inputs == spec.inputs else replace(spec, inputs=inputs)), sites, bounds


def _within_graph_domains(sites: dict[str, list[Site]], proto: onnx.ModelProto, spec: ParitySpec) -> dict[str, list[Site]]:
    """``sites`` with the sides past each input's graph domain marked (:attr:`Site.beyond`)."""
    from onnxparity.graph.domains import Domain, derive

    try:
        found = derive(proto, spec.inputs)
    except Exception:  # reading domains is a help: a graph it cannot read marks nothing
        return sites
    marked = {}
    for name, listed in sites.items():
        domain = found.get(name)
        if not isinstance(domain, Domain):
            marked[name] = listed
            continue
        marked[name] = [s._replace(beyond=(not domain.low < s.value, not domain.high > s.value)) for s in listed]
    return marked
