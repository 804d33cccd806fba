"""What onnxparity guarantees when things go wrong: interrupts, crashes, malformed or hostile
report files, unwritable paths, and misuse of the marker and the fixture.

Inner sessions check a hand-built ONNX Relu against a numpy reference (no export, no torch), in
a subprocess so a KeyboardInterrupt or a crashed worker stays in its own session."""

from __future__ import annotations

import contextlib
import errno
import io
import json
import os

import jsonschema
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from onnxparity import config as cfg
from onnxparity.cli import main as cli
from onnxparity.config import ParityConfig
from onnxparity.report import document, gate, run

MODULE = """
import os
import numpy as np, pytest
from onnx import TensorProto, helper
import onnxparity as op

SCALE = {scale}

def relu():
    graph = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["y"])], "relu",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 4])],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])

SPEC = dict(inputs=[op.Input("x", ("batch", 4))], dims={{"batch": op.Dim(1, 2)}}, examples=1,
            variants=["ort-cpu", "ort-cpu-noopt"])

@pytest.mark.onnx_parity(**SPEC)
def test_a(onnx_parity):
    onnx_parity.check(onnx=relu(), reference=lambda x: np.maximum(x, 0) * SCALE)
{middle}
@pytest.mark.onnx_parity(**SPEC)
def test_z(onnx_parity):
    onnx_parity.check(onnx=relu(), reference=lambda x: np.maximum(x, 0))
"""

CTRL_C = """
def test_m_ctrl_c():
    raise KeyboardInterrupt  # what pressing Ctrl-C here does
"""

EXIT = """
def test_m_exit():
    pytest.exit("enough for today", returncode=0)
"""

CRASH = """
@pytest.mark.onnx_parity(**SPEC)
def test_m_crash(onnx_parity):
    os._exit(3)  # the worker process dies, as on a native crash
"""


def module(middle: str = "", scale: float = 1.0) -> str:
    return MODULE.format(middle=middle, scale=scale)


