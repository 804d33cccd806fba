"""The parity loop: export once, build each variant once, draw inputs, compare.

A :class:`ParitySession` owns the caches of one pytest session (or one library call):
exported models by (framework, model fingerprint, spec, opset), built variants by (export,
variant, options), reference outputs and ort-cpu outputs by (model, spec, example), the drawn
inputs of each example (read-only, shared by a test's variants), and the examples of each
passing search (replayed by the next variant of the same test instead of a new Hypothesis
search) — DESIGN.md principle 1: Hypothesis examples only pay for inference. It also runs the
budget items (opset, latency) and counts and times its work (``counts``, ``timings``) for tests
and benchmarks. Knows nothing of pytest.
"""

from __future__ import annotations

import collections
import dataclasses
import hashlib
import json
import os
import re
import shutil
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import example as explicit_example
from hypothesis import seed as hypothesis_seed

from . import exporters
from .budgets import (
    BudgetResult,
    convert_opset,
    environment,
    latency_verdict,
    measure_interleaved,
    opset_message,
    opset_problems,
)
from .compare import Verdict, compare_outputs
from .config import DEFAULT_EXAMPLES, DEFAULT_REPRODUCERS, LATENCY_MODES
from .errors import (
    ExportError,
    InvalidSpec,
    OnnxParityError,
    VariantBuildError,
    VariantUnavailable,
)
from .exporters import ExportedModel, Reference
from .report import CheckResult, OutputSummary, VariantResult
from .spec import DEFAULT_TOLERANCE, Agreement, Item, Latency, ParitySpec, Policy, plan_items
from .strategies import (
    Example,
    boundary_examples,
    examples,
    materialize,
    resolve_data,
    rows_digest,
    sample_examples,
)
from .variants import BuildContext, Runnable, VariantRunError, get_variant

#: the variant every other is also measured against (export error vs variant error).
BASELINE_VARIANT = "ort-cpu"

#: seed of the inputs builders get for calibration and first runs.
SAMPLE_SEED = 20240917

#: reference outputs kept per session (least recently used dropped first).
REFERENCE_CACHE_SIZE = 512

#: bytes of drawn inputs kept per session, so the variants of one test draw each input once.
FEEDS_CACHE_BYTES = 256 * 2**20

#: frameworks with an exporter, by the name ``exporters.framework_of`` gives.
EXPORTER_MODULES = {
    "torch": "onnxparity.exporters.torch",
    "tensorflow": "onnxparity.exporters.tensorflow",
    "sklearn": "onnxparity.exporters.sklearn",
}


@dataclass(frozen=True)
class Prepared:
    """An exported (or supplied) ONNX model with the reference it is compared against."""

    exported: ExportedModel
    reference: Reference
    reference_key: str
    #: label output -> (its probability output, classes in column order), for classifiers
    labels: Mapping[str, tuple[str, tuple]] = field(default_factory=dict)


class ExampleFailed(Exception):
    """Raised inside the Hypothesis test when one example fails; carries the evidence."""

    def __init__(
        self,
        example: Example,
        feeds: Mapping[str, np.ndarray],
        expected: list | None = None,
        actual: list | None = None,
        verdict: Verdict | None = None,
        runtime_error: str | None = None,
        reference_error: str | None = None,
    ) -> None:
        super().__init__(runtime_error or reference_error or "parity mismatch")
        self.example = example
        self.feeds = feeds
        self.expected = expected
        self.actual = actual
        self.verdict = verdict
        self.runtime_error = runtime_error
        self.reference_error = reference_error


