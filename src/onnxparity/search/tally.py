"""What a search counts, and the rules that judge counts over a whole search (pure).

Per output: the worst errors seen, mismatches over all values, the agreement metrics (each
example's minimum, and the search's pooled value), top-1 agreement over all rows, and the
anchor variant's own distance from the reference. An Agreement's rules (``labels``, ``top1``,
``cosine``, ``sqnr_db``) are judged over every example, not one: a label flip or a noisy
example does not fail by itself; the search's total does.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, cast

from onnxparity.draw import Example
from onnxparity.results import OutputSummary
from onnxparity.spec import Agreement, Policy
from onnxparity.verdict.agreement import Energies
from onnxparity.verdict.compare import Verdict
from onnxparity.verdict.distribution import Distribution
from onnxparity.verdict.power import OutputRange, Power, measure

if TYPE_CHECKING:
    import numpy as np

    from onnxparity.verdict.compare import OutputComparison
    from onnxparity.verdict.power import Summary


@dataclass(frozen=True)
class Evidence:
    """One example's inputs and outputs, kept for a diagnosis and a reproducer."""

    example: Example
    feeds: Any  # Mapping[str, np.ndarray]
    expected: list[np.ndarray] | None = None
    actual: list[np.ndarray] | None = None
    verdict: Verdict | None = None
    runtime_error: str | None = None
    reference_error: str | None = None
    #: the anchor variant's outputs compared with the reference on this example (None: not run)
    anchor_verdict: Verdict | None = None
    #: the variant's native code crashed on this example (``runtime_error`` says how); not shrunk
    crashed: bool = False
    #: why the example is as found, not shrunk ("": Hypothesis shrank it)
    unshrunk: str = "not shrunk"
    #: per output, the values at padded positions left out of ``verdict`` (:mod:`.padding`);
    #: ``actual`` holds what the variant returned there
    padded: Any = None  # Mapping[str, int] | None
    #: the framework disagrees with itself here (:mod:`.conditioning`): the line saying how far
    conditioning: str = ""


@dataclass
class OutputTally:
    """One output's worst numbers over a search, accumulating: the fields of OutputSummary."""

    max_abs_error: float = 0.0
    max_rel_error: float = 0.0
    max_mismatched_fraction: float = 0.0
    mismatched: int = 0
    values: int = 0
    min_cosine: float | None = None
    min_sqnr_db: float | None = None
    top1_agree: int = 0
    top1_rows: int = 0
    max_abs_error_vs_ort_cpu: float | None = None
    #: values at padded positions left out of the comparison (:mod:`onnxparity.search.padding`)
    padded_left_out: int = 0
    #: cosine/SQNR sums over every example, and whether any differed beyond the default tolerance
    energies: Energies | None = None
    beyond_default: bool = False

    def add(self, out: OutputComparison) -> None:
        self.max_abs_error = max(self.max_abs_error, out.max_abs_error)
        self.max_rel_error = max(self.max_rel_error, out.max_rel_error)
        self.max_mismatched_fraction = max(self.max_mismatched_fraction, out.mismatched_fraction)
        self.mismatched += out.mismatched
        self.values += out.size
        self.min_cosine = _least(self.min_cosine, out.cosine)
        self.min_sqnr_db = _least(self.min_sqnr_db, out.sqnr_db)
        self.top1_agree += out.top1_agree
        self.top1_rows += out.top1_rows
        if out.energies is not None:
            self.energies = out.energies if self.energies is None else self.energies.plus(out.energies)
            self.beyond_default = self.beyond_default or out.beyond_default

    def add_anchor_distance(self, distance: float) -> None:
        previous = self.max_abs_error_vs_ort_cpu
        self.max_abs_error_vs_ort_cpu = distance if previous is None else max(previous, distance)

    def pooled(self) -> tuple[float | None, float | None]:
        """(cosine, SQNR dB) over every example; None where no example measured them."""
        return self.energies.metrics() if self.energies is not None else (None, None)

    def summary(self, name: str) -> OutputSummary:
        fields = dataclasses.asdict(self)
        del fields["energies"], fields["beyond_default"]
        cosine, sqnr = self.pooled()
        return OutputSummary(name, **fields, cosine=cosine, sqnr_db=sqnr)


