"""One ONNX graph, two ways of running it: where they first part on a failing input.

- **ONNX Runtime against the specification** (:func:`localize_spec`): the ONNX reference
  evaluator (``onnx.reference``, the spec's semantics in numpy) and ONNX Runtime without graph
  optimization both return every value of the graph; the first node whose output differs while
  its inputs agree is named. :func:`spec_verdict` runs a localized export divergence's subgraph
  through the evaluator: it says whether the spec computes that node as the framework does (the
  runtime parts from the spec) or as ONNX Runtime does (the graph means something else).
- **ONNX Runtime's graph optimizer** (:func:`localize_optimizer`): an optimized session cannot
  return a value it fused away (listing a value as an output stops the fusions around it), so
  the graph is bisected instead, as Polygraphy's ``debug reduce`` does: the shortest prefix of
  the graph (in topological order, every value it leaves for later nodes an output) whose
  optimized and unoptimized runs part, then the shortest tail of that prefix (its inputs fed
  the unoptimized values) that still does. Its last node computes the diverging value; the
  nodes of the tail it depends on are what the optimizer rewrote, and the optimized tail's ops
  say into what.

The built-in variants' explainers (:mod:`.by_variant`) of this kind are here too:
:func:`explain_optimized` for ``ort-cpu`` and :func:`explain_reference` for ``onnx-reference``.
"""

from __future__ import annotations

import os
import tempfile
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, cast

import numpy as np
import onnx

from onnxparity.forensics import Divergence
from onnxparity.forensics.export import off, walk
from onnxparity.graph.files import load_model
from onnxparity.graph.nodes import node_names, node_source, with_outputs
from onnxparity.spec import DEFAULT_TOLERANCE
from onnxparity.spec.budgets import is_standard_domain
from onnxparity.variants import probe

#: the whole graph goes through the (pure Python) reference evaluator only up to this many nodes
SPEC_NODES = 400
#: the most nodes an optimizer rewrite is searched back over from the value it changes
MAX_REWRITE = 64
#: the domains the reference evaluator implements
_SPEC_DOMAINS = ("ai.onnx.ml",)


def spec_runs(model: Any) -> bool:
    """Whether the reference evaluator implements every node's domain (not whether it
    implements every op: that shows when it runs)."""
    return all(is_standard_domain(n.domain) or n.domain in _SPEC_DOMAINS for n in model.graph.node)