class ParitySession:
    """Caches and settings shared by every check in one run; close it to remove its files."""

    def __init__(
        self,
        *,
        workdir: str | None = None,
        reproducer_dir: str | os.PathLike = DEFAULT_REPRODUCERS,
        threads: int = 1,
        examples: int = DEFAULT_EXAMPLES,
        require_gpu: bool = False,
        latency_mode: str = "report",
    ) -> None:
        self._own_workdir = workdir is None
        self.workdir = workdir or tempfile.mkdtemp(prefix="onnxparity-")
        self.reproducer_dir = os.fspath(reproducer_dir)
        self.threads = threads
        self.default_examples = examples
        self.require_gpu = require_gpu
        self.latency_mode = _latency_mode(latency_mode)
        self.counts: collections.Counter[str] = collections.Counter()
        #: seconds spent per phase: export, build, draw, reference, variant, baseline, compare,
        #: search (whole searches, Hypothesis included): a benchmark's breakdown
        self.timings: collections.Counter[str] = collections.Counter()
        self._prepared: dict[tuple, Prepared] = {}
        self._variants: dict[tuple[str, str, str], Runnable | OnnxParityError] = {}
        self._references: collections.OrderedDict[tuple, list] = collections.OrderedDict()
        self._feeds: collections.OrderedDict[tuple, dict] = collections.OrderedDict()
        self._feeds_bytes = 0
        #: examples of passing searches, replayed by the next variant with the same seed
        self._sequences: dict[tuple, list[Example]] = {}

    def clear_example_caches(self) -> None:
        """Forget drawn inputs, reference outputs and replayable searches (exports and built
        variants stay): the next check pays for drawing and inference again (benchmarks)."""
        self._references.clear()
        self._feeds.clear()
        self._feeds_bytes = 0
        self._sequences.clear()

    def close(self) -> None:
        self._variants.clear()
        self._references.clear()
        if self._own_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> ParitySession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- export ---------------------------------------------------------------------------
    def prepare(
        self,
        model: Any = None,
        spec: ParitySpec | None = None,
        *,
        onnx: Any = None,
        reference: Callable | None = None,
    ) -> Prepared:
        """Export ``model`` (or take ``onnx``) once, and pair it with its reference."""
        if spec is None:
            raise InvalidSpec("a parity check needs inputs=[op.Input(...)] (and dims= for symbolic dims)")
        if model is None and reference is None:
            raise InvalidSpec(
                "nothing to compare against: pass the framework model, or reference= (a callable "
                "taking and returning numpy arrays) with onnx="
            )
        if reference is not None and onnx is None:
            raise InvalidSpec("reference= needs onnx= (the ONNX model to check against it)")

        framework = exporters.framework_of(model) if model is not None else None
        module = None
        if model is not None and reference is None:
            if framework not in EXPORTER_MODULES:
                supported = ", ".join(sorted(EXPORTER_MODULES))
                raise ExportError(
                    f"no exporter for {type(model).__module__}.{type(model).__qualname__} "
                    f"(supported frameworks: {supported}); pass onnx= and reference= to check it anyway"
                )
            import importlib

            module = importlib.import_module(EXPORTER_MODULES[framework])
            module.check_fit_to_export(model, spec)

        if module is not None:
            ref_key = f"{framework}-{module.fingerprint(model)}"
        else:
            # Unique while the session lives: the cached Prepared keeps the callable alive.
            ref_key = f"callable-{id(reference)}"

        if onnx is not None:
            exported = exporters.prebuilt_onnx(onnx, spec, self.workdir)
            budget = spec.opset_budget
            if budget is not None and spec.opset in budget.matrix:  # a file is checked as is, but a
                exported = self._at_opset(exported, spec.opset)  # matrix asks for each opset
            key = ("onnx", exported.key, ref_key, spec.input_digest)
            cached = self._prepared.get(key)
            if cached is not None:
                return cached
            ref = (
                module.make_reference(model, spec, exported)
                if module is not None
                else _numpy_reference(reference, spec, exported)
            )
            prepared = Prepared(exported, ref, ref_key, _labels(module, model, exported))
        else:
            key = ("export", ref_key, spec.input_digest, spec.opset)
            cached = self._prepared.get(key)
            if cached is not None:
                return cached
            started = time.perf_counter()
            exported, ref = module.export(model, spec, workdir=self.workdir, opset=spec.opset)
            self.timings["export"] += time.perf_counter() - started
            self.counts["exports"] += 1
            if spec.opset is not None:
                exported = self._at_opset(exported, spec.opset)
            prepared = Prepared(exported, ref, ref_key, _labels(module, model, exported))
        self._prepared[key] = prepared
        return prepared

    def _at_opset(self, exported: ExportedModel, opset: int) -> ExportedModel:
        """``exported`` itself when it has ``opset``, else converted with onnx.version_converter
        (exporters cannot target every opset: torch's dynamo exporter emits 18 at least)."""
        if exported.opset == opset:
            return exported
        target_dir = os.path.join(self.workdir, "converted", f"{exported.key[:60]}-opset{opset}")
        os.makedirs(target_dir, exist_ok=True)
        try:
            path = convert_opset(exported.path, opset, os.path.join(target_dir, "model.onnx"))
        except Exception as exc:
            message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ExportError(
                f"{exported.exporter} produced opset {exported.opset} when asked for {opset}, and "
                f"onnx.version_converter could not convert it: {type(exc).__name__}: {message}"
            ) from None
        note = f"exported at opset {exported.opset} by {exported.exporter}, converted to {opset} with onnx.version_converter"
        return replace(
            exported, path=path, key=f"{exported.key}-to{opset}", opset=opset, notes=(*exported.notes, note)
        )

    # -- variants -------------------------------------------------------------------------
    def variant(
        self,
        prepared: Prepared,
        name: str,
        spec: ParitySpec | None = None,
        rows: Mapping[str, np.ndarray] | None = None,
        threads: int | None = None,
    ) -> Runnable:
        """The built variant ``name`` of ``prepared``, with the options ``spec`` declares for
        it: built once per session (and thread count), its failure remembered."""
        options = spec.options_for(name) if spec is not None else {}
        threads = threads or self.threads
        key = (
            prepared.exported.key,
            name,
            _options_digest(options) + ("" if threads == self.threads else f"-t{threads}"),
        )
        built = self._variants.get(key)
        if built is None:
            info = get_variant(name)
            context = BuildContext(
                model_path=prepared.exported.path,
                workdir=os.path.join(
                    self.workdir, "variants", _safe(name), prepared.exported.key[:40] + key[2]
                ),
                threads=threads,
                options=options,
                sample_feeds=_sampler(spec, rows),
                name=name,
            )
            os.makedirs(context.workdir, exist_ok=True)
            started = time.perf_counter()
            try:
                built = info.build(context)
                self.counts["sessions"] += 1
            except OnnxParityError as exc:
                built = exc
            except Exception as exc:  # a builder's own error is that variant's error, never a crash
                built = VariantBuildError(f"{type(exc).__name__}: {exc}")
            self.timings["build"] += time.perf_counter() - started
            self._variants[key] = built
        if isinstance(built, OnnxParityError):
            raise built
        return built

    def baseline_outputs(
        self, prepared: Prepared, example: Example, feeds, rows_key: str = ""
    ) -> list | None:
        """ort-cpu's outputs on ``example`` (cached like references), or None where ort-cpu
        cannot build or run."""
        key = _baseline_key(prepared, example, rows_key)
        outputs = self._references.get(key)
        if outputs is None:
            started = time.perf_counter()
            try:
                outputs = self.variant(prepared, BASELINE_VARIANT).run(feeds)
            except (OnnxParityError, VariantRunError):
                return None
            finally:
                self.timings["baseline"] += time.perf_counter() - started
            self._remember(key, outputs)
        return outputs

    def feeds_for(
        self, spec: ParitySpec, example: Example, rows: Mapping[str, np.ndarray], rows_key: str = ""
    ) -> dict[str, np.ndarray]:
        """The arrays of ``example``, drawn once and shared by every variant that checks it.

        They are read-only: a runtime or framework that wrote into its input would change what
        the next one sees (references that may write, such as PyTorch's, get a copy)."""
        key = (spec.input_digest, rows_key, example)
        feeds = self._feeds.get(key)
        if feeds is not None:
            self._feeds.move_to_end(key)
            return feeds
        started = time.perf_counter()
        feeds = materialize(spec, example, rows)
        self.timings["draw"] += time.perf_counter() - started
        for array in feeds.values():
            array.flags.writeable = False
        size = sum(a.nbytes for a in feeds.values())
        if size <= FEEDS_CACHE_BYTES:
            self._feeds[key] = feeds
            self._feeds_bytes += size
            while self._feeds_bytes > FEEDS_CACHE_BYTES:
                _, dropped = self._feeds.popitem(last=False)
                self._feeds_bytes -= sum(a.nbytes for a in dropped.values())
        return feeds

    def remember_baseline(self, prepared: Prepared, example: Example, rows_key: str, outputs: list) -> None:
        """ort-cpu's outputs from its own search: later variants' distances reuse them."""
        self._remember(_baseline_key(prepared, example, rows_key), outputs)

    def _remember(self, key: tuple, outputs: list) -> None:
        self._references[key] = outputs
        if len(self._references) > REFERENCE_CACHE_SIZE:
            self._references.popitem(last=False)

    def reference_outputs(
        self, prepared: Prepared, spec: ParitySpec, example: Example, feeds, rows_key: str = ""
    ) -> list:
        key = (prepared.reference_key, spec.input_digest, rows_key, example)
        outputs = self._references.get(key)
        if outputs is None:
            started = time.perf_counter()
            outputs = prepared.reference(feeds)
            self.timings["reference"] += time.perf_counter() - started
            self.counts["reference_runs"] += 1
            self._remember(key, outputs)
        else:
            self._references.move_to_end(key)
        return outputs

    # -- checks ---------------------------------------------------------------------------
    def check_variant(
        self,
        prepared: Prepared,
        spec: ParitySpec,
        variant: str,
        *,
        name: str,
        examples: int | None = None,
        rows: Mapping[str, np.ndarray] | None = None,
    ) -> VariantResult:
        """Search the declared input space for an input where ``variant`` breaks parity.

        ``rows`` (from :func:`strategies.resolve_data`) adds real rows to what is drawn."""
        try:
            info = get_variant(variant)
        except InvalidSpec as exc:
            return VariantResult(variant, "error", None, message=str(exc))
        policy = spec.policy_for(variant, info.default_policy)
        try:
            runnable = self.variant(prepared, variant, spec, rows)
        except VariantUnavailable as exc:
            if info.requires_gpu and self.require_gpu:
                return VariantResult(
                    variant,
                    "error",
                    policy,
                    message=f"{variant} is required (--onnx-parity-require-gpu) but unavailable: {exc}",
                )
            return VariantResult(variant, "skipped", policy, message=f"{variant} skipped: {exc}")
        except OnnxParityError as exc:
            return VariantResult(variant, "error", policy, message=f"{variant} could not be built: {exc}")
        n = examples or spec.examples or self.default_examples
        if info.max_examples and not (examples or spec.examples):
            n = min(n, info.max_examples)
        baseline = variant != BASELINE_VARIANT
        search = _Search(self, prepared, spec, runnable, policy, rows or {}, baseline, variant)
        corners = boundary_examples(spec)
        failure = search.run(n, _stable_seed(name), corners)
        if failure is not None and failure.example in corners:
            # Hypothesis does not shrink explicit examples: search again from the simplest
            # inputs so that the reported example is a shrunk one.
            smaller = search.run(n, _stable_seed(name), [], phases=(Phase.generate, Phase.shrink))
            if smaller is not None:
                failure = smaller
        shortfall = []
        if failure is None:
            shortfall = search.rate_shortfall()
            if not shortfall:
                return VariantResult(
                    variant, "passed", policy, search.tried, search.summaries(), search.covered()
                )
            failure = search.evidence_for(shortfall)
        reproducer = self._write_reproducer(name, variant, prepared, spec, failure, runnable)
        extra = _explain(runnable, failure) + search.baseline_lines(failure)
        if shortfall:
            message = _agreement_diagnosis(
                variant, prepared, spec, policy, shortfall, failure, search.tried, reproducer, extra
            )
        else:
            message = _diagnosis(variant, prepared, spec, policy, failure, search.tried, reproducer, extra)
        return VariantResult(
            variant,
            "failed",
            policy,
            search.tried,
            search.summaries(),
            search.covered(),
            failing_example={**failure.example.to_dict(), "description": failure.example.describe(spec)},
            reproducer=reproducer,
            message=message,
            verdict=failure.verdict,
        )

    def check(
        self,
        model: Any = None,
        *,
        spec: ParitySpec,
        onnx: Any = None,
        reference: Callable | None = None,
        name: str | None = None,
        examples: int | None = None,
        data: Any = None,
        variants: Sequence[str] | None = None,
        items: Sequence[Item] | None = None,
        latency_mode: str | None = None,
    ) -> CheckResult:
        """Every item of ``spec`` — parity per variant (per opset of a matrix), the opset
        budget, each latency budget — or only ``items`` (or the parity items of ``variants``).

        ``data`` (real rows: array, DataFrame or dict) is resampled and perturbed in addition
        to the spec's ranges; str inputs without categories learn them from it."""
        spec, rows = resolve_data(spec, data)
        if items is None:
            items = plan_items(variants or spec.variants, spec.opset_budget, () if variants else spec.latency)
        name = name or (exporters.model_name(model) if model is not None else "model")
        results: dict[str, VariantResult] = {}
        budgets: dict[str, BudgetResult] = {}
        first: Prepared | None = None

        def prepared_at(opset: int | None) -> Prepared:
            nonlocal first
            at = replace(spec, opset=opset) if opset is not None and opset != spec.opset else spec
            prepared = self.prepare(model, at, onnx=onnx, reference=reference)
            first = first or prepared
            return prepared

        for item in items:
            if item.kind == "parity":
                item_spec = replace(spec, opset=item.opset) if item.opset is not None else spec
                try:
                    prepared = prepared_at(item.opset)
                except ExportError as exc:
                    if item.opset is None:
                        raise
                    results[item.id] = VariantResult(
                        item.variant,
                        "error",
                        message=f"{item.variant} at opset {item.opset}: {exc}",
                        opset=item.opset,
                    )
                    continue
                result = self.check_variant(
                    prepared, item_spec, item.variant, name=name, examples=examples, rows=rows
                )
                results[item.id] = replace(result, opset=item.opset) if item.opset is not None else result
            elif item.kind == "opset":
                budgets[item.id] = self.check_opset(spec, prepared_at, item.id)
            else:
                budgets[item.id] = self.check_latency(
                    prepared_at(spec.opset), spec, item.latency, item.id, rows, mode=latency_mode
                )
        if first is None:
            first = prepared_at(spec.opset)
        exported = first.exported
        return CheckResult(name, exported.exporter, exported.opset, exported.notes, results, budgets)

    # -- budgets --------------------------------------------------------------------------
    def check_opset(
        self, spec: ParitySpec, prepared_at: Callable[[int | None], Prepared], item: str = "opset"
    ):
        """The opset budget against the export at the target opset (or at each of a matrix)."""
        budget = spec.opset_budget
        assert budget is not None
        problems: dict[str, list[str]] = {}
        measured: dict[str, Any] = {}
        for opset in budget.matrix or (spec.opset,):
            label = "the model" if opset is None else f"the model at opset {opset}"
            try:
                prepared = prepared_at(opset)
            except ExportError as exc:
                problems[label] = [f"export failed: {exc}"]
                continue
            label += f" (from {prepared.exported.describe()})"
            problems[label], measured[str(opset or prepared.exported.opset)] = opset_problems(
                prepared.exported.path, budget
            )
        failed = any(problems.values())
        return BudgetResult(
            item,
            "opset",
            "failed" if failed else "passed",
            opset_message(budget, problems),
            budget.to_dict(),
            measured,
        )

    def check_latency(
        self,
        prepared: Prepared,
        spec: ParitySpec,
        latency: Latency,
        item: str,
        rows: Mapping[str, np.ndarray] | None = None,
        mode: str | None = None,
    ) -> BudgetResult:
        """Time ``latency.variant`` and the framework interleaved at ``latency.at``; ``mode``
        (enforce, report, off) overrides the session's."""
        mode = _latency_mode(mode or self.latency_mode)

        def result(status: str, message: str, measured: dict | None = None) -> BudgetResult:
            return BudgetResult(item, "latency", status, message, latency.to_dict(), measured or {})

        if mode == "off":
            return result("skipped", "latency measurement is off (--onnx-parity-latency=off)")
        try:
            info = get_variant(latency.variant)
            runnable = self.variant(prepared, latency.variant, spec, rows, threads=latency.threads)
        except VariantUnavailable as exc:
            if info.requires_gpu and self.require_gpu:
                return result(
                    "error",
                    f"{latency.variant} is required (--onnx-parity-require-gpu) but unavailable: {exc}",
                )
            return result("skipped", f"{latency.variant} skipped: {exc}")
        except OnnxParityError as exc:
            return result("error", f"{latency.variant} could not be built: {exc}")
        dims = spec.latency_dims(latency)
        example = Example(tuple(dims.items()), tuple("uniform" for _ in spec.inputs), 0)
        feeds = materialize(spec, example, rows or {})
        try:
            with exporters.limit_threads(latency.threads):
                timed_v, timed_f, wall = measure_interleaved(
                    lambda: runnable.run(feeds), lambda: prepared.reference(feeds), latency
                )
        except VariantRunError as exc:
            return result(
                "error", f"{latency.variant} raised at {example.describe(spec)}:\n{_indent(str(exc))}"
            )
        broken, kept, reliable = latency_verdict(latency, timed_v, timed_f)
        provider = next(iter(getattr(runnable, "providers", ()) or ()), None)
        env = environment(provider, latency.threads)
        ratio = timed_v.p50 / timed_f.p50 if timed_f.p50 > 0 else float("inf")
        at = ", ".join(f"{k}={v}" for k, v in dims.items()) or "fixed shapes"
        threads = f"{latency.threads} thread{'s' if latency.threads > 1 else ''}"
        lines = [
            f"latency of {latency.variant} at {at} ({threads}; {timed_v.samples} runs of each side "
            f"interleaved with the framework over {wall:.2f} s):",
            f"  {latency.variant}: {timed_v.describe()}",
            f"  framework: {timed_f.describe()}",
            f"  ratio {latency.variant}/framework (p50): {ratio:.3g}",
        ]
        lines += [f"  broken: {b}" for b in broken] + [f"  kept: {k}" for k in kept]
        if not latency.budgets:
            lines.append("  no budget declared: numbers recorded only")
        if not reliable:
            lines.append(
                f"  unreliable: the runs spread by {100 * timed_v.spread:.2g}% ({latency.variant}) and "
                f"{100 * timed_f.spread:.2g}% (framework) between blocks, more than the margin to a budget, "
                "so this verdict can flip on a rerun; keep threads=1, raise min_time_s, or prefer max_ratio "
                "(interleaved) to absolute milliseconds"
            )
        status = "passed"
        if broken:
            if mode == "enforce":
                status = "failed"
            else:
                lines.append(
                    "  mode report: a broken budget is recorded, not enforced (--onnx-parity-latency=enforce)"
                )
        lines.append("  environment: " + ", ".join(f"{k} {v}" for k, v in env.items() if v is not None))
        measured = {
            "at": dims,
            "variant": timed_v.to_dict(),
            "framework": timed_f.to_dict(),
            "ratio": ratio,
            "wall_s": wall,
            "reliable": reliable,
            "broken": broken,
            "mode": mode,
            "environment": env,
        }
        return result(status, "\n".join(lines), measured)

    # -- reproducers ----------------------------------------------------------------------
    def _write_reproducer(
        self,
        name: str,
        variant: str,
        prepared: Prepared,
        spec: ParitySpec,
        failure: ExampleFailed,
        runnable: Runnable | None = None,
    ) -> str:
        """Write model, inputs and outputs of the failing example; atomically replace any old one."""
        target = os.path.abspath(os.path.join(self.reproducer_dir, _safe(name), _safe(variant)))
        staging = f"{target}.tmp-{os.getpid()}"
        shutil.rmtree(staging, ignore_errors=True)
        os.makedirs(staging)
        model_path = exporters.copy_model_files(prepared.exported, staging)
        # A converted variant (int8, fp16) runs its own file: keep it beside the exported one.
        variant_model = getattr(runnable, "model_path", None)
        run_name = os.path.basename(model_path)
        if variant_model and os.path.abspath(variant_model) != os.path.abspath(prepared.exported.path):
            run_name = f"{_safe(variant)}.onnx"
            shutil.copy2(variant_model, os.path.join(staging, run_name))
        np.savez(os.path.join(staging, "inputs.npz"), **failure.feeds)
        names = list(prepared.exported.output_names)
        for label, arrays in (("expected", failure.expected), ("actual", failure.actual)):
            if arrays is not None:
                keys = names if len(names) == len(arrays) else [f"output_{i}" for i in range(len(arrays))]
                np.savez(os.path.join(staging, f"{label}.npz"), **{_safe(k): a for k, a in zip(keys, arrays)})
        info = {
            "test": name,
            "variant": variant,
            "exporter": prepared.exported.exporter,
            "opset": prepared.exported.opset,
            "model": os.path.basename(model_path),
            "variant_model": run_name,
            "example": failure.example.to_dict(),
            "description": failure.example.describe(spec),
            "runtime_error": failure.runtime_error,
            "reference_error": failure.reference_error,
            "notes": list(prepared.exported.notes),
        }
        with open(os.path.join(staging, "example.json"), "w") as f:
            json.dump(info, f, indent=2)
        with open(os.path.join(staging, "README.txt"), "w") as f:
            f.write(_REPRODUCER_README.format(model=run_name, exported=os.path.basename(model_path)))
        if os.path.exists(target):
            shutil.rmtree(target)
        os.makedirs(os.path.dirname(target), exist_ok=True)
        os.replace(staging, target)
        _ignore_in_git(self.reproducer_dir)
        return target


