"""pytest plugin: options, the ``onnx_parity`` marker, the ``onnx_parity`` fixture, the report.

Thin by design: it resolves one :class:`ParityConfig`, turns a marker into items (one per
variant — per variant and opset for an opset matrix — plus ``[opset]`` and
``[latency-<variant>]`` for budgets), hands each item's check to the runner, and hands the
collected entries to :mod:`onnxparity.report` for the JSON report, the summaries and the
baseline gate. Loading it imports no framework and no ONNX Runtime.
"""

from __future__ import annotations

import contextlib
import os
import warnings
from collections.abc import Callable, Generator
from dataclasses import replace
from typing import TYPE_CHECKING, Any, cast

import pytest

import onnxparity.config as cfg
from onnxparity import selection
from onnxparity.config import ParityConfig
from onnxparity.errors import FrameworkNotInstalled, InvalidSpec, OnnxParityError
from onnxparity.parsers import argparse_type
from onnxparity.planning import Item, plan_items, stable_seed
from onnxparity.selection import base_id as _base_id
from onnxparity.selection import is_parity as _is_parity
from onnxparity.selection import item_of as _item_of
from onnxparity.spec import ParitySpec
from onnxparity.variants import ALL_VARIANTS

if TYPE_CHECKING:
    from onnxparity.report.run import Finished
    from onnxparity.results import BudgetResult, CheckResult, VariantResult
    from onnxparity.runner import ParitySession

CONFIG_KEY = pytest.StashKey[ParityConfig]()
ENTRY_KEY = pytest.StashKey[dict[str, Any]]()  # one item's report entry, set by its fixture
SESSION_KEY = pytest.StashKey[Any]()  # the run's ParitySession, created on first use
PLAN_KEY = pytest.StashKey[list[dict[str, Any]]]()  # this process's collected parity items, as planned entries
PLAN_SENT_KEY = pytest.StashKey[bool]()  # the plan went out with this process's first test report

#: marker arguments, with what each declares.
MARKER_ARGS = tuple(
    "inputs dims variants tolerance opset examples data variant_options calibration latency outputs".split()
)

MARKER_DOC = (
    "onnx_parity(inputs=[op.Input(...)], dims={name: op.Dim(min, max)}, variants=['ort-cpu'], "
    "tolerance=op.Tolerance(atol, rtol) or {variant: Tolerance or Agreement}, opset=None, examples=None, "
    "data=None, variant_options={variant: {...}}, calibration=[feeds], opset=op.Opset(...), "
    "latency=op.Latency(...) or a list, outputs=[op.Output(name, unordered=True or sort_by=column)]): "
    "declare an ONNX parity check run by the onnx_parity fixture; "
    "one test item per variant (per variant and opset for Opset(matrix=...)), plus [opset] and "
    "[latency-<variant>] items for the budgets. "
    "Runs only under --onnx-parity."
)

SKIP_REASON = (
    "ONNX parity checks are off: run pytest with --onnx-parity (or set onnx_parity = true in the ini file)"
)


def pytest_addoption(parser: pytest.Parser) -> None:
    """A flag and an ini key per setting of :data:`onnxparity.config.SETTINGS`."""
    group = parser.getgroup("onnx-parity", "ONNX parity checks (onnxparity)")
    for s in cfg.SETTINGS:
        # default=None on every flag: resolve_config tells "not given" from a given value.
        kwargs: dict[str, Any] = {"dest": s.dest, "default": None, "help": s.describe(ALL_VARIANTS)}
        if s.switch:
            kwargs["action"] = "store_true"
        else:
            kwargs["metavar"] = s.metavar
            if s.parse is not None:
                kwargs["type"] = argparse_type(s.parse, s.flag)
        group.addoption(s.flag, **kwargs)
    for s in cfg.SETTINGS:
        if s.ini is not None:
            parser.addini(s.ini, f"as {s.flag}", type=s.ini_kind, default=s.ini_default)


def resolve_config(config: pytest.Config) -> ParityConfig:
    """Flags over ini keys over defaults; a bad ini value is a usage error naming the key."""
    values = {s.name: _resolve(config, s) for s in cfg.SETTINGS}
    cache = values["cache_dir"]
    if cache in ("auto", "verify"):  # the plugin's cache lives under the rootdir, beside the reproducers
        values["cache_dir"] = os.path.join(str(config.rootpath), ".onnxparity", "cache")
    elif cache != "off":
        values["cache_dir"] = os.path.join(str(config.rootpath), os.path.expanduser(cache))
    return ParityConfig(**values, cache_verify=cache == "verify", wording="pytest")