def spec_values(model: Any, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Every value of ``model`` on ``feeds`` by the ONNX reference evaluator."""
    from onnx.reference import ReferenceEvaluator

    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        # (with intermediate=True the evaluator returns a dict of every value by name)
        values = cast("dict[str, Any]", ReferenceEvaluator(model).run(None, dict(feeds), intermediate=True))
    return {name: np.asarray(value) for name, value in values.items() if name}


def ort_values(
    model: Any, feeds: Mapping[str, np.ndarray], optimization: str = "none", names: Iterable[str] | None = None
) -> dict[str, np.ndarray]:
    """``names`` (default: every node output) of ``model`` on ``feeds``, ONNX Runtime on the CPU
    at graph optimization ``optimization`` ("none" keeps every value)."""
    if names is None:
        names = {out for node in model.graph.node for out in node.output if out}
    return probe.tensor_values(with_outputs(model, set(names)), feeds, optimization=optimization)


def localize_spec(
    model: Any, feeds: Mapping[str, np.ndarray], tolerance: Any, *, reference_is_variant: bool = False
) -> tuple[Divergence | None, list[str], dict[str, np.ndarray]]:
    """(where ONNX Runtime (no graph optimization) and the reference evaluator first part on
    ``feeds``, the diagnosis lines, the evaluator's values). ``reference_is_variant``: the
    evaluator's values are the ones under test (the ``onnx-reference`` variant failed), so
    ONNX Runtime's are the expected side."""
    ours = ort_values(model, feeds)
    spec = spec_values(model, feeds)
    expected, actual = (ours, spec) if reference_is_variant else (spec, ours)
    found = walk(model.graph, expected, actual, tolerance, unobserved="the two runs share no value in between")
    if found is None:
        return (
            None,
            ["ONNX Runtime and the ONNX reference evaluator (the spec) agree on every value of this input"],
            spec,
        )
    who = "onnx-reference" if reference_is_variant else "ONNX Runtime"
    other = "ONNX Runtime's CPU" if reference_is_variant else "the ONNX reference evaluator (the spec)"
    return found, [f"{who} against {other} on this input (no graph optimization):", found.line()], spec


def explain_reference(runnable: Any, feeds: Mapping[str, np.ndarray], tolerance: Any = None) -> list[Any]:
    """``onnx-reference``'s explainer: where the spec's values (``runnable.model`` in the
    reference evaluator) first part from ONNX Runtime's on a failing input (a reference-evaluator
    defect, or a runtime that agrees with the framework but not the spec)."""
    try:
        found, lines, _ = localize_spec(
            runnable.model, feeds, tolerance or DEFAULT_TOLERANCE, reference_is_variant=True
        )
    except Exception:  # the explanation is a bonus: never let it mask the verdict
        return []
    return [*lines, found] if found is not None else lines


def spec_verdict(subgraph: Any, tolerance: Any) -> tuple[list[str], Divergence | None, Any]:
    """What the spec says of a localized export divergence: (lines, the node within the span
    where ONNX Runtime parts from the spec, that node cut out). Its subgraph runs in the
    reference evaluator on the same inputs, and whether the spec's value is the framework's or
    ONNX Runtime's decides whom to suspect. Nothing where the evaluator cannot run it."""
    if subgraph is None or not spec_runs(subgraph.model):
        return [], None, None
    try:
        spec = spec_values(subgraph.model, subgraph.inputs)
    except Exception:  # an op the evaluator lacks: the spec has no say here
        return [], None, None
    (tensor, expected), actual = next(iter(subgraph.expected.items())), next(iter(subgraph.actual.values()))
    if tensor not in spec:
        return [], None, None
    framework, runtime = off(expected, spec[tensor], tolerance), off(actual, spec[tensor], tolerance)
    if not runtime[2]:
        return (
            [
                "the ONNX reference evaluator (the spec) computes this value as ONNX Runtime does: the exported "
                "graph means something other than the framework's code here"
            ],
            None,
            None,
        )
    if framework[2]:
        return (
            [
                "the ONNX reference evaluator (the spec) agrees with neither here (max abs error "
                f"{framework[0]:.3g} from the framework's value, {runtime[0]:.3g} from ONNX Runtime's)"
            ],
            None,
            None,
        )
    found = narrowed = None
    if len(subgraph.nodes) > 1:  # which of the nodes parts from the spec
        from onnxparity.forensics.subgraph import extract

        ours = ort_values(subgraph.model, subgraph.inputs)
        found = walk(subgraph.model.graph, spec, ours, tolerance, unobserved="the two runs share no value in between")
        if found is not None:
            by = ("the ONNX reference evaluator's", "the ONNX reference evaluator's")
            narrowed = extract(subgraph.model, found, spec, ours, subgraph.inputs, by)
    at = f" ({found.line().removeprefix('first divergence: ')})" if found is not None else ""
    return (
        [
            "the ONNX reference evaluator (the spec) computes this value as the framework does: ONNX Runtime "
            f"parts from the spec here{at} — an ONNX Runtime bug or an ambiguity of the spec, not the export; "
            "report it to ONNX Runtime with subgraph.onnx from the reproducer"
        ],
        found,
        narrowed,
    )


# -- the optimizer ------------------------------------------------------------------------------
def _consumers(nodes: Iterable[Any]) -> dict[str, int]:
    """Each value -> the index of the last node that reads it."""
    last: dict[str, int] = {}
    for index, node in enumerate(nodes):
        for value in node.input:
            last[value] = index
    return last


def _piece(model: Any, start: int, stop: int, fed: Mapping[str, Any], last_reader: dict[str, int]) -> Any:
    """(nodes ``[start, stop)`` of ``model`` as a model, its outputs): ``fed`` (the types of the
    values computed before ``start``) become graph inputs, Constant nodes stay, and every value
    the piece computes that a later node or the graph's outputs read is an output."""
    graph = model.graph
    nodes = list(graph.node)
    outputs = {o.name for o in graph.output}
    body = [n for n in nodes[:start] if n.op_type == "Constant"] + nodes[start:stop]
    produced = {out for node in nodes[start:stop] for out in node.output if out}
    leaving = sorted(v for v in produced if v in outputs or last_reader.get(v, -1) >= stop)
    read = {v for node in body for v in node.input}
    piece = onnx.ModelProto()
    piece.CopyFrom(model)
    del piece.graph.node[:], piece.graph.output[:], piece.graph.input[:]
    piece.graph.node.extend(body)
    piece.graph.output.extend(onnx.ValueInfoProto(name=v) for v in leaving)
    piece.graph.input.extend(i for i in graph.input if i.name in read)
    piece.graph.input.extend(fed[v] for v in sorted(read) if v in fed)
    return piece, leaving


def _types(model: Any, values: Mapping[str, np.ndarray]) -> dict[str, Any]:
    """A graph-input declaration for every computed value: shape inference's where it has one
    (symbolic dims stay symbolic), else the value's element type and rank."""
    try:
        inferred = {v.name: v for v in onnx.shape_inference.infer_shapes(model).graph.value_info}
    except Exception:  # a model shape inference rejects: element types and ranks only
        inferred = {}
    declared = {}
    for name, value in values.items():
        if name in inferred and inferred[name].type.HasField("tensor_type"):
            declared[name] = inferred[name]
        elif isinstance(value, np.ndarray):
            declared[name] = onnx.helper.make_tensor_value_info(
                name, onnx.helper.np_dtype_to_tensor_dtype(value.dtype), [None] * value.ndim
            )
    return declared


def _diverging(
    piece: tuple[Any, list[str]], feeds: Mapping[str, np.ndarray], tolerance: Any, saved: str | None = None
) -> tuple[str | None, float, int, Any, Any]:
    """(the first output of ``piece`` whose optimized value parts from the unoptimized one, its
    error, non-finite count, unoptimized and optimized values) on ``feeds``."""
    model, leaving = piece
    if not leaving:
        return None, 0.0, 0, None, None
    plain = ort_values(model, feeds, "none", leaving)
    optimized = probe.tensor_values(model, feeds, optimization="all", saved=saved)  # its outputs: ``leaving``
    for name in leaving:
        error, nonfinite, diverges = off(plain[name], optimized[name], tolerance)
        if diverges:
            return name, error, nonfinite, plain[name], optimized[name]
    return None, 0.0, 0, None, None


def _bisect(low: int, high: int, parts: Callable[[int], bool]) -> int:
    """The smallest ``k`` in ``(low, high]`` with ``parts(k)``, given ``not parts(low)`` and
    ``parts(high)`` (a transition point even where ``parts`` is not monotonic)."""
    while high - low > 1:
        middle = (low + high) // 2
        if parts(middle):
            high = middle
        else:
            low = middle
    return high


def localize_optimizer(
    model_path: str, feeds: Mapping[str, np.ndarray], tolerance: Any, variant: str
) -> tuple[Divergence | None, list[str], Any]:
    """(where ONNX Runtime's graph optimizer changes ``model_path``'s result on ``feeds`` (see
    the module's docstring), the diagnosis lines, the nodes cut out as a
    :class:`~.subgraph.Subgraph`); ``(None, [], None)`` when the optimized and unoptimized
    outputs agree."""
    model = load_model(model_path, external_data=True)
    nodes = list(model.graph.node)
    last_reader = _consumers(nodes)
    if _diverging(_piece(model, 0, len(nodes), {}, last_reader), feeds, tolerance)[0] is None:
        return None, [], None

    def prefix(k: int) -> bool:
        return _diverging(_piece(model, 0, k, {}, last_reader), feeds, tolerance)[0] is not None

    stop = _bisect(0, len(nodes), prefix)
    # the tail's inputs: the unoptimized values its window reads (one example's, a window's worth)
    first = max(0, stop - MAX_REWRITE)
    window = {out for node in nodes[first:stop] for out in node.output}
    read = {v for node in nodes[first:stop] for v in node.input if v and v not in window}
    values = {**ort_values(model, feeds, "none", read | window), **feeds}
    types = _types(model, values)

    def tail(start: int) -> Any:
        before = {out for node in nodes[:start] if node.op_type != "Constant" for out in node.output}
        return _piece(model, start, stop, {v: types[v] for v in before if v in types}, last_reader)

    def parts(start: int) -> bool:
        return _diverging(tail(start), values, tolerance)[0] is not None

    # the largest start whose tail [start, stop) still parts
    start = stop - _bisect(0, stop - first, lambda back: parts(stop - back)) if parts(first) else None
    with tempfile.TemporaryDirectory(prefix="onnxparity-optimized-") as scratch:
        saved = os.path.join(scratch, "optimized.onnx")
        tensor, error, nonfinite, _, optimized = (
            _diverging(tail(start), values, tolerance, saved) if start is not None else (None,) * 5
        )
        rewritten = (
            [n.op_type for n in onnx.load(saved, load_external_data=False).graph.node] if tensor else []
        )
    if tensor is None:  # the rewrite reaches past the window: name the prefix's last node only
        start = stop - 1
        tensor, error, nonfinite, _, optimized = _diverging(
            _piece(model, 0, stop, {}, last_reader), feeds, tolerance
        )
    # (casts: set by now, as the prefix of ``stop`` nodes diverges, so a tensor is found either way)
    span = _ancestors(nodes, cast(int, start), stop, cast(str, tensor))
    ops = [nodes[i].op_type for i in span]
    into = list(dict.fromkeys(op for op in rewritten if op not in ops))
    names = node_names(nodes)
    found = Divergence(
        names[span[-1]],
        nodes[span[-1]].op_type,
        cast(str, tensor),
        cast(float, error),
        0.0,  # the tail ran on the unoptimized values themselves
        cast(int, nonfinite),
        node_source(nodes[span[-1]]),
        "module",
        tuple(names[i] for i in span),
        unobserved="the optimized graph keeps no value in between",
    )
    rewrite = f"; it rewrites {_listed(ops)} into {_listed(into)}" if into else ""
    lines = [
        f"{variant}: on this input ONNX Runtime's graph optimizer changes the result (the same nodes "
        f"unoptimized compute other values){rewrite}:",
        found.line(),
    ]
    from onnxparity.forensics.subgraph import extract

    by = ("ONNX Runtime's without graph optimization", "ONNX Runtime's without graph optimization")
    subgraph = extract(model, found, values, {cast(str, tensor): cast(np.ndarray, optimized)}, feeds, by)
    return found, lines + _advice(model, feeds, tolerance, into), subgraph


def explain_optimized(runnable: Any, feeds: Mapping[str, np.ndarray], tolerance: Any = None) -> list[Any]:
    """``ort-cpu``'s explainer: where ONNX Runtime's graph optimizer changed a failing input's
    result (:func:`localize_optimizer` of ``runnable.model_path``; nothing when the
    unoptimized graph gives the same outputs)."""
    try:
        found, lines, subgraph = localize_optimizer(
            runnable.model_path, feeds, tolerance or DEFAULT_TOLERANCE, "ort-cpu"
        )
    except Exception:  # the explanation is a bonus: never let it mask the verdict
        return []
    return [*lines, found, subgraph] if found is not None else lines


def _listed(ops: list[str]) -> str:
    return ", ".join(ops[:8]) + (f" ... ({len(ops)} ops)" if len(ops) > 8 else "")


#: the ONNX Runtime transformers that produce each fused op; their registered names carry the
#: level in some versions (1.32: ``LayerNormFusionL1``), so each is tried with the suffixes too
FUSIONS = {
    "LayerNormalization": ("LayerNormFusion",),
    "SimplifiedLayerNormalization": ("SimplifiedLayerNormFusion",),
    "SkipLayerNormalization": ("SkipLayerNormFusion",),
    "SkipSimplifiedLayerNormalization": ("SkipLayerNormFusion",),
    "Gelu": ("GeluFusion",),
    "FastGelu": ("FastGeluFusion",),
    "BiasGelu": ("BiasGeluFusion",),
    "QuickGelu": ("QuickGeluFusion",),
    "FusedMatMul": ("MatMulScaleFusion", "MatmulTransposeFusion"),
    "Gemm": ("MatMulAddFusion",),
    "FusedConv": ("ConvActivationFusion",),
    "FusedGemm": ("GemmActivationFusion",),
    "Attention": ("AttentionFusion",),
    "BiasSoftmax": ("BiasSoftmaxFusion",),
}


def _advice(model: Any, feeds: Mapping[str, np.ndarray], tolerance: Any, into: list[str]) -> list[str]:
    """The narrowest setting that keeps the unoptimized result, checked on this input: one
    transformer disabled (``disabled_optimizers``), else a lower optimization level."""
    names = [o.name for o in model.graph.output]
    plain = ort_values(model, feeds, "none", names)

    def keeps(level: str = "all", disabled: tuple[str, ...] = ()) -> bool:
        return not any(
            off(plain[n], v, tolerance)[2]
            for n, v in probe.tensor_values(model, feeds, optimization=level, disabled=disabled).items()
        )

    for base in dict.fromkeys(t for op in into for t in FUSIONS.get(op, ())):
        for name in (base, f"{base}L1", f"{base}L2"):
            if keeps(disabled=(name,)):
                return [
                    f"  verified on this input: InferenceSession(..., disabled_optimizers=[{name!r}]) keeps the "
                    "unoptimized result at every other optimization; report the rewrite to ONNX Runtime with "
                    "the nodes above"
                ]
    for level, constant in (("extended", "ORT_ENABLE_EXTENDED"), ("basic", "ORT_ENABLE_BASIC")):
        if keeps(level):
            return [
                f"  verified on this input: graph_optimization_level={constant} keeps the unoptimized result; "
                "report the rewrite to ONNX Runtime with the nodes above"
            ]
    return [
        "  only ORT_DISABLE_ALL keeps the unoptimized result on this input; report the rewrite to ONNX "
        "Runtime with the nodes above"
    ]


def _ancestors(nodes: Sequence[Any], start: int, stop: int, tensor: str) -> list[int]:
    """The nodes in ``[start, stop)`` that ``tensor`` depends on, in graph order."""
    producer = {out: i for i in range(start, stop) for out in nodes[i].output if out}
    wanted: set[int]
    wanted, stack = set(), [producer[tensor]] if tensor in producer else []
    while stack:
        index = stack.pop()
        if index in wanted:
            continue
        wanted.add(index)
        stack.extend(producer[v] for v in nodes[index].input if v in producer)
    return sorted(wanted) or [stop - 1]