_REPRODUCER_README = """\
A failing parity example written by onnxparity. Re-run it without onnxparity:

    import numpy as np, onnxruntime as ort
    feeds = dict(np.load("inputs.npz"))
    session = ort.InferenceSession("{model}", providers=["CPUExecutionProvider"])
    actual = session.run(None, feeds)
    expected = list(np.load("expected.npz").values())   # the framework's outputs

{model} is the model the variant ran; {exported} is the exported model it was built from.
example.json says which test, variant, shapes, data pattern and seed produced it.
"""


@dataclass
class _Tally:
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

    def add(self, out) -> None:
        self.max_abs_error = max(self.max_abs_error, out.max_abs_error)
        self.max_rel_error = max(self.max_rel_error, out.max_rel_error)
        self.max_mismatched_fraction = max(self.max_mismatched_fraction, out.mismatched_fraction)
        self.mismatched += out.mismatched
        self.values += out.size
        self.min_cosine = _least(self.min_cosine, out.cosine)
        self.min_sqnr_db = _least(self.min_sqnr_db, out.sqnr_db)
        self.top1_agree += out.top1_agree
        self.top1_rows += out.top1_rows

    def add_baseline(self, distance: float) -> None:
        previous = self.max_abs_error_vs_ort_cpu
        self.max_abs_error_vs_ort_cpu = distance if previous is None else max(previous, distance)

    def summary(self, name: str) -> OutputSummary:
        return OutputSummary(name, **dataclasses.asdict(self))


