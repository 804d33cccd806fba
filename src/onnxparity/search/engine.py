"""One variant's search of the declared input space: drive Hypothesis, replay passing
searches, and re-shrink failures found at explicit examples.

Each example is drawn once per session and its reference computed once (the
:class:`~onnxparity.search.data.ExampleData` its :class:`SearchContext` hands in); the
variant runs on it and the comparison decides. A group's examples are drawn and run phase by
phase first (:mod:`.ahead`), then evaluated one by one in order. A passing search's examples are
remembered: Hypothesis draws the same sequence for the same seed while every example passes,
so the next variant of the same test replays it without Hypothesis's per-example bookkeeping.
The first failure in a replay hands over to a real Hypothesis search, which finds and shrinks
it. Knows nothing of pytest.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, cast

import numpy as np
from hypothesis import HealthCheck, Phase, given, reject, settings, target
from hypothesis import seed as hypothesis_seed
from hypothesis.errors import Unsatisfiable, UnsatisfiedAssumption

from onnxparity.draw import Example, rows_digest
from onnxparity.errors import ReferenceCannotRun
from onnxparity.search.ahead import Ran, run_ahead, take
from onnxparity.search.anchor import Anchor
from onnxparity.search.conditioning import Conditioning, Judged, conditioning, rounded, rounded_conditioning
from onnxparity.search.coverage import Coverage
from onnxparity.search.data import ExampleData, ExampleKey
from onnxparity.search.padding import padding_plan
from onnxparity.search.stats import RunStats
from onnxparity.search.strategies import (
    GROUP,
    SHRINK_KEY,
    choices_of,
    engine_examples,
    example_groups,
    group_for,
    hypothesis_storage,
    single_examples,
)
from onnxparity.search.tally import Evidence, SearchTally, closeness
from onnxparity.spec import Agreement, ParitySpec, Policy, Tolerance
from onnxparity.variants import Runnable, VariantRunError
from onnxparity.variants.worker import VariantRunCrashed
from onnxparity.verdict.compare import compare_outputs

if TYPE_CHECKING:
    from hypothesis.database import ExampleDatabase

    from onnxparity.exporters import ModelPair


class ExampleFailed(Exception):
    """Raised inside the Hypothesis test when one example fails; carries its evidence."""

    def __init__(self, evidence: Evidence) -> None:
        super().__init__(evidence.runtime_error or evidence.reference_error or "parity mismatch")
        self.evidence = evidence


class ExampleCrashed(BaseException):
    """A worker crashed on one example (a BaseException: Hypothesis must not shrink it)."""

    def __init__(self, evidence: Evidence) -> None:
        super().__init__(evidence.runtime_error)
        self.evidence = evidence


class TimeBudgetReached(BaseException):
    """An item's time budget ran out (a BaseException: Hypothesis must not shrink it)."""


#: seconds between progress reports of a long search (none for a search shorter than this).
PROGRESS_EVERY = 5.0

#: Hypothesis's phases but ``explain``: after shrinking, it re-runs the minimal failure with each
#: part varied to print which parts matter — a report this search never prints. Measured on a
#: tiny BERT's 0/1 mask: 232 examples run (15 s on 2 cores) for a failure found at the 4th; 6 without.
PHASES = tuple(p for p in Phase if p.name != "explain")


@dataclass(frozen=True)
class SearchContext:
    """What a search uses beyond its own item, as values: the per-example data, the passing
    searches to replay (and add to), the stats, the folder Hypothesis may write in; ``deadline``
    (a ``perf_counter()`` value) ends it with :class:`TimeBudgetReached` before the next example,
    ``progress(done, example)`` is called every :data:`PROGRESS_EVERY` seconds of a long one."""

    data: ExampleData
    replays: dict[tuple[Any, ...], list[Example]]
    stats: RunStats
    workdir: str
    deadline: float | None = None
    progress: Callable[[int, Example], None] | None = None


