"""A report file is untrusted input to the ``onnxparity`` command: no number in it (1e308, an
infinity, NaN) and no name in it makes the command print a traceback, print advice that does not
construct, or print a line that pastes as code; no bad argument passes silently."""

from __future__ import annotations

import ast
import json
import math
import re

import pytest

import onnxparity as op
from onnxparity.cli import main as cli
from onnxparity.report.advise import advise

#: values a hostile report may hold where the schema admits a number, as JSON text
EXTREMES = ["1e308", "-1e308", "5e-324", "Infinity", "-Infinity", "NaN", "1e999"]


def tolerance_item(variant: str = "ort-cpu", test: str = "t.py::test", **policy) -> dict:
    """A passing Tolerance item with per-example numbers (schema 3)."""
    return {
        "nodeid": f"{test}[{variant}]",
        "test": test,
        "item": variant,
        "kind": "parity",
        "variant": variant,
        "opset": None,
        "status": "passed",
        "model": None,
        "result": {
            "status": "passed",
            "message": "",
            "policy": {"kind": "tolerance", "atol": 1e-5, "rtol": 1e-4, **policy},
            "examples": 10,
            "outputs": [
                {"name": "y", "max_abs_error": 1e-6, "max_rel_error": 1e-5, "mismatched": 0, "values": 24}
            ],
            "distribution": {
                "examples": 10,
                "worst_tolerance_used": 0.3,
                "tolerance_used": {"edges": [0.0, 0.5, 1.0], "counts": [5, 5]},
                "max_abs_error": {"edges": [0.0, 1e-6, 2e-6], "counts": [5, 5]},
                "points": {"columns": ["tolerance_used", "max_abs_error"], "rows": [[0.3, 1e-6]]},
            },
        },
    }


def agreement_item(status: str = "passed", **output) -> dict:
    """An int8 Agreement item declaring every rule, with its output's measured metrics."""
    measured = {"cosine": 0.9999, "sqnr_db": 40.0, "min_cosine": 0.999, "min_sqnr_db": 38.0, **output}
    return {
        "nodeid": "t.py::test[int8-dynamic]",
        "test": "t.py::test",
        "item": "int8-dynamic",
        "kind": "parity",
        "variant": "int8-dynamic",
        "opset": None,
        "status": status,
        "model": None,
        "result": {
            "status": status,
            "message": "",
            "policy": {"kind": "agreement", "labels": 1.0, "top1": 0.9, "cosine": 0.99, "sqnr_db": 20},
            "examples": 10,
            "outputs": [
                {
                    "name": "y",
                    "max_abs_error": 0.01,
                    "max_rel_error": 0.01,
                    "mismatched": 3,
                    "values": 24,
                    "top1_rate": 0.99,
                    **measured,
                }
            ],
        },
    }


def write(path, *items: dict, planted: dict[str, str] | None = None) -> str:
    """A schema-3 report of ``items`` at ``path``; ``planted``: placeholder strings replaced by
    raw JSON text (``Infinity``, ``1e999``: what json.dumps would not write)."""
    document = {
        "schema": "onnxparity-report",
        "schema_version": 3,
        "created": "2026-01-01T00:00:00+00:00",
        "interrupted": False,
        "interruption": None,
        "items_planned": len(items),
        "items_reported": len(items),
        "environment": {
            "python": "3.11",
            "versions": {},
            "execution_providers": [],
            "cpu": "x",
            "threads": {},
        },
        "settings": {},
        "items": list(items),
        "summary": {"passed": len(items), "failed": 0, "error": 0, "skipped": 0},
    }
    text = json.dumps(document)
    for placeholder, raw in (planted or {}).items():
        text = text.replace(json.dumps(placeholder), raw)
    path.write_text(text, encoding="utf-8")
    return str(path)


def pasted(lines: list[str]) -> ast.Call:
    """The advice block under a test's header, parsed as the arguments of a marker call."""
    return ast.parse("onnx_parity(\n" + "\n".join(lines) + "\n)").body[0].value


def check_advice(out: str) -> list[str]:
    """Every advised policy in ``out`` constructs (finite numbers in range); the comment lines
    under it: the advice is sane whatever the report held."""
    lines = out.splitlines()
    for line in lines[1:]:
        assert line.startswith(("    tolerance={", "    # ")), line
        assert not re.search(r"\b(inf|nan)\b", line.split("#")[0]), line
    call = pasted(lines[1:])
    for keyword in call.keywords:
        for value in keyword.value.values:  # op.Tolerance(atol=6e-06, ...), built without eval
            kind = ast.unparse(value.func)
            assert kind in ("op.Tolerance", "op.Agreement") and not value.args, kind
            getattr(op, kind[3:])(**{k.arg: ast.literal_eval(k.value) for k in value.keywords})
    return lines


