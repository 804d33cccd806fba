"""Opset and latency budgets: each its own item and verdict, never masking parity (or the reverse).

Latency tests assert behaviour, not machine speed: budgets are far from any real timing
(a microsecond fraction, or ten seconds), and runs are kept short."""

from __future__ import annotations

import pytest
import torch
from onnx import TensorProto, helper

import onnxparity as op
from onnxparity import config as cfg
from parity_models import Mlp

INPUTS = [op.Input("x", ("batch", 16), low=-2, high=2)]
DIMS = {"batch": op.Dim(1, 8)}
QUICK = dict(min_repeats=5, min_time_s=0.02, warmup=1)


def model():
    torch.manual_seed(0)
    return Mlp().eval()


def check(session, **kwargs):
    kwargs.setdefault("inputs", INPUTS)
    kwargs.setdefault("dims", DIMS)
    kwargs.setdefault("examples", 3)
    m = kwargs.pop("model", None) or model()
    return op.check(m, session=session, **kwargs)


def contrib_gelu():
    graph = helper.make_graph(
        [helper.make_node("Gelu", ["x"], ["y"], domain="com.microsoft")],
        "contrib",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 16])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 16])],
    )
    return helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("com.microsoft", 1)]
    )


# -- opset --------------------------------------------------------------------------------------
def test_opset_inside_the_budget_passes_and_outside_fails(parity_session):
    inside = check(parity_session, opset=op.Opset(min=17, max=21))
    assert inside.budgets["opset"].status == "passed", inside.budgets["opset"].message
    assert inside.budgets["opset"].measured["20"]["opset_import"]["ai.onnx"] == 20
    outside = check(parity_session, opset=op.Opset(max=19))
    budget = outside.budgets["opset"]
    assert budget.status == "failed"
    assert budget.message.splitlines()[1] == (
        "  opset 20 of the standard domain is outside the budget (must be at most 19)"
    )
    assert outside["ort-cpu"].passed  # the budget does not mask parity
    target = check(parity_session, opset=op.Opset(max=19, target=18))
    assert target.budgets["opset"].passed and target.opset == 18


def test_contrib_domain_op_fails_the_default_domain_budget(parity_session):
    gelu = torch.nn.GELU().eval()
    result = check(parity_session, model=gelu, onnx=contrib_gelu(), opset=op.Opset())
    budget = result.budgets["opset"]
    assert budget.status == "failed"
    assert (
        "  domain 'com.microsoft' is not allowed (allowed: ai.onnx, ai.onnx.ml): 1 node(s): "
        "'(unnamed Gelu) (Gelu)'; com.microsoft contrib ops run only on ONNX Runtime"
    ) in budget.message.splitlines()
    allowed = check(
        parity_session, model=gelu, onnx=contrib_gelu(), opset=op.Opset(domains=["", "com.microsoft"])
    )
    assert allowed.budgets["opset"].passed, allowed.budgets["opset"].message


def test_forbidden_and_unlisted_ops_are_named_with_their_nodes(parity_session):
    result = check(parity_session, opset=op.Opset(forbidden_ops=["Relu", "Loop"]))
    assert "  forbidden op Relu: 1 node(s): 'node_relu'" in result.budgets["opset"].message.splitlines()
    only_gemm = check(parity_session, opset=op.Opset(allowed_ops=["Gemm"]))
    assert "  op Relu is not in allowed_ops: 1 node(s): 'node_relu'" in only_gemm.budgets["opset"].message


def test_checker_failure_carries_the_checkers_text(parity_session):
    graph = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["y"])],
        "mistyped",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 16])],
        [helper.make_tensor_value_info("y", TensorProto.INT64, ["batch", 16])],  # Relu gives float
    )
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    result = op.check(
        onnx=proto,
        reference=lambda x: x.clip(min=0),
        inputs=INPUTS,
        dims=DIMS,
        examples=2,
        opset=op.Opset(),
        session=parity_session,
    )
    message = result.budgets["opset"].message
    assert result.budgets["opset"].status == "failed"
    assert "onnx.checker (full_check, strict shape inference): " in message
    assert "Inferred elem type differs from existing elem type" in message