def _least(current: float | None, value: float | None) -> float | None:
    if value is None:
        return current
    return value if current is None else min(current, value)


@dataclass(frozen=True)
class Shortfall:
    """An Agreement rule broken over a whole search: a rate (labels, top-1: ``differ`` of
    ``total``) or a pooled metric (cosine, SQNR: ``value``)."""

    rule: str  # "labels", "top1", "cosine" or "sqnr_db"
    output: str
    differ: int = 0
    total: int = 0
    required: float = 0.0
    value: float | None = None


class SearchTally:
    """The counts of one variant's search under one policy."""

    def __init__(self, policy: Policy) -> None:
        agreement = policy if isinstance(policy, Agreement) else None
        self.label_agreement = agreement.labels if agreement else 1.0
        self.top1 = agreement.top1 if agreement else None
        self.cosine = agreement.cosine if agreement else None
        self.sqnr_db = agreement.sqnr_db if agreement else None
        self.reset()

    def reset(self) -> None:
        """Forget everything (a replay's counts, before a real search evaluates again)."""
        self.tried = 0
        #: examples the reference and the variant both rejected (inferred inputs only; not in ``tried``)
        self.rejected = 0
        #: the first of them: (its description, the reference's error, the variant's)
        self.first_rejection: tuple[str, str, str] | None = None
        self.dims: dict[str, list[int]] = {}
        self.outputs: dict[str, OutputTally] = {}
        #: the reference's values per output: what the check could have caught (power)
        self.ranges: dict[str, OutputRange] = {}
        #: each example's numbers, bounded (the HTML report's plots, the tolerance advisor)
        self.distribution = Distribution()
        #: the example with the most label flips / top-1 disagreements: a rate rule's evidence
        self.worst_flips: Evidence | None = None
        self.worst_top1: tuple[int, Evidence] | None = None
        #: the example with the lowest SQNR beyond the default tolerance: a pooled metric's evidence
        self.worst_metric: tuple[float, Evidence] | None = None
        #: examples excused as ill-conditioned (:mod:`.conditioning`), and the worst one's line
        self.ill_conditioned = 0
        self.conditioning: tuple[float, str] = (0.0, "")

    def count_example(self, example: Example) -> None:
        self.tried += 1
        for dim, value in example.dims:
            seen = self.dims.setdefault(dim, [value, value])
            seen[0], seen[1] = min(seen[0], value), max(seen[1], value)

    def add_expected(self, names: tuple[str, ...], summaries: Sequence[Summary | None]) -> None:
        """Record the reference's outputs of one example (their :func:`~onnxparity.verdict.power.summarize`)."""
        for name, summary in zip(names, summaries):
            found = self.ranges.get(name)
            if found is None:
                found = self.ranges[name] = OutputRange()
            found.merge(summary)

    def power(self, policy: Policy, structural: frozenset[str] = frozenset()) -> Power:
        """How much this (passing) search could have caught: see :mod:`onnxparity.verdict.power`.
        ``structural``: outputs that say how a container is made (a sequence's shapes and
        count), constant by design where its elements' shape is: compared, not measured."""
        ranges = {n: r for n, r in self.ranges.items() if n not in structural}
        return measure(ranges, policy, self.tried)

    def add(self, verdict: Verdict, evidence: Callable[[], Evidence]) -> Verdict:
        """Count ``verdict``'s outputs; return the verdict that decides this example (label
        flips under an Agreement deferred to the search's total). ``evidence`` is called only
        when this example may become a rate rule's evidence."""
        for out in verdict.outputs:
            self.outputs.setdefault(out.name, OutputTally()).add(out)
        if self.top1 is not None:
            misses = sum(o.top1_rows - o.top1_agree for o in verdict.outputs)
            if misses and (self.worst_top1 is None or misses > self.worst_top1[0]):
                self.worst_top1 = (misses, evidence())
        if self.cosine is not None or self.sqnr_db is not None:
            measured = [o.sqnr_db for o in verdict.outputs if o.beyond_default and o.sqnr_db is not None]
            if measured and (self.worst_metric is None or min(measured) < self.worst_metric[0]):
                self.worst_metric = (min(measured), evidence())
        if self.label_agreement < 1.0:
            return self._defer_label_flips(verdict, evidence)
        return verdict

    def add_left_out(self, left_out: Mapping[str, int]) -> None:
        """Count the values at padded positions one example left out, per output."""
        for name, count in left_out.items():
            self.outputs.setdefault(name, OutputTally()).padded_left_out += count

    def add_anchor_distances(self, verdict: Verdict | None) -> None:
        """Keep, per float output, the worst distance of the anchor variant from the reference."""
        for out in verdict.outputs if verdict is not None else ():
            if out.exact or out.problem in ("shape", "dtype"):
                continue
            self.outputs.setdefault(out.name, OutputTally()).add_anchor_distance(out.max_abs_error)

    def _defer_label_flips(self, verdict: Verdict, evidence: Callable[[], Evidence]) -> Verdict:
        deferred = [o for o in verdict.outputs if o.exact and o.problem == "values"]
        if not deferred:
            return verdict
        worst = self.worst_flips
        if worst is None or max(o.mismatched_fraction for o in deferred) > max(
            o.mismatched_fraction for o in cast(Verdict, worst.verdict).outputs if o.exact  # (evidence has one)
        ):
            self.worst_flips = evidence()
        return replace(
            verdict,
            outputs=tuple(
                replace(o, passed=True, problem=None) if o in deferred else o for o in verdict.outputs
            ),
        )

    def shortfall(self) -> list[Shortfall]:
        """Rate rules broken over every example tried: exact outputs whose flip rate exceeds
        the labels agreement, float outputs whose top-1 agreement is below ``top1``."""
        found = []
        if self.label_agreement < 1.0 and self.worst_flips is not None:
            exact = {o.name for o in cast(Verdict, self.worst_flips.verdict).outputs if o.exact}
            for name, t in self.outputs.items():
                if (
                    name in exact
                    and t.values
                    and t.mismatched > (1.0 - self.label_agreement) * t.values + 1e-9
                ):
                    found.append(Shortfall("labels", name, t.mismatched, t.values, self.label_agreement))
        if self.top1 is not None:
            for name, t in self.outputs.items():
                if t.top1_rows and t.top1_agree < self.top1 * t.top1_rows - 1e-9:
                    found.append(Shortfall("top1", name, t.top1_rows - t.top1_agree, t.top1_rows, self.top1))
        for name, t in self.outputs.items():
            if not t.beyond_default:  # every value within the default tolerance: nothing lost
                continue
            cosine, sqnr = t.pooled()
            if self.cosine is not None and cosine is not None and not cosine >= self.cosine:
                found.append(Shortfall("cosine", name, required=self.cosine, value=cosine))
            if self.sqnr_db is not None and sqnr is not None and not sqnr >= self.sqnr_db:
                found.append(Shortfall("sqnr_db", name, required=self.sqnr_db, value=sqnr))
        return found

    def evidence_for(self, shortfall: list[Shortfall]) -> Evidence:
        rules = {s.rule for s in shortfall}
        if "labels" in rules and self.worst_flips is not None:
            return self.worst_flips
        if "top1" in rules and self.worst_top1 is not None:
            return self.worst_top1[1]
        assert self.worst_metric is not None
        return self.worst_metric[1]

    def summaries(self) -> tuple[OutputSummary, ...]:
        return tuple(t.summary(n) for n, t in self.outputs.items())

    def covered(self) -> dict[str, tuple[int, int]]:
        return {k: (v[0], v[1]) for k, v in self.dims.items()}


def closeness(verdict: Verdict) -> float:
    """How close a passing example came to failing, for Hypothesis's ``target()``: the largest
    relative error over its float outputs, on a log scale (Hypothesis then mutates toward the
    inputs where the variant drifts most: a gradual bug grows there before it breaks)."""
    worst = max((o.max_rel_error for o in verdict.outputs if not o.exact), default=0.0)
    return math.log10(worst + 1e-30) if math.isfinite(worst) else 30.0