def run(argv: list[str], capsys) -> tuple[int, str, str]:
    code = cli(argv)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def strict_json(text: str) -> dict:
    """The page's embedded data, refusing NaN and Infinity (JavaScript's JSON.parse does)."""
    found = re.search(r'<script id="report-data" type="application/json">(.*?)</script>', text, re.S)

    def refuse(constant: str) -> None:
        raise AssertionError(f"{constant} in the page's data")

    return json.loads(found.group(1), parse_constant=refuse)


@pytest.mark.parametrize("raw", EXTREMES)
@pytest.mark.parametrize("field", ["worst_tolerance_used", "policy.atol", "policy.rtol", "policy.scaled"])
def test_extreme_numbers_of_a_tolerance_item_give_advice_or_a_reason(tmp_path, capsys, field, raw):
    """1e308 x margin overflowed to inf in the rounding (OverflowError), 5e-324 underflowed to
    a power of ten of 0 (ZeroDivisionError), a negative share or tolerance was advised as 0."""
    item = tolerance_item()
    where = item["result"]["distribution"] if field == "worst_tolerance_used" else item["result"]["policy"]
    where[field.removeprefix("policy.")] = "@planted"
    path = write(tmp_path / "r.json", item, planted={"@planted": raw})
    code, out, err = run(["advise", path], capsys)
    assert (code, err) == (0, "")
    lines, value, key = check_advice(out), float(raw), field.removeprefix("policy.")
    if field != key and not (math.isfinite(value) and value >= 0):
        assert lines[1:] == [
            f"    # ort-cpu: result.policy is no policy onnxparity accepts: Tolerance({key}={value!r}): "
            f"{key} must be a finite number >= 0; no advice"
        ]
    elif field == key and not math.isfinite(value):
        assert lines[1:] == ["    # ort-cpu: NaN or infinity differed: no tolerance passes this"]
    elif field == key and value < 0:
        assert lines[1:] == [
            "    # ort-cpu: result.distribution.worst_tolerance_used is -1e+308 "
            "(a share of a tolerance is 0 or more); no advice"
        ]
    else:
        assert lines[1].startswith('    tolerance={"ort-cpu": op.Tolerance(atol=') and len(lines) == 3
    page = tmp_path / "page.html"
    assert run(["report", "html", path, "-o", str(page)], capsys)[0] == 0
    strict_json(page.read_text(encoding="utf-8"))


def test_a_share_or_a_tolerance_at_the_ends_of_the_floats_is_advised_finite(tmp_path, capsys):
    """The largest share gets a line saying why instead of inf; the smallest a tolerance above 0
    (exact equality would fail where an error was seen)."""
    huge, tiny = tolerance_item("huge"), tolerance_item("tiny")
    huge["result"]["distribution"]["worst_tolerance_used"] = 1e308
    huge["result"]["policy"]["atol"] = 1e10
    tiny["result"]["distribution"]["worst_tolerance_used"] = 5e-324
    code, out, _ = run(["advise", write(tmp_path / "r.json", huge, tiny)], capsys)
    lines = check_advice(out)
    assert code == 0
    assert lines[1] == '    tolerance={"tiny": op.Tolerance(atol=4.94066e-324, rtol=4.94066e-324)},'
    assert lines[2].startswith("    # huge: worst 1e+308x of atol=1e+10, rtol=0.0001 over 10 examples, x2:")
    assert "Tolerance(atol=inf)" in lines[2] and lines[2].endswith("; no advice")


@pytest.mark.parametrize("raw", EXTREMES + ["-1", "0", "2"])
@pytest.mark.parametrize("rule", ["labels", "top1", "cosine", "sqnr_db"])
def test_extreme_rules_of_an_agreement_give_advice_or_a_reason(tmp_path, capsys, rule, raw):
    item = agreement_item()
    item["result"]["policy"][rule] = "@planted"
    path = write(tmp_path / "r.json", item, planted={"@planted": raw})
    code, out, err = run(["advise", path], capsys)
    assert (code, err) == (0, "")
    lines = check_advice(out)
    value = float(raw)
    valid = {"labels": 0 < value <= 1, "top1": 0 < value <= 1, "cosine": -1 < value <= 1}
    if not valid.get(rule, math.isfinite(value)):
        assert (
            len(lines) == 2
            and f"result.policy is no policy onnxparity accepts: Agreement({rule}=" in lines[1]
        )
    page = tmp_path / "page.html"
    assert run(["report", "html", path, "-o", str(page)], capsys)[0] == 0
    strict_json(page.read_text(encoding="utf-8"))


