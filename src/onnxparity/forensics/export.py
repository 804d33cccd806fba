"""Framework against ONNX: the first node of an export that gets a failing input wrong.

The model source hands over the framework's intermediate values on the failing input, each by
the name of the ONNX value it became (``Exporter.intermediates``: PyTorch's dynamo exporter
names values after FX nodes). The ONNX model runs once on the same input (ONNX Runtime, CPU, no
graph optimization, so every value exists) with those values as extra outputs, and the values
are compared in the graph's order under the item's tolerance, by the verdict's rule (:func:`off`).
Where a source records no mapping, or none of its names is in the file, the diagnosis says so in
one line; nothing is guessed. :func:`walk`, the comparison in graph order, serves every other
localization too (:mod:`.runtime`, :mod:`.precision`).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, cast

import numpy as np

from onnxparity.errors import NoMapping
from onnxparity.forensics import Divergence
from onnxparity.graph.files import load_model
from onnxparity.graph.nodes import node_names, node_source, with_outputs
from onnxparity.spec import Tolerance
from onnxparity.variants import probe
from onnxparity.verdict.compare import applied_tolerance
from onnxparity.verdict.rule import elementwise, widen

if TYPE_CHECKING:
    from collections.abc import Callable

    from onnxparity.exporters import ModelPair
    from onnxparity.spec import ParitySpec

#: at most this many nodes are reported as computing one diverging value
MAX_SPAN = 32


def off(expected: np.ndarray, actual: np.ndarray, tolerance: Any) -> tuple[float, int, bool]:
    """(max abs error over finite pairs, values non-finite on one side only or a different one on
    each, diverges) of one tensor by the verdict's rule: float values within ``tolerance`` as it
    applies to their dtypes (:func:`~onnxparity.verdict.compare.applied_tolerance`: an undeclared
    tolerance is the tensor's precision's, as for an output: a float16 tensor's is 2^-9, not
    1e-5), NaN matching only NaN and an infinity only the same one
    (:func:`~onnxparity.verdict.compare.elementwise`); integers and bools exactly."""
    expected, actual = np.asarray(expected), np.asarray(actual)
    if expected.shape != actual.shape:
        if expected.size != actual.size or expected.size == 0:
            return float("inf"), 0, True
        expected, actual = expected.reshape(-1), actual.reshape(-1)  # the same values, shaped otherwise
    e, a = widen(expected), widen(actual)  # ml_dtypes' narrow kinds as numpy computes on them
    if e.dtype.kind != "f" or a.dtype.kind != "f":
        e, a = e.astype(np.float64), a.astype(np.float64)
        return (float(np.abs(e - a).max()) if e.size else 0.0), 0, bool((e != a).any())
    tolerance = applied_tolerance(tolerance, expected, actual)
    finite, diff, _, ok = elementwise(e.astype(np.float64), a.astype(np.float64), tolerance)
    error = float(diff.max()) if finite.any() else 0.0  # (diff is 0 where a side is not finite)
    return error, int((~ok & ~finite).sum()), not bool(ok.all())


def layouts(expected: np.ndarray, actual: np.ndarray) -> list[np.ndarray]:
    """``expected`` laid out as ``actual`` in each way known to hold the same values: as it is,
    with size-1 axes dropped or added, or with channels moved from last (TensorFlow's NHWC) to
    first (tf2onnx's NCHW; measured: compared flat, every Keras conv value differed by 0.3 on an
    export nothing was wrong with — and where channels, height and width are all 4 the shapes
    match either way, so both layouts are tried). A size that differs gives ``expected`` as it
    is (the shapes are the divergence); the same size laid out in no way known gives nothing
    (neither agreeing nor diverging: not observed)."""
    expected, actual = np.asarray(expected), np.asarray(actual)
    if expected.size != actual.size:
        return [expected]
    found = [expected] if expected.shape == actual.shape else []
    squeezed = tuple(n for n in expected.shape if n != 1)
    if not found and squeezed == tuple(n for n in actual.shape if n != 1):
        found.append(expected.reshape(actual.shape))
    if expected.ndim == actual.ndim >= 3:
        first = np.moveaxis(expected, -1, 1)
        if first.shape == actual.shape and first.strides != expected.strides:
            found.append(first)
    return found


def walk(
    graph: Any, expected: Mapping[str, np.ndarray], actual: Mapping[str, np.ndarray], tolerance: Any,
    exporter: Any = None, sources: Mapping[str, str] | None = None, agreed: dict[str, float] | None = None,
    unobserved: str = "the framework exposes no value in between",
    chosen: dict[str, np.ndarray] | None = None,
) -> Divergence | None:
    """The first node of ``graph`` (topological order) whose paired output diverges; its inputs
    agree by construction (every paired value before it did). Values present in both
    ``expected`` and ``actual`` are paired by name. ``agreed`` carries the values that agreed
    (with their errors) from one call to the next when ``actual`` comes in chunks; ``chosen``
    gets each compared framework value as laid out like the ONNX one (:func:`layouts`)."""
    nodes = list(graph.node)
    names = node_names(nodes)
    producer = {out: i for i, node in enumerate(nodes) for out in node.output if out}
    constants = {t.name for t in graph.initializer}
    agreed = {} if agreed is None else agreed
    for index, node in enumerate(nodes):
        for out in node.output:
            if out not in expected or out not in actual:
                continue
            candidates = layouts(expected[out], actual[out])
            if not candidates:  # the same values laid out otherwise, in no way known: not observed
                continue
            judged = [(*off(framework, actual[out], tolerance), framework) for framework in candidates]
            error, nonfinite, diverges, framework = min(judged, key=lambda j: (j[2], j[0]))  # any layout agrees
            if chosen is not None:
                chosen[out] = framework
            if not diverges:
                agreed[out] = error
                continue
            span, boundary, truncated = _span(index, nodes, producer, constants, agreed)
            source_of = exporter.source_of if exporter is not None else node_source
            # a span's every module, in graph order, and whether code outside any module is in it
            # too (a functional call): naming the last module alone blamed the consumer
            recorded = [source_of(nodes[i]) for i in span]
            found = list(dict.fromkeys(s for s in recorded if s))
            outside = " and code outside them" if found and None in recorded else ""
            source = (sources or {}).get(out) or (", ".join(found) + outside if found else None)
            shapes = np.shape(actual[out]), np.shape(expected[out])
            detail = (
                f"has shape {shapes[0]} where the framework's has {shapes[1]}"
                if np.size(actual[out]) != np.size(expected[out])
                else ""
            )
            return Divergence(
                names[index],
                node.op_type,
                out,
                error,
                max((agreed.get(v, 0.0) for v in boundary), default=0.0),
                nonfinite,
                source,
                getattr(exporter, "source_kind", "module"),
                tuple(names[i] for i in span),
                detail,
                inputs=tuple(sorted(boundary)),
                truncated=truncated,
                unobserved=unobserved,
            )
    return None


def _span(
    index: int, nodes: Sequence[Any], producer: Mapping[str, int], constants: set[str], agreed: Mapping[str, float]
) -> tuple[list[int], set[str], bool]:
    """The nodes that compute node ``index``'s output from values known to agree (graph inputs,
    constants, paired values that agreed), in graph order; those boundary values (constants
    left out); whether the span stopped at :data:`MAX_SPAN` before reaching them all."""
    span, boundary, stack = {index}, set(), [index]
    while stack and len(span) < MAX_SPAN:
        for value in nodes[stack.pop()].input:
            if not value or value in constants:
                continue
            source = producer.get(value)
            if source is not None and nodes[source].op_type == "Constant":
                continue
            if value in agreed or source is None:
                boundary.add(value)
            elif source not in span:
                span.add(source)
                stack.append(source)
    return sorted(span), boundary, bool(stack)


#: the ONNX values one run of the localization materializes at most (bytes, by the framework's
#: sizes): a large model's intermediates are compared a topological slice at a time
CHUNK_BYTES = 256 << 20


def chunks(graph: Any, shared: set[str], values: Mapping[str, np.ndarray]) -> list[set[str]]:
    """``shared`` in graph order, cut where a slice's values would pass :data:`CHUNK_BYTES`."""
    ordered = [out for node in graph.node for out in node.output if out in shared]
    found: list[set[str]]
    current: set[str]
    found, current, size = [], set(), 0
    for name in ordered:
        nbytes = int(np.asarray(values[name]).nbytes)
        if current and size + nbytes > CHUNK_BYTES:
            found.append(current)
            current, size = set(), 0
        current.add(name)
        size += nbytes
    return [*found, current] if current else found


