"""pytest plugin: options, the ``onnx_parity`` marker, the ``onnx_parity`` fixture, the report.

Thin by design: it resolves one :class:`ParityConfig`, turns a marker into items (one per
variant — per variant and opset for an opset matrix — plus ``[opset]`` and
``[latency-<variant>]`` for budgets), hands each item's check to the runner, and hands the
collected entries to :mod:`onnxparity.report` for the JSON report, the summaries and the
baseline gate. Loading it imports no framework and no ONNX Runtime.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import random
import sys
import warnings
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import pytest

from . import ALL_VARIANTS
from . import config as cfg
from .config import ParityConfig
from .errors import FrameworkNotInstalled, InvalidSpec, OnnxParityError
from .spec import Item, ParitySpec, plan_items

CONFIG_KEY = pytest.StashKey[ParityConfig]()
ENTRY_KEY = pytest.StashKey[dict]()  # one item's report entry, set by its fixture
SESSION_KEY = pytest.StashKey[Any]()  # the run's ParitySession, created on first use

#: marker arguments, with what each declares.
MARKER_ARGS = (
    "inputs",
    "dims",
    "variants",
    "tolerance",
    "opset",
    "examples",
    "data",
    "variant_options",
    "calibration",
    "latency",
)

MARKER_DOC = (
    "onnx_parity(inputs=[op.Input(...)], dims={name: op.Dim(min, max)}, variants=['ort-cpu'], "
    "tolerance=op.Tolerance(atol, rtol) or {variant: Tolerance or Agreement}, opset=None, examples=None, "
    "data=None, variant_options={variant: {...}}, calibration=[feeds], opset=op.Opset(...), "
    "latency=op.Latency(...) or a list): declare an ONNX parity check run by the onnx_parity fixture; "
    "one test item per variant (per variant and opset for Opset(matrix=...)), plus [opset] and "
    "[latency-<variant>] items for the budgets. "
    "Runs only under --onnx-parity."
)

SKIP_REASON = (
    "ONNX parity checks are off: run pytest with --onnx-parity (or set onnx_parity = true in the ini file)"
)


def _argtype(parse: Callable[[str, str], Any], what: str) -> Callable[[str], Any]:
    def convert(text: str) -> Any:
        try:
            return parse(text, what)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    return convert


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("onnx-parity", "ONNX parity checks (onnxparity)")
    group.addoption(
        cfg.FLAG_ENABLE,
        action="store_true",
        default=None,
        dest="onnx_parity",
        help="run the ONNX parity items (tests using the onnx_parity fixture); without it they are skipped",
    )
    group.addoption(
        cfg.FLAG_EXAMPLES,
        type=_argtype(cfg.parse_positive_int, cfg.FLAG_EXAMPLES),
        default=None,
        dest="onnx_parity_examples",
        metavar="N",
        help=f"Hypothesis examples drawn per model and variant (default {cfg.DEFAULT_EXAMPLES}; "
        "a marker's examples= wins)",
    )
    group.addoption(
        cfg.FLAG_VARIANTS,
        type=_argtype(cfg.parse_variants, cfg.FLAG_VARIANTS),
        default=None,
        dest="onnx_parity_variants",
        metavar="V1,V2",
        help="run only these variants (others are deselected); also the variants of a test that "
        f"declares none (default {','.join(cfg.DEFAULT_VARIANTS)}; built in: {', '.join(ALL_VARIANTS)})",
    )
    group.addoption(
        cfg.FLAG_REPRODUCERS,
        default=None,
        dest="onnx_parity_reproducers",
        metavar="DIR",
        help=f"where failing examples are saved, relative to the rootdir (default {cfg.DEFAULT_REPRODUCERS})",
    )
    group.addoption(
        cfg.FLAG_THREADS,
        type=_argtype(cfg.parse_positive_int, cfg.FLAG_THREADS),
        default=None,
        dest="onnx_parity_threads",
        metavar="N",
        help=f"ONNX Runtime intra-op threads per session (default {cfg.DEFAULT_THREADS})",
    )
    group.addoption(
        cfg.FLAG_REQUIRE_GPU,
        action="store_true",
        default=None,
        dest="onnx_parity_require_gpu",
        help="fail (instead of skip) GPU variants such as ort-gpu when no usable GPU is found",
    )
    group.addoption(
        cfg.FLAG_LATENCY,
        type=_argtype(cfg.parse_latency_mode, cfg.FLAG_LATENCY),
        default=None,
        dest="onnx_parity_latency",
        metavar="MODE",
        help="latency budgets: enforce (a broken budget fails its item), report (numbers recorded, "
        "never fails; default) or off (not measured, items skipped)",
    )
    group.addoption(
        cfg.FLAG_REPORT,
        default=None,
        dest="onnx_parity_report",
        metavar="PATH",
        help="write the run's JSON report (schema: onnxparity/report/schema.json) to PATH, atomically",
    )
    group.addoption(
        cfg.FLAG_MARKDOWN,
        default=None,
        dest="onnx_parity_markdown",
        metavar="PATH",
        help="write the Markdown summary to PATH (it is also appended to $GITHUB_STEP_SUMMARY when set)",
    )
    group.addoption(
        cfg.FLAG_BASELINE,
        default=None,
        dest="onnx_parity_baseline",
        metavar="PATH",
        help="gate the run against this baseline report: the session fails on a regression",
    )
    group.addoption(
        cfg.FLAG_UPDATE_BASELINE,
        action="store_true",
        default=None,
        dest="onnx_parity_update_baseline",
        help="write this run's report as the new baseline (at --onnx-parity-baseline) instead of gating",
    )
    group.addoption(
        cfg.FLAG_MAX_ERROR_GROWTH,
        type=_argtype(cfg.parse_positive_float, cfg.FLAG_MAX_ERROR_GROWTH),
        default=None,
        dest="onnx_parity_max_error_growth",
        metavar="X",
        help="the gate fails when an output's max abs error grows more than X times (default 2)",
    )
    group.addoption(
        cfg.FLAG_MAX_LATENCY_REGRESSION,
        type=_argtype(cfg.parse_positive_float, cfg.FLAG_MAX_LATENCY_REGRESSION),
        default=None,
        dest="onnx_parity_max_latency_regression",
        metavar="F",
        help="the gate fails when an enforced latency grows by more than F (default 0.2: 20%%)",
    )
    parser.addini(
        cfg.INI_ENABLE, "run the ONNX parity items, as --onnx-parity does", type="bool", default=False
    )
    parser.addini(cfg.INI_EXAMPLES, f"as {cfg.FLAG_EXAMPLES}", default=str(cfg.DEFAULT_EXAMPLES))
    parser.addini(cfg.INI_VARIANTS, f"as {cfg.FLAG_VARIANTS}", type="args", default=[])
    parser.addini(cfg.INI_REPRODUCERS, f"as {cfg.FLAG_REPRODUCERS}", default=cfg.DEFAULT_REPRODUCERS)
    parser.addini(cfg.INI_THREADS, f"as {cfg.FLAG_THREADS}", default=str(cfg.DEFAULT_THREADS))
    parser.addini(cfg.INI_REQUIRE_GPU, f"as {cfg.FLAG_REQUIRE_GPU}", type="bool", default=False)
    parser.addini(cfg.INI_LATENCY, f"as {cfg.FLAG_LATENCY}", default=cfg.DEFAULT_LATENCY)
    parser.addini(cfg.INI_REPORT, f"as {cfg.FLAG_REPORT}", default="")
    parser.addini(cfg.INI_MARKDOWN, f"as {cfg.FLAG_MARKDOWN}", default="")
    parser.addini(cfg.INI_BASELINE, f"as {cfg.FLAG_BASELINE}", default="")
    parser.addini(cfg.INI_MAX_ERROR_GROWTH, f"as {cfg.FLAG_MAX_ERROR_GROWTH}", default="2")
    parser.addini(cfg.INI_MAX_LATENCY_REGRESSION, f"as {cfg.FLAG_MAX_LATENCY_REGRESSION}", default="0.2")


def resolve_config(config: pytest.Config) -> ParityConfig:
    """Flags over ini keys over defaults; a bad ini value is a usage error naming the key."""

    def pick(dest: str, ini: str, parse: Callable[[Any, str], Any] | None):
        value = config.getoption(dest)
        if value is not None:
            return value
        raw = config.getini(ini)
        if parse is None:
            return raw
        try:
            return parse(raw, f"ini key {ini}") if raw not in ("", []) else None
        except ValueError as exc:
            raise pytest.UsageError(str(exc)) from None

    reproducers = pick("onnx_parity_reproducers", cfg.INI_REPRODUCERS, None) or cfg.DEFAULT_REPRODUCERS
    return ParityConfig(
        enabled=bool(pick("onnx_parity", cfg.INI_ENABLE, cfg.parse_bool)),
        examples=pick("onnx_parity_examples", cfg.INI_EXAMPLES, cfg.parse_positive_int)
        or cfg.DEFAULT_EXAMPLES,
        variants=pick("onnx_parity_variants", cfg.INI_VARIANTS, cfg.parse_variants),
        reproducer_dir=os.path.join(str(config.rootpath), reproducers),
        threads=pick("onnx_parity_threads", cfg.INI_THREADS, cfg.parse_positive_int) or cfg.DEFAULT_THREADS,
        require_gpu=bool(pick("onnx_parity_require_gpu", cfg.INI_REQUIRE_GPU, cfg.parse_bool)),
        latency=pick("onnx_parity_latency", cfg.INI_LATENCY, cfg.parse_latency_mode) or cfg.DEFAULT_LATENCY,
        report_path=_path(config, pick("onnx_parity_report", cfg.INI_REPORT, None)),
        markdown_path=_path(config, pick("onnx_parity_markdown", cfg.INI_MARKDOWN, None)),
        baseline_path=_path(config, pick("onnx_parity_baseline", cfg.INI_BASELINE, None)),
        update_baseline=bool(config.getoption("onnx_parity_update_baseline")),
        max_error_growth=pick(
            "onnx_parity_max_error_growth", cfg.INI_MAX_ERROR_GROWTH, cfg.parse_positive_float
        )
        or 2.0,
        max_latency_regression=pick(
            "onnx_parity_max_latency_regression", cfg.INI_MAX_LATENCY_REGRESSION, cfg.parse_positive_float
        )
        or 0.2,
    )


def _path(config: pytest.Config, value: str | None) -> str | None:
    """A path flag or ini value, relative to the directory pytest was invoked from."""
    if not value:
        return None
    return os.path.join(str(config.invocation_params.dir), os.path.expanduser(value))


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", MARKER_DOC)
    parity = resolve_config(config)
    config.stash[CONFIG_KEY] = parity
    if parity.update_baseline and not parity.baseline_path:
        raise pytest.UsageError(
            f"{cfg.FLAG_UPDATE_BASELINE} needs {cfg.FLAG_BASELINE}=PATH: where to write the baseline"
        )
    if parity.enabled and not _is_worker(config):
        config.pluginmanager.register(ParityReporter(config), "onnx-parity-reporter")
    if (
        parity.enabled
        and parity.baseline_path
        and not parity.update_baseline
        and not os.path.exists(parity.baseline_path)
    ):
        raise pytest.UsageError(
            f"no baseline report at {parity.baseline_path}: create it from a run you trust with "
            f"pytest --onnx-parity {cfg.FLAG_BASELINE}={parity.baseline_path} {cfg.FLAG_UPDATE_BASELINE}"
        )


def pytest_unconfigure(config: pytest.Config) -> None:
    session = config.stash.get(SESSION_KEY, None)
    if session is not None:
        session.close()


def _marker_items(metafunc: pytest.Metafunc, parity: ParityConfig) -> list[Item]:
    """The items a marker declares: parity per variant (per opset of a matrix), budgets."""
    marker = metafunc.definition.get_closest_marker("onnx_parity")
    kwargs = marker.kwargs if marker else {}
    declared = kwargs.get("variants")
    if declared is None:
        variants: tuple = parity.default_variants
    else:
        variants = (declared,) if isinstance(declared, str) else tuple(declared)
    try:
        return plan_items(variants, kwargs.get("opset"), kwargs.get("latency"))
    except InvalidSpec:
        # A bad budget is reported by each item when it runs, with the spec's own message.
        return plan_items(variants)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "onnx_parity" not in metafunc.fixturenames:
        return
    items = _marker_items(metafunc, metafunc.config.stash[CONFIG_KEY])
    metafunc.parametrize("onnx_parity", items, indirect=True, ids=[i.id for i in items])


def _item_of(item: pytest.Item) -> Item | None:
    callspec = getattr(item, "callspec", None)
    return callspec.params.get("onnx_parity") if callspec is not None else None


def _selected(planned: Item | None, variants: tuple[str, ...]) -> bool:
    """--onnx-parity-variants keeps the items of those variants, and the opset budget."""
    return planned is not None and (planned.kind == "opset" or planned.variant in variants)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    parity = config.stash[CONFIG_KEY]
    parity_items = [i for i in items if "onnx_parity" in getattr(i, "fixturenames", ())]
    if parity.variants is not None:
        deselected = [i for i in parity_items if not _selected(_item_of(i), parity.variants)]
        if deselected:
            config.hook.pytest_deselected(items=deselected)
            gone = set(map(id, deselected))
            items[:] = [i for i in items if id(i) not in gone]
            parity_items = [i for i in parity_items if id(i) not in gone]
    if not parity.enabled:
        skip = pytest.mark.skip(reason=SKIP_REASON)
        for item in parity_items:
            item.add_marker(skip)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    outcome = yield
    report = outcome.get_result()
    entry = item.stash.get(ENTRY_KEY, None)
    if entry is not None and report.when == "call":
        # A plain attribute travels with the report from an xdist worker to the controller.
        report.onnx_parity = {**entry, "duration_s": round(report.duration, 4)}


def _is_worker(config: pytest.Config) -> bool:
    return hasattr(config, "workerinput")


class ParityReporter:
    """Gathers item entries as test reports arrive (on the controller under xdist: each report
    brings its entry, so a crashed worker loses only the item it was running, never the
    report), then writes the report, the Markdown summary and the baseline, and gates."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.entries: list[dict] = []
        self.document: dict | None = None
        self.gate = None
        self.problems: list[str] = []

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        entry = getattr(report, "onnx_parity", None)
        if entry is not None:
            self.entries.append(entry)

    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        """Write the report and the Markdown summary; update or gate against the baseline. A
        failed gate fails the session through its exit status."""
        config = self.config
        parity = config.stash[CONFIG_KEY]
        from .report import document, gate, render

        doc = document.build(
            self.entries,
            env=document.environment(parity.threads),
            settings={
                "examples": parity.examples,
                "threads": parity.threads,
                "latency": parity.latency,
                "variants": list(parity.variants) if parity.variants else None,
                "require_gpu": parity.require_gpu,
            },
        )
        self.document = doc
        if parity.baseline_path and not parity.update_baseline:
            try:
                baseline = document.load(parity.baseline_path)
            except document.ReportError as exc:
                self.gate = gate.GateResult(reasons=(f"baseline unusable: {exc}",))
            else:
                self.gate = gate.gate(
                    doc,
                    baseline,
                    max_error_growth=parity.max_error_growth,
                    max_latency_regression=parity.max_latency_regression,
                )
            if not self.gate.passed and session.exitstatus == pytest.ExitCode.OK:
                session.exitstatus = pytest.ExitCode.TESTS_FAILED
        text = render.markdown(doc, self.gate)
        step_summary = os.environ.get("GITHUB_STEP_SUMMARY")
        writes = [
            ("report", parity.report_path, lambda path: document.save(doc, path)),
            (
                "baseline",
                parity.baseline_path if parity.update_baseline else None,
                lambda path: document.save(doc, path),
            ),
            ("Markdown summary", parity.markdown_path, lambda path: document.write_atomic(path, text)),
            ("$GITHUB_STEP_SUMMARY", step_summary, lambda path: _append(path, text)),
        ]
        for what, path, write in writes:
            if not path:
                continue
            try:
                write(path)
            except OSError as exc:  # reported in the summary, never a traceback from a hook
                self.problems.append(f"could not write the {what} to {path}: {exc.strerror or exc}")
        if self.problems and session.exitstatus == pytest.ExitCode.OK:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED

    def pytest_terminal_summary(self, terminalreporter) -> None:
        """The parity table, where the report went, and the gate's verdict."""
        if self.document is None or not self.document["items"]:
            return
        from .report import render

        parity = self.config.stash[CONFIG_KEY]
        terminalreporter.section("onnx parity")
        for line in render.terminal(self.document, self.gate):
            terminalreporter.write_line(line, red=line.startswith("release gate: FAILED"))
        for problem in self.problems:
            terminalreporter.write_line(f"error: {problem}", red=True)
        if parity.report_path and not any("the report" in p for p in self.problems):
            terminalreporter.write_line(f"report: {parity.report_path}")
        if parity.update_baseline:
            terminalreporter.write_line(f"baseline written: {parity.baseline_path}")
        elif self.gate is not None and not self.gate.passed:
            terminalreporter.write_line(
                f"to accept these changes as the new baseline: rerun with {cfg.FLAG_UPDATE_BASELINE}"
            )


