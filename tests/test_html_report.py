"""Reports people look at: the per-example numbers in the JSON report, the headroom column, the
self-contained HTML page (against a baseline with a planted regression), the tolerance advisor
(its advice passes a rerun with another seed) and history across reports. The page itself is
loaded in a real browser in test_html_browser.py."""

from __future__ import annotations

import json
import re

import jsonschema
import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from onnxparity.cli import main as cli
from onnxparity.report import document
from onnxparity.report.html import page, payload

W = np.random.default_rng(3).standard_normal((8, 8)).astype(np.float32)


def matmul(weights: np.ndarray) -> onnx.ModelProto:
    graph = helper.make_graph(
        [
            helper.make_node("MatMul", ["x", "w"], ["h"], name="mm"),
            helper.make_node("Tanh", ["h"], ["y"], name="act"),
        ],
        "mm",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 8])],
        [numpy_helper.from_array(weights.astype(np.float32), "w")],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


#: an inner test file: ``{tolerance}`` is a marker argument (or nothing), ``{scale}`` plants a
#: regression in the ONNX file's weights (1.0: none); the reference computes in float64
INNER = """
import numpy as np
import pytest
import onnxparity as op
from test_html_report import W, matmul

INPUTS = [op.Input("x", ("batch", 8), low=-2, high=2)]


@pytest.mark.onnx_parity(inputs=INPUTS, dims={{"batch": op.Dim(1, 6)}}, examples=20{tolerance})
def test_layer(onnx_parity):
    onnx_parity.check(onnx=matmul(W * {scale}), reference=lambda x: [np.tanh(x.astype(np.float64) @ W.astype(np.float64))])


@pytest.mark.onnx_parity(inputs=INPUTS, dims={{"batch": op.Dim(1, 3)}}, examples=8)
def test_{extra}(onnx_parity):
    onnx_parity.check(onnx=matmul(W), reference=lambda x: [np.tanh(x.astype(np.float64) @ W.astype(np.float64))])
"""


def run(pytester, name, *flags, tolerance="", scale=1.0, extra="other"):
    pytester.syspathinsert(__import__("os").path.dirname(__file__))
    pytester.makepyfile(test_inner=INNER.format(tolerance=tolerance, scale=scale, extra=extra))
    report = pytester.path / f"{name}.json"
    result = pytester.runpytest_inprocess(
        "--onnx-parity", f"--onnx-parity-report={report}", "-p", "no:cacheprovider", *flags
    )
    return result, report


def test_the_report_records_each_examples_numbers_in_bounded_size(pytester):
    result, report = run(pytester, "r", f"--onnx-parity-html={pytester.path / 'r.html'}")
    result.assert_outcomes(passed=2)
    doc = json.loads(report.read_text())
    jsonschema.validate(doc, document.schema())
    assert doc["schema_version"] == 3
    layer = next(i for i in doc["items"] if "test_layer" in i["nodeid"])
    distribution = layer["result"]["distribution"]
    assert distribution["examples"] == layer["result"]["examples"] >= 20
    assert sum(distribution["tolerance_used"]["counts"]) == distribution["examples"]
    assert 0 < distribution["worst_tolerance_used"] < 1  # float32 rounding against float64, passing
    rows = distribution["points"]["rows"]
    assert len(rows) == min(100, distribution["examples"])
    assert all(0 <= r[0] <= 2 and r[1] % 8 == 0 for r in rows)  # input max |x| within the range; 8 per row
    assert len({r[1] for r in rows}) > 1 and max(r[0] for r in rows) > 1  # sizes and magnitudes vary
    # the headroom column, in the terminal and in the HTML pointer
    result.stdout.fnmatch_lines(
        ["*worst error*headroom*policy*", "*test_layer*ort-cpu*passed*% used*", "HTML report: *r.html"]
    )


def test_the_markdown_summary_has_the_headroom_column_and_points_at_the_page(pytester):
    markdown = pytester.path / "summary.md"
    result, _ = run(
        pytester, "r", f"--onnx-parity-html={pytester.path / 'r.html'}", f"--onnx-parity-markdown={markdown}"
    )
    result.assert_outcomes(passed=2)
    text = markdown.read_text()
    assert "| model | item | verdict | worst error | headroom | policy |" in text
    assert re.search(
        r"\| test_inner\.py::test_layer \| ort-cpu \| ✅ passed \| \S+ abs \| (\d+%|<1%) used \|", text
    )
    assert f"HTML report: `{pytester.path / 'r.html'}`" in text


def _embedded(html_text: str) -> dict:
    found = re.search(r'<script id="report-data" type="application/json">(.*?)</script>', html_text, re.S)
    return json.loads(found.group(1))


