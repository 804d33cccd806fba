"""A pass that could not have failed says so: power measured per output, WeakCheck, reports."""

from __future__ import annotations

import json
import math
import warnings

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import onnxparity as op
from onnxparity import config as cfg
from onnxparity.verdict.power import WEAK_CHANGE, OutputRange, detectable_change, measure, weak_change

SPEC = dict(inputs=[op.Input("x", ("batch", 4))], dims={"batch": op.Dim(1, 6)}, examples=6)


def affine(scale: float, *, constant: bool = False) -> onnx.ModelProto:
    """y = (x @ W) * scale (+ 3 and no dependence on x when ``constant``)."""
    w = numpy_helper.from_array(np.arange(8, dtype=np.float32).reshape(4, 2) - 3.5, "w")
    s = numpy_helper.from_array(np.array(0.0 if constant else scale, dtype=np.float32), "s")
    c = numpy_helper.from_array(np.array(3.0 if constant else 0.0, dtype=np.float32), "c")
    nodes = [
        helper.make_node("MatMul", ["x", "w"], ["xw"]),
        helper.make_node("Mul", ["xw", "s"], ["scaled"]),
        helper.make_node("Add", ["scaled", "c"], ["y"]),
    ]
    graph = helper.make_graph(
        nodes,
        "affine",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 2])],
        [w, s, c],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def reference_of(model: onnx.ModelProto):
    w, s, c = (numpy_helper.to_array(t) for t in model.graph.initializer)
    return lambda x: (x @ w) * s + c


def check(model, **kwargs):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = op.check(onnx=model, reference=reference_of(model), **{**SPEC, **kwargs})
    return result["ort-cpu"], [w for w in caught if issubclass(w.category, op.WeakCheck)]


def test_outputs_of_ordinary_scale_give_a_check_that_could_fail(tmp_path):
    result, warned = check(affine(1.0), reproducer_dir=tmp_path)
    assert result.passed and not result.power.weak and not warned
    (out,) = result.power.outputs
    assert out.input_dependent and out.detectable_change < 1e-3


def test_outputs_far_inside_the_tolerance_band_are_a_weak_pass(tmp_path):
    result, warned = check(affine(1e-9), reproducer_dir=tmp_path)
    assert result.passed and result.power.weak
    (reason,) = result.power.reasons
    assert reason.startswith("output 'y' moved by at most ")
    assert "inside the tolerance band (1e-05) at its scale" in reason
    assert len(warned) == 1 and "passed, but could not have failed" in str(warned[0].message)
    # A tolerance scaled to the output makes the same check strong.
    scaled, warned = check(
        affine(1e-9), tolerance=op.Tolerance(atol=1e-14, rtol=1e-4), reproducer_dir=tmp_path
    )
    assert scaled.passed and not scaled.power.weak and not warned


def test_outputs_that_do_not_depend_on_the_inputs_are_a_weak_pass(tmp_path):
    result, _ = check(affine(1.0, constant=True), reproducer_dir=tmp_path)
    assert result.passed and result.power.weak
    assert "does not depend on them as far as this check can see" in result.power.reasons[0]
    assert result.power.outputs[0].input_dependent is False


def test_a_label_that_never_changes_is_weak_and_one_that_does_is_not():
    same, varied = OutputRange(), OutputRange()
    for row in ([1, 1], [1, 1, 1]):
        same.add(np.array(row, dtype=np.int64))
    for row in ([1, 1], [1, 2]):
        varied.add(np.array(row, dtype=np.int64))
    power = measure({"label": same}, op.Tolerance(), examples=2)
    assert power.weak and "took one value (1) for every one of 2 inputs" in power.reasons[0]
    # Not "widen the ranges": an IsolationForest whose declared box makes every row an outlier
    # needs narrower ones; the ranges the model sees in use, or real rows, fit either case.
    assert "declare the ranges the model sees in use (op.Input(..., low=, high=))" in power.reasons[0]
    assert "give data= with real rows" in power.reasons[0] and "widen" not in power.reasons[0]
    assert not measure({"label": varied}, op.Tolerance(), examples=2).weak


