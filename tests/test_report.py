"""The JSON report, its schema, the summaries, the baseline gate and the onnxparity command.

Inner sessions check a hand-built ONNX graph against a numpy reference: no export, so they
stay quick; the parity loop itself is the real one."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import jsonschema
import pytest

from onnxparity import config as cfg
from onnxparity.cli import main as cli
from onnxparity.environment import environment
from onnxparity.report import document, gate, render, worst_error

RELU_TEST = """
import numpy as np, pytest
from onnx import TensorProto, helper
import onnxparity as op

def relu_graph():
    graph = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["y"], name="relu")], "relu",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 8])],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])

SCALE = {scale}

@pytest.mark.onnx_parity(
    inputs=[op.Input("x", ("batch", 8))], dims={{"batch": op.Dim(1, 4)}},
    variants=["ort-cpu", "ort-cpu-noopt"], examples=2,
    tolerance=op.Tolerance(atol=1e-3, rtol=0),
    opset=op.Opset(max=21),
)
def test_relu(onnx_parity):
    onnx_parity.check(onnx=relu_graph(), reference=lambda x: np.maximum(x, 0) * SCALE)
{extra}
"""

EXTRA = """
@pytest.mark.onnx_parity(inputs=[op.Input("x", ("batch", 8))], dims={"batch": op.Dim(1, 4)}, examples=2)
def test_second(onnx_parity):
    onnx_parity.check(onnx=relu_graph(), reference=lambda x: np.maximum(x, 0))