def run_pytest(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    return pytester.runpytest_subprocess(cfg.FLAG_ENABLE, "-p", "no:cacheprovider", *args)


def read(path) -> dict:
    return json.loads(open(path, encoding="utf-8").read())


def items(path) -> dict[str, str]:
    return {i["nodeid"].split("::")[1]: i["status"] for i in read(path)["items"]}


# -- 1. an interrupted or incomplete run ---------------------------------------------------------
def test_ctrl_c_mid_run_writes_a_report_that_says_it_was_interrupted(pytester: pytest.Pytester):
    pytester.makepyfile(test_m=module(CTRL_C))
    result = run_pytest(pytester, f"{cfg.FLAG_REPORT}=parity.json")
    assert result.ret == pytest.ExitCode.INTERRUPTED
    doc = read(pytester.path / "parity.json")
    jsonschema.validate(doc, document.schema())
    assert doc["interrupted"] is True
    assert (doc["items_planned"], doc["items_reported"]) == (4, 2)
    assert doc["interruption"] == "KeyboardInterrupt"
    result.stdout.fnmatch_lines(
        [
            "INCOMPLETE: the run was interrupted (KeyboardInterrupt; 2 of 4 planned items reported); this is no release result"
        ]
    )


def test_ctrl_c_during_collection_writes_an_empty_report_that_says_so(pytester: pytest.Pytester):
    pytester.makepyfile(test_m=module(), test_n="raise KeyboardInterrupt\n")
    result = run_pytest(pytester, f"{cfg.FLAG_REPORT}=parity.json")
    assert result.ret == pytest.ExitCode.INTERRUPTED
    doc = read(pytester.path / "parity.json")
    assert doc["items"] == [] and doc["interrupted"] is True
    assert (doc["items_planned"], doc["items_reported"]) == (4, 0)  # test_m.py was collected
    assert doc["interruption"] == "KeyboardInterrupt"


def test_an_interrupt_never_replaces_the_baseline(pytester: pytest.Pytester):
    pytester.makepyfile(test_m=module())
    baseline = f"{cfg.FLAG_BASELINE}=baseline.json"
    assert run_pytest(pytester, baseline, cfg.FLAG_UPDATE_BASELINE).ret == 0
    before = (pytester.path / "baseline.json").read_bytes()
    assert len(read(pytester.path / "baseline.json")["items"]) == 4

    pytester.makepyfile(test_m=module(CTRL_C))
    result = run_pytest(pytester, baseline, cfg.FLAG_UPDATE_BASELINE)
    assert result.ret == pytest.ExitCode.INTERRUPTED
    assert (pytester.path / "baseline.json").read_bytes() == before
    result.stdout.fnmatch_lines(
        [
            "error: baseline not updated: the run was interrupted (KeyboardInterrupt; 2 of 4 planned items "
            "reported); only a complete run replaces a baseline: rerun the whole suite with "
            "--onnx-parity-update-baseline"
        ]
    )
    result.stdout.no_fnmatch_line("baseline written:*")

    pytester.makepyfile(test_m=module(EXIT))  # pytest's own exit status would be 0
    exited = run_pytest(pytester, baseline, cfg.FLAG_UPDATE_BASELINE, f"{cfg.FLAG_REPORT}=r.json")
    assert exited.ret == pytest.ExitCode.INTERRUPTED
    assert (pytester.path / "baseline.json").read_bytes() == before
    assert read(pytester.path / "r.json")["interruption"] == "pytest.exit: enough for today"


def test_a_maxfail_stop_is_incomplete_replaces_no_baseline_and_is_refused_by_the_gate(
    pytester: pytest.Pytester,
):
    pytester.makepyfile(test_m=module())
    baseline = f"{cfg.FLAG_BASELINE}=baseline.json"
    assert run_pytest(pytester, baseline, cfg.FLAG_UPDATE_BASELINE).ret == 0
    before = (pytester.path / "baseline.json").read_bytes()

    pytester.makepyfile(test_m=module(scale=1.5))  # test_a[ort-cpu] fails, -x stops there
    updated = run_pytest(pytester, "-x", baseline, cfg.FLAG_UPDATE_BASELINE, f"{cfg.FLAG_REPORT}=r.json")
    assert updated.ret == pytest.ExitCode.INTERRUPTED  # exit 2: an incomplete run, refused
    assert (pytester.path / "baseline.json").read_bytes() == before
    updated.stdout.fnmatch_lines(["error: baseline not updated: the run was interrupted (*)*"])
    doc = read(pytester.path / "r.json")
    assert doc["interrupted"] and (doc["items_planned"], doc["items_reported"]) == (4, 1)
    assert doc["interruption"] == "stopping after 1 failures"

    gated = run_pytest(pytester, "-x", baseline)
    assert gated.ret == pytest.ExitCode.INTERRUPTED
    gated.stdout.fnmatch_lines(
        ["release gate: REFUSED: this report: the run was interrupted (stopping after 1 failures; *"]
    )
    assert (
        cli(["gate", str(pytester.path / "r.json"), "--baseline", str(pytester.path / "baseline.json")]) == 2
    )


def test_collection_errors_make_the_run_incomplete(pytester: pytest.Pytester):
    pytester.makepyfile(test_m=module(), test_broken="def oops(:\n")
    result = run_pytest(pytester, "--continue-on-collection-errors", f"{cfg.FLAG_REPORT}=parity.json")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    doc = read(pytester.path / "parity.json")
    assert len(doc["items"]) == 4 and doc["interrupted"]
    assert doc["interruption"] == "1 collection error(s)"


def test_the_gate_refuses_an_interrupted_report_on_either_side(tmp_path, capsys):
    complete, interrupted = tmp_path / "complete.json", tmp_path / "interrupted.json"
    document.save(valid_document(), complete)
    doc = valid_document(interruption="KeyboardInterrupt", planned=5)
    document.save(doc, interrupted)
    for report, baseline in ((interrupted, complete), (complete, interrupted)):
        assert cli(["gate", str(report), "--baseline", str(baseline)]) == 2
        err = capsys.readouterr().err
        assert err == (
            f"onnxparity: {interrupted}: the run was interrupted (KeyboardInterrupt; 3 of 5 planned items "
            "reported); an incomplete report is no release result: rerun the suite to completion\n"
        )
    verdict = gate.gate(document.load(complete), document.load(interrupted))
    assert not verdict.passed and verdict.refused.startswith("the baseline: the run was interrupted")
    assert cli(["report", "show", str(interrupted)]) == 1
    assert "INCOMPLETE: the run was interrupted" in capsys.readouterr().out


def test_an_interrupted_baseline_is_a_usage_error_before_the_run(pytester: pytest.Pytester):
    pytester.makepyfile(test_m=module())
    document.save(valid_document(interruption="KeyboardInterrupt", planned=9), pytester.path / "b.json")
    result = run_pytest(pytester, f"{cfg.FLAG_BASELINE}=b.json")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        [
            "ERROR: unusable baseline: *b.json: the run was interrupted (KeyboardInterrupt; 3 of 9 planned "
            "items reported); * re-create it from a run you trust with pytest --onnx-parity *"
        ]
    )