def _least(current: float | None, value: float | None) -> float | None:
    if value is None:
        return current
    return value if current is None else min(current, value)


@dataclass(frozen=True)
class Shortfall:
    """A rate rule (labels or top-1 agreement) broken over a whole search."""

    rule: str  # "labels" or "top1"
    output: str
    differ: int
    total: int
    required: float


class _Search:
    """One variant's search: evaluates examples, keeps counts and the worst errors seen."""

    def __init__(
        self,
        session: ParitySession,
        prepared: Prepared,
        spec: ParitySpec,
        runnable: Runnable,
        policy: Policy,
        rows: Mapping[str, np.ndarray],
        baseline: bool = False,
        variant: str = "",
    ) -> None:
        self.session = session
        #: ort-cpu's own outputs are what other variants are measured against: keep them
        self.keep_outputs = variant == BASELINE_VARIANT
        self.prepared = prepared
        self.spec = spec
        self.runnable = runnable
        self.policy = policy
        agreement = policy if isinstance(policy, Agreement) else None
        self.label_agreement = agreement.labels if agreement else 1.0
        self.top1 = agreement.top1 if agreement else None
        self.baseline = baseline
        #: the example with the most label flips / top-1 disagreements: a rate rule's evidence
        self.worst_flips: ExampleFailed | None = None
        self.worst_top1: tuple[int, ExampleFailed] | None = None
        self.rows = rows
        self.rows_key = rows_digest(rows) if rows else ""
        self.tried = 0
        self._dims: dict[str, list[int]] = {}
        self._tallies: dict[str, _Tally] = {}

    def evaluate(self, example: Example) -> None:
        self.tried += 1
        for dim, value in example.dims:
            seen = self._dims.setdefault(dim, [value, value])
            seen[0], seen[1] = min(seen[0], value), max(seen[1], value)
        timings = self.session.timings
        clock = time.perf_counter
        feeds = self.session.feeds_for(self.spec, example, self.rows, self.rows_key)
        try:
            expected = self.session.reference_outputs(self.prepared, self.spec, example, feeds, self.rows_key)
        except Exception as exc:
            raise ExampleFailed(example, feeds, reference_error=f"{type(exc).__name__}: {exc}") from None
        started = clock()
        try:
            actual = self.runnable.run(feeds)
        except VariantRunError as exc:
            raise ExampleFailed(example, feeds, expected, runtime_error=str(exc)) from None
        finally:
            timings["variant"] += clock() - started
        if self.keep_outputs:
            self.session.remember_baseline(self.prepared, example, self.rows_key, actual)
        names = self.runnable.output_names
        started = clock()
        verdict = compare_outputs(names, expected, actual, self.policy, self.prepared.labels)
        timings["compare"] += clock() - started
        for out in verdict.outputs:
            self._tallies.setdefault(out.name, _Tally()).add(out)
        if self.baseline:
            self._measure_baseline(example, feeds, expected)
        if self.top1 is not None:
            misses = sum(o.top1_rows - o.top1_agree for o in verdict.outputs)
            if misses and (self.worst_top1 is None or misses > self.worst_top1[0]):
                self.worst_top1 = (misses, ExampleFailed(example, feeds, expected, actual, verdict))
        if self.label_agreement < 1.0:
            verdict = self._defer_label_flips(
                verdict, ExampleFailed(example, feeds, expected, actual, verdict)
            )
        if not verdict.passed:
            raise ExampleFailed(example, feeds, expected, actual, verdict)

    def _against_baseline(self, example: Example, feeds, expected) -> Verdict | None:
        """ort-cpu's outputs on this example compared with the reference (default tolerance),
        or None where ort-cpu cannot run: how much of a variant's error the export explains."""
        base = self.session.baseline_outputs(self.prepared, example, feeds, self.rows_key)
        if base is None or len(base) != len(expected):
            return None
        return compare_outputs(
            self.runnable.output_names, expected, base, DEFAULT_TOLERANCE, self.prepared.labels
        )

    def _measure_baseline(self, example: Example, feeds, expected) -> None:
        """Keep, per float output, the worst distance of ort-cpu itself from the reference."""
        verdict = self._against_baseline(example, feeds, expected)
        for out in verdict.outputs if verdict is not None else ():
            if out.exact or out.problem in ("shape", "dtype"):
                continue
            self._tallies.setdefault(out.name, _Tally()).add_baseline(out.max_abs_error)

    def baseline_lines(self, failure: ExampleFailed) -> list[str]:
        """Diagnosis lines: ort-cpu's own error on the failing example, so a reader sees whether
        the difference comes from the export or from this variant."""
        if not self.baseline or failure.expected is None:
            return []
        verdict = self._against_baseline(failure.example, failure.feeds, failure.expected)
        parts = [
            f"{o.name!r} max abs error {o.max_abs_error:.3g}"
            for o in (verdict.outputs if verdict is not None else ())
            if not o.exact and o.problem not in ("shape", "dtype")
        ]
        if not parts:
            return []
        cause = (
            "within the default tolerance: the export is right and this variant loses the accuracy"
            if verdict.passed
            else "beyond the default tolerance too: the export itself differs; check ort-cpu first"
        )
        return [f"{BASELINE_VARIANT} on the same input: {'; '.join(parts)} ({cause})"]

    def run(
        self, max_examples: int, seed: int, explicit: Sequence[Example], phases=None
    ) -> ExampleFailed | None:
        """Search for a failing example; None when every example passes.

        A passing search's examples are remembered: Hypothesis draws the same sequence for
        the same seed while every example passes, so the next variant of the same test
        replays it without Hypothesis's per-example bookkeeping. The first failure in a replay
        hands over to a real Hypothesis search, which finds and shrinks it."""
        key = None
        if phases is None:
            key = (self.spec.input_digest, self.rows_key, seed, max_examples, tuple(explicit))
            sequence = self.session._sequences.get(key)
            if sequence is not None:
                started = time.perf_counter()
                try:
                    for example in sequence:
                        self.evaluate(example)
                except ExampleFailed:
                    self._reset()
                else:
                    self.session.counts["replayed_searches"] += 1
                    return None
                finally:
                    self.session.timings["search"] += time.perf_counter() - started
        drawn: list[Example] = []

        def parity_holds(example: Example) -> None:
            drawn.append(example)
            self.evaluate(example)

        test = given(examples(self.spec, self.rows or None))(parity_holds)
        for corner in reversed(explicit):  # Hypothesis runs the last-applied example first
            test = explicit_example(corner)(test)
        options: dict[str, Any] = dict(
            max_examples=max_examples,
            deadline=None,
            database=None,
            report_multiple_bugs=False,
            suppress_health_check=list(HealthCheck),
        )
        if phases is not None:
            options["phases"] = phases
        test = hypothesis_seed(seed)(settings(**options)(test))
        started = time.perf_counter()
        self.session.counts["hypothesis_searches"] += 1
        try:
            test()
        except Exception as exc:  # ours, or wrapped by Hypothesis (Flaky, ExceptionGroup)
            failure = _find_failure(exc)
            if failure is None:
                raise
            return failure
        finally:
            self.session.timings["search"] += time.perf_counter() - started
        if key is not None:
            self.session._sequences[key] = drawn
        return None

    def _reset(self) -> None:
        """Forget a replay's counts before a real search evaluates the examples again."""
        self.tried = 0
        self._dims.clear()
        self._tallies.clear()
        self.worst_flips = None
        self.worst_top1 = None

    def _defer_label_flips(self, verdict: Verdict, evidence: ExampleFailed) -> Verdict:
        """Under an Agreement, label flips do not fail an example: they are counted over the
        whole search (:meth:`rate_shortfall`); the example with the most is kept as evidence."""
        deferred = [o for o in verdict.outputs if o.exact and o.problem == "values"]
        if not deferred:
            return verdict
        worst = self.worst_flips
        if worst is None or max(o.mismatched_fraction for o in deferred) > max(
            o.mismatched_fraction for o in worst.verdict.outputs if o.exact
        ):
            self.worst_flips = evidence
        return replace(
            verdict,
            outputs=tuple(
                replace(o, passed=True, problem=None) if o in deferred else o for o in verdict.outputs
            ),
        )

    def rate_shortfall(self) -> list[Shortfall]:
        """Rate rules broken over every example tried: exact outputs whose flip rate exceeds
        the labels agreement, float outputs whose top-1 agreement is below ``top1``."""
        found = []
        if self.label_agreement < 1.0 and self.worst_flips is not None:
            exact = {o.name for o in self.worst_flips.verdict.outputs if o.exact}
            for name, t in self._tallies.items():
                if (
                    name in exact
                    and t.values
                    and t.mismatched > (1.0 - self.label_agreement) * t.values + 1e-9
                ):
                    found.append(Shortfall("labels", name, t.mismatched, t.values, self.label_agreement))
        if self.top1 is not None:
            for name, t in self._tallies.items():
                if t.top1_rows and t.top1_agree < self.top1 * t.top1_rows - 1e-9:
                    found.append(Shortfall("top1", name, t.top1_rows - t.top1_agree, t.top1_rows, self.top1))
        return found

    def evidence_for(self, shortfall: list[Shortfall]) -> ExampleFailed:
        if any(s.rule == "labels" for s in shortfall) and self.worst_flips is not None:
            return self.worst_flips
        assert self.worst_top1 is not None
        return self.worst_top1[1]

    def summaries(self) -> tuple[OutputSummary, ...]:
        return tuple(t.summary(n) for n, t in self._tallies.items())

    def covered(self) -> dict[str, tuple[int, int]]:
        return {k: (v[0], v[1]) for k, v in self._dims.items()}


