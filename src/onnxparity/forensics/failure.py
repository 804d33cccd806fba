"""A failed item's result: the reproducer bundle, the localization of the failure, and the
diagnosis that puts them together (what :class:`~onnxparity.runner.ParitySession` returns for
an item whose search found a failing example, or whose pooled agreement fell short)."""

from __future__ import annotations

import os
import time
from typing import Any

from ..diagnosis import agreement_diagnosis, diagnosis, variant_explanation
from ..report import VariantResult
from ..reproducer import write_reproducer
from ..spec import ParitySpec, Tolerance
from . import Divergence
from .subgraph import extract


def failed_result(
    reproducer_dir: str,
    name: str,
    variant: str,
    pair: Any,
    spec: ParitySpec,
    runnable: Any,
    policy: Any,
    search: Any,
    failure: Any,
    shortfall: list,
) -> VariantResult:
    tally, anchor, started = search.tally, search.anchor, time.perf_counter()
    explained = variant_explanation(runnable, failure)  # lines, and the variant's own localization
    divergence = next((e for e in explained if isinstance(e, Divergence)), None)
    extra = [e for e in explained if isinstance(e, str)]
    export_right = False
    if anchor is not None:
        key = search.key(failure.example)
        extra += anchor.lines(failure, key)
        anchored = anchor.verdict(failure, key)
        export_right = anchored is not None and anchored.passed
    subgraph = None
    if isinstance(policy, Tolerance) and failure.verdict is not None and not export_right:
        from .export import localize

        try:
            divergence, line, values = localize(pair, spec, failure.feeds, policy, failure.expected)
        except Exception as exc:  # forensics must never mask the verdict
            line, values = f"first divergence: not localized — {type(exc).__name__}: {exc}", {}
        extra = [line, *extra]
        if divergence is not None:
            subgraph = extract(
                values["proto"], divergence, values["framework"], values["onnx"], failure.feeds
            )
    rewritten = getattr(runnable, "model_path", None)
    if (
        divergence is None
        and export_right
        and isinstance(policy, Tolerance)
        and failure.verdict is not None
        and rewritten
        and os.path.abspath(rewritten) != os.path.abspath(pair.exported.path)
    ):
        from .export import localize_rewrite

        try:
            divergence, lines = localize_rewrite(
                pair.exported.path, rewritten, failure.feeds, policy, variant
            )
        except Exception as exc:  # forensics must never mask the verdict
            divergence, lines = None, [f"first divergence: not localized — {type(exc).__name__}: {exc}"]
        extra = [*lines, *extra]
    search.session.timings["forensics"] += time.perf_counter() - started  # the anchor's lines too
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
    )
