"""A failed item's result: the reproducer bundle, the localization of the failure, and the
diagnosis that puts them together (what the runner returns for an item whose search found a
failing example, or whose pooled agreement fell short). Takes the search's results as values:
the evidence, the tally, the anchor's finding and the run's stats."""

from __future__ import annotations

import dataclasses
import os
import time
from typing import TYPE_CHECKING, Any, cast

from onnxparity.diagnosis import agreement_diagnosis, diagnosis, variant_explanation
from onnxparity.diagnosis.reproducer import write_reproducer
from onnxparity.exporters.prebuilt import CallableExporter
from onnxparity.forensics import Divergence
from onnxparity.forensics.inputs import degenerate
from onnxparity.forensics.subgraph import Subgraph, extract
from onnxparity.results import VariantResult
from onnxparity.search.anchor import AnchorFinding
from onnxparity.search.padding import left_out_line
from onnxparity.search.stats import RunStats
from onnxparity.search.tally import Evidence, SearchTally, Shortfall
from onnxparity.spec import ParitySpec, Policy, Tolerance
from onnxparity.variants import Runnable

if TYPE_CHECKING:
    import numpy as np

    from onnxparity.exporters import ModelPair


def failed_result(
    reproducer_dir: str,
    name: str,
    variant: str,
    pair: ModelPair,
    spec: ParitySpec,
    runnable: Runnable,
    policy: Policy,
    failure: Evidence,
    shortfall: list[Shortfall],
    tally: SearchTally,
    anchor: AnchorFinding | None,
    stats: RunStats,
) -> VariantResult:
    """The failed result of an item: ``failure`` (or the worst example of ``shortfall``)
    localized, written as a reproducer and diagnosed; ``anchor``: the anchor on that example
    (None for the anchor's own item)."""
    started = time.perf_counter()
    tolerance = policy if isinstance(policy, Tolerance) else None
    explained = variant_explanation(runnable, failure, tolerance)  # lines, and its own localization
    divergence = next((e for e in explained if isinstance(e, Divergence)), None)
    subgraph = next((e for e in explained if isinstance(e, Subgraph)), None)
    extra = [e for e in explained if isinstance(e, str)]
    export_right = False
    if anchor is not None:
        extra += anchor.lines
        export_right = anchor.export_right
    causes = degenerate(failure.feeds, spec.inputs, variant)  # an input that explains the failure by itself
    if tolerance is not None and failure.verdict is not None and not export_right and divergence is None:
        lines, divergence, subgraph, found = _localize_export(pair, spec, failure, tolerance)
        causes += found
        extra = [*lines, *extra]
    if causes:  # the spec's agreement with ONNX Runtime then no longer shows the graph is what differs
        extra = [*causes, *(line.replace(GRAPH_MEANS, INPUT_MAY) if isinstance(line, str) else line for line in extra)]
    framework = not (pair.subject is not None and isinstance(pair.subject.exporter, CallableExporter))
    if not framework:  # a reference callable, or stored outputs: the facts hold of it as of a framework
        extra = [_as_reference(line) if isinstance(line, str) else line for line in extra]
    if divergence is not None:  # what the divergence means, as printed, travels with it (report, page)
        evidence = tuple(
            line.strip() for line in extra if isinstance(line, str) and not line.startswith("first divergence")
        )
        divergence = dataclasses.replace(divergence, evidence=evidence)
    rewritten = getattr(runnable, "model_path", None)
    if (
        divergence is None
        and export_right
        and tolerance is not None
        and failure.verdict is not None
        and rewritten
        and os.path.abspath(rewritten) != os.path.abspath(pair.exported.path)
    ):
        from onnxparity.forensics.export import localize_rewrite

        try:
            divergence, lines = localize_rewrite(
                pair.exported.path, rewritten, failure.feeds, policy, variant
            )
        except Exception as exc:  # forensics must never mask the verdict
            divergence, lines = None, [f"first divergence: not localized — {type(exc).__name__}: {exc}"]
        extra = [*lines, *extra]
    if failure.padded:  # what the comparison left out (padding is don't-care), before the forensics
        extra = [left_out_line(failure.padded, failure.verdict), *extra]
    if failure.conditioning:  # the framework disagrees with itself here, and the variant more
        extra = [failure.conditioning, *extra]
    stats.timings["forensics"] += time.perf_counter() - started  # (the runner adds the anchor's finding)
    reproducer = write_reproducer(
        reproducer_dir, name, variant, pair, spec, failure, getattr(runnable, "model_path", None), subgraph
    )
    if shortfall:
        message = agreement_diagnosis(
            variant, pair, spec, policy, shortfall, failure, tally.tried, reproducer, extra
        )
    else:
        message = diagnosis(
            variant, pair, spec, policy, failure, tally.tried, reproducer, extra, export_right
        )
    if not framework:  # (the advice and hints diagnosis adds say "framework" too)
        message = _as_reference(message)
    return VariantResult(
        variant,
        "failed",
        policy,
        tally.tried,
        tally.summaries(),
        tally.covered(),
        failing_example={**failure.example.to_dict(), "description": failure.example.describe(spec)},
        reproducer=reproducer,
        message=message,
        verdict=failure.verdict,
        divergence=divergence,
        distribution=tally.distribution.to_dict(),
    )


#: the spec's cause line, and what it says instead where the input is a likely cause
GRAPH_MEANS = "the exported graph means something other than the framework's code here"
INPUT_MAY = "with the likely cause above, the input rather than the graph may be what differs"
_REFERENCE_WORDS = (
    (GRAPH_MEANS, "the file's graph means something other than the reference here"),
    ("framework values: ", "reference values: "),
    ("the framework's", "the reference's"),
    ("as the framework does", "as the reference does"),
    ("an input the framework model accepts", "an input the reference accepts"),
    ("than the framework decides", "than the reference decides"),
    ("the framework and the export", "the reference and the export"),
)