def _find_failure(exc: BaseException) -> ExampleFailed | None:
    if isinstance(exc, ExampleFailed):
        return exc
    for inner in getattr(exc, "exceptions", ()) or ():
        found = _find_failure(inner)
        if found is not None:
            return found
    cause = exc.__cause__ or exc.__context__
    return _find_failure(cause) if cause is not None else None


def _diagnosis(
    variant: str,
    prepared: Prepared,
    spec: ParitySpec,
    policy: Policy,
    failure: ExampleFailed,
    tried: int,
    reproducer: str,
    extra: Sequence[str] = (),
) -> str:
    exported = prepared.exported
    source = exported.describe()
    if failure.reference_error:
        lines = [
            f"the reference model raised on an input the spec declares valid ({variant} not compared):",
            _indent(failure.reference_error),
        ]
        advice = (
            "the spec declares shapes or values the model does not accept: narrow dims= or the Input ranges"
        )
    elif failure.runtime_error:
        lines = [
            f"{variant} raised on an input the spec declares valid (model from {source}):",
            _indent(failure.runtime_error),
        ]
        advice = (
            "the ONNX model rejects an input the framework model accepts: look for a dim the "
            "exporter baked in (see the notes), or narrow dims= if these shapes are unsupported"
        )
    else:
        lines = [f"{variant} differs from the reference (model from {source}):", failure.verdict.explain()]
        kind = "op.Agreement(...)" if isinstance(policy, Agreement) else "op.Tolerance(...)"
        advice = (
            f"inspect the reproducer; if this difference is acceptable, loosen "
            f"tolerance={{{variant!r}: {kind}}} (now {policy.describe()})"
        )
    lines.extend(extra)
    lines.append(f"shrunk input: {failure.example.describe(spec)}")
    lines.append(f"examples tried: {tried}")
    lines.extend(f"note: {n}" for n in exported.notes)
    lines.append(f"reproducer: {reproducer}")
    lines.append(f"next: {advice}")
    return "\n".join(lines)