"""


def relu_test(scale: float = 1.0, extra: str = EXTRA) -> str:
    return RELU_TEST.format(scale=scale, extra=extra)


def run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    return pytester.runpytest_subprocess(cfg.FLAG_ENABLE, "-p", "no:cacheprovider", *args)


def statuses(path) -> dict[str, str]:
    return {i["nodeid"]: i["status"] for i in json.loads(open(path).read())["items"]}


def test_a_real_report_validates_against_the_published_schema(pytester: pytest.Pytester):
    pytester.makepyfile(test_relu=relu_test(scale=1.01))  # every parity item fails by 1%
    result = run(pytester, f"{cfg.FLAG_REPORT}=parity.json")
    result.assert_outcomes(passed=2, failed=2)  # [opset] and test_second pass
    doc = json.loads((pytester.path / "parity.json").read_text())
    jsonschema.validate(doc, document.schema())
    assert doc["schema"] == "onnxparity-report" and doc["schema_version"] == 3
    assert (doc["interrupted"], doc["interruption"], doc["items_planned"], doc["items_reported"]) == (
        False,
        None,
        4,
        4,
    )
    assert doc["summary"] == {"passed": 2, "failed": 2, "error": 0, "skipped": 0}
    assert doc["environment"]["versions"]["onnxruntime"] and doc["environment"]["execution_providers"]
    failed = next(i for i in doc["items"] if i["nodeid"].endswith("test_relu[ort-cpu]"))
    assert failed["kind"] == "parity" and failed["variant"] == "ort-cpu"
    res = failed["result"]
    assert res["policy"] == {"kind": "tolerance", "atol": 1e-3, "rtol": 0.0}
    assert res["failing_example"]["dims"] and res["reproducer"] and res["dims_covered"]["batch"]
    assert res["outputs"][0]["max_abs_error"] > 1e-3
    opset = next(i for i in doc["items"] if i["item"] == "opset")
    assert opset["status"] == "passed" and opset["result"]["measured"]["17"]["opset_import"] == {
        "ai.onnx": 17
    }
    result.stdout.fnmatch_lines(
        [
            "*= onnx parity =*",
            "model * item * verdict * worst error * policy * examples * latency p50",
            "test_relu.py::test_relu * ort-cpu * failed * atol=0.001, rtol=0 *",
            "4 parity items: 2 passed, 2 failed",
        ]
    )


def test_no_table_and_no_report_without_the_flag(pytester: pytest.Pytester):
    pytester.makepyfile(test_relu=relu_test())
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", f"{cfg.FLAG_REPORT}=parity.json")
    result.assert_outcomes(skipped=4)
    result.stdout.no_fnmatch_line("*onnx parity*")
    assert not (pytester.path / "parity.json").exists()


def test_markdown_summary_and_junit_properties(pytester: pytest.Pytester, tmp_path, monkeypatch):
    pytester.makepyfile(test_relu=relu_test(scale=1.01))
    step_summary = tmp_path / "step-summary.md"
    step_summary.write_text("earlier step\n")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(step_summary))  # as on GitHub Actions
    result = run(pytester, f"{cfg.FLAG_MARKDOWN}=summary.md", "--junitxml=junit.xml")
    result.assert_outcomes(passed=2, failed=2)
    markdown = (pytester.path / "summary.md").read_text()
    assert markdown.startswith("## ONNX parity\n\n4 parity items: 2 passed, 2 failed\n")
    assert "| test_relu.py::test_relu | ort-cpu | ❌ failed |" in markdown
    assert "### Failures" in markdown and "ort-cpu differs from the reference" in markdown
    assert step_summary.read_text() == "earlier step\n" + markdown  # appended, not replaced
    junit = (pytester.path / "junit.xml").read_text()
    assert '<property name="onnx_parity_status" value="failed"' in junit
    assert '<property name="onnx_parity_max_abs_error"' in junit
    assert '<property name="onnx_parity_opset" value="17"' in junit


def test_baseline_lifecycle(pytester: pytest.Pytester):
    """No baseline: an error saying how to make one; update: pass; regress: the session fails
    (exit status) naming each reason with both numbers; update: pass again."""
    pytester.makepyfile(test_relu=relu_test())
    baseline = f"{cfg.FLAG_BASELINE}=baseline.json"
    missing = run(pytester, baseline)
    assert missing.ret == pytest.ExitCode.USAGE_ERROR
    missing.stderr.fnmatch_lines(
        [
            "*no baseline report at *baseline.json: create it from a run you trust with pytest --onnx-parity "
            "--onnx-parity-baseline=*baseline.json --onnx-parity-update-baseline*"
        ]
    )
    created = run(pytester, baseline, cfg.FLAG_UPDATE_BASELINE)
    assert created.ret == 0
    created.stdout.fnmatch_lines(["baseline written: *baseline.json"])
    assert len(statuses(pytester.path / "baseline.json")) == 4
    same = run(pytester, baseline)
    assert same.ret == 0
    same.stdout.fnmatch_lines(["release gate: passed (4 baseline items compared)"])

    # Still within the tolerance (atol=1e-3), but the error grew from 0 to ~1e-4; test_second gone.
    pytester.makepyfile(test_relu=relu_test(scale=1.0 + 1e-4, extra=""))
    regressed = run(pytester, baseline)
    regressed.assert_outcomes(passed=3)  # every test passes...
    assert regressed.ret == pytest.ExitCode.TESTS_FAILED  # ...and the gate fails the session
    regressed.stdout.fnmatch_lines_random(
        [
            "release gate: FAILED (3 reason(s), 4 baseline items compared)",
            "*test_relu.py::test_relu[[]ort-cpu[]]: output 'y' max abs error grew from 0 to * (more than 2x; floor 1e-06)",
            "*test_relu.py::test_relu[[]ort-cpu-noopt[]]: output 'y' max abs error grew from 0 to *",
            "*test_relu.py::test_second[[]ort-cpu[]]: in the baseline (passed) but did not run now (lost coverage)",
            "to accept these changes as the new baseline: rerun with --onnx-parity-update-baseline",
        ]
    )
    updated = run(pytester, baseline, cfg.FLAG_UPDATE_BASELINE)
    assert updated.ret == 0
    assert run(pytester, baseline).ret == 0


def test_a_failing_item_that_passed_in_the_baseline_is_named(pytester: pytest.Pytester):
    pytester.makepyfile(test_relu=relu_test())
    assert run(pytester, f"{cfg.FLAG_REPORT}=before.json").ret == 0
    pytester.makepyfile(test_relu=relu_test(scale=1.5))
    assert run(pytester, f"{cfg.FLAG_REPORT}=after.json").ret == pytest.ExitCode.TESTS_FAILED
    verdict = gate.gate(
        document.load(pytester.path / "after.json"), document.load(pytester.path / "before.json")
    )
    assert any(
        r.endswith(
            "test_relu[ort-cpu]: passed in the baseline, failed now: ort-cpu differs from the reference "
            "(model from prebuilt ONNX, opset 17):"
        )
        for r in verdict.reasons
    ), verdict.reasons


def test_xdist_writes_the_same_report_as_a_serial_run(pytester: pytest.Pytester):
    pytester.makepyfile(test_relu=relu_test(scale=1.01))
    run(pytester, f"{cfg.FLAG_REPORT}=serial.json")
    run(pytester, "-n", "2", f"{cfg.FLAG_REPORT}=parallel.json")
    serial, parallel = statuses(pytester.path / "serial.json"), statuses(pytester.path / "parallel.json")
    assert serial == parallel and len(serial) == 4
    jsonschema.validate(json.loads((pytester.path / "parallel.json").read_text()), document.schema())


def test_a_crashed_worker_does_not_corrupt_the_report(pytester: pytest.Pytester):
    crash = """
def test_crash():
    import os
    os._exit(3)
