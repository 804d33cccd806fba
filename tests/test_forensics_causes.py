"""Causes need evidence (issue 27): an input that explains a failure by itself — subnormal
floats, a mask row with no real token, a constant row into a normalization — is named as the
likely cause from the values that show it, and the claim that the exported graph means something
else is then withheld; a span's non-finite values are traced to the node that makes them."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from onnx import TensorProto, helper

import onnxparity as op
from onnxparity.forensics import Divergence
from onnxparity.forensics.export import first_nonfinite
from onnxparity.forensics.inputs import constant_row, degenerate


def test_subnormals_and_an_empty_mask_row_are_named_from_the_values():
    tiny = np.finfo(np.float32).tiny
    feeds = {
        "x": np.array([[1.0, 1e-45, 0.0]], np.float32),
        "attention_mask": np.array([[1, 1, 0], [0, 0, 0]], np.int64),
        "ids": np.array([[0, 0, 0]], np.int64),  # not a mask by name: an all-0 row is fine
    }
    lines = degenerate(feeds)
    assert len(lines) == 2
    assert lines[0].startswith("likely cause: input 'x' holds 1 subnormal floats (e.g. 1.4e-45, below ")
    assert f"{tiny:.3g}" in lines[0] and "TensorFlow flushes them to zero on CPU" in lines[0]
    assert lines[1].startswith("likely cause: input 'attention_mask' has 1 row(s) with no real token (row 1 is all 0)")
    assert 'op.Input(..., kind="mask")' in lines[1]
    assert degenerate({"x": np.ones((2, 3), np.float32), "mask": np.ones((2, 3), np.int64)}) == []
    assert constant_row("LayerNormalization 'ln'", "h", np.array([[2.0, 2.0], [1.0, 3.0]], np.float32)).startswith(
        "likely cause: LayerNormalization 'ln' reads 'h' with 1 constant row(s) (row 0 is all 2)"
    )
    assert constant_row("LayerNormalization 'ln'", "h", np.array([[1.0, 3.0]], np.float32)) == ""


def _sign_model():
    graph = helper.make_graph(
        [helper.make_node("Sign", ["x"], ["y"], name="sign")],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 4])],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def _flushing_sign(x):
    """What TensorFlow on CPU computes: subnormals flushed to zero first."""
    tiny = np.finfo(np.float32).tiny
    return np.sign(np.where(np.abs(x) < tiny, 0.0, x)).astype(np.float32)


def test_a_failure_on_subnormal_inputs_names_them_not_the_graph(tmp_path):
    """A correct file checked against a reference that flushes subnormals, on inputs drawn where
    subnormals live: the failure says the input is the likely cause, and never that the graph
    means something other than the framework's code."""
    result = op.check(
        onnx=_sign_model(),
        reference=_flushing_sign,
        inputs=[op.Input("x", ("batch", 4), low=-1e-40, high=1e-40, allow_subnormal=True)],
        dims={"batch": op.Dim(1, 3)},
        examples=10,
        reproducer_dir=tmp_path,
    )["ort-cpu"]
    assert result.status == "failed"
    lines = result.message.splitlines()
    assert any(line.startswith("likely cause: input 'x' holds ") and "subnormal floats" in line for line in lines)
    assert not any("means something other than the framework's code" in line for line in lines)


def test_subnormals_are_drawn_only_when_an_input_allows_them(tmp_path):
    """A correct file whose reference flushes subnormals (as TensorFlow does on CPU) and a
    boundary at 0: drawn one float step from it (1e-45), the check failed on values no caller
    sends. Now they are drawn as the smallest normal unless the input allows subnormals. (A value
    one step from 0 is drawn by chance: 25 examples find it under 18 of 20 seeds; 40 here.)"""
    declared = dict(dims={"batch": op.Dim(1, 3)}, examples=40, reproducer_dir=tmp_path)
    plain = op.Input("x", ("batch", 4), low=-1, high=1, boundaries=(0.0,))
    result = op.check(onnx=_sign_model(), reference=_flushing_sign, inputs=[plain], **declared)["ort-cpu"]
    assert result.status == "passed", result.message
    allowed = dataclasses.replace(plain, allow_subnormal=True)
    result = op.check(onnx=_sign_model(), reference=_flushing_sign, inputs=[allowed], **declared)["ort-cpu"]
    assert result.status == "failed" and "subnormal floats" in result.message
    with pytest.raises(op.InvalidSpec, match=r"allow_subnormal=True needs a float dtype, not int64"):
        op.Input("ids", ("batch",), dtype="int64", low=0, high=5, allow_subnormal=True)


def test_nan_in_a_span_is_traced_to_the_node_that_makes_it():
    """x / sqrt(mean(x^2) + eps) with the epsilon removed: a zero row makes NaN. Where the
    framework exposes no value in between, the span is named, and the first node making NaN
    from finite inputs is found from the ONNX values: the Div, not the Relu that carries it."""
    eps = helper.make_tensor("eps", TensorProto.FLOAT, [], [0.0])
    nodes = [
        helper.make_node("Mul", ["x", "x"], ["sq"], name="square"),
        helper.make_node("ReduceMean", ["sq"], ["ms"], name="mean", keepdims=1, axes=[-1]),
        helper.make_node("Add", ["ms", "eps"], ["shifted"], name="add_eps"),
        helper.make_node("Sqrt", ["shifted"], ["rms"], name="rms"),
        helper.make_node("Div", ["x", "rms"], ["normed"], name="divide"),
        helper.make_node("Relu", ["normed"], ["y"], name="act"),
    ]
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 4])],
        [eps],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    span = tuple(n.name for n in nodes)
    found = Divergence("act", "Relu", "y", 0.0, 0.0, 4, nodes=span, inputs=("x",))
    assert first_nonfinite(model, found, {"x": np.zeros((1, 4), np.float32)}) == "divide"
    assert first_nonfinite(model, found, {"x": np.ones((1, 4), np.float32)}) == ""
    line = dataclasses.replace(found, first_nonfinite="divide").line()
    assert line.startswith("first divergence: between 'x' (agree, max abs 0) and 'y' (4 values NaN or infinite")
    assert line.endswith("; the first NaN or infinity is made by 'divide' from finite inputs")