def _resolve(config: pytest.Config, setting: cfg.Setting) -> Any:
    """One setting's value: its flag if given, else its ini key if set, else its default;
    a path is joined to the directory the table names."""
    value = config.getoption(setting.dest)
    if value is None and setting.ini is not None:
        what = f"ini key {setting.ini}"
        try:
            raw = config.getini(setting.ini)
            if raw not in ("", []):
                value = setting.parse(raw, what) if setting.parse is not None else raw
        except (ValueError, pytest.UsageError) as exc:  # pytest's own bool check raises UsageError
            message = str(exc) if str(exc).startswith(what) else f"{what}: {exc}"
            raise pytest.UsageError(message) from None
    if value in (None, "", []):
        value = setting.default
    if setting.relative_to is not None and value:
        base = config.rootpath if setting.relative_to == "rootdir" else config.invocation_params.dir
        value = os.path.join(str(base), os.path.expanduser(value))
    return value


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", MARKER_DOC)
    parity = resolve_config(config)
    config.stash[CONFIG_KEY] = parity
    if parity.update_baseline and not parity.baseline_path:
        raise pytest.UsageError(
            f"{cfg.FLAG_UPDATE_BASELINE} needs {cfg.FLAG_BASELINE}=PATH: where to write the baseline"
        )
    if parity.enabled and not _is_worker(config):
        from onnxparity.report import document, run

        try:  # fail before the run: an output path that cannot be written, an unusable baseline
            baseline = run.check_outputs(parity)
        except document.ReportError as exc:
            raise pytest.UsageError(str(exc)) from None
        config.pluginmanager.register(ParityReporter(config, baseline), "onnx-parity-reporter")


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
        variants: tuple[str, ...] = parity.default_variants
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


def pytest_itemcollected(item: pytest.Item) -> None:
    if item.config.stash[CONFIG_KEY].enabled:
        selection.group(item.config, item)  # a model's items on one xdist worker


