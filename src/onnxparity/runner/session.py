"""The item loop: export once, build each variant once, search, diagnose.

A :class:`ParitySession` lives for one pytest session (or one library call). It owns the
caches — model pairs by (subject, spec, opset), built variants by (export, variant, options),
drawn feeds and outputs by :class:`~onnxparity.search.data.ExampleKey`, the examples of passing
searches — so that Hypothesis examples only pay for inference (DESIGN.md principle 1). For
each item it hands the work to the part that owns it: the exporter (:mod:`.exporters`), the
variant builders (:mod:`.variants`), the search (:mod:`.search`), the anchor
(:mod:`.search.anchor`), the diagnosis (:mod:`.diagnosis`), the reproducer
(:mod:`.diagnosis.reproducer`) and the budgets (:mod:`.budgets`), and hands each the values it
needs (a :class:`~onnxparity.search.engine.SearchContext`, the anchor's build as a callable,
the run's :class:`~onnxparity.search.stats.RunStats`), never itself. It counts and times its
work (``counts``, ``timings``) for tests and benchmarks. Knows nothing of pytest: messages name
settings through ``config.spell``, which the plugin words as flags.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import functools
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import Any, cast

import numpy as np

import onnxparity.budgets as budgets
import onnxparity.runner.outcome as outcome
import onnxparity.runner.reuse as reuse
from onnxparity.config import ParityConfig
from onnxparity.diagnosis import indent
from onnxparity.diagnosis.reproducer import safe_name
from onnxparity.draw import Example, default_example, materialize, resolve_data, sampler, search_examples
from onnxparity.errors import (
    ExportError,
    InvalidSpec,
    OnnxParityError,
    ReferenceCannotRun,
    VariantBuildError,
    VariantUnavailable,
)
from onnxparity.exporters import ModelPair, Subject, resolve
from onnxparity.exporters.prebuilt import load as load_prebuilt
from onnxparity.exporters.stored import export_cached
from onnxparity.graph.boundaries import BoundaryCache
from onnxparity.graph.resources import over_memory_budget
from onnxparity.parsers import LATENCY_MODES
from onnxparity.persist import Store, options_digest
from onnxparity.planning import Item, plan_items, stable_seed
from onnxparity.results import BudgetResult, CheckResult, VariantResult
from onnxparity.search.anchor import ANCHOR_VARIANT, Anchor
from onnxparity.search.coverage import Coverage, InnerCache
from onnxparity.search.data import ExampleData
from onnxparity.search.engine import ExampleCrashed, Search, SearchContext, TimeBudgetReached
from onnxparity.search.stats import RunStats
from onnxparity.spec import Latency, ParitySpec
from onnxparity.variants import BuildContext, Runnable, VariantInfo, VariantRunError, get_variant
from onnxparity.variants.worker import IsolatedVariant, NotImportable, isolates

#: seed of the inputs builders get for calibration and first runs.
SAMPLE_SEED = 20240917


class ParitySession:
    """Caches and settings shared by every check in one run; close it to remove its files."""

    def __init__(self, config: ParityConfig | None = None, *, workdir: str | None = None) -> None:
        self.config = config or ParityConfig()
        if self.config.latency not in LATENCY_MODES:
            raise InvalidSpec(f"latency mode {self.config.latency!r}: use one of {', '.join(LATENCY_MODES)}")
        self._own_workdir = workdir is None
        self.workdir = os.path.abspath(workdir or tempfile.mkdtemp(prefix="onnxparity-"))
        #: what every stage counts and times, handed down as a value
        self.stats = RunStats()
        #: the stats' own counter and phase timings (seconds per phase: a benchmark's breakdown)
        self.counts: collections.Counter[str] = self.stats.counts
        self.timings: collections.defaultdict[str, float] = self.stats.timings
        self._pairs: dict[tuple[Any, ...], ModelPair] = {}
        #: the graph's boundaries and their sites, and its inner branches, per exported model
        self.boundaries, self.inner_coverage = BoundaryCache(), InnerCache(self.stats.timings)
        self._variants: dict[tuple[str, str, str], Runnable | OnnxParityError] = {}
        #: drawn feeds, reference outputs (and their summaries) and anchor outputs per example
        self.examples = ExampleData(self.stats)
        #: examples of passing searches, replayed by the next variant with the same seed
        self.passing_searches: dict[tuple[Any, ...], list[Example]] = {}
        #: exports kept across runs (None: no persistent cache; see the cache_dir setting)
        cache = self.config.cache_dir
        self.store = None if cache in ("auto", "off") else Store(cache, self.config.cache_mb << 20)
        #: ``progress(test, variant, done, total, example)``, called every few seconds of a long
        #: search (the plugin shows it; None: silent)
        self.progress: Callable[[str, str, int, int, str], None] | None = None

    def clear_example_caches(self) -> None:
        """Forget drawn inputs, outputs and replayable searches (exports and built variants
        stay): the next check pays for drawing and inference again (benchmarks)."""
        self.examples.clear()
        self.passing_searches.clear()

    def close(self) -> None:
        for built in self._variants.values():
            if isinstance(built, IsolatedVariant):
                built.close()
        self._variants.clear()
        self.examples.clear()
        if self._own_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> ParitySession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- models ---------------------------------------------------------------------------
    def prepare(
        self, model: Any = None, spec: ParitySpec | None = None, *, onnx: Any = None,
        reference: Callable[..., Any] | None = None,
    ) -> ModelPair:
        """Export the subject (or load its ``onnx=`` file) once, paired with its reference.
        ``model`` is a :class:`~onnxparity.exporters.Subject`, or a model to resolve."""
        if spec is None:
            raise InvalidSpec("a parity check needs inputs=[op.Input(...)] (and dims= for symbolic dims)")
        subject = model if isinstance(model, Subject) else resolve(model, onnx=onnx, reference=reference)
        source = subject.exporter
        source.check_fit(subject.model, spec)
        if subject.onnx is not None:
            exported = load_prebuilt(subject.onnx, spec, self.workdir)
            budget = spec.opset_budget
            if budget is not None and spec.opset in budget.matrix:  # a file is checked as is, but a
                exported = budgets.at_opset(exported, spec.opset, self.workdir)  # matrix asks for each opset
            key: tuple[Any, ...] = ("onnx", exported.key, subject.key, spec.input_digest)
        else:
            key = ("export", subject.key, spec.input_digest, spec.opset)
            exported = None
        cached = self._pairs.get(key)
        if cached is not None:
            return cached
        if exported is None:
            started = time.perf_counter()
            exported = export_cached(
                self.store, source, subject, spec, self.workdir, self.counts, verify=self.config.cache_verify
            )
            self.timings["export"] += time.perf_counter() - started
            if spec.opset is not None:
                exported = budgets.at_opset(exported, spec.opset, self.workdir)
        pair = ModelPair(
            exported,
            source.reference(subject.model, spec, exported),
            subject.key,
            source.label_outputs(subject.model, exported),
            subject,
            source.reference64(subject.model, spec, exported),
            source.model_facts(subject.model),
        )
        self._pairs[key] = pair
        return pair

    # -- variants -------------------------------------------------------------------------
    def variant(
        self, pair: ModelPair, name: str, spec: ParitySpec | None = None,
        rows: Mapping[str, np.ndarray] | None = None, threads: int | None = None, *, here: bool = False,
    ) -> Runnable:
        """The built variant ``name`` of ``pair``, with the options ``spec`` declares for it:
        built once per session (and thread count), its failure remembered. ``here``: in this
        process even where the isolate setting would use a worker (latency is timed here)."""
        info = get_variant(name)
        options = dict(spec.options_for(name)) if spec is not None else {}
        prebuilt = pair.subject is not None and pair.subject.onnx is not None
        isolated = isolates(info, options.pop("isolate", None), self.config.isolate, prebuilt) and not here
        default_threads = self.config.threads
        threads = threads or default_threads
        build_key = options_digest(options) + ("" if threads == default_threads else f"-t{threads}")
        key = (pair.exported.key, name, build_key + ("-w" if isolated else ""))
        built = self._variants.get(key)
        if built is None:
            context = BuildContext(
                model_path=pair.exported.path,
                workdir=os.path.join(
                    self.workdir, "variants", safe_name(name), pair.exported.key[:40] + key[2]
                ),
                threads=threads,
                options=options,
                sample_feeds=sampler(spec, rows, SAMPLE_SEED),
                name=name,
                source=dict(pair.facts),
                cache_root=self.store.root if self.store is not None else "",
                cache_mb=self.config.cache_mb,
                cache_key=""  # verify: every conversion made afresh
                if self.config.cache_verify or not pair.exported.cache_key
                else f"{pair.exported.cache_key}-{options_digest(options)}",
            )
            os.makedirs(context.workdir, exist_ok=True)
            with self.stats.timed("build"):
                try:
                    built = self._build(info, context, isolated)
                    self.counts["sessions"] += 1
                    log = getattr(built, "build_cache", None) or context.cache_log
                    self.counts["cached_builds"] += sum("reused" in line for line in log)
                except OnnxParityError as exc:
                    built = exc
                except Exception as exc:  # a builder's own error is that variant's error, never a crash
                    built = VariantBuildError(f"{type(exc).__name__}: {exc}")
            self._variants[key] = built
        if isinstance(built, OnnxParityError):
            raise built
        return built

    def _build(self, info: VariantInfo, context: BuildContext, isolated: bool) -> Runnable:
        """The variant built in a worker where ``isolated`` (and its builder importable), else here."""
        if isolated:
            try:
                runnable = IsolatedVariant(info.build, context, what=info.name, hint=info.crash_hint)
                self.counts["workers"] += 1
                return runnable
            except NotImportable:
                pass  # a lambda or a local function: it can only run here
        return info.build(context)

    def _variant_or_verdict(
        self, pair: ModelPair, name: str, spec: ParitySpec, rows: Mapping[str, np.ndarray] | None,
        threads: int | None = None, here: bool = False,
    ) -> Runnable | tuple[str, str]:
        """The built variant, or the (status, message) it gets when it cannot be built: a skip
        when unavailable here (an error where a GPU is required), an error when it breaks."""
        try:
            info = get_variant(name)
            return self.variant(pair, name, spec, rows, threads=threads, here=here)
        except VariantUnavailable as exc:
            if info.requires_gpu and self.config.require_gpu:
                return (
                    "error",
                    f"{name} is required ({self.config.spell('require_gpu')}) but unavailable: {exc}",
                )
            return "skipped", f"{name} skipped: {exc}"
        except OnnxParityError as exc:
            return "error", f"{name} could not be built: {exc}"

    def _anchor_build(self, pair: ModelPair, variant: str = ANCHOR_VARIANT) -> Callable[[], Runnable | None]:
        """The anchor's build for a search: the variant built on first use (once per session),
        None where it cannot be; the search calls it, never the session."""

        def build() -> Runnable | None:
            try:
                return self.variant(pair, variant)
            except OnnxParityError:
                return None

        return build

    def searched_spec(self, pair: ModelPair, spec: ParitySpec) -> ParitySpec:
        """``spec`` with the graph's boundaries added to its inputs (:mod:`.boundaries`)."""
        return self.boundaries.searched(pair.exported.key, pair.exported.path, spec)[0]

    # -- checks ---------------------------------------------------------------------------
    def check_variant(
        self, pair: ModelPair, spec: ParitySpec, variant: str, *, name: str, examples: int | None = None,
        rows: Mapping[str, np.ndarray] | None = None, anchor: str = ANCHOR_VARIANT,
    ) -> VariantResult:
        """Search the declared input space for an input where ``variant`` breaks parity.

        ``rows`` (from :func:`strategies.resolve_data`) adds real rows to what is drawn;
        ``anchor`` is the variant every other is also measured against. The inputs' boundaries
        gain the constants the graph branches on (:mod:`.boundaries`)."""
        try:
            info = get_variant(variant)
        except InvalidSpec as exc:
            return VariantResult(variant, "error", None, message=str(exc))
        spec, sites, sized = self.boundaries.searched(pair.exported.key, pair.exported.path, spec)
        source = pair.subject.exporter if pair.subject is not None else None
        fallback = pair.exported.default_tolerance or getattr(source, "default_tolerance", None)
        policy = spec.policy_for(variant, info.default_policy, fallback)
        too_large = over_memory_budget(spec, self.config.max_example_mb, sized)
        if too_large:
            fix = self.config.spell("max_example_mb", self.config.max_example_mb * 4)
            return VariantResult(variant, "error", policy, message=f"{too_large} ({fix})")
        n = examples or spec.examples or self.config.examples
        if info.max_examples and not (examples or spec.examples):
            n = min(n, info.max_examples)
        seed = stable_seed(name, self.config.seed)
        item = outcome.SearchedItem(pair, spec, sites, variant, policy, n, seed, rows, name, anchor)
        config, store = self.config, self.store
        threads, coverage = config.threads, config.coverage
        kept = reuse.result_key(
            store, pair, spec, variant, info, policy, n, seed, rows, threads=threads, coverage=coverage
        )
        cached = reuse.load(store, kept, variant, policy, workdir=self.workdir, stats=self.stats)
        search = functools.partial(self._search, item)  # run unless an earlier run's pass is reused
        return reuse.reused_or(store, kept, cached, pair.exported, search, verify=config.cache_verify)

    def _search(self, item: outcome.SearchedItem, kept: str | None) -> VariantResult:
        """The search of one item (its passing result stored under ``kept``)."""
        runnable = self._variant_or_verdict(item.pair, item.variant, item.spec, item.rows)
        if isinstance(runnable, tuple):
            verdict = VariantResult(item.variant, runnable[0], item.policy, message=runnable[1])
            reuse.save(self.store, kept, verdict)  # a skip is kept like a pass (never an error)
            return verdict
        search = self._new_search(item, runnable)
        try:
            explicit, drawn = search_examples(item.spec, item.examples, item.rows)
            failure = search.run_shrunk(drawn, item.seed, explicit)
        except ExampleCrashed as crash:
            failure = crash.evidence
        except ReferenceCannotRun as exc:  # nothing to compare the variant with: an error, not a verdict
            v = item.variant
            why = f"either the reference does not implement this use of an op or {v} accepts an input it should refuse"
            message = f"{exc}, an input {v} runs: {why}; nothing is compared on it (check against stored pairs: --data)"
            return VariantResult(v, "error", item.policy, message=message)
        except TimeBudgetReached:
            # (only a set budget runs out)
            return outcome.timed_out(item, search, cast(float, self.config.item_timeout_s), self.config.spell)
        return outcome.searched(
            item, search, runnable, failure, self.store, kept, self.config.reproducer_dir, self.stats
        )

    def _new_search(self, item: outcome.SearchedItem, runnable: Runnable) -> Search:
        """The search of ``item`` on ``runnable``: the session's data, replays and stats as a
        context, the anchor with its build (the anchor's own search keeps its outputs)."""
        pair, spec, variant = item.pair, item.spec, item.variant
        build = self._anchor_build(pair, item.anchor)
        anchor = Anchor(pair, runnable.output_names, build, self.examples.outputs, self.stats, item.anchor)
        coverage = Coverage(
            item.sites, self.inner_coverage.claim(pair.exported, item.sites, spec, self.config.coverage)
        )
        budget, progress = self.config.item_timeout_s, self.progress
        context = SearchContext(
            self.examples,
            self.passing_searches,
            self.stats,
            self.workdir,
            deadline=time.perf_counter() + budget if budget else None,
            progress=None
            if progress is None
            else lambda done, e: progress(item.name, variant, done, item.examples, e.describe(spec)),
        )
        own = variant == item.anchor
        return Search(
            context,
            pair,
            spec,
            runnable,
            item.policy,
            item.rows or {},
            anchor=None if own else anchor,
            keep_outputs=anchor.keep if own else None,
            coverage=coverage,
            rounding=get_variant(variant).rounds_inputs,
        )

    def check(
        self, subject: Subject, *, spec: ParitySpec, name: str | None = None, examples: int | None = None,
        data: Any = None, variants: Sequence[str] | None = None, items: Sequence[Item] | None = None,
        latency_mode: str | None = None,
    ) -> CheckResult:
        """Every item of ``spec`` — parity per variant (per opset of a matrix), the opset
        budget, each latency budget — or only ``items`` (or the parity items of ``variants``).

        ``data`` (real rows: array, DataFrame or dict) is resampled and perturbed in addition
        to the spec's ranges; str inputs without categories learn them from it."""
        spec, rows = resolve_data(spec, data)
        if items is None:
            items = plan_items(variants or spec.variants, spec.opset_budget, () if variants else spec.latency)
        name = name or subject.name
        results: dict[str, VariantResult] = {}
        budget_results: dict[str, BudgetResult] = {}
        first: ModelPair | None = None

        def pair_at(opset: int | None) -> ModelPair:
            nonlocal first
            at = replace(spec, opset=opset) if opset is not None and opset != spec.opset else spec
            pair = self.prepare(subject, at)
            first = first or pair
            return pair

        for item in items:
            if item.kind == "parity":
                item_spec = replace(spec, opset=item.opset) if item.opset is not None else spec
                try:
                    pair = pair_at(item.opset)
                except ExportError as exc:
                    if item.opset is None:
                        raise
                    results[item.id] = VariantResult(
                        cast(str, item.variant),  # (a parity item names its variant)
                        "error",
                        message=f"{item.variant} at opset {item.opset}: {exc}",
                        opset=item.opset,
                    )
                    continue
                result = self.check_variant(
                    pair, item_spec, cast(str, item.variant), name=name, examples=examples, rows=rows
                )
                results[item.id] = replace(result, opset=item.opset) if item.opset is not None else result
            elif item.kind == "opset":
                budget_results[item.id] = budgets.check_opset(spec, lambda o: pair_at(o).exported, item.id)
            else:
                budget_results[item.id] = self.check_latency(
                    pair_at(spec.opset), spec, cast(Latency, item.latency), item.id, rows, mode=latency_mode
                )
        if first is None:
            first = pair_at(spec.opset)
        exported = first.exported
        return CheckResult(
            name,
            exported.exporter,
            exported.opset,
            exported.notes,
            results,
            budget_results,
            exported.cache,
            exported.key,
        )

    def check_latency(
        self, pair: ModelPair, spec: ParitySpec, latency: Latency, item: str,
        rows: Mapping[str, np.ndarray] | None = None, mode: str | None = None,
    ) -> BudgetResult:
        """Time ``latency.variant`` and the framework interleaved at ``latency.at``; ``mode``
        (enforce, report, off) overrides the configured one."""
        mode = mode or self.config.latency
        if mode not in LATENCY_MODES:
            raise InvalidSpec(f"latency mode {mode!r}: use one of {', '.join(LATENCY_MODES)}")
        kept = None
        if mode == "report":  # numbers only, never a verdict: an earlier run's on this machine stand
            kept = reuse.latency_key(self.store, pair, spec, latency, rows, latency.threads or self.config.threads)
            cached = reuse.load_latency(self.store, kept, self.workdir)
            if cached is not None:
                return dataclasses.replace(cached, item=item)
        if mode == "off":
            runnable: Runnable | tuple[str, str] = (
                "skipped",
                f"latency measurement is off ({self.config.spell('latency', 'off')})",
            )
        else:
            runnable = self._variant_or_verdict(
                pair, latency.variant, spec, rows, threads=latency.threads, here=True
            )
        if isinstance(runnable, tuple):
            return BudgetResult(item, "latency", *runnable, latency.to_dict(), {})
        example = default_example(spec, spec.latency_dims(latency))
        feeds = materialize(spec, example, rows or {})
        source = pair.subject.exporter if pair.subject is not None else None
        try:
            measured = budgets.check_latency(
                latency,
                item,
                variant=lambda: runnable.run(feeds),
                framework=lambda: pair.reference(feeds),
                limit_threads=source.limit_threads
                if source is not None
                else lambda _: contextlib.nullcontext(),
                dims=example.dim_values,
                mode=mode,
                provider=next(iter(getattr(runnable, "providers", ()) or ()), None),
                spell=self.config.spell,
            )
            reuse.save_latency(self.store, kept, measured)
            return measured
        except VariantRunError as exc:
            message = f"{latency.variant} raised at {example.describe(spec)}:\n{indent(str(exc))}"
            return BudgetResult(item, "latency", "error", message, latency.to_dict(), {})