def _append(path: str, text: str) -> None:
    with open(path, "a", encoding="utf-8") as f:
        f.write(text)


def _session(config: pytest.Config):
    session = config.stash.get(SESSION_KEY, None)
    if session is None:
        from .runner import ParitySession

        parity = config.stash[CONFIG_KEY]
        session = ParitySession(
            reproducer_dir=parity.reproducer_dir,
            threads=parity.threads,
            examples=parity.examples,
            require_gpu=parity.require_gpu,
            latency_mode=parity.latency,
        )
        config.stash[SESSION_KEY] = session
    return session


def _base_id(item: pytest.Item) -> str:
    """The item's node id without its variant parameter: one name for all its variants."""
    nodeid = item.nodeid
    return nodeid[: nodeid.index("[")] if "[" in nodeid else nodeid


def _seed_rngs(seed: int) -> None:
    """Seed the RNGs a model's initialisation uses, so every variant item builds the same model."""
    random.seed(seed)
    numpy = sys.modules.get("numpy")
    if numpy is not None:
        numpy.random.seed(seed)
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.manual_seed(seed)
    keras = sys.modules.get("keras")
    if keras is not None:
        keras.utils.set_random_seed(seed)  # also seeds tensorflow's global generator
    elif "tensorflow" in sys.modules:
        sys.modules["tensorflow"].random.set_seed(seed)