def test_the_run_record_says_why_a_run_is_incomplete():
    plan = [{"nodeid": f"t.py::t[{v}]"} for v in "abcd"]
    done = run.Run(plan=plan, entries={p["nodeid"]: {} for p in plan})
    assert done.interruption(interrupted=False, stopped="stopping after 1 failures") is None  # -x on the last
    assert run.Run(plan=plan).interruption(interrupted=False, stopped=None) == "planned items did not run"
    assert run.Run(plan=plan).interruption(interrupted=False, stopped="stopping after 1 failures") == (
        "stopping after 1 failures"
    )
    assert run.Run(plan=[]).interruption(interrupted=True, stopped=None) == "the session was interrupted"
    exited = run.Run(plan=plan[:1], entries={plan[0]["nodeid"]: {}}, stopped_by="pytest.exit: enough")
    assert exited.interruption(interrupted=False, stopped=None) == "pytest.exit: enough"


def test_schema_version_1_reports_stay_readable_and_newer_ones_are_refused(tmp_path, capsys):
    old = valid_document()
    for key in ("interrupted", "interruption", "items_planned", "items_reported"):
        del old[key]
    old["schema_version"] = 1
    jsonschema.validate(old, document.schema())  # the shipped schema describes both versions
    (tmp_path / "v1.json").write_text(json.dumps(old))
    loaded = document.load(tmp_path / "v1.json")
    assert (loaded["interrupted"], loaded["items_planned"], loaded["items_reported"]) == (False, None, 3)
    assert gate.gate(loaded, loaded).warnings[0] == (
        "this report is a schema_version 1 report: it cannot say whether its run was complete"
    )
    assert cli(["gate", str(tmp_path / "v1.json"), "--baseline", str(tmp_path / "v1.json")]) == 0
    (tmp_path / "v4.json").write_text(json.dumps({**valid_document(), "schema_version": 4}))
    assert cli(["report", "show", str(tmp_path / "v4.json")]) == 2
    assert capsys.readouterr().err.endswith(
        "v4.json: schema_version 4 is newer than this onnxparity reads (1, 2 and 3): upgrade onnxparity\n"
    )