class Search:
    """Evaluates examples of one (model pair, spec, variant) and keeps the tally.

    ``anchor`` measures each example against the anchor variant too; ``keep_outputs(key,
    outputs)`` is how the anchor's own search hands its outputs on for the other variants'
    distances."""

    def __init__(
        self, context: SearchContext, pair: ModelPair, spec: ParitySpec, runnable: Runnable, policy: Policy,
        rows: Mapping[str, np.ndarray], *, anchor: Anchor | None = None,
        keep_outputs: Callable[[ExampleKey, list[np.ndarray]], None] | None = None,
        coverage: Coverage | None = None, rounding: str | None = None,
    ) -> None:
        self.context = context
        self.stats = context.stats
        self.pair = pair
        if spec.outputs and pair.exported.renamed:  # op.Output('sample') of an output the file renamed
            in_file = {model: onnx_name for onnx_name, model in pair.exported.renamed.items()}
            outputs = tuple(replace(o, name=in_file.get(o.name, o.name)) for o in spec.outputs)
            spec = replace(spec, outputs=outputs)
        self.spec = spec
        self.runnable = runnable
        self.policy = policy
        self.rows = rows
        self.rows_key = rows_digest(rows) if rows else ""
        #: how far the anchor variant is from the reference (None for the anchor itself)
        self.anchor = anchor
        #: the anchor's own search keeps its outputs for the other variants' distances
        self.keep_outputs = keep_outputs
        self.tally = SearchTally(policy)
        self.deadline = context.deadline
        self.progress = context.progress
        self._next_report = time.perf_counter() + PROGRESS_EVERY
        #: the largest example tried (by input elements): what a time budget reached
        self.largest: Example | None = None
        #: which side of each graph boundary the inputs reached (None: not measured)
        self.coverage = coverage
        #: how the variant rounds its inputs, for its examples' conditioning under an Agreement
        self.rounding = rounding
        #: the variant's outcomes on the examples of a group run ahead (:mod:`.ahead`)
        self._ran: dict[ExampleKey, Ran] = {}
        #: failing examples' conditioning, by example (:mod:`onnxparity.search.conditioning`)
        self._float64: dict[ExampleKey, Conditioning | None] = {}
        #: outputs compared at real positions only (:mod:`onnxparity.search.padding`)
        self.padding = padding_plan(pair.exported.path, pair.exported.key, spec, runnable.output_names)
        if anchor is not None:
            anchor.padding = self.padding
            anchor.declared = spec.outputs

    def _ahead(self, examples: Sequence[Example]) -> None:
        """Run ``examples``' phases back to back before they are evaluated (:mod:`.ahead`)."""
        keys = [self.key(e) for e in examples]
        self._ran = run_ahead(self.context.data, self.pair, self.spec, self.rows, self.runnable, keys, self.deadline)

    def key(self, example: Example) -> ExampleKey:
        return ExampleKey(self.spec.input_digest, self.rows_key, example)

    def evaluate(self, example: Example) -> float:
        """Run the variant on ``example``; raise :class:`ExampleFailed` when it breaks parity.
        Returns how close it came (:func:`closeness`)."""
        clock = time.perf_counter
        if self.deadline is not None or self.progress is not None:
            self._watch(example, clock())
        timings = self.stats.timings
        key = self.key(example)
        data = self.context.data
        feeds = data.feeds_for(self.spec, key, self.rows)
        try:
            expected = data.reference_outputs(self.pair, key, feeds)
        except Exception as exc:
            cannot = isinstance(exc, ReferenceCannotRun)  # (the reference's own limit, not the model's)
            refused = self._variant_rejects(feeds) if self.spec.inferred or cannot else None
            if cannot and refused is None:
                raise ReferenceCannotRun(f"{exc}, on {example.describe(self.spec)}") from None
            if refused is not None and self.spec.inferred:
                # outside the model's domain, by both sides' account: not an example of the search
                if not self.tally.rejected:  # the first: what each side said, for the message
                    self.tally.first_rejection = (example.describe(self.spec), f"{type(exc).__name__}: {exc}", refused)
                self.tally.rejected += 1
                raise UnsatisfiedAssumption("both sides refuse it") from None  # (not reject(): runs outside tests too)
            self.tally.count_example(example)
            raise ExampleFailed(
                Evidence(example, feeds, reference_error=f"{type(exc).__name__}: {exc}")
            ) from None
        self.tally.count_example(example)
        if self.coverage is not None:
            started = clock()
            self.coverage.add(feeds, key)
            timings["coverage"] += clock() - started
        started = clock()
        try:
            actual = take(self._ran, key)  # run ahead with its group's others, else now
            actual = self.runnable.run(feeds) if actual is None else actual
        except VariantRunCrashed as exc:
            raise ExampleCrashed(
                Evidence(example, feeds, expected, runtime_error=str(exc), crashed=True)
            ) from None
        except VariantRunError as exc:
            raise ExampleFailed(Evidence(example, feeds, expected, runtime_error=str(exc))) from None
        finally:
            timings["variant"] += clock() - started
        if self.keep_outputs is not None:
            self.keep_outputs(key, actual)
        self.tally.add_expected(
            self.runnable.output_names, data.reference_summaries(self.pair, key, expected)
        )
        started = clock()
        names, left_out = self.runnable.output_names, cast("dict[str, int]", {})
        compared = actual
        if self.padding:  # padded positions are don't-care: set to the reference's, counted
            compared, left_out = self.padding.apply(names, expected, actual, feeds, example.dim_values)
        verdict = compare_outputs(names, expected, compared, self.policy, self.pair.labels, self.spec.outputs)
        timings["compare"] += clock() - started
        anchored = self.anchor.compare(key, feeds, expected) if self.anchor is not None else None
        self.tally.add_anchor_distances(anchored)
        self.tally.add_left_out(left_out)
        self.tally.distribution.add(verdict, data.input_size(key, feeds))

        judged: Judged | None = (
            None if verdict.passed else self._conditioning(key, example, feeds, expected, compared)
        )
        if self.rounding is not None and isinstance(self.policy, Agreement) and verdict.passed:
            plan, dims = self.padding, example.dim_values
            pad = (lambda m: plan.apply(names, expected, m, feeds, dims)[0]) if plan else None
            judged = rounded_conditioning(self.pair.reference, feeds, expected, verdict, self.policy, self.rounding, pad)
        if judged is not None and judged.excused:  # the framework's own float32 is as far off
            self.tally.ill_conditioned += 1
            if judged.framework >= self.tally.conditioning[0]:
                self.tally.conditioning = (judged.framework, judged.line())
            return 0.0

        def evidence() -> Evidence:
            return Evidence(
                example,
                feeds,
                expected,
                actual,
                verdict,
                anchor_verdict=anchored,
                padded=left_out,
                conditioning=judged.line() if judged is not None and judged.ill else "",
            )

        verdict = self.tally.add(verdict, evidence)
        if not verdict.passed:
            raise ExampleFailed(evidence())
        return closeness(verdict)

    def _conditioning(
        self, key: ExampleKey, example: Example, feeds: Mapping[str, np.ndarray], expected: Sequence[np.ndarray],
        compared: Sequence[np.ndarray],
    ) -> Conditioning | None:
        """A failing example's conditioning: the framework in float64 against its float32 and
        the variant (:mod:`.conditioning`), where the source runs it so; once per example.
        Padded positions are left out as the comparison leaves them out: float64 takes the
        float32 reference's values there, so padding never widens the allowance."""
        reference64 = self.pair.reference64
        if reference64 is None or not isinstance(self.policy, Tolerance):
            return None
        if key not in self._float64:
            try:
                wide, moved = reference64(feeds), reference64(rounded(feeds))
                if self.padding:
                    names, dims = self.runnable.output_names, example.dim_values
                    wide, _ = self.padding.apply(names, expected, wide, feeds, dims)
                    moved, _ = self.padding.apply(names, expected, moved, feeds, dims)
                self._float64[key] = conditioning(expected, wide, compared, self.policy, moved)
            except Exception:  # a model that cannot run in float64: the verdict stands
                self._float64[key] = None
        return self._float64[key]

    def _variant_rejects(self, feeds: Mapping[str, np.ndarray]) -> str | None:
        """What the variant says refusing ``feeds`` too, or None where it does not (a crash is
        not a refusal)."""
        try:
            self.runnable.run(feeds)
        except VariantRunCrashed:
            return None
        except VariantRunError as exc:
            return str(exc)
        return None

    def coverage_report(self) -> dict[str, Any] | None:
        """How many boundary sides the inputs could reach, a line for each never reached, and
        the values each dim took (:meth:`~onnxparity.search.coverage.Coverage.report`)."""
        return None if self.coverage is None else self.coverage.report(self.tally.tried)

    def _watch(self, example: Example, now: float) -> None:
        """The time budget and progress reports, before ``example`` runs."""
        if self.deadline is not None and now > self.deadline:
            raise TimeBudgetReached()
        if self.progress is not None and now >= self._next_report:
            self.progress(self.tally.tried, example)
            self._next_report = now + PROGRESS_EVERY
        if self.largest is None or sum(v for _, v in example.dims) > sum(v for _, v in self.largest.dims):
            self.largest = example

    def run(
        self, max_examples: int, seed: int, explicit: Sequence[Example], phases: Iterable[Phase] | None = None
    ) -> Evidence | None:
        """Search for a failing example; None when every example passes. ``phases``: Hypothesis's
        phases (default :data:`PHASES`); a failure is shrunk when they include shrinking."""
        store = self.context.replays
        replay_key = None
        if phases is None:
            replay_key = (self.spec.input_digest, self.rows_key, seed, max_examples, tuple(explicit))
            sequence = store.get(replay_key)
            if sequence is not None and self._replay(sequence):
                return None
        phases = PHASES if phases is None else tuple(phases)
        drawn = list(explicit)
        # the explicit examples, one by one (through Hypothesis each cost ~1 ms of its own); a
        # failure among them is not shrunk: run_shrunk searches again from the simplest inputs
        corner = self._each(explicit)
        if corner is not None:
            return corner
        budget = len(explicit) + max_examples  # drawn examples past it are not run
        found = self._groups(max_examples, seed, budget, drawn, tuple(p for p in phases if p != Phase.shrink))
        if found is None:
            if replay_key is not None:
                store[replay_key] = drawn
            return None
        if Phase.shrink in phases and not found.crashed:
            return self._shrink(found, seed)
        return found

    def _groups(
        self, max_examples: int, seed: int, budget: int, drawn: list[Example], phases: tuple[Phase, ...]
    ) -> Evidence | None:
        """Hypothesis drawing :data:`GROUP` examples per engine example (not shrinking: a group
        shrinks one byte at a time for all its members; :meth:`_shrink` takes the failing one)."""

        failing: list[Example] = []  # once one fails, Hypothesis runs that group again: it must run as before

        def parity_holds(group: tuple[Example, ...]) -> None:
            closest, rejected = None, 0
            todo = list(dict.fromkeys(group))  # a group may draw one example twice: run it once
            stop = todo.index(failing[-1]) + 1 if failing and failing[-1] in todo else len(todo)  # run again
            self._ahead(todo[:stop] if failing else todo[: max(0, budget - len(drawn))])
            for example in todo:
                if len(drawn) >= budget and not failing:
                    break
                drawn.append(example)
                try:
                    found = self.evaluate(example)
                except UnsatisfiedAssumption:  # rejected by both sides: the group's others still count
                    rejected += 1
                    continue
                except ExampleFailed:
                    failing.append(example)
                    raise
                closest = found if closest is None else max(closest, found)
            if closest is None and rejected:
                reject()
            target(closest if closest is not None else 0.0, label="closeness to the tolerance")

        size = group_for(self.spec, self.rows or None)
        test = given(example_groups(self.spec, self.rows or None, size))(parity_holds)
        return self._hypothesis(test, seed, max_examples=engine_examples(max_examples, size), phases=phases)

    def _shrink(self, failure: Evidence, seed: int) -> Evidence:
        """``failure``'s example shrunk alone: Hypothesis replays it from a database (its choices
        under the test's secondary key, so Hypothesis does not take it as already shrunk) and
        shrinks it, one example per engine example. The failure as found where the example
        cannot be drawn so or no longer fails."""
        from hypothesis.database import InMemoryExampleDatabase, choices_to_bytes

        chosen = choices_of(self.spec, self.rows or None, failure.example)
        if chosen is None:
            return replace(failure, unshrunk="not shrunk: the search cannot draw it again to shrink it")
        database = InMemoryExampleDatabase()
        database.save(SHRINK_KEY + b".secondary", choices_to_bytes(chosen))

        def parity_holds(example: Example) -> None:
            self.evaluate(example)

        test = given(single_examples(self.spec, self.rows or None))(parity_holds)
        found = self._hypothesis(
            test, seed, max_examples=1, phases=(Phase.reuse, Phase.shrink), database=database
        )
        if found is None:
            return replace(failure, unshrunk="not shrunk: it passed when run again to be shrunk")
        return replace(found, unshrunk="")

    def _hypothesis(
        self, test: Any, seed: int, *, max_examples: int, phases: tuple[Phase, ...], database: ExampleDatabase | None = None
    ) -> Evidence | None:
        """Run the Hypothesis ``test``; the failure it found (shrunk when ``phases`` say so)."""
        options: dict[str, Any] = dict(
            max_examples=max_examples,
            deadline=None,
            database=database,
            report_multiple_bugs=False,
            suppress_health_check=list(HealthCheck),
            phases=phases,
        )
        test = settings(**options)(hypothesis_seed(seed)(test))  # in this order: seed() drops the database
        # without a key Hypothesis hashes the test's source on every search (~1 ms)
        test._hypothesis_internal_database_key = SHRINK_KEY if database is not None else None
        started = time.perf_counter()
        self.stats.counts["hypothesis_searches"] += 1
        try:
            with hypothesis_storage(os.path.join(self.context.workdir, "hypothesis")):
                test()
        except Unsatisfiable:  # every example was rejected by both sides: the runner says so
            return None
        except Exception as exc:  # ours, or wrapped by Hypothesis (Flaky, ExceptionGroup)
            failure = _find_failure(exc)
            if failure is None:
                raise
            return failure.evidence
        finally:
            self.stats.timings["search"] += time.perf_counter() - started
            self._ran = {}  # what a failure left unread
        return None

    def run_shrunk(self, max_examples: int, seed: int, explicit: Sequence[Example]) -> Evidence | None:
        """Search, and when the failure is one of the explicit examples (which Hypothesis does
        not shrink), search again from the simplest inputs so the reported example is shrunk."""
        failure = self.run(max_examples, seed, explicit)
        if failure is not None and not max_examples:  # nothing is drawn: no other input to shrink toward
            why = "not shrunk: the input space is one point (every input fixed, or none), so it is the one input tried"
            return replace(failure, unshrunk=why)
        if failure is not None and failure.example in explicit:
            smaller = self.run(max_examples, seed, [], phases=(Phase.generate, Phase.shrink))
            if smaller is not None:
                return smaller
            why = "not shrunk: a corner or dim value tried first; a search from the simplest inputs found no failure"
            return replace(failure, unshrunk=why)
        return failure

    def _replay(self, sequence: list[Example]) -> bool:
        """Evaluate a remembered passing sequence; False (counts reset) at its first failure."""
        if self._each(sequence) is not None:
            self.tally.reset()
            return False
        self.stats.counts["replayed_searches"] += 1
        return True

    def _each(self, sequence: Sequence[Example]) -> Evidence | None:
        """Evaluate ``sequence`` in order, outside Hypothesis; the first failure's evidence (None:
        every example passed or was rejected by both sides, as in the search)."""
        started = time.perf_counter()
        try:
            for at, example in enumerate(sequence):
                if at % GROUP == 0:
                    self._ahead(sequence[at : at + GROUP])
                try:
                    self.evaluate(example)
                except UnsatisfiedAssumption:
                    continue
        except ExampleFailed as failed:
            return failed.evidence
        finally:
            self.stats.timings["search"] += time.perf_counter() - started
            self._ran = {}  # what a failure left unread
        return None


def _find_failure(exc: BaseException) -> ExampleFailed | None:
    if isinstance(exc, ExampleFailed):
        return exc
    for inner in getattr(exc, "exceptions", ()) or ():
        found = _find_failure(inner)
        if found is not None:
            return found
    cause = exc.__cause__ or exc.__context__
    return _find_failure(cause) if cause is not None else None
