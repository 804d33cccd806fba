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

import os
from collections.abc import Mapping
from typing import Any

import numpy as np

from onnxparity.errors import NoMapping
from onnxparity.forensics import Divergence
from onnxparity.graph.files import load_model
from onnxparity.graph.nodes import node_source, with_outputs
from onnxparity.variants import probe
from onnxparity.verdict.compare import applied_tolerance, elementwise, widen

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


def node_names(nodes) -> list[str]:
    return [node.name or f"{node.op_type}#{i}" for i, node in enumerate(nodes)]


def walk(
    graph,
    expected: Mapping[str, np.ndarray],
    actual: Mapping[str, np.ndarray],
    tolerance,
    exporter: Any = None,
    sources: Mapping[str, str] | None = None,
    agreed: dict[str, float] | None = None,
) -> Divergence | None:
    """The first node of ``graph`` (topological order) whose paired output diverges; its inputs
    agree by construction (every paired value before it did). Values present in both
    ``expected`` and ``actual`` are paired by name. ``agreed`` carries the values that agreed
    (with their errors) from one call to the next when ``actual`` comes in chunks."""
    nodes = list(graph.node)
    names = node_names(nodes)
    producer = {out: i for i, node in enumerate(nodes) for out in node.output if out}
    constants = {t.name for t in graph.initializer}
    agreed = {} if agreed is None else agreed
    for index, node in enumerate(nodes):
        for out in node.output:
            if out not in expected or out not in actual:
                continue
            error, nonfinite, diverges = off(expected[out], actual[out], tolerance)
            if not diverges:
                agreed[out] = error
                continue
            span, boundary = _span(index, nodes, producer, constants, agreed)
            source_of = exporter.source_of if exporter is not None else node_source
            source = (sources or {}).get(out) or next(
                (s for s in (source_of(nodes[i]) for i in reversed(span)) if s), None
            )
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
            )
    return None


def _span(index, nodes, producer, constants, agreed) -> tuple[list[int], set[str]]:
    """The nodes that compute node ``index``'s output from agreeing values (graph inputs,
    constants, paired values that agreed), in graph order, and those boundary values."""
    span, boundary, stack = {index}, set(), [index]
    while stack and len(span) < MAX_SPAN:
        for value in nodes[stack.pop()].input:
            if not value or value in constants:
                continue
            source = producer.get(value)
            if value in agreed or source is None or nodes[source].op_type == "Constant":
                boundary.add(value)
            elif source not in span:
                span.add(source)
                stack.append(source)
    return sorted(span), boundary


#: the ONNX values one run of the localization materializes at most (bytes, by the framework's
#: sizes): a large model's intermediates are compared a topological slice at a time
CHUNK_BYTES = 256 << 20


def chunks(graph, shared: set[str], values: Mapping[str, np.ndarray]) -> list[set[str]]:
    """``shared`` in graph order, cut where a slice's values would pass :data:`CHUNK_BYTES`."""
    ordered = [out for node in graph.node for out in node.output if out in shared]
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
    pair, spec, feeds: Mapping[str, np.ndarray], tolerance, outputs=None
) -> tuple[Divergence | None, str, dict]:
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
    found, agreed = None, {}
    for chunk in chunks(proto.graph, shared, values):  # one example's values, a bounded part at a time
        computed = probe.tensor_values(with_outputs(proto, chunk), feeds)  # the graph's outputs come too
        onnx_values = {name: value for name, value in computed.items() if name in chunk}
        found = walk(proto.graph, values, onnx_values, tolerance, subject.exporter, sources, agreed)
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
    return found, found.line(), {"framework": values, "onnx": onnx_values, "proto": proto}


def localize_rewrite(
    exported_path: str, variant_path: str, feeds: Mapping[str, np.ndarray], tolerance, variant: str
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
    found = walk(rewritten.graph, expected, actual, tolerance)
    title = f"{variant} runs a rewritten graph ({os.path.basename(variant_path)}); against the export on this input:"
    if found is None:
        return None, [f"{title} no value they share by name differs ({len(shared)} shared)"]
    return found, [title, found.line()]