"""
    pytester.makepyfile(test_relu=relu_test(extra=EXTRA + crash))
    result = run(pytester, "-n", "2", f"{cfg.FLAG_REPORT}=parity.json")
    result.stdout.fnmatch_lines(["*worker * crashed while running *test_crash*"])
    doc = json.loads((pytester.path / "parity.json").read_text())
    jsonschema.validate(doc, document.schema())
    assert {i["nodeid"].split("::")[1] for i in doc["items"]} == {
        "test_relu[ort-cpu]",
        "test_relu[ort-cpu-noopt]",
        "test_relu[opset]",
        "test_second[ort-cpu]",
    }


def test_write_atomic_keeps_the_old_file_when_the_write_fails(tmp_path, monkeypatch):
    target = tmp_path / "parity.json"
    target.write_text("old")

    def broken_replace(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(OSError, match="disk full"):
        document.write_atomic(target, "new")
    assert target.read_text() == "old"
    assert os.listdir(tmp_path) == ["parity.json"]  # no temp file left behind


# -- the onnxparity command -------------------------------------------------------------------
@pytest.fixture(scope="module")
def reports(tmp_path_factory):
    """A real report (from a library check) and variants of it for the CLI."""
    import numpy as np
    from onnx import TensorProto, helper

    import onnxparity as op

    graph = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["y"])],
        "relu",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 8])],
    )
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    directory = tmp_path_factory.mktemp("reports")
    result = op.check(
        onnx=proto,
        reference=lambda x: np.maximum(x, 0) * 1.000001,
        inputs=[op.Input("x", ("batch", 8))],
        dims={"batch": op.Dim(1, 4)},
        variants=["ort-cpu", "ort-cpu-noopt"],
        examples=2,
        reproducer_dir=directory,
    )
    entries = [
        {
            "nodeid": f"t.py::test[{k}]",
            "test": "t.py::test",
            "item": k,
            "kind": "parity",
            "variant": k,
            "opset": None,
            "status": v.status,
            "model": None,
            "result": document.jsonable(v.to_dict()),
        }
        for k, v in result.variants.items()
    ]
    paths = {}
    base = document.build(entries)
    paths["base"] = directory / "base.json"
    document.save(base, paths["base"])
    shard_a, shard_b = document.build(entries[:1]), document.build(entries[1:])
    for name, doc in (("a", shard_a), ("b", shard_b)):
        paths[name] = directory / f"{name}.json"
        document.save(doc, paths[name])
    worse = json.loads(paths["base"].read_text())
    cpu = next(i for i in worse["items"] if i["item"] == "ort-cpu")
    cpu["result"]["outputs"][0]["max_abs_error"] = 0.5
    cpu["status"] = cpu["result"]["status"] = "failed"
    paths["worse"] = directory / "worse.json"
    paths["worse"].write_text(json.dumps(worse))
    paths["garbage"] = directory / "garbage.json"
    paths["garbage"].write_text("{not json")
    return paths


def test_cli_gate_exit_codes_and_markdown(reports, capsys):
    assert cli(["gate", str(reports["base"]), "--baseline", str(reports["base"])]) == 0
    out = capsys.readouterr().out
    assert out.startswith("## ONNX parity release gate\n") and "- release gate: passed" in out
    assert cli(["gate", str(reports["worse"]), "--baseline", str(reports["base"])]) == 1
    captured = capsys.readouterr()
    assert "t.py::test[ort-cpu]: passed in the baseline, failed now" in captured.err
    assert "release gate: FAILED (1 reason(s), 2 baseline items compared)" in captured.out
    assert cli(["gate", str(reports["garbage"]), "--baseline", str(reports["base"])]) == 2
    assert "garbage.json: not a readable JSON report" in capsys.readouterr().err


def test_cli_show_diff_and_merge(reports, capsys, tmp_path):
    assert cli(["report", "show", str(reports["base"])]) == 0
    shown = capsys.readouterr().out.splitlines()
    assert shown[0].split() == [
        "model",
        "item",
        "verdict",
        "worst",
        "error",
        "headroom",
        "policy",
        "examples",
        "latency",
        "p50",
    ]
    assert shown[-1] == "2 parity items: 2 passed"
    assert cli(["report", "diff", str(reports["base"]), str(reports["worse"])]) == 0
    assert capsys.readouterr().out.startswith("~ t.py::test[ort-cpu]: passed -> failed; y max abs error ")
    merged = tmp_path / "all.json"
    assert cli(["report", "merge", str(reports["a"]), str(reports["b"]), "-o", str(merged)]) == 0
    assert statuses(merged) == statuses(reports["base"])
    jsonschema.validate(json.loads(merged.read_text()), document.schema())


def test_cli_is_installed_as_a_console_script(reports):
    done = subprocess.run(
        [os.path.join(os.path.dirname(sys.executable), "onnxparity"), "report", "show", str(reports["base"])],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0 and "2 parity items: 2 passed" in done.stdout


def test_environment_differences_warn(reports):
    base = document.load(reports["base"])
    other = json.loads(json.dumps(base))
    other["environment"]["versions"]["onnxruntime"] = "0.0.1"
    verdict = gate.gate(base, other)
    assert verdict.passed
    assert verdict.warnings[0].startswith("environment differs: onnxruntime is ")
    assert "0.0.1 in the baseline; numbers may not be comparable" in verdict.warnings[0]


def test_an_unwritable_report_path_is_a_usage_error_before_the_run(pytester: pytest.Pytester):
    pytester.makepyfile(test_relu=relu_test())
    (pytester.path / "blocked").write_text("a file where a directory is needed")
    result = run(pytester, f"{cfg.FLAG_REPORT}=blocked/parity.json")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        ["ERROR: cannot write the report to *blocked/parity.json: *blocked is a file, not a directory"]
    )
    result.stdout.no_fnmatch_line("*INTERNALERROR*")


def test_a_write_that_fails_after_the_run_is_an_error_line_not_a_traceback(pytester: pytest.Pytester):
    """A path that goes bad during the run: the tests still run, the session fails, one line says why."""
    pytester.makepyfile(
        test_relu=relu_test(),
        test_zz_block='def test_block():\n    open("blocked", "w").write("now a file")\n',
    )
    result = run(pytester, f"{cfg.FLAG_MARKDOWN}=blocked/summary.md")
    result.assert_outcomes(passed=5)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(
        [
            "error: cannot write the Markdown summary to *blocked/summary.md: *blocked is a file, not a directory"
        ]
    )
    result.stdout.no_fnmatch_line("*INTERNALERROR*")


# -- one rule for the worst error; one environment ---------------------------------------------
def test_the_worst_error_ranks_nan_above_inf_above_numbers_in_any_order():
    inf, nan = float("inf"), float("nan")
    assert worst_error([]) is None and worst_error([{"name": "y"}, {"max_abs_error": None}]) is None
    assert worst_error([{"max_abs_error": 0.5}, {"max_abs_error": 2}]) == 2.0
    assert worst_error([{"max_abs_error": 0.5}, {"max_abs_error": "inf"}]) == inf
    for outputs in (
        [{"max_abs_error": "nan"}, {"max_abs_error": 1.0}],
        [{"max_abs_error": 1.0}, {"max_abs_error": nan}],
    ):
        worst = worst_error(outputs)
        assert worst != worst  # NaN, whatever the order (max() would depend on it)


def test_every_summary_shows_the_same_worst_error(reports):
    doc = document.load(reports["base"])
    item = next(i for i in doc["items"] if i["item"] == "ort-cpu")
    item["result"]["outputs"][0]["max_abs_error"] = "inf"  # a value NaN or infinite on one side only
    assert ("onnx_parity_max_abs_error", float("inf")) in document.junit_properties(item)
    assert next(r for r in render.rows(doc) if r[1] == "ort-cpu")[3] == "inf abs"
    before = document.load(reports["base"])
    assert any(" max abs error " in line and line.endswith("-> inf") for line in gate.diff(before, doc))


def test_one_environment_serves_reports_and_latency_results():
    report = document.environment(2)
    assert report["threads"]["onnxruntime_intra_op"] == 2 and report["execution_providers"]
    assert "versions" in report and "gpus" in report and "provider" not in report
    flat = environment(threads=1, provider="CPUExecutionProvider", flat=True)
    assert list(flat)[:6] == ["cpu", "cpu_count", "threads", "onnxruntime", "provider", "python"]
    assert flat["threads"] == 1 and flat["provider"] == "CPUExecutionProvider"
    assert all(not isinstance(v, (dict, list)) for v in flat.values())  # one line in a message
    assert (flat["cpu"], flat["python"]) == (report["cpu"], report["python"])


def test_a_latency_budget_broken_in_report_mode_is_not_shown_as_a_plain_pass():
    """Under --onnx-parity-latency=report a broken latency budget is recorded with status passed;
    the table said just 'passed' beside a ratio over its max_ratio."""
    from onnxparity.report import render

    item = {
        "nodeid": "t.py::test_cnn[latency-int8-dynamic]", "test": "t.py::test_cnn", "item": "latency-int8-dynamic",
        "kind": "latency", "status": "passed",
        "result": {"budget": {"max_ratio": 1.0}, "measured": {"ratio": 1.69, "variant": {"p50": 0.77},
                                                          "broken": ["variant/framework p50 ratio 1.69 > budget 1"]}},
    }
    (row,) = render.rows({"items": [item]})
    assert row[2] == "passed (over budget: reported, not enforced)" and row[3] == "ratio 1.69"
    kept = {**item, "result": {**item["result"], "measured": {**item["result"]["measured"], "broken": []}}}
    assert render.rows({"items": [kept]})[0][2] == "passed"