def _explain(runnable: Runnable, failure: ExampleFailed) -> list[str]:
    """A variant's own explanation of a failing input (e.g. int8 saturation), if it has one."""
    explain = getattr(runnable, "explain", None)
    if explain is None or failure.reference_error:
        return []
    try:
        return list(explain(failure.feeds))
    except Exception:  # an explanation must never mask the verdict
        return []


def _labels(module: Any, model: Any, exported: ExportedModel) -> dict:
    """The label/probability outputs of a classifier, where the framework knows them."""
    finder = getattr(module, "label_outputs", None) if module is not None else None
    return finder(model, exported) if finder is not None else {}


def _indent(text: str) -> str:
    return "\n".join("  " + line.strip() for line in text.strip().splitlines() if line.strip())


def _agreement_diagnosis(
    variant: str,
    prepared: Prepared,
    spec: ParitySpec,
    policy: Policy,
    shortfall: list[Shortfall],
    worst: ExampleFailed,
    tried: int,
    reproducer: str,
    extra: Sequence[str] = (),
) -> str:
    rules = dict.fromkeys(f"{s.rule}={s.required:g}" for s in shortfall)
    what = " and ".join(
        dict.fromkeys("labels" if s.rule == "labels" else "top-1 predictions" for s in shortfall)
    )
    lines = [
        f"{variant} {what} agree less often than Agreement({', '.join(rules)}) asks "
        f"(model from {prepared.exported.describe()}):"
    ]
    for item in shortfall:
        what = "values differ" if item.rule == "labels" else "rows have a different top-1 (argmax)"
        lines.append(
            f"output {item.output!r}: {item.differ} of {item.total} {what} over {tried} examples "
            f"({100.0 * item.differ / item.total:.3g}%; at most {100.0 * (1.0 - item.required):.3g}% allowed)"
        )
    most = "flips" if shortfall[0].rule == "labels" else "top-1 disagreements"
    lines.append(f"the example with the most {most}: {worst.example.describe(spec)}")
    explained = worst.verdict.explain()
    if explained:
        lines.append(explained)
    lines.extend(extra)
    lines.extend(f"note: {n}" for n in prepared.exported.notes)
    lines.append(f"reproducer: {reproducer}")
    loosen = ", ".join(dict.fromkeys(f"{s.rule}=..." for s in shortfall))
    lines.append(
        f"next: inspect the reproducer; if this rate is acceptable, lower Agreement({loosen}) for {variant!r}"
    )
    return "\n".join(lines)