class ParityFixture:
    """What a test gets from the ``onnx_parity`` fixture: ``check(model)`` runs this item —
    parity on its variant (at its opset), the opset budget, or a latency budget."""

    def __init__(self, item: pytest.Item, planned: Item, config: pytest.Config) -> None:
        self.item = item
        self.planned = planned
        self.variant = planned.variant
        self._config = config
        marker = item.get_closest_marker("onnx_parity")
        self._declared = dict(marker.kwargs) if marker else {}
        self._marker_args = tuple(marker.args) if marker else ()
        self.result = None

    def check(
        self, model: Any = None, *, onnx: Any = None, reference: Callable | None = None, **overrides: Any
    ):
        """Check ``model`` (or ``onnx`` against it or ``reference``) for this item.

        Keyword arguments override the marker's (inputs, dims, tolerance, opset, examples, data,
        variant_options, calibration, latency). Fails the test with a diagnosis when parity or
        the budget does not hold; returns the VariantResult (or BudgetResult).
        """
        __tracebackhide__ = True
        skip = failure = None
        checked = None
        try:
            spec, data = self._spec(overrides, model, onnx)
            checked = _session(self._config).check(
                model,
                spec=spec,
                onnx=onnx,
                reference=reference,
                name=_base_id(self.item),
                data=data,
                items=[self._bound(spec)],
            )
            result = {**checked.variants, **checked.budgets}[self.planned.id]
        except FrameworkNotInstalled as exc:
            skip = str(exc)
        except OnnxParityError as exc:
            failure = f"{type(exc).__name__}: {exc}"
        # Outside the except blocks: no "during handling of the above exception" chain.
        if skip is not None:
            self._record("skipped", {"status": "skipped", "message": skip})
            pytest.skip(skip)
        if failure is not None:
            self._record("error", {"status": "error", "message": failure})
            pytest.fail(failure, pytrace=False)
        self.result = result
        self._record(result.status, result.to_dict(), checked)
        if result.status == "skipped":
            pytest.skip(result.message)
        if result.status != "passed":
            pytest.fail(result.message, pytrace=False)
        if self.planned.kind == "latency" and (
            result.measured.get("broken") or not result.measured.get("reliable", True)
        ):
            warnings.warn(LatencyReport(result.message), stacklevel=2)
        return result

    def _record(self, status: str, result: dict, checked: Any = None) -> None:
        """This item's report entry (sent to the controller with the test report) and its key
        numbers as JUnit properties."""
        from .report import document

        entry = document.entry(self.item.nodeid, _base_id(self.item), self.planned, status, result, checked)
        self.item.stash[ENTRY_KEY] = entry
        self.item.user_properties.extend(document.junit_properties(entry))

    def _bound(self, spec: ParitySpec) -> Item:
        """This item, with the budget as the spec (after overrides) declares it."""
        planned = self.planned
        if planned.kind == "latency":
            same = [lat for lat in spec.latency if lat.variant == planned.variant]
            if not same:
                raise InvalidSpec(
                    f"item {planned.id}: no op.Latency(variant={planned.variant!r}) is declared"
                )
            index = next((i for i, lat in enumerate(same) if lat == planned.latency), 0)
            return replace(planned, latency=same[index])
        if planned.kind == "opset" and spec.opset_budget is None:
            raise InvalidSpec("item opset: declare opset=op.Opset(...) on the marker")
        return planned

    def _spec(self, overrides: dict, model: Any, onnx: Any) -> tuple[ParitySpec, Any]:
        from .infer import build_spec

        if self._marker_args:
            raise InvalidSpec("the onnx_parity marker takes keyword arguments only (inputs=..., dims=...)")
        args = {**self._declared, **overrides}
        unknown = sorted(set(args) - set(MARKER_ARGS))
        if unknown:
            raise InvalidSpec(f"unknown onnx_parity argument {unknown[0]!r}; known: {', '.join(MARKER_ARGS)}")
        args.setdefault("variants", (self.variant,) if self.variant else ("ort-cpu",))
        args["latency"] = args.get("latency") or ()
        data = args.pop("data", None)
        return build_spec(model, onnx=onnx, data=data, **args), data


class LatencyReport(UserWarning):
    """A latency budget was broken under --onnx-parity-latency=report, or its verdict is unreliable."""


@pytest.fixture
def onnx_parity(request: pytest.FixtureRequest) -> ParityFixture:
    """Checks a model's ONNX export for this item: ``onnx_parity.check(model)``."""
    config = request.config
    parity = config.stash[CONFIG_KEY]
    planned = getattr(request, "param", None) or plan_items(parity.default_variants[:1])[0]
    base = _base_id(request.node)
    _seed_rngs(int.from_bytes(hashlib.blake2b(base.encode(), digest_size=4).digest(), "little"))
    return ParityFixture(request.node, planned, config)