#: where the reference is the ONNX reference evaluator (``onnxparity check``), the spec's say is
#: its own: which side follows the spec is not shown (before: "ONNX Runtime parts from the spec
#: here — an ONNX Runtime bug" where the evaluator ignores LSTM's sequence_lens)
CIRCULAR = (
    "the reference here is the ONNX reference evaluator itself, so the spec takes no side: either it or "
    "ONNX Runtime does not follow the spec on this node (the evaluator is a Python implementation that "
    "misses some forms, e.g. LSTM's sequence_lens); subgraph.onnx in the reproducer shows it to either"
)


def _as_reference(line: str) -> str:
    """A forensics line about a framework, said of the reference a prebuilt file is checked
    against (the facts are the same: the expected values are the reference's)."""
    for framework, reference in _REFERENCE_WORDS:
        line = line.replace(framework, reference)
    return line


def _localize_export(
    pair: ModelPair, spec: ParitySpec, failure: Evidence, tolerance: Tolerance
) -> tuple[list[str], Divergence | None, Subgraph | None, list[str]]:
    """(diagnosis lines, divergence, subgraph) of an export that gets a failing input wrong: the
    framework's values against the ONNX model's, and what the ONNX spec says of the node found;
    where no framework value pairs, ONNX Runtime against the spec over the whole graph."""
    from onnxparity.forensics.export import localize
    from onnxparity.forensics.runtime import spec_verdict

    try:
        divergence, line, values = localize(pair, spec, failure.feeds, tolerance, failure.expected)
    except Exception as exc:  # forensics must never mask the verdict
        divergence, line, values = None, f"first divergence: not localized — {type(exc).__name__}: {exc}", {}
    evaluator = getattr(pair.subject.model if pair.subject is not None else None, "onnx_reference_evaluator", False)
    if divergence is not None:
        subgraph = extract(values["proto"], divergence, values["framework"], values["onnx"], failure.feeds)
        try:
            verdict, narrowed, cut = ([CIRCULAR], None, None) if evaluator else spec_verdict(subgraph, tolerance)
        except Exception:  # the spec's say is a bonus
            verdict, narrowed, cut = [], None, None
        if narrowed is not None:  # the node that parts from the spec, within the span
            divergence, subgraph = narrowed, cut or subgraph
        return [line, *verdict], divergence, subgraph, list(values.get("causes") or ())
    try:
        spec_lines, divergence, subgraph = _against_spec(pair.exported.path, failure, tolerance, evaluator)
    except Exception:  # the spec's say is a bonus (and a failure of its own leaves nothing localized)
        spec_lines, divergence, subgraph = [], None, None
    if divergence is not None:  # the spec localized it: the framework's line is context only
        line = line.replace("first divergence: ", "framework values: ", 1)
    return [line, *spec_lines], divergence, subgraph, []


def _spec_sides(
    outputs: list[str], spec: dict[str, np.ndarray], failure: Evidence, tolerance: Tolerance
) -> list[str]:
    """The cause line where the spec's outputs are the variant's and not the expected ones (each
    side compared by the verdict's rule), else nothing: no side is shown to be the spec's."""
    from onnxparity.forensics.export import off

    if not (failure.actual and failure.expected and spec) or not all(o in spec for o in outputs):
        return []
    if not len(outputs) == len(failure.actual) == len(failure.expected):
        return []
    runtime = any(off(spec[o], a, tolerance)[2] for o, a in zip(outputs, failure.actual))
    expected = any(off(e, spec[o], tolerance)[2] for o, e in zip(outputs, failure.expected))
    if runtime or not expected:
        return []
    return [f"the ONNX reference evaluator (the spec) computes the outputs on this input as ONNX Runtime does: {GRAPH_MEANS}"]


def _against_spec(
    path: str, failure: Evidence, tolerance: Tolerance, evaluator: bool = False
) -> tuple[list[str], Divergence | None, Subgraph | None]:
    """ONNX Runtime against the reference evaluator over a small graph the framework's values do
    not localize in, and whether the spec's outputs are the framework's (``evaluator``: the
    reference is the evaluator itself, which cannot take its own side)."""
    from onnxparity.forensics.export import off
    from onnxparity.forensics.runtime import SPEC_NODES, localize_spec, spec_runs
    from onnxparity.graph.files import load_model

    proto = load_model(path, external_data=True)
    if len(proto.graph.node) > SPEC_NODES or not spec_runs(proto):
        return [], None, None
    found, lines, spec = localize_spec(proto, failure.feeds, tolerance)
    outputs = [o.name for o in proto.graph.output]
    if found is None:  # ONNX Runtime computes the spec's values: whether the expected ones are too
        return _spec_sides(outputs, spec, failure, tolerance), None, None
    # (failure.expected: set on an example that was compared)
    if evaluator:
        lines.append(f"  {CIRCULAR}")
    elif len(outputs) == len(cast("list[Any]", failure.expected)) and all(o in spec for o in outputs):
        framework = not any(
            off(e, spec[o], tolerance)[2] for o, e in zip(outputs, cast("list[Any]", failure.expected))
        )
        lines.append(
            "  the spec's outputs on this input are the framework's: ONNX Runtime is what differs (report "
            "it to ONNX Runtime with subgraph.onnx from the reproducer)"
            if framework
            else "  the spec's outputs on this input differ from the framework's too"
        )
    from onnxparity.forensics.runtime import ort_values

    actual = ort_values(proto, failure.feeds, names={found.tensor})
    by = ("the ONNX reference evaluator's", "the ONNX reference evaluator's")
    return lines, found, extract(proto, found, spec, actual, failure.feeds, by)