@pytest.hookimpl(trylast=True)  # after -k and -m
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Variants, excluded variants and shards select the parity items (:mod:`.selection`)."""
    parity = config.stash[CONFIG_KEY]
    parity_items = selection.choose(config, parity, items)
    if not parity.enabled:
        skip = pytest.mark.skip(reason=SKIP_REASON)
        for item in parity_items:
            item.add_marker(skip)


def _planned(item: pytest.Item) -> dict[str, Any]:
    from onnxparity.report import document

    parity = item.config.stash[CONFIG_KEY]
    planned = _item_of(item) or plan_items(parity.default_variants[:1])[0]
    return document.planned_entry(selection.nodeid(item), _base_id(item), planned)


def pytest_collection_finish(session: pytest.Session) -> None:
    if session.config.stash[CONFIG_KEY].enabled:
        session.config.stash[PLAN_KEY] = [_planned(i) for i in session.items if _is_parity(i)]


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    """Under --onnx-parity, the marker without the fixture is an error: nothing would be checked."""
    enabled = item.config.stash[CONFIG_KEY].enabled
    if enabled and item.get_closest_marker("onnx_parity") and not _is_parity(item):
        pytest.fail(
            f"{item.nodeid} has the onnx_parity marker but does not request the onnx_parity fixture, so "
            f"nothing is checked: add it, def {getattr(item, 'originalname', item.name)}(onnx_parity): ... "
            "onnx_parity.check(model)",
            pytrace=False,
        )


@pytest.hookimpl(trylast=True)
def pytest_runtest_call(item: pytest.Item) -> None:
    """After the test body returned: a parity item that never called check() fails."""
    fixture = getattr(item, "funcargs", {}).get("onnx_parity")
    if isinstance(fixture, ParityFixture) and fixture.checks == 0:
        pytest.fail(
            f"{item.nodeid} requests the onnx_parity fixture but never calls onnx_parity.check(model), "
            "so nothing was checked: call it once with the model (or drop the fixture)",
            pytrace=False,
        )


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, Any, None]:
    """Plain attributes travel with a report from an xdist worker to the controller: the first
    report carries the plan; each parity item's concluding report carries its entry (one made
    from the outcome when the item ended before its check recorded one)."""
    outcome = yield
    report = outcome.get_result()
    plan = item.config.stash.get(PLAN_KEY, None)
    if plan is None:
        return
    if not item.config.stash.get(PLAN_SENT_KEY, False):
        report.onnx_parity_plan = plan
        report.onnx_parity_run = item.config.stash.get(selection.RUN_KEY, None)
        item.config.stash[PLAN_SENT_KEY] = True
    if _is_parity(item) and (report.when == "call" or (report.when == "setup" and not report.passed)):
        entry = item.stash.get(ENTRY_KEY, None)
        if entry is None:
            from onnxparity.report.run import ended_entry

            entry = ended_entry(_planned(item), report)
        report.onnx_parity = {**entry, "duration_s": round(report.duration, 4)}


def _is_worker(config: pytest.Config) -> bool:
    return hasattr(config, "workerinput")


class ParityReporter:
    """Gathers entries as test reports arrive (under xdist on the controller; a crashed worker's
    item becomes an error entry), then writes the outputs and gates (:mod:`.report.run`)."""

    def __init__(self, config: pytest.Config, baseline: dict[str, Any] | None = None) -> None:
        from onnxparity.report.run import Run

        self.config = config
        self.baseline = baseline
        self.run = Run()
        self.document: dict[str, Any] | None = None
        self.finished: Finished | None = None

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        self.run.record_report(report)

    def pytest_collectreport(self, report: pytest.CollectReport) -> None:
        self.run.collection_errors += bool(report.failed)

    def pytest_keyboard_interrupt(self, excinfo: pytest.ExceptionInfo[BaseException]) -> None:
        """Ctrl-C or pytest.exit(); pytest's own stops (-x, collection errors) show on the session."""
        if isinstance(excinfo.value, pytest.exit.Exception):
            self.run.stopped_by = f"pytest.exit: {excinfo.value.msg}"
        elif excinfo.type is KeyboardInterrupt:
            self.run.stopped_by = "KeyboardInterrupt"

    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        """Write the outputs, update or gate; a failed gate or write fails the session's exit status."""
        if self.config.option.collectonly:
            return
        from onnxparity.report import run

        parity = self.config.stash[CONFIG_KEY]
        # serial: the plan and the run's split are here
        self.run.record("", plan=self.config.stash.get(PLAN_KEY, None), run=self.config.stash.get(selection.RUN_KEY, None))
        stopped = session.shouldfail or session.shouldstop
        interrupted = exitstatus == pytest.ExitCode.INTERRUPTED
        self.document = self.run.document(parity, interrupted=interrupted, stopped=str(stopped or "") or None)
        self.finished = run.finish(
            self.document, parity, self.baseline, os.environ.get("GITHUB_STEP_SUMMARY")
        )
        if not self.finished.ok and session.exitstatus == pytest.ExitCode.OK:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED
        if self.finished.refused and session.exitstatus == pytest.ExitCode.TESTS_FAILED:
            session.exitstatus = pytest.ExitCode.INTERRUPTED  # an incomplete run, not gated or kept

    def pytest_terminal_summary(self, terminalreporter: pytest.TerminalReporter) -> None:
        """The parity table, whether the run was complete, where the outputs went, the gate."""
        if self.document is None:
            return
        from onnxparity.report.run import summary_lines

        # (finished: set with the document, in pytest_sessionfinish)
        lines = summary_lines(self.document, cast("Finished", self.finished), self.config.stash[CONFIG_KEY])
        if lines:
            terminalreporter.section("onnx parity")
        for line, red in lines:
            terminalreporter.write_line(line, red=red)


