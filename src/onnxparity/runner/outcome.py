"""A parity item as the runner searches it, and the result its finished search gives: passed
(kept across runs), all rejected, timed out, or failed and diagnosed. Takes values (the
search's tally and evidence, the store, the stats), never the session."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

import onnxparity.runner.reuse as reuse
from onnxparity.diagnosis import all_rejected, rejected_line, timeout_diagnosis
from onnxparity.diagnosis.failure import failed_result
from onnxparity.graph.containers import structural_outputs
from onnxparity.persist import Store
from onnxparity.results import VariantResult
from onnxparity.search.stats import RunStats
from onnxparity.search.tally import Evidence
from onnxparity.spec import ParitySpec, Policy
from onnxparity.variants import Runnable

if TYPE_CHECKING:
    from onnxparity.exporters import ModelPair
    from onnxparity.graph.boundaries import Site
    from onnxparity.search.engine import Search  # typing only: the engine imports Hypothesis


@dataclass(frozen=True)
class SearchedItem:
    """One parity item as searched: the model pair, the spec with the graph's boundaries (and
    their sites), the variant and its policy, how many examples from which seed, the real rows,
    the test's name and the anchor variant."""

    pair: ModelPair
    spec: ParitySpec
    sites: dict[str, list[Site]]
    variant: str
    policy: Policy
    examples: int
    seed: int
    rows: Mapping[str, np.ndarray] | None
    name: str
    anchor: str


def timed_out(item: SearchedItem, search: Search, budget: float, spell: Callable[..., str]) -> VariantResult:
    """The failed result of an item whose time budget ran out: how far its search got."""
    tally = search.tally
    message = timeout_diagnosis(
        item.variant, item.spec, tally.tried, search.largest, item.examples, budget, spell
    )
    return VariantResult(
        item.variant, "failed", item.policy, tally.tried, tally.summaries(), tally.covered(), message=message
    )


def searched(
    item: SearchedItem,
    search: Search,
    runnable: Runnable,
    failure: Evidence | None,
    store: Store | None,
    kept: str | None,
    reproducer_dir: str,
    stats: RunStats,
) -> VariantResult:
    """A finished search's result: passed (stored under ``kept``), all rejected, or failed on
    ``failure`` or on the pooled agreement's shortfall, diagnosed (its reproducer written
    under ``reproducer_dir``)."""
    tally, variant, policy = search.tally, item.variant, item.policy
    if failure is None and tally.rejected and not tally.tried:
        message = all_rejected(variant, tally.rejected, tally.first_rejection)
        return VariantResult(variant, "error", policy, 0, message=message)
    shortfall = []
    if failure is None:  # (a crash is a failure too: the runner hands its evidence in)
        shortfall = tally.shortfall()
        if not shortfall:
            passed = VariantResult(
                variant,
                "passed",
                policy,
                tally.tried,
                tally.summaries(),
                tally.covered(),
                power=tally.power(policy, structural_outputs(search.pair.exported.containers)),
                coverage=search.coverage_report(),
                distribution=tally.distribution.to_dict(),
                ill_conditioned=tally.ill_conditioned,
                conditioning=tally.conditioning[1],
                rejected=tally.rejected,
                rejection=rejected_line(tally.first_rejection),
                build=getattr(runnable, "build_facts", None),
            )
            reuse.save(store, kept, passed)
            return passed
        failure = tally.evidence_for(shortfall)
    found = None
    if search.anchor is not None:
        with stats.timed("forensics"):  # with the forensics failed_result times
            found = search.anchor.finding(failure, search.key(failure.example))
    failed = failed_result(
        reproducer_dir,
        item.name,
        variant,
        item.pair,
        item.spec,
        runnable,
        policy,
        failure,
        shortfall,
        tally,
        found,
        stats,
    )
    build = getattr(runnable, "build_facts", None)
    return dataclasses.replace(failed, build=build) if build else failed