# -- 2. malformed reports ------------------------------------------------------------------------
ENV = {
    "python": "3.11.7",
    "platform": "Linux",
    "versions": {"onnxruntime": "1.32.0", "onnx": "1.23.2"},
    "execution_providers": ["CPUExecutionProvider"],
    "cpu": "cpu",
    "cpu_count": 2,
    "gpus": [],
    "threads": {"onnxruntime_intra_op": 1},
}
PARITY = {
    "variant": "ort-cpu",
    "status": "passed",
    "opset": None,
    "policy": {"kind": "tolerance", "atol": 1e-05, "rtol": 0.0001},
    "examples": 3,
    "outputs": [
        {
            "name": "y",
            "max_abs_error": 1e-7,
            "max_rel_error": "inf",
            "max_mismatched_fraction": 0.0,
            "mismatched": 0,
            "values": 16,
            "mismatched_rate": 0.0,
            "min_cosine": 0.999,
            "min_sqnr_db": None,
            "top1_rate": None,
            "max_abs_error_vs_ort_cpu": None,
        }
    ],
    "dims_covered": {"batch": [1, 2]},
    "failing_example": None,
    "reproducer": None,
    "message": "",
    "power": {"weak": True, "reasons": ["constant output"], "outputs": [{"name": "y", "scale": 0.7}]},
}
LATENCY = {
    "item": "latency-ort-cpu",
    "kind": "latency",
    "status": "passed",
    "message": "latency of ort-cpu at batch=1\n  ratio 2.19",
    "budget": {"variant": "ort-cpu", "p50_ms": None, "p95_ms": 1.0, "max_ratio": 100},
    "measured": {
        "variant": {"samples": 30, "p50": 0.005, "p95": 0.006},
        "framework": {"samples": 30, "p50": 0.002},
        "ratio": 2.19,
        "mode": "enforce",
        "reliable": True,
    },
}
OPSET = {
    "item": "opset",
    "kind": "opset",
    "status": "failed",
    "message": "opset 17 is below 18",
    "budget": {"min": 18},
    "measured": {"17": {"opset_import": {"ai.onnx": 17}}},
}


def valid_document(interruption: str | None = None, planned: int | None = 3) -> dict:
    """A report with one item of each kind, every field our code reads filled in."""
    entries = [
        {
            "nodeid": f"t.py::t[{r.get('item', 'ort-cpu')}]",
            "test": "t.py::t",
            "item": r.get("item", "ort-cpu"),
        }
        | {"kind": r.get("kind", "parity"), "variant": "ort-cpu", "opset": None, "status": r["status"]}
        | {"model": {"name": "m", "exporter": "prebuilt", "opset": 17, "notes": []}, "result": r}
        for r in (PARITY, LATENCY, OPSET)
    ]
    doc = document.build(
        entries, env=ENV, settings={"examples": 3}, planned=planned, interruption=interruption
    )
    return json.loads(document.dumps(doc))