def _session(config: pytest.Config) -> ParitySession:
    """The run's ParitySession, made from the resolved config on first use."""
    session = config.stash.get(SESSION_KEY, None)
    if session is None:
        from onnxparity.runner import ParitySession

        session = ParitySession(config.stash[CONFIG_KEY])
        terminal = config.pluginmanager.get_plugin("terminalreporter")
        if terminal is not None and not _is_worker(config):
            # A search longer than a few seconds says how far it got (else: one silent dot),
            # with output capturing suspended as pytest's live logging does.
            capture = config.pluginmanager.get_plugin("capturemanager")

            def progress(test: str, variant: str, done: int, total: int, example: str) -> None:
                line = f"onnx parity: {test} [{variant}]: {done}/{total} examples, now {example}"
                with capture.global_and_fixture_disabled() if capture else contextlib.nullcontext():
                    terminal.write_line(line)

            session.progress = progress
        config.stash[SESSION_KEY] = session
    return session


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
        self.result: VariantResult | BudgetResult | None = None
        #: calls of check(): one item checks one model, so a second call fails
        self.checks = 0

    def check(
        self,
        model: Any = None,
        *,
        onnx: Any = None,
        reference: Callable[..., Any] | None = None,
        **overrides: Any,
    ) -> VariantResult | BudgetResult:
        """Check ``model`` (or ``onnx`` against it or ``reference``) for this item.

        Keyword arguments override the marker's (inputs, dims, tolerance, opset, examples, data,
        variant_options, calibration, latency, outputs). Fails the test with a diagnosis when
        parity or the budget does not hold; returns the VariantResult (or BudgetResult).
        """
        __tracebackhide__ = True
        from onnxparity.runner.check import run_check, warn_weak

        self.checks += 1
        if self.checks > 1:
            twice = (
                f"{self.item.nodeid} calls onnx_parity.check a second time, but one item checks one model: "
                "give each model its own test (or parametrize this one), or use op.check(...) for a second"
            )
            self._record("error", {"status": "error", "message": twice})
            pytest.fail(twice, pytrace=False)
        skip = failure = None
        checked = None
        try:
            checked = run_check(
                model,
                onnx=onnx,
                reference=reference,
                # the test that builds the model is part of what its export is keyed by across runs
                origin=getattr(self.item, "function", None),
                arguments=lambda: self._declared_with(overrides),
                session=lambda: contextlib.nullcontext(_session(self._config)),  # the run's: left open
                name=_base_id(self.item),
                items=lambda spec: [self._bound(spec)],
            )
            result = cast("VariantResult | BudgetResult", {**checked.variants, **checked.budgets}[self.planned.id])
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
            # (a latency item's result is a BudgetResult)
            cast("BudgetResult", result).measured.get("broken")
            or not cast("BudgetResult", result).measured.get("reliable", True)
        ):
            warnings.warn(LatencyReport(result.message), stacklevel=2)
        # after the entry is recorded, as before: under -W error the item's entry stays its pass
        warn_weak(cast("CheckResult", checked), label=lambda _: self.item.nodeid)  # set: nothing raised
        return result

    def _record(self, status: str, result: dict[str, Any], checked: Any = None) -> None:
        """This item's report entry (sent to the controller with the test report) and its key
        numbers as JUnit properties."""
        from onnxparity.report import document

        entry = document.entry(selection.nodeid(self.item), _base_id(self.item), self.planned, status, result, checked)
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

    def _declared_with(self, overrides: dict[str, Any]) -> dict[str, Any]:
        """The marker's arguments with the test's overrides, as build_spec takes them (``data``
        included); checked once the model resolved, as the check reads them then."""
        if self._marker_args:
            raise InvalidSpec("the onnx_parity marker takes keyword arguments only (inputs=..., dims=...)")
        args = {**self._declared, **overrides}
        unknown = sorted(set(args) - set(MARKER_ARGS))
        if unknown:
            raise InvalidSpec(f"unknown onnx_parity argument {unknown[0]!r}; known: {', '.join(MARKER_ARGS)}")
        args.setdefault("variants", (self.variant,) if self.variant else ("ort-cpu",))
        args["latency"] = args.get("latency") or ()
        return args


class LatencyReport(UserWarning):
    """A latency budget was broken under --onnx-parity-latency=report, or its verdict is unreliable."""


@pytest.fixture
def onnx_parity(request: pytest.FixtureRequest) -> ParityFixture:
    """Checks a model's ONNX export for this item: ``onnx_parity.check(model)``."""
    config = request.config
    parity = config.stash[CONFIG_KEY]
    planned = getattr(request, "param", None) or plan_items(parity.default_variants[:1])[0]
    from onnxparity.exporters import seed_frameworks

    # Every item of a test builds the same randomly initialised model: one export per session.
    seed_frameworks(stable_seed(_base_id(request.node)))
    return ParityFixture(request.node, planned, config)