def test_matrix_checks_parity_at_each_opset_and_reports_an_unreachable_one(parity_session):
    result = check(parity_session, opset=op.Opset(matrix=[13, 21, 30]))
    assert set(result.variants) == {"ort-cpu-opset13", "ort-cpu-opset21", "ort-cpu-opset30"}
    assert result["ort-cpu-opset13"].passed and result["ort-cpu-opset13"].opset == 13
    assert result["ort-cpu-opset21"].passed
    unreachable = result["ort-cpu-opset30"]  # no exporter emits opset 30 yet
    assert unreachable.status == "error"
    assert unreachable.message.startswith("ort-cpu at opset 30: torch.onnx's dynamo exporter emits opset ")
    assert "the TorchScript exporter failed at 30: RuntimeError: Unsupported onnx_opset_version: 30" in (
        unreachable.message
    )
    assert "the model at opset 30 breaks" in result.budgets["opset"].message
    assert "  export failed: " in result.budgets["opset"].message


# -- latency ------------------------------------------------------------------------------------
def test_an_impossible_budget_fails_and_a_generous_one_passes(parity_session):
    result = check(
        parity_session,
        latency=[
            op.Latency(at={"batch": 4}, p50_ms=1e-6, **QUICK),
            op.Latency(variant="ort-cpu-noopt", p95_ms=10_000, max_ratio=1_000, **QUICK),
        ],
        latency_mode="enforce",
    )
    failed, kept = result.budgets["latency-ort-cpu"], result.budgets["latency-ort-cpu-noopt"]
    assert failed.status == "failed"
    lines = failed.message.splitlines()
    assert lines[0].startswith("latency of ort-cpu at batch=4 (1 thread; ")
    assert any(
        line.startswith("  broken: p50 ") and line.endswith("> budget 1e-06 ms (p50_ms)") for line in lines
    )
    assert kept.status == "passed", kept.message
    assert result["ort-cpu"].passed  # the latency failure does not mask parity


def test_ratio_budget_is_measured_interleaved_with_the_framework(parity_session):
    result = check(parity_session, latency=op.Latency(max_ratio=1e-6, **QUICK), latency_mode="enforce")
    budget = result.budgets["latency-ort-cpu"]
    measured = budget.measured
    assert measured["variant"]["samples"] == measured["framework"]["samples"] >= 5
    assert measured["ratio"] == pytest.approx(measured["variant"]["p50"] / measured["framework"]["p50"])
    assert budget.status == "failed" and "> budget 1e-06 (max_ratio)" in budget.message
    env = measured["environment"]
    assert env["threads"] == 1 and env["provider"] == "CPUExecutionProvider" and env["onnxruntime"]


def test_report_mode_records_a_broken_budget_without_failing(parity_session):
    result = check(parity_session, latency=op.Latency(p50_ms=1e-6, **QUICK), latency_mode="report")
    budget = result.budgets["latency-ort-cpu"]
    assert budget.status == "passed" and budget.measured["broken"]
    assert "  mode report: a broken budget is recorded, not enforced" in budget.message


def test_latency_at_must_name_declared_dims():
    with pytest.raises(op.InvalidSpec, match=r"at= names 'seq', not a declared dim \(batch\)"):
        op.ParitySpec(inputs=INPUTS, dims=DIMS, latency=op.Latency(at={"seq": 4}))
    with pytest.raises(op.InvalidSpec, match=r"batch=99 is outside dims\['batch'\]"):
        op.ParitySpec(inputs=INPUTS, dims=DIMS, latency=op.Latency(at={"batch": 99}))


# -- the plugin: items ----------------------------------------------------------------------------
BUDGET_TEST = """
import pytest, torch
import onnxparity as op
from parity_models import Mlp

QUICK = dict(min_repeats=5, min_time_s=0.02, warmup=1)

@pytest.mark.onnx_parity(
    inputs=[op.Input("x", ("batch", 16))],
    dims={"batch": op.Dim(1, 4)},
    variants=["ort-cpu", "ort-cpu-noopt"],
    examples=2,
    opset=op.Opset(matrix=[17, 21], forbidden_ops=["Loop"]),
    latency=[op.Latency(p50_ms=1e-6, **QUICK), op.Latency(variant="ort-cpu-noopt", p50_ms=10_000, **QUICK)],
)
def test_mlp(onnx_parity):
    torch.manual_seed(0)
    onnx_parity.check(Mlp().eval())
"""