@pytest.fixture(scope="module")
def good(tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("good") / "good.json"
    document.save(valid_document(), path)
    return str(path)


def commands(bad: str, good: str, out: str) -> list[list[str]]:
    """Every command that reads a report, with the bad one on each side."""
    return [
        ["gate", bad, "--baseline", good],
        ["gate", good, "--baseline", bad],
        ["report", "show", bad],
        ["report", "diff", bad, good],
        ["report", "diff", good, bad],
        ["report", "merge", good, bad, "-o", out],
    ]


def call(argv: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = cli(argv)
    return code, out.getvalue(), err.getvalue()


def _items_entry(doc: dict) -> dict:
    return doc["items"][0]


@pytest.mark.parametrize(
    ("corrupt", "problem"),
    [
        (lambda d: _items_entry(d).pop("nodeid"), 'items[0]: missing required key "nodeid"'),
        (lambda d: _items_entry(d).pop("status"), 'items[0]: missing required key "status"'),
        (
            lambda d: _items_entry(d)["result"].pop("message"),
            'items[0].result: missing required key "message"',
        ),
        (
            lambda d: d["items"][2]["result"]["outputs"][0].pop("name"),
            'items[2].result.outputs[0]: missing required key "name"',
        ),
        (lambda d: d.__setitem__("summary", None), "summary: expected an object, got null"),
        (lambda d: d.__setitem__("items", {}), "items: expected a list, got an object"),
        (
            lambda d: _items_entry(d).__setitem__("status", "ok"),
            'items[0].status: expected one of "passed", "failed", "error", "skipped", got \'ok\'',
        ),
        (lambda d: d["summary"].__setitem__("passed", -1), "summary.passed: -1 is below the minimum 0"),
        (lambda d: d.pop("interrupted"), 'missing required key "interrupted"'),
    ],
)
def test_a_malformed_report_is_exit_2_naming_the_file_and_the_field(tmp_path, good, corrupt, problem):
    doc = valid_document()
    corrupt(doc)
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(doc))
    for argv in commands(str(bad), good, str(tmp_path / "out.json")):
        assert call(argv) == (2, "", f"onnxparity: {bad}: {problem}\n"), argv
    assert not (tmp_path / "out.json").exists()


def nested(depth: int) -> list:
    value: list = []
    for _ in range(depth):
        value = [value]
    return value


@pytest.mark.parametrize(
    ("raw", "problem"),
    [
        (
            b'{"schema": "onnxparity-report", "caf\xe9": 1}',
            "not a readable JSON report (not UTF-8: byte 0xe9 at offset 36)",
        ),
        (b"\xff\xfe{}", "not a readable JSON report (not UTF-8: byte 0xff at offset 0)"),
        (b"[" * 5000 + b"]" * 5000, "not a readable JSON report (nested more than 64 levels deep)"),
        (
            json.dumps(
                {
                    "schema": "onnxparity-report",
                    "schema_version": 2,
                    "settings": {"x": nested(99)},
                }
            ).encode(),
            "nested more than 64 levels deep: not an onnxparity report",
        ),
    ],
)
def test_unreadable_bytes_are_exit_2_naming_the_file(tmp_path, good, raw, problem):
    bad = tmp_path / "bad.json"
    bad.write_bytes(raw)
    for argv in commands(str(bad), good, str(tmp_path / "out.json")):
        code, out, err = call(argv)
        assert code == 2 and err.startswith(f"onnxparity: {bad}: ") and err.count("\n") == 1, argv
        assert problem is None or err == f"onnxparity: {bad}: {problem}\n"


JUNK = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-3, 3),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=4),
    st.lists(st.integers(0, 2), max_size=2),
    st.dictionaries(st.text(max_size=3), st.none(), max_size=2),
)


def _paths(value, prefix=()):
    yield prefix
    children = (
        value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    )
    for key, child in children:
        yield from _paths(child, (*prefix, key))


@st.composite
def mutated(draw) -> dict:
    """A valid report with 1-3 keys removed or values replaced by junk, anywhere in it."""
    doc = valid_document()
    for _ in range(draw(st.integers(1, 3))):
        path = draw(st.sampled_from(list(_paths(doc))[1:]))
        parent = doc
        for key in path[:-1]:
            parent = parent[key]
        if isinstance(parent, dict) and draw(st.booleans()):
            del parent[path[-1]]
        else:
            parent[path[-1]] = draw(JUNK)
    return doc


def malformed() -> st.SearchStrategy[bytes]:
    valid = json.dumps(valid_document()).encode()
    return st.one_of(
        mutated().map(lambda d: json.dumps(d).encode()),
        JUNK.map(lambda v: json.dumps({**valid_document(), "schema_version": v}).encode()),
        JUNK.map(lambda v: json.dumps(v).encode()),
        st.binary(max_size=40),
        st.integers(0, len(valid)).map(lambda n: valid[:n]),
        st.tuples(st.integers(0, len(valid) - 1), st.binary(min_size=1, max_size=2)).map(
            lambda c: valid[: c[0]] + c[1] + valid[c[0] + 1 :]
        ),
    )


def _rendered(path) -> str:
    """A field's path as the messages write it: items[0].result["a b"]."""
    out = ""
    for key in path:
        if isinstance(key, int):
            out = f"{out}[{key}]"
        else:
            out = (f"{out}.{key}" if out else key) if key.isidentifier() else f"{out}[{json.dumps(key)}]"
    return out