def _numpy_reference(reference: Callable, spec: ParitySpec, exported: ExportedModel) -> Reference:
    """Wrap a user's callable (numpy arrays in spec order -> array, sequence or dict)."""
    names = [i.name for i in spec.inputs]

    def call(feeds: Mapping[str, np.ndarray]) -> list:
        out = reference(*[np.array(feeds[n]) for n in names])  # a copy: the feeds are shared
        if isinstance(out, Mapping):
            keys = [k for k in exported.output_names if k in out] or list(out)
            return [np.asarray(out[k]) for k in keys]
        if isinstance(out, (list, tuple)):
            return [np.asarray(o) for o in out]
        return [np.asarray(out)]

    return call


def _latency_mode(mode: str) -> str:
    if mode not in LATENCY_MODES:
        raise InvalidSpec(f"latency mode {mode!r}: use one of {', '.join(LATENCY_MODES)}")
    return mode


def _baseline_key(prepared: Prepared, example: Example, rows_key: str) -> tuple:
    return (BASELINE_VARIANT, prepared.exported.key, rows_key, example)


def _sampler(spec: ParitySpec | None, rows: Mapping[str, np.ndarray] | None):
    """``sample_feeds(n)`` for a builder: n fixed-seed inputs from the declared space."""

    def sample_feeds(count: int, same_shape: bool = False) -> list[dict[str, np.ndarray]]:
        if spec is None:
            return []
        chosen = sample_examples(spec, count, SAMPLE_SEED, rows)
        if same_shape:  # every dim at its largest value, patterns and seeds as drawn
            widest = tuple((name, spec.dims[name].last) for name in spec.symbolic_dims)
            chosen = [replace(e, dims=widest) for e in chosen]
        return [materialize(spec, e, rows or {}) for e in chosen]

    return sample_feeds