@pytest.mark.parametrize("status", ["passed", "failed"])
@pytest.mark.parametrize("raw", EXTREMES + ['"inf"', '"-inf"', '"nan"', "-1", "2"])
@pytest.mark.parametrize("metric", ["cosine", "min_cosine", "sqnr_db", "min_sqnr_db", "top1_rate"])
def test_extreme_metrics_of_an_agreement_give_advice_or_a_reason(tmp_path, capsys, metric, raw, status):
    """A cosine of 1e308 overflowed the rounding; a missing SQNR or mismatched_rate was a TypeError."""
    if metric == "top1_rate" and raw.startswith('"'):
        return  # the schema admits no string there: the loader refuses it (another test)
    item = agreement_item(status, **{metric: "@planted"})
    path = write(tmp_path / "r.json", item, planted={"@planted": raw})
    code, out, err = run(["advise", path], capsys)
    assert (code, err) == (0, "")
    lines = check_advice(out)
    value = float(raw.strip('"'))  # float() reads JSON's Infinity and NaN too
    ranges = {"top1_rate": (0, 1), "cosine": (-1, 1), "min_cosine": (-1, 1)}
    low, high = ranges.get(metric, (-math.inf, math.inf))
    if math.isfinite(value) and not low <= value <= high:
        assert (
            lines[-1]
            == f"    # int8-dynamic: output 'y' records {metric} {value:g}, outside [{low:g}, {high:g}]; no advice"
        )
    page = tmp_path / "page.html"
    assert run(["report", "html", path, "-o", str(page)], capsys)[0] == 0
    strict_json(page.read_text(encoding="utf-8"))


def test_an_agreement_whose_outputs_record_no_metric_but_labels_is_advised(tmp_path, capsys):
    """An exact output without mismatched_rate (optional in the schema) made max() of None fail."""
    item = agreement_item(cosine=None, sqnr_db=None, min_cosine=None, min_sqnr_db=None, top1_rate=None)
    item["result"]["policy"].update(labels=0.9, top1=None, cosine=None, sqnr_db=None)
    code, out, _ = run(["advise", write(tmp_path / "r.json", item)], capsys)
    assert code == 0 and out.splitlines()[1:] == [
        "    # int8-dynamic: no metric was measured (every value within the default tolerance)"
    ]


def test_a_failed_agreement_whose_margin_leaves_no_valid_rule_says_so(tmp_path, capsys):
    """top1 0.3 with a margin of 2 is 1 - 2 x 0.7 = -0.4: pasted, it would be an InvalidSpec."""
    item = agreement_item("failed", top1_rate=0.3)
    code, out, _ = run(["advise", write(tmp_path / "r.json", item)], capsys)
    lines = check_advice(out)
    assert code == 0 and len(lines) == 2
    assert "no valid rule (Agreement(top1=-0.4" in lines[1] and lines[1].endswith("; no advice")


def test_history_trends_skip_nan_and_infinity(tmp_path, capsys):
    """A NaN first error once showed the trend '=' (every comparison with NaN is false)."""
    first, second, third = tolerance_item(), tolerance_item(), tolerance_item()
    first["result"]["outputs"][0]["max_abs_error"] = "nan"
    third["result"]["outputs"][0]["max_abs_error"] = 1e308
    paths = [write(tmp_path / f"r{n}.json", item) for n, item in enumerate((first, second, third), 1)]
    code, out, _ = run(["report", "history", paths[0], paths[1]], capsys)
    row = next(line for line in out.splitlines() if "max abs error" in line)
    assert code == 0 and row.split()[-2:] == ["nan", "1e-06"]
    code, out, _ = run(["report", "history", *paths, "-o", str(tmp_path / "h.html")], capsys)
    row = next(line for line in out.splitlines() if "max abs error" in line)
    assert code == 0 and row.split()[-3:] == ["1e-06", "1e+308", "↑"]
    strict_json((tmp_path / "h.html").read_text(encoding="utf-8"))


@pytest.mark.parametrize("margin", ["inf", "-inf", "nan", "0", "-1", "0.5", "two", ""])
def test_a_margin_that_is_not_a_finite_number_of_1_or_more_is_a_usage_error(tmp_path, capsys, margin):
    """--margin inf was accepted (inf >= 1) and every product overflowed; nan passed argparse."""
    path = write(tmp_path / "r.json", tolerance_item())
    with pytest.raises(SystemExit) as exit_:
        cli(["advise", path, f"--margin={margin}"])
    err = capsys.readouterr().err
    assert exit_.value.code == 2
    assert (
        f"--margin must be a finite number >= 1 (1: exactly the worst example observed), got {margin!r}"
        in err
    )
    with pytest.raises(ValueError, match="margin must be a finite number, 1 or more, got inf"):
        advise({"items": []}, math.inf)