def localize(
    pair: ModelPair, spec: ParitySpec, feeds: Mapping[str, np.ndarray], tolerance: Any,
    outputs: Sequence[np.ndarray] | None = None,
) -> tuple[Divergence | None, str, dict[str, Any]]:
    """(the divergence or None, the diagnosis line, the values compared: ``{"framework": ...,
    "onnx": ..., "proto": ...}`` for the subgraph) of ``pair``'s export on the failing
    ``feeds``; ``outputs``: the framework's outputs there (they pair with the graph outputs,
    which exporters rename)."""
    subject = pair.subject
    if subject is None or subject.model is None:
        return (
            None,
            "first divergence: not localized — no framework model to compare the ONNX values with",
            {},
        )
    proto = load_model(pair.exported.path, external_data=True)
    unmapped = ""
    try:
        values = subject.exporter.intermediates(subject.model, spec, feeds, proto.graph)
    except NoMapping as exc:
        values, unmapped = {}, f"first divergence: not localized — {exc}"
    sources = dict(getattr(values, "sources", {}))
    unnamed = list(getattr(values, "unnamed", ()))  # values no name pairs (before the dict is rebuilt)
    if outputs is not None and len(outputs) == len(pair.exported.output_names):
        values = {**values, **dict(zip(pair.exported.output_names, outputs))}
    produced = {out for node in proto.graph.node for out in node.output if out}
    shared = {name for name in values if name in produced}
    if not shared:
        return (
            None,
            unmapped
            or (
                "first divergence: not localized — none of the framework's values pairs with a value of the "
                "ONNX file (its values were renamed, or it does not come from this model)"
            ),
            {},
        )
    agreed: dict[str, float]
    chosen: dict[str, np.ndarray]
    found, agreed, chosen = None, {}, {}
    for chunk in chunks(proto.graph, shared, values):  # one example's values, a bounded part at a time
        computed = probe.tensor_values(with_outputs(proto, chunk), feeds)  # the graph's outputs come too
        onnx_values = {name: value for name, value in computed.items() if name in chunk}
        found = walk(proto.graph, values, onnx_values, tolerance, subject.exporter, sources, agreed, chosen=chosen)
        if found is not None:
            break
    if found is None:
        return (
            None,
            unmapped
            or (
                f"first divergence: none — the {len(shared)} values paired with the framework's agree within the "
                "tolerance; the difference comes from values the framework does not expose"
            ),
            {},
        )
    if unmapped and len(found.nodes) > 1:  # only the outputs paired: one node alone is certain
        return None, unmapped, {}
    framework = {**values, **chosen}  # as laid out like the ONNX values they were compared with
    if found.span and unnamed:
        found = by_value(proto, found, unnamed, framework, agreed, feeds, tolerance, subject.exporter)
    found = upstream(proto, found, framework, agreed, feeds, tolerance, subject.exporter)
    if found.nonfinite and found.span:
        found = dataclasses.replace(found, first_nonfinite=first_nonfinite(proto, found, feeds))
    causes = normalized_constants(proto, found, feeds)
    if found.tensor not in onnx_values:  # traced upstream, out of the last chunk
        onnx_values = {**onnx_values, **probe.tensor_values(with_outputs(proto, {found.tensor}), feeds)}
    return found, found.line(), {"framework": framework, "onnx": onnx_values, "proto": proto, "causes": causes}