def schema_errors(raw: bytes) -> list[str] | None:
    """The fields jsonschema finds wrong (rendered as our messages name them); None if valid."""
    try:
        doc = json.loads(raw.decode("utf-8"))
    except ValueError:
        return ["<unreadable>"]
    errors = list(jsonschema.Draft202012Validator(document.schema()).iter_errors(doc))
    return [_rendered(e.absolute_path) for e in errors] or None


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(raw=malformed())
def test_no_malformed_report_makes_a_command_raise_or_exit_1(raw, good, tmp_path_factory):
    """gate (either side), report show, diff (either side) and merge: exit 2 naming the file and
    the field, never a traceback, never exit 1 (which means a regression)."""
    workdir = tmp_path_factory.getbasetemp() / "malformed"
    workdir.mkdir(exist_ok=True)
    bad, out = workdir / "bad.json", workdir / "out.json"
    bad.write_bytes(raw)
    wrong = schema_errors(raw)
    for argv in commands(str(bad), good, str(out)):
        if out.exists():
            out.unlink()
        code, _, err = call(argv)
        if wrong is None:  # valid after all (an optional key gone): usable, or refused by name
            assert code in (0, 1, 2) and (code != 2 or err.startswith(f"onnxparity: {bad}: ")), (argv, err)
            if argv[1] == "merge":
                document.load(out)  # what merge writes reads back
            continue
        assert code == 2, (argv, err)
        assert err.startswith(f"onnxparity: {bad}: ") and err.count("\n") == 1, err
        said = err.removeprefix(f"onnxparity: {bad}: ")
        assert said.startswith("not ") or any(said.startswith(field) for field in wrong), (said, wrong)
        assert not out.exists()


@settings(max_examples=200, deadline=None)
@given(doc=mutated())
def test_the_plain_check_agrees_with_jsonschema(doc):
    """The runtime check (plain Python) accepts exactly what the shipped schema accepts."""
    try:
        document.check_document(doc, "r.json")
        plain = True
    except document.ReportError:
        plain = False
    assert plain == jsonschema.Draft202012Validator(document.schema()).is_valid(doc)


def test_the_schema_uses_only_keywords_the_plain_check_applies():
    def keywords(rule, found):
        if isinstance(rule, dict):
            found.update(k for k in rule if k not in ("properties", "$defs"))
            for key, value in rule.items():
                if key in ("properties", "$defs"):
                    for sub in value.values():
                        keywords(sub, found)
                elif isinstance(value, (dict, list)) and key not in ("enum", "const", "required"):
                    keywords(value, found)
        elif isinstance(rule, list):
            for sub in rule:
                keywords(sub, found)
        return found

    used = keywords(document.schema(), set())
    assert used - document.KEYWORDS - document.ANNOTATIONS == set()
    jsonschema.Draft202012Validator.check_schema(document.schema())


def test_a_huge_integer_is_refused_not_overflowed(tmp_path, good):
    doc = valid_document()
    doc["items"][2]["result"]["outputs"][0]["max_abs_error"] = 10**400
    (tmp_path / "big.json").write_text(json.dumps(doc))
    code, _, err = call(["gate", str(tmp_path / "big.json"), "--baseline", good])
    assert code == 2 and "items[2].result.outputs[0].max_abs_error: expected a number" in err


# -- 3. paths that cannot be written -----------------------------------------------------------
@pytest.mark.parametrize(
    ("flag", "what"),
    [(cfg.FLAG_REPORT, "report"), (cfg.FLAG_MARKDOWN, "Markdown summary"), (cfg.FLAG_BASELINE, "baseline")],
)
def test_an_output_path_under_a_file_is_named_before_the_run(pytester: pytest.Pytester, flag, what):
    pytester.makepyfile(test_m=module())
    (pytester.path / "blocked").write_text("a file where a directory is needed")
    extra = [cfg.FLAG_UPDATE_BASELINE] if flag == cfg.FLAG_BASELINE else []
    result = run_pytest(pytester, f"{flag}=blocked/out.json", *extra)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        [f"ERROR: cannot write the {what} to */blocked/out.json: */blocked is a file, not a directory"]
    )
    result.stdout.no_fnmatch_line("*File exists*")