def test_a_margin_of_1_advises_the_worst_example_itself(tmp_path, capsys):
    code, out, _ = run(["advise", write(tmp_path / "r.json", tolerance_item()), "--margin", "1"], capsys)
    assert code == 0 and '"ort-cpu": op.Tolerance(atol=3e-06, rtol=3e-05)' in out


@pytest.mark.parametrize("floor", ["nan", "inf", "-1"])
def test_an_error_floor_that_is_not_a_finite_number_of_0_or_more_is_a_usage_error(tmp_path, capsys, floor):
    """--error-floor nan made every growth comparison false: the gate passed whatever grew."""
    path = write(tmp_path / "r.json", tolerance_item())
    with pytest.raises(SystemExit) as exit_:
        cli(["gate", path, "--baseline", path, f"--error-floor={floor}"])
    assert exit_.value.code == 2
    assert "--error-floor must be a finite number >= 0" in capsys.readouterr().err


@pytest.mark.parametrize(
    "command",
    [
        ["report", "merge", "{r}", "-o", ""],
        ["report", "html", "{r}", "-o", ""],
        ["report", "history", "{r}", "{r}", "-o", ""],
        ["report", "html", "{r}", "--output", "  "],
    ],
)
def test_an_empty_output_path_is_a_usage_error_and_nothing_is_written(tmp_path, capsys, monkeypatch, command):
    """``report html -o ''`` exited 0 having written nothing; merge wrote to ``''`` in the cwd."""
    path = write(tmp_path / "r.json", tolerance_item())
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exit_:
        cli([path if part == "{r}" else part for part in command])
    assert exit_.value.code == 2
    assert f"-o must name the file to write, got {command[-1]!r}" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.json"]


HOSTILE = [
    'x": 1}); import os; os.system("echo pwned") #',
    "x': 1}); import os; os.system('echo pwned') #",
    "a'b\"c\\d",
    "name\nimport os; os.system('echo pwned')",
    "cr\r__import__('os').system('true')",
    "sep\u2028import os",
    "lone \ud800 surrogate",
    "\x1b]0;title\x07",
]


def test_a_hostile_name_in_a_report_pastes_as_a_string_never_as_code(tmp_path, capsys):
    """Advice lines are for pasting into a test: a variant name once printed inside "..." as it
    was, so a quote in it ended the string and the rest became code; a line break in a name
    left the comment. Each name is now a literal, and the block parses as one ``tolerance=``."""
    test = "t.py::test\nimport os"
    items = [tolerance_item(name, test) for name in HOSTILE]
    code, out, err = run(["advise", write(tmp_path / "r.json", *items)], capsys)
    assert (code, err) == (0, "")
    lines = check_advice(out)
    assert lines[0] == repr(test) and len(lines) == 2 + len(HOSTILE)
    call = pasted(lines[1:])
    assert [k.arg for k in call.keywords] == ["tolerance"]
    keys = call.keywords[0].value.keys
    assert all(isinstance(k, ast.Constant) for k in keys)
    assert [k.value for k in keys] == HOSTILE
    calls = [ast.unparse(node.func) for node in ast.walk(call) if isinstance(node, ast.Call)]
    assert calls == ["onnx_parity"] + ["op.Tolerance"] * len(HOSTILE)
    names = {node.id for node in ast.walk(call) if isinstance(node, ast.Name)}
    assert names == {"onnx_parity", "op"}
    assert lines[1].startswith(
        '    tolerance={\'x": 1}); import os; os.system("echo pwned") #\': op.Tolerance('
    )
    assert '"a\'b\\"c\\\\d"' not in lines[1] and "'a\\'b\"c\\\\d'" in lines[1]


def test_a_name_stdout_cannot_encode_is_escaped_not_a_traceback(tmp_path, capsys):
    """A lone surrogate (valid in JSON as ``\\ud800``) raised UnicodeEncodeError from
    ``report show`` and ``report history``."""
    path = write(tmp_path / "r.json", tolerance_item("lone \ud800 surrogate"))
    for argv in (["report", "show", path], ["report", "history", path, path], ["report", "diff", path, path]):
        code, out, err = run(argv, capsys)
        assert code == 0 and err == "", argv
    code, out, _ = run(["report", "show", path], capsys)
    assert "lone \\ud800 surrogate" in out


@pytest.mark.parametrize(
    ("used", "cell"), [(1e308, "1e+308x tolerance"), (-1e308, "invalid"), (2e6, "2e+06x tolerance"), (12.0, "12x tolerance")]
)
def test_the_headroom_cell_of_an_extreme_share_stays_short(used, cell):
    """A share of 1e308 once printed as a 400-character number in `report show` and the page."""
    from onnxparity.report.render import headroom_cell

    assert headroom_cell({"distribution": {"worst_tolerance_used": used}}) == cell