def normalized_constants(proto: Any, found: Divergence, feeds: Mapping[str, np.ndarray]) -> list[str]:
    """Likely-cause lines for the normalization nodes of ``found``'s span that read a constant
    row on this input (their input computed by ONNX Runtime)."""
    from onnxparity.forensics.inputs import NORMALIZATIONS, constant_row

    nodes = [n for n, name in zip(proto.graph.node, node_names(proto.graph.node)) if name in set(found.nodes)]
    reads = {n.input[0]: f"{n.op_type} {n.name!r}" for n in nodes if n.op_type in NORMALIZATIONS and n.input}
    if not reads:
        return []
    try:
        values = {**dict(feeds), **probe.tensor_values(with_outputs(proto, set(reads) - set(feeds)), feeds)}
    except Exception:  # not computable apart: say nothing
        return []
    lines = []
    for name, node in reads.items():
        line = constant_row(node, name, np.asarray(values[name])) if name in values else ""
        if line:
            lines.append(line)
    return lines


def by_value(
    proto: Any, found: Divergence, unnamed: list[np.ndarray], framework: dict[str, np.ndarray],
    agreed: dict[str, float], feeds: Mapping[str, np.ndarray], tolerance: Any, exporter: Any = None,
) -> Divergence:
    """``found``'s span narrowed by the framework's values that no name pairs (``unnamed``: a
    torch function's output between two modules): a value inside the span that holds the same
    values as one of them — same shape (or layout), within the tolerance, not constant — was
    observed agreeing, and the span then starts after it. Each value so paired joins
    ``framework`` and ``agreed``; the divergence keeps its tensor, its span shrinks."""
    nodes = list(proto.graph.node)
    names = node_names(nodes)
    index = {name: i for i, name in enumerate(names)}
    inside = [out for name in found.nodes[:-1] for out in nodes[index[name]].output if out]
    try:
        computed = probe.tensor_values(with_outputs(proto, set(inside)), feeds)
    except Exception:  # the span cannot be run apart: keep it whole
        return found
    paired = 0
    for value in inside:
        actual = computed.get(value)
        if actual is None or np.asarray(actual).size < 2 or np.ptp(np.asarray(actual, np.float64)) == 0:
            continue  # a constant value would match anything constant: no evidence
        for candidate in unnamed:
            matched = [f for f in layouts(candidate, actual) if f.shape == np.shape(actual)]
            match = next((f for f in matched if not off(f, actual, tolerance)[2]), None)
            if match is not None:
                framework[value] = match
                agreed[value] = off(match, actual, tolerance)[0]
                paired += 1
                break
    if not paired:
        return found
    producer = {out: i for i, node in enumerate(nodes) for out in node.output if out}
    constants = {t.name for t in proto.graph.initializer}
    last = index[found.nodes[-1]]
    span, boundary, truncated = _span(last, nodes, producer, constants, agreed)
    source_of = exporter.source_of if exporter is not None else node_source
    recorded = [source_of(nodes[i]) for i in span]
    sources = list(dict.fromkeys(r for r in recorded if r))
    outside = " and code outside them" if sources and None in recorded and len(span) > 1 else ""
    return dataclasses.replace(
        found,
        nodes=tuple(names[i] for i in span),
        inputs=tuple(sorted(boundary)),
        input_max_abs_error=max((agreed.get(v, 0.0) for v in boundary), default=0.0),
        source=", ".join(sources) + outside if sources else None,
        truncated=truncated,
        by_value=tuple(sorted(v for v in boundary if v in set(inside))),
    )