def test_merge_names_what_is_wrong_with_its_output_path(tmp_path, good, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "blocked").write_text("")
    assert call(["report", "merge", good, "-o", "blocked/all.json"]) == (
        2,
        "",
        "onnxparity: cannot write the merged report to blocked/all.json: blocked is a file, not a directory\n",
    )
    (tmp_path / "folder").mkdir()
    assert call(["report", "merge", good, "-o", "folder"])[2].endswith(": folder is a directory\n")


def test_a_failed_write_says_what_to_fix(tmp_path):
    denied = OSError(errno.EACCES, "Permission denied")
    assert (
        run.write_problem(tmp_path / "r.json", denied)
        == f"no permission to write in {tmp_path} (Permission denied)"
    )
    assert run.write_problem("r.json", OSError(errno.ENOSPC, "No space")) == "no space left on the device"
    assert run.path_problem(tmp_path / "new" / "deeper" / "r.json") is None  # made on write
    parity = ParityConfig(report_path=str(tmp_path / "r.json" / "x"), wording="pytest")
    (tmp_path / "r.json").write_text("")
    with pytest.raises(document.ReportError, match=r"r\.json is a file, not a directory$"):
        run.check_outputs(parity)


# -- 4. a crashed xdist worker -----------------------------------------------------------------
def test_a_crashed_workers_item_is_an_error_in_the_report(pytester: pytest.Pytester):
    pytester.makepyfile(test_m=module(CRASH))
    result = run_pytest(pytester, "-n", "2", f"{cfg.FLAG_REPORT}=parity.json")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    doc = read(pytester.path / "parity.json")
    jsonschema.validate(doc, document.schema())
    crashed = [i for i in doc["items"] if i["test"] == "test_m.py::test_m_crash"]
    assert {i["item"]: i["status"] for i in crashed} == {"ort-cpu": "error", "ort-cpu-noopt": "error"}
    assert all(
        i["result"]["message"].startswith("worker 'gw")
        and "crashed while running 'test_m.py::test_m_crash[" in i["result"]["message"]
        for i in crashed
    )
    assert doc["summary"] == {"passed": 4, "failed": 0, "error": 2, "skipped": 0}
    assert not doc["interrupted"] and doc["items_planned"] == doc["items_reported"] == 6


# -- 5. marker and fixture misuse ----------------------------------------------------------------
MISUSE = """
@pytest.mark.onnx_parity(**SPEC)
def test_m_marker_only():
    relu()

@pytest.mark.onnx_parity(**SPEC)
def test_m_twice(onnx_parity):
    onnx_parity.check(onnx=relu(), reference=lambda x: np.maximum(x, 0))
    onnx_parity.check(onnx=relu(), reference=lambda x: np.maximum(x, 0))

@pytest.mark.onnx_parity(**SPEC)
def test_m_never(onnx_parity):
    relu()
"""