def test_the_page_is_self_contained_and_shows_a_planted_regression_against_the_baseline(pytester):
    _, baseline = run(pytester, "baseline")
    result, current = run(pytester, "current", scale=1.05, extra="added")
    result.assert_outcomes(passed=1, failed=1)
    out = pytester.path / "page.html"
    assert cli(["report", "html", str(current), "--baseline", str(baseline), "-o", str(out)]) == 0
    text = out.read_text()
    assert not re.search(r'(src|href)\s*=\s*["\']?(https?:)?//', text)  # nothing fetched at view time
    assert "<link" not in text and "@import" not in text
    data = _embedded(text)
    assert data == json.loads(json.dumps(payload(document.load(current), document.load(baseline))))
    changes = {item["id"].split("::")[-1]: item["baseline"]["change"] for item in data["items"]}
    assert changes == {"test_layer[ort-cpu]": "worse", "test_added[ort-cpu]": "new"}
    assert [g["id"].split("::")[-1] for g in data["baseline"]["gone"]] == ["test_other[ort-cpu]"]
    worse = next(i for i in data["items"] if i["baseline"]["change"] == "worse")
    assert worse["baseline"]["text"].startswith("passed → failed")
    assert "first divergence: not localized — the reference (a callable, or stored outputs)" in worse["message"]
    # one matrix cell per item: rows are tests, columns variants
    assert {(i["test"].split("::")[-1], i["column"]) for i in data["items"]} == {
        ("test_layer", "ort-cpu"),
        ("test_added", "ort-cpu"),
    }


def test_advised_tolerances_pass_a_rerun_with_another_seed(pytester, capsys):
    result, report = run(pytester, "first")
    result.assert_outcomes(passed=2)
    capsys.readouterr()
    assert cli(["advise", str(report)]) == 0
    advice = capsys.readouterr().out.splitlines()
    at = advice.index("test_inner.py::test_layer")
    pasted = advice[at + 1].strip()
    found = re.fullmatch(
        r'tolerance=\{"ort-cpu": op\.Tolerance\(atol=([0-9.e-]+), rtol=([0-9.e-]+)\)\},', pasted
    )
    assert found, pasted
    atol, rtol = map(float, found.groups())
    assert atol < 1e-5 and rtol < 1e-4  # tighter than the default it was measured against
    assert advice[at + 2].startswith("    # ort-cpu: worst ") and "over 2" in advice[at + 2]
    again, _ = run(pytester, "second", "--onnx-parity-seed=7", tolerance=", " + pasted.rstrip(","))
    again.assert_outcomes(passed=2)
    # the seed changed the examples drawn: the worst share differs from the first run's
    first = json.loads(report.read_text())["items"]
    second = json.loads((pytester.path / "second.json").read_text())["items"]
    assert first[0]["result"]["distribution"]["points"] != second[0]["result"]["distribution"]["points"]


def test_advice_for_agreements_and_what_cannot_be_advised():
    from onnxparity.report.advise import advise, marker_lines

    def item(nodeid, policy, **result):
        return {
            "nodeid": nodeid,
            "test": "t.py::test",
            "item": nodeid.split("[")[1][:-1],
            "kind": "parity",
            "status": "passed",
            "variant": nodeid.split("[")[1][:-1],
            "result": {"policy": policy, **result},
        }

    doc = {
        "items": [
            item(
                "t.py::test[int8-dynamic]",
                {"kind": "agreement", "labels": 1.0, "cosine": 0.99, "sqnr_db": 20},
                examples=25,
                outputs=[
                    {
                        "name": "y",
                        "cosine": 0.99995,
                        "sqnr_db": 44.0,
                        "min_cosine": 0.9999,
                        "min_sqnr_db": 41.3,
                    }
                ],
            ),
            item(  # the worst example is below the declared rules, the search as a whole passed
                "t.py::test[int8-static]",
                {"kind": "agreement", "labels": 1.0, "cosine": 0.99, "sqnr_db": 20},
                examples=25,
                outputs=[
                    {"name": "y", "cosine": 0.9999, "sqnr_db": 38.2, "min_cosine": 0.97, "min_sqnr_db": 12.5}
                ],
            ),
            item(
                "t.py::test[ort-cpu]",
                {"kind": "tolerance", "atol": 1e-5, "rtol": 1e-4},
                examples=10,
                distribution={"examples": 10, "worst_tolerance_used": 0.0},
            ),
            item("t.py::test[onnx-reference]", {"kind": "tolerance", "atol": 1e-5, "rtol": 1e-4}, examples=3),
        ]
    }
    lines = marker_lines(advise(doc))
    assert lines == [
        "t.py::test",
        '    tolerance={"int8-dynamic": op.Agreement(cosine=0.9998, sqnr_db=38), '
        '"int8-static": op.Agreement(cosine=0.99, sqnr_db=20)},',
        "    # int8-dynamic: worst example's cosine 0.9999, sqnr_db 41.3 over 25 examples, margin x2",
        "    # int8-static: worst example's cosine 0.97, sqnr_db 12.5 over 25 examples, margin x2",
        "    # ort-cpu: every value matched exactly over 10 examples: any tolerance passes",
        "    # onnx-reference: no per-example numbers (a report from before schema 3, or nothing ran)",
    ]
    with pytest.raises(ValueError, match="margin must be 1 or more, got 0.5"):
        advise(doc, 0.5)