def test_budgets_are_items_of_their_own(pytester: pytest.Pytester, warm_exporter):
    pytester.makepyfile(test_budget=BUDGET_TEST)
    result = pytester.runpytest(cfg.FLAG_ENABLE, f"{cfg.FLAG_LATENCY}=enforce", "-v")
    result.stdout.fnmatch_lines_random(
        [
            "*test_mlp[[]ort-cpu-opset17[]] PASSED*",
            "*test_mlp[[]ort-cpu-opset21[]] PASSED*",
            "*test_mlp[[]ort-cpu-noopt-opset17[]] PASSED*",
            "*test_mlp[[]ort-cpu-noopt-opset21[]] PASSED*",
            "*test_mlp[[]opset[]] PASSED*",
            "*test_mlp[[]latency-ort-cpu[]] FAILED*",
            "*test_mlp[[]latency-ort-cpu-noopt[]] PASSED*",
        ]
    )
    result.assert_outcomes(passed=6, failed=1)
    result.stdout.fnmatch_lines(["*broken: p50 * > budget 1e-06 ms (p50_ms)*"])


def test_report_mode_passes_with_a_warning_and_off_skips(pytester: pytest.Pytester, warm_exporter):
    pytester.makepyfile(test_budget=BUDGET_TEST)
    report = pytester.runpytest(cfg.FLAG_ENABLE, f"{cfg.FLAG_VARIANTS}=ort-cpu")  # default: report
    report.assert_outcomes(passed=4, warnings=1)  # 2 parity + opset + latency-ort-cpu
    report.stdout.fnmatch_lines(["*LatencyReport: latency of ort-cpu at batch=1*"])
    off = pytester.runpytest(cfg.FLAG_ENABLE, f"{cfg.FLAG_LATENCY}=off", "-rs")
    off.assert_outcomes(passed=5, skipped=2)
    off.stdout.fnmatch_lines(["*latency measurement is off (--onnx-parity-latency=off)*"])


def test_bad_latency_mode_is_a_usage_error(pytester: pytest.Pytester):
    pytester.makeini("[pytest]\nonnx_parity_latency = sometimes\n")
    result = pytester.runpytest()
    result.stderr.fnmatch_lines(["*ini key onnx_parity_latency must be one of enforce, report, off*"])


def test_one_export_per_opset_and_one_session_per_variant_and_opset(tmp_path):
    from onnxparity.config import ParityConfig
    from onnxparity.runner import ParitySession

    with ParitySession(ParityConfig(reproducer_dir=str(tmp_path))) as session:
        result = check(session, variants=["ort-cpu", "ort-cpu-noopt"], opset=op.Opset(matrix=[17, 21]))
        assert result.passed, result.summary()
        assert session.counts["exports"] == 2
        assert session.counts["sessions"] == 4
        check(session, variants=["ort-cpu", "ort-cpu-noopt"], opset=op.Opset(matrix=[17, 21]))
        assert session.counts["exports"] == 2 and session.counts["sessions"] == 4  # all cached


def test_report_mode_latency_is_kept_across_runs_on_this_machine_and_enforce_measures_again(tmp_path):
    """A report-mode latency (numbers, never a verdict) is measured once per model, variant and
    machine and shown as measured earlier; an enforced one is always measured again (issue 31)."""
    from onnxparity.config import ParityConfig
    from onnxparity.runner import ParitySession

    def run(mode):
        config = ParityConfig(reproducer_dir=str(tmp_path / "r"), cache_dir=str(tmp_path / "cache"))
        with ParitySession(config) as session:
            result = check(session, latency=op.Latency(p95_ms=10_000, **QUICK), latency_mode=mode)
            return result.budgets["latency-ort-cpu"]

    first, second, enforced = run("report"), run("report"), run("enforce")
    assert first.status == second.status == enforced.status == "passed"
    assert "cached_from" not in first.measured and "measured in an earlier run" not in first.message
    assert second.measured["cached_from"] and "measured in an earlier run" in second.message
    assert second.measured["variant"] == first.measured["variant"]
    assert "cached_from" not in enforced.measured


def test_an_unknown_latency_variant_is_that_items_error_with_a_cache_too(tmp_path):
    """Keeping report-mode latency must not look the variant up before its build does: an
    unknown name stays the item's error naming the known variants, never a crash of the check."""
    from onnxparity.config import ParityConfig
    from onnxparity.runner import ParitySession

    config = ParityConfig(reproducer_dir=str(tmp_path / "r"), cache_dir=str(tmp_path / "cache"))
    with ParitySession(config) as session:
        result = check(session, latency=op.Latency(variant="nope", p95_ms=1_000, **QUICK), latency_mode="report")
    budget = result.budgets["latency-nope"]
    assert budget.status == "error" and "unknown variant 'nope'; known variants:" in budget.message