#: how far an amplified error is traced back (nodes named in turn), at most
MAX_UPSTREAM = 8
#: what "reproduces exactly" means for a value already within the tolerance: a few float32 ulps
EXACT = Tolerance(atol=0.0, rtol=1e-6)


def upstream(
    proto: Any, found: Divergence, framework: Mapping[str, np.ndarray], agreed: Mapping[str, float],
    feeds: Mapping[str, np.ndarray], tolerance: Any, exporter: Any = None,
) -> Divergence:
    """Where a divergence starts when its inputs agree only within the tolerance: a node (or
    span) that computes the framework's value from the framework's inputs is not what went wrong
    — it amplifies an input that was already off a little (0/1e-12 where an epsilon was removed,
    sqrt near 0). Then the producer of the input off the most is examined in turn, each fed the
    framework's values (its cut-out subgraph, run in ONNX Runtime): the first that does not
    reproduce the framework's output from them is named, with what it passes on. ``found``
    itself where its inputs agree exactly, or it computes otherwise even on the framework's
    inputs (the usual case)."""
    from onnxparity.forensics.subgraph import extract

    nodes = list(proto.graph.node)
    names = node_names(nodes)
    producer = {out: i for i, node in enumerate(nodes) for out in node.output if out}
    constants = {t.name for t in proto.graph.initializer}
    current, policy = found, tolerance
    for _ in range(MAX_UPSTREAM):
        errors = {v: agreed[v] for v in current.inputs if agreed.get(v, 0.0) > 0.0 and v in producer}
        if not errors:
            return current
        cut = extract(proto, current, framework, {current.tensor: framework[current.tensor]}, feeds)
        if cut is None or current.tensor not in framework:
            return current
        try:
            ours = probe.tensor_values(cut.model, cut.inputs)[current.tensor]
        except Exception:  # it cannot run apart: keep what is known
            return current
        if off(framework[current.tensor], ours, policy)[2]:
            return current  # it computes otherwise from the framework's own inputs: it is the place
        value = max(errors, key=cast("Callable[[str], float]", errors.get))  # (every key is in errors)
        index = producer[value]
        span, boundary, truncated = _span(index, nodes, producer, constants, agreed)
        actual = probe.tensor_values(with_outputs(proto, {value}), feeds)[value]
        error, nonfinite, _ = off(framework[value], actual, tolerance)
        source_of = exporter.source_of if exporter is not None else node_source
        recorded = [source_of(nodes[i]) for i in span]
        sources = list(dict.fromkeys(r for r in recorded if r))
        current = Divergence(
            names[index],
            nodes[index].op_type,
            value,
            error,
            max((agreed.get(v, 0.0) for v in boundary), default=0.0),
            nonfinite,
            ", ".join(sources) or None,
            getattr(exporter, "source_kind", "module"),
            tuple(names[i] for i in span),
            f"off by {error:.2g} (within the tolerance), which {_what(found)} downstream",
            inputs=tuple(sorted(boundary)),
            truncated=truncated,
            unobserved=found.unobserved,
        )
        policy = EXACT
    return current