def test_history_across_reports_in_the_terminal_and_the_page(pytester, capsys):
    _, r1 = run(pytester, "r1")
    _, r2 = run(pytester, "r2", scale=1.0000001)
    _, r3 = run(pytester, "r3", scale=1.05)
    out = pytester.path / "history.html"
    capsys.readouterr()
    assert cli(["report", "history", str(r1), str(r2), str(r3), "-o", str(out)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["item", "measure", "r1", "r2", "r3", "trend"]
    layer = next(line for line in lines if "test_layer" in line and "max abs error" in line)
    assert layer.rstrip().endswith("↑") and "!" in layer.split()[-2]  # failed in r3, error up
    data = _embedded(out.read_text())
    assert data["history"] == ["r1", "r2", "r3"]
    trend = next(i for i in data["items"] if "test_layer" in i["id"])["history"]
    assert [p["status"] for p in trend] == ["passed", "passed", "failed"]


def test_an_old_report_still_renders(tmp_path):
    doc = document.load(_write_v2(tmp_path))
    text = page(doc)
    data = _embedded(text)
    assert data["items"][0]["distribution"] is None and data["items"][0]["headroom"] is None
    assert data["items"][0]["advice"]["expression"] is None


def _write_v2(tmp_path):
    entry = {
        "nodeid": "t.py::test[ort-cpu]",
        "test": "t.py::test",
        "item": "ort-cpu",
        "kind": "parity",
        "variant": "ort-cpu",
        "opset": None,
        "status": "passed",
        "duration_s": 0.1,
        "model": None,
        "result": {
            "status": "passed",
            "message": "",
            "policy": {"kind": "tolerance", "atol": 1e-5, "rtol": 1e-4},
            "examples": 3,
            "outputs": [
                {"name": "y", "max_abs_error": 1e-7, "max_rel_error": 1e-6, "mismatched": 0, "values": 24}
            ],
        },
    }
    doc = {
        "schema": "onnxparity-report",
        "schema_version": 2,
        "created": "2026-01-01T00:00:00+00:00",
        "interrupted": False,
        "interruption": None,
        "items_planned": 1,
        "items_reported": 1,
        "environment": {
            "python": "3.11",
            "versions": {},
            "execution_providers": [],
            "cpu": "x",
            "threads": {},
        },
        "settings": {},
        "items": [entry],
        "summary": {"passed": 1, "failed": 0, "error": 0, "skipped": 0},
    }
    path = tmp_path / "v2.json"
    path.write_text(json.dumps(doc))
    return path


def test_a_reused_result_is_marked_on_the_page(tmp_path):
    doc = json.loads(_write_v2(tmp_path).read_text())
    doc["schema_version"] = 3
    doc["items"][0]["result"]["cached"] = {"from": "2026-11-29T10:00:00+00:00"}
    data = _embedded(page(document.check_document(doc)))
    assert data["items"][0]["cached"] == "2026-11-29T10:00:00+00:00"


def test_each_examples_input_size_is_measured_once_for_all_variants(parity_session, monkeypatch):
    """The distribution's points read each input's max |value|: once per example, not once
    per variant that checks it (the variants of a test share their examples)."""
    import onnxparity as op
    import onnxparity.search.data as cache

    calls = []
    measure = cache.input_size
    monkeypatch.setattr(cache, "input_size", lambda feeds: calls.append(1) or measure(feeds))
    result = op.check(
        onnx=matmul(W),
        reference=lambda x: [np.tanh(x.astype(np.float64) @ W.astype(np.float64))],
        inputs=[op.Input("x", ("batch", 8))],
        dims={"batch": op.Dim(1, 3)},
        examples=6,
        variants=["ort-cpu", "ort-cpu-noopt"],
        session=parity_session,
        name="input sizes once",
    )
    evaluated = sum(v.distribution["examples"] for v in result.variants.values())
    assert 0 < len(calls) < evaluated and len(calls) <= evaluated // 2 + 1


def test_an_opset_matrix_gets_the_advice_that_fits_every_opset():
    """Two items of one variant (opsets 17 and 21): the pasted tolerance must pass both, so the
    one that used more of its tolerance decides, whichever comes first."""
    from onnxparity.report.advise import advise, marker_lines

    def item(opset, used):
        return {
            "nodeid": f"t.py::test[ort-cpu-opset{opset}]",
            "test": "t.py::test",
            "item": f"ort-cpu-opset{opset}",
            "kind": "parity",
            "status": "passed",
            "variant": "ort-cpu",
            "result": {
                "policy": {"kind": "tolerance", "atol": 1e-5, "rtol": 1e-4},
                "examples": 20,
                "distribution": {"examples": 20, "worst_tolerance_used": used},
            },
        }

    for order in ((0.3, 0.05), (0.05, 0.3)):
        lines = marker_lines(advise({"items": [item(17, order[0]), item(21, order[1])]}))
        assert lines[1] == '    tolerance={"ort-cpu": op.Tolerance(atol=6e-06, rtol=6e-05)},', order