def _options_digest(options: Mapping[str, Any]) -> str:
    """A digest of a variant's options (arrays by content), keying its build."""
    if not options:
        return ""
    h = hashlib.blake2b(digest_size=8)

    def feed(value: Any) -> None:
        if isinstance(value, np.ndarray):
            h.update(f"array{value.dtype}{value.shape}".encode())
            h.update(np.ascontiguousarray(value).tobytes() if value.dtype != object else repr(value).encode())
        elif isinstance(value, Mapping):
            for k in sorted(value, key=str):
                h.update(repr(k).encode())
                feed(value[k])
        elif isinstance(value, (list, tuple)):
            h.update(b"[")
            for item in value:
                feed(item)
            h.update(b"]")
        else:
            h.update(repr(value).encode())

    feed(dict(options))
    return "-" + h.hexdigest()


def _stable_seed(name: str) -> int:
    return int.from_bytes(hashlib.blake2b(name.encode(), digest_size=4).digest(), "little")


def _safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("_")[:120] or "item"


def _ignore_in_git(directory: str) -> None:
    """Keep reproducer bundles out of version control, as pytest does for its cache."""
    marker = os.path.join(directory, ".gitignore")
    if not os.path.exists(marker):
        with open(marker, "w") as f:
            f.write("# created by onnxparity\n*\n")