def _what(found: Divergence) -> str:
    """How an amplified divergence is named downstream: its node or span, and its error."""
    where = f"{found.op_type} {found.node!r}" if not found.span else f"the {len(found.nodes)} nodes to {found.tensor!r}"
    error = (
        f"{found.nonfinite} NaN or infinite values" if found.nonfinite else f"an error of {found.max_abs_error:.3g}"
    )
    return f"{where} amplifies into {error}"


def first_nonfinite(proto: Any, found: Divergence, feeds: Mapping[str, np.ndarray]) -> str:
    """The first node of ``found``'s span whose output holds NaN or infinity while the values it
    reads (constants aside) are finite: where the non-finite values start, from the ONNX values
    computed on ``feeds`` ("" where none does, or the span's values cannot be computed)."""
    nodes = list(proto.graph.node)
    names = node_names(nodes)
    members = [i for i, name in enumerate(names) if name in set(found.nodes)]
    constants = {t.name for t in proto.graph.initializer}
    constants |= {out for n in nodes if n.op_type == "Constant" for out in n.output}
    wanted = {v for i in members for v in (*nodes[i].input, *nodes[i].output) if v and v not in constants}
    try:
        values = {**dict(feeds), **probe.tensor_values(with_outputs(proto, wanted - set(feeds)), feeds)}
    except Exception:  # the span cannot be run apart: say nothing of where NaN starts
        return ""

    def finite(name: str) -> bool:
        value = np.asarray(values[name])
        return value.dtype.kind != "f" or bool(np.isfinite(value).all())

    for i in members:
        reads = [v for v in nodes[i].input if v in values]
        made = [v for v in nodes[i].output if v in values]
        if all(finite(v) for v in reads) and any(not finite(v) for v in made):
            return names[i]
    return ""


def localize_rewrite(
    exported_path: str, variant_path: str, feeds: Mapping[str, np.ndarray], tolerance: Any, variant: str
) -> tuple[Divergence | None, list[str]]:
    """Where a variant that runs a rewritten graph (an offline-optimized, simplified or
    otherwise transformed copy of the export) first parts from the export on an input: both
    run with their shared values as outputs (ONNX Runtime, CPU, no graph optimization), values
    pair by name, and the rewritten graph's nodes are walked in order."""
    exported = load_model(exported_path, external_data=True)
    rewritten = load_model(variant_path, external_data=True)
    produced = {out for node in exported.graph.node for out in node.output if out}
    shared = produced & {out for node in rewritten.graph.node for out in node.output if out}
    expected = probe.tensor_values(with_outputs(exported, shared), feeds)
    actual = probe.tensor_values(with_outputs(rewritten, shared), feeds)
    found = walk(
        rewritten.graph, expected, actual, tolerance, unobserved="the export has no value of that name in between"
    )
    title = f"{variant} runs a rewritten graph ({os.path.basename(variant_path)}); against the export on this input:"
    if found is None:
        return None, [f"{title} no value they share by name differs ({len(shared)} shared)"]
    return found, [title, found.line()]
