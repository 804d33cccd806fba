"""The end of a pytest run, as plain data: which planned items reported, why a run is
incomplete, and what it writes.

The plugin feeds a :class:`Run` what test reports carry (the plan, each item's entry, a crashed
xdist worker's report) and how the session ended; :func:`finish` builds the report, gates it,
and writes the report, the Markdown summary and the baseline — atomically, and never a baseline
from an incomplete run. A path that cannot be written is a message naming the path and what is
wrong with it (:func:`path_problem`), checked before the run too (:func:`check_outputs`). No
pytest here, so each rule is testable alone.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from onnxparity.config import FLAG_BASELINE, FLAG_ENABLE, FLAG_UPDATE_BASELINE, ParityConfig
from onnxparity.report import document, gate, render


@dataclass
class Run:
    """What one run planned and what it reported, gathered as test reports arrive."""

    #: the collected parity items (planned entries, see :func:`document.planned_entry`); None
    #: until known (a run interrupted during collection never knows)
    plan: list[dict[str, Any]] | None = None
    #: item entries by node id (a repeated item keeps its last entry)
    entries: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: (node id, reason) of failed reports that carried no entry: xdist's crashed-worker reports
    crashed: list[tuple[str, str]] = field(default_factory=list)
    #: what stopped the session from outside ("KeyboardInterrupt", "pytest.exit: ...")
    stopped_by: str | None = None
    collection_errors: int = 0
    #: what selected this process's items from the whole run: its ``shard`` and the run's
    #: ``run_plan`` (None: the run was not split)
    selection: dict[str, Any] | None = None

    def record(
        self, nodeid: str, *, plan: Any = None, entry: Any = None, crash: str | None = None, run: Any = None
    ) -> None:
        if self.plan is None and plan is not None:
            self.plan = list(plan)
        if self.selection is None and isinstance(run, dict):
            self.selection = dict(run)
        if entry is not None:
            self.entries[entry["nodeid"]] = entry
        elif crash is not None:
            self.crashed.append((nodeid, crash))

    def record_report(self, report: Any) -> None:
        """What a pytest test report carries: the plan (a process's first report), an item's
        entry, or — a failed report of no phase, without an entry — xdist's crashed worker."""
        crashed = report.failed and report.when not in ("setup", "call", "teardown")
        self.record(
            report.nodeid,
            plan=getattr(report, "onnx_parity_plan", None),
            entry=getattr(report, "onnx_parity", None),
            crash=str(report.longrepr).strip() if crashed else None,
            run=getattr(report, "onnx_parity_run", None),
        )

    def interruption(self, *, interrupted: bool, stopped: str | None) -> str | None:
        """Why the run did not finish every planned item (``interrupted``: the session ended
        with pytest's INTERRUPTED status; ``stopped``: its stop reason, e.g. -x's); None when
        it did. The counts are the report's own fields."""
        reasons = [self.stopped_by] if self.stopped_by else []
        if self.collection_errors:
            reasons.append(f"{self.collection_errors} collection error(s)")
        missing = self.plan is not None and any(p["nodeid"] not in self.entries for p in self.plan)
        if (interrupted or missing) and stopped and stopped not in reasons:
            reasons.append(stopped)
        if interrupted and not reasons:
            reasons.append("the session was interrupted")
        if missing and not reasons:
            reasons.append("planned items did not run")
        return "; ".join(reasons) or None

    def document(self, parity: ParityConfig, *, interrupted: bool, stopped: str | None) -> dict[str, Any]:
        """The run's report; a crashed worker's planned item is an error entry with the crash."""
        planned = {p["nodeid"]: p for p in self.plan or ()}
        for nodeid, reason in self.crashed:
            nodeid = nodeid if nodeid in planned else nodeid.rsplit("@", 1)[0]  # xdist's loadgroup suffix
            if nodeid in planned and nodeid not in self.entries:
                self.entries[nodeid] = document.placeholder(planned[nodeid], "error", reason)
        return document.build(
            self.entries.values(),
            env=document.environment(parity.threads),
            settings={
                "examples": parity.examples,
                "threads": parity.threads,
                "latency": parity.latency,
                "variants": list(parity.variants) if parity.variants else None,
                "require_gpu": parity.require_gpu,
            },
            planned=None if self.plan is None else len(self.plan),
            interruption=self.interruption(interrupted=interrupted, stopped=stopped),
            run=self.selection,
        )


def ended_entry(planned: dict[str, Any], report: Any) -> dict[str, Any]:
    """The entry of an item whose test ``report`` (a pytest TestReport) ended it before its check
    recorded one: skipped with the skip's reason, else an error with the exception's line."""
    if report.skipped:
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else report.longreprtext
        return document.placeholder(planned, "skipped", str(reason).removeprefix("Skipped: "))
    crash = getattr(report.longrepr, "reprcrash", None)
    message = crash.message if crash else report.longreprtext.strip()
    return document.placeholder(planned, "error", message.removeprefix("Failed: "))


@dataclass(frozen=True)
class Finished:
    """What :func:`finish` did: the gate's verdict, what went wrong, whether a baseline was
    written, and whether the gate or the baseline update refused an incomplete run."""

    gate: gate.GateResult | None = None
    problems: tuple[str, ...] = ()
    baseline_written: bool = False
    refused: bool = False

    @property
    def ok(self) -> bool:
        return not self.problems and (self.gate is None or self.gate.passed)


def check_outputs(parity: ParityConfig) -> dict[str, Any] | None:
    """Before the run: ReportError for an output path that cannot be written, or for a baseline
    to gate against that is missing, malformed or from an incomplete run; else that baseline."""
    outputs = [
        ("report", parity.report_path),
        ("Markdown summary", parity.markdown_path),
        ("HTML report", parity.html_path),
    ]
    outputs.append(("baseline", parity.baseline_path if parity.update_baseline else None))
    for what, path in outputs:
        problem = path_problem(path) if path else None
        if problem is not None:
            raise document.ReportError(f"cannot write the {what} to {path}: {problem}")
    if not parity.baseline_path or parity.update_baseline:
        return None
    create = f"pytest {FLAG_ENABLE} {FLAG_BASELINE}={parity.baseline_path} {FLAG_UPDATE_BASELINE}"
    if not os.path.exists(parity.baseline_path):
        raise document.ReportError(
            f"no baseline report at {parity.baseline_path}: create it from a run you trust with {create}"
        )
    try:
        baseline = document.load(parity.baseline_path)
        document.check_complete(baseline, parity.baseline_path)
    except document.ReportError as exc:
        raise document.ReportError(
            f"unusable baseline: {exc}; re-create it from a run you trust with {create}"
        ) from None
    return baseline


def finish(
    doc: Mapping[str, Any], parity: ParityConfig, baseline: Mapping[str, Any] | None, step_summary: str | None
) -> Finished:
    """Gate ``doc`` against ``baseline`` (when given), then write the report, the baseline
    (under the update flag, and only from a complete run), the Markdown summary, and append
    the summary to ``step_summary`` ($GITHUB_STEP_SUMMARY)."""
    verdict = None
    if baseline is not None:
        verdict = gate.gate(
            doc,
            baseline,
            max_error_growth=parity.max_error_growth,
            max_latency_regression=parity.max_latency_regression,
        )
    problems = []
    incomplete = document.completeness(doc)
    if parity.update_baseline and incomplete:
        problems.append(
            f"baseline not updated: {incomplete}; only a complete run replaces a baseline: "
            f"rerun the whole suite with {FLAG_UPDATE_BASELINE}"
        )
    text = render.markdown(doc, verdict, html=parity.html_path)

    def page(path: str) -> None:
        from onnxparity.report.html import page

        document.write_atomic(path, page(doc, baseline))

    writes: list[tuple[str, str | None, Callable[[str], None]]] = [
        ("report", parity.report_path, lambda path: document.save(doc, path)),
        (
            "baseline",
            parity.baseline_path if parity.update_baseline and not incomplete else None,
            lambda path: document.save(doc, path),
        ),
        ("Markdown summary", parity.markdown_path, lambda path: document.write_atomic(path, text)),
        ("HTML report", parity.html_path, page),
        ("$GITHUB_STEP_SUMMARY", step_summary, lambda path: _append(path, text)),
    ]
    written = []
    for what, path, write in writes:
        if not path:
            continue
        try:
            write(path)
            written.append(what)
        except OSError as exc:  # a message in the summary, never a traceback from a hook
            problems.append(f"cannot write the {what} to {path}: {write_problem(path, exc)}")
    refused = bool(incomplete) and (verdict is not None or parity.update_baseline)
    return Finished(verdict, tuple(problems), "baseline" in written, refused)


def summary_lines(doc: Mapping[str, Any], finished: Finished, parity: ParityConfig) -> list[tuple[str, bool]]:
    """The terminal summary's lines, each with whether it is shown red: the table, the
    completeness and gate lines, what went wrong, and where the outputs went."""
    if not (doc["items"] or doc["interrupted"] or finished.problems):
        return []
    alarms = ("release gate: FAILED", "release gate: REFUSED", "INCOMPLETE")
    lines = [(line, line.startswith(alarms)) for line in render.terminal(doc, finished.gate)]
    lines += [(f"error: {problem}", True) for problem in finished.problems]
    if parity.report_path and not any("the report" in p for p in finished.problems):
        lines.append((f"report: {parity.report_path}", False))
    if parity.html_path and not any("the HTML report" in p for p in finished.problems):
        lines.append((f"HTML report: {parity.html_path}", False))
    if finished.baseline_written:
        lines.append((f"baseline written: {parity.baseline_path}", False))
    elif finished.gate is not None and finished.gate.reasons:
        lines.append(
            (f"to accept these changes as the new baseline: rerun with {FLAG_UPDATE_BASELINE}", False)
        )
    return lines


def _append(path: str, text: str) -> None:
    with open(path, "a", encoding="utf-8") as f:
        f.write(text)


def path_problem(path: str | os.PathLike[str]) -> str | None:
    """What makes ``path`` unwritable as a file, when it is plain from the file system (a
    parent that is a file, or a directory where the file should go); None when nothing is."""
    path = os.fspath(path)
    if os.path.isdir(path):
        return f"{path} is a directory"
    parent = os.path.dirname(path)
    while parent and not os.path.lexists(parent) and os.path.dirname(parent) != parent:
        parent = os.path.dirname(parent)
    if parent and os.path.lexists(parent) and not os.path.isdir(parent):
        return f"{parent} is a file, not a directory"
    return None


def write_problem(path: str | os.PathLike[str], exc: OSError) -> str:
    """Why writing ``path`` failed with ``exc``, in words that say what to fix."""
    found = path_problem(path)
    if found is not None:
        return found
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return f"no permission to write in {os.path.dirname(os.fspath(path)) or '.'} ({exc.strerror})"
    if exc.errno == errno.ENOSPC:
        return "no space left on the device"
    return str(exc.strerror or exc)