def test_detectable_change_follows_the_policy():
    assert detectable_change(op.Tolerance(atol=1e-5, rtol=1e-4), 1.0) == pytest.approx(1.1e-4)
    assert detectable_change(op.Tolerance(), 0.0) == math.inf
    # SQNR 20 dB catches a 10% change; below the default tolerance an Agreement passes anyway.
    assert detectable_change(op.Agreement(cosine=0.99, sqnr_db=20), 1.0) == pytest.approx(0.1)
    assert detectable_change(op.Agreement(cosine=0.99, sqnr_db=20), 1e-6) == pytest.approx(10.0001)
    # cosine notices a change at right angles of sqrt(1/c² - 1) (0.142 for 0.99); top-1 alone: nothing
    assert detectable_change(op.Agreement(cosine=0.99), 1.0) == pytest.approx(0.1425, rel=1e-3)
    assert detectable_change(op.Agreement(top1=0.9), 1.0) == math.inf
    assert weak_change(op.Tolerance()) == WEAK_CHANGE
    assert weak_change(op.Agreement(cosine=0.99, sqnr_db=20)) == pytest.approx(1.0)


WEAK_TEST = """
import numpy as np, pytest
from onnx import TensorProto, helper, numpy_helper
import onnxparity as op

def model(scale):
    w = numpy_helper.from_array(np.full((4, 2), scale, dtype=np.float32), "w")
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["y"])], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 2])], [w])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])

@pytest.mark.onnx_parity(inputs=[op.Input("x", ("batch", 4))], dims={"batch": op.Dim(1, 4)}, examples=4)
@pytest.mark.parametrize("scale", [1.0, 1e-10])
def test_scaled(onnx_parity, scale):
    onnx_parity.check(onnx=model(scale), reference=lambda x: x @ np.full((4, 2), scale, dtype=np.float32))
"""


def test_the_plugin_reports_weak_passes_and_can_make_them_errors(pytester: pytest.Pytester):
    pytester.makepyfile(test_weak=WEAK_TEST)
    report = pytester.path / "parity.json"
    result = pytester.runpytest(cfg.FLAG_ENABLE, f"{cfg.FLAG_REPORT}={report}", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=2, warnings=1)
    result.stdout.fnmatch_lines(
        [
            "*test_weak.py::test_scaled[[]1e-10[]]*passed (weak)*",
            "2 parity items: 2 passed, 1 weak",
            "weak: 1 passing item(s) could not have failed (onnxparity.WeakCheck):",
            "  test_weak.py::test_scaled[[]ort-cpu-1e-10[]]",
            "    output 'y' moved by at most *, inside the tolerance band*",
        ]
    )
    items = {i["nodeid"]: i for i in json.loads(report.read_text())["items"]}
    weak = items["test_weak.py::test_scaled[ort-cpu-1e-10]"]["result"]["power"]
    assert weak["weak"] is True and weak["outputs"][0]["input_dependent"] is False
    assert items["test_weak.py::test_scaled[ort-cpu-1.0]"]["result"]["power"]["weak"] is False

    strict = pytester.runpytest(
        cfg.FLAG_ENABLE, "-W", "error::onnxparity.WeakCheck", "-p", "no:cacheprovider"
    )
    strict.assert_outcomes(passed=1, failed=1)
    strict.stdout.fnmatch_lines(
        ["*WeakCheck: test_weak.py::test_scaled[[]ort-cpu-1e-10[]] passed, but could not*"]
    )


def test_an_output_dominated_by_a_constant_is_judged_by_its_input_dependent_part():
    """ShuffleNetV2 (tests/zoo_torch_models.py): output 0.058 (its classifier's bias) with an
    input-dependent part of 6.8e-5, so a x1.01 first convolution moved it by 1.4e-6 and passed.
    Judged by scale alone it looked strong; judged by what moves with the input, it is weak."""
    rng = np.random.default_rng(0)
    bias = rng.uniform(-0.058, 0.058, size=10)
    ranges = {"logits": OutputRange()}
    for _ in range(5):
        ranges["logits"].add(bias + rng.normal(scale=2e-5, size=(4, 10)))
    power = measure(ranges, op.Tolerance(), examples=5)
    (out,) = power.outputs
    assert out.scale == pytest.approx(0.058, rel=0.2) and out.variation < 2e-4
    assert power.weak and out.detectable_change > WEAK_CHANGE
    resnet = OutputRange()
    for _ in range(5):
        resnet.add(rng.normal(scale=0.3, size=(4, 10)))
    assert not measure({"logits": resnet}, op.Tolerance(), examples=5).weak