def test_marker_and_fixture_misuse_fails_naming_the_test_and_the_fix(pytester: pytest.Pytester):
    pytester.makepyfile(test_m=module(MISUSE))
    result = run_pytest(pytester, f"{cfg.FLAG_REPORT}=parity.json")
    result.assert_outcomes(passed=4, failed=4, errors=1)
    result.stdout.fnmatch_lines_random(
        [
            "test_m.py::test_m_marker_only has the onnx_parity marker but does not request the onnx_parity "
            "fixture, so nothing is checked: add it, def test_m_marker_only(onnx_parity): ... "
            "onnx_parity.check(model)",
            "test_m.py::test_m_twice[[]ort-cpu[]] calls onnx_parity.check a second time, but one item checks one "
            "model: give each model its own test (or parametrize this one), or use op.check(...) for a second",
            "test_m.py::test_m_never[[]ort-cpu[]] requests the onnx_parity fixture but never calls "
            "onnx_parity.check(model), so nothing was checked: call it once with the model (or drop the fixture)",
        ]
    )
    reported = items(pytester.path / "parity.json")
    assert {k: v for k, v in reported.items() if "twice" in k or "never" in k} == {
        "test_m_twice[ort-cpu]": "error",
        "test_m_twice[ort-cpu-noopt]": "error",
        "test_m_never[ort-cpu]": "error",
        "test_m_never[ort-cpu-noopt]": "error",
    }
    never = next(i for i in read(pytester.path / "parity.json")["items"] if "never[ort-cpu]" in i["nodeid"])
    assert never["result"]["message"].startswith("test_m.py::test_m_never[ort-cpu] requests the onnx_parity")


def test_without_the_flag_parity_items_are_skipped_and_misuse_is_not_reported(pytester: pytest.Pytester):
    pytester.makepyfile(test_m=module(MISUSE))
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-rs")
    result.assert_outcomes(passed=1, skipped=8)  # the marker-only test runs as before
    result.stdout.fnmatch_lines(["*ONNX parity checks are off: run pytest with --onnx-parity*"])


def test_skipped_and_setup_errors_are_in_the_report(pytester: pytest.Pytester):
    middle = """
@pytest.fixture
def broken():
    raise RuntimeError("no GPU driver")

@pytest.mark.onnx_parity(**SPEC)
def test_m_setup(onnx_parity, broken):
    onnx_parity.check(onnx=relu(), reference=lambda x: x)

@pytest.mark.skip(reason="not on this platform")
@pytest.mark.onnx_parity(**SPEC)
def test_m_skip(onnx_parity):
    onnx_parity.check(onnx=relu(), reference=lambda x: x)
"""
    pytester.makepyfile(test_m=module(middle))
    run_pytest(pytester, f"{cfg.FLAG_REPORT}=parity.json")
    doc = read(pytester.path / "parity.json")
    results = {i["nodeid"].split("::")[1]: (i["status"], i["result"]["message"]) for i in doc["items"]}
    assert results["test_m_setup[ort-cpu]"] == ("error", "RuntimeError: no GPU driver")
    assert results["test_m_skip[ort-cpu]"] == ("skipped", "not on this platform")
    assert not doc["interrupted"] and doc["items_planned"] == doc["items_reported"] == 8


# -- 6. what a run writes ------------------------------------------------------------------------
def test_a_run_writes_only_under_onnxparity_and_the_paths_it_is_given(
    pytester: pytest.Pytester, tmp_path, monkeypatch
):
    temp, home = tmp_path / "tmp", tmp_path / "home"
    temp.mkdir()
    monkeypatch.setenv("TMPDIR", str(temp))
    monkeypatch.setenv(
        "HOME", str(home)
    )  # pytester's HOME is the test directory; ONNX Runtime writes under ~
    pytester.makepyfile(test_m=module(scale=1.5))  # failures write reproducers
    before = set(os.listdir(pytester.path))
    run_pytest(pytester, f"{cfg.FLAG_REPORT}=out/r.json", f"{cfg.FLAG_MARKDOWN}=s.md")
    pytester_own = {"__pycache__", "stdout", "stderr", "runpytest-0", "runpytest-current"}
    written = set(os.listdir(pytester.path)) - before - pytester_own
    assert written == {".onnxparity", "out", "s.md"}
    assert os.listdir(pytester.path / "out") == ["r.json"]
    assert os.listdir(pytester.path / ".onnxparity") == ["reproducers"]
    # the session's temporary directory is gone; `import onnxruntime` itself leaves its telemetry
    # session id in $TMPDIR/.ses (and a device id under ~/.cache/Microsoft), whoever imports it
    assert set(os.listdir(temp)) <= {".ses"}
