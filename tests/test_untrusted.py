"""A model file is untrusted input: nothing it says makes onnxparity read or write outside the
model's directory and the reproducer directory."""

from __future__ import annotations

import os

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import onnxparity as op

SPEC = dict(inputs=[op.Input("x", ("batch", 4))], dims={"batch": op.Dim(1, 3)}, examples=2)


def with_external_weight(folder, location: str, *, used: bool = True) -> str:
    """An ONNX file in ``folder`` whose initializer 'w' says its data is at ``location``."""
    w = numpy_helper.from_array(np.ones((4, 2), np.float32), "w")
    w.data_location = TensorProto.EXTERNAL
    w.ClearField("raw_data")
    entry = w.external_data.add()
    entry.key, entry.value = "location", location
    nodes = (
        [helper.make_node("Mul", ["x", "two"], ["y"])]
        if not used
        else [helper.make_node("MatMul", ["x", "w"], ["y"])]
    )
    two = numpy_helper.from_array(np.full((1, 4), 2.0, np.float32), "two")
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 4 if not used else 2])],
        [w, two],
    )
    path = os.path.join(folder, "model.onnx")
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    return path


@pytest.mark.parametrize(
    "location", ["../../../../etc/passwd", "../outside/w.bin", "/etc/passwd", "link/w.bin"]
)
def test_external_data_outside_the_model_directory_is_refused_and_nothing_is_copied(tmp_path, location):
    """An unused initializer (ONNX Runtime never loads it) pointing outside the model's folder
    once got /etc/passwd copied into a reproducer bundle, or a file written outside it."""
    folder = tmp_path / "model"
    folder.mkdir()
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "w.bin").write_bytes(np.ones((4, 2), np.float32).tobytes())
    (folder / "link").symlink_to(tmp_path / "outside")
    path = with_external_weight(folder, location, used=False)
    reproducers = tmp_path / "reproducers"
    with pytest.raises(
        op.InvalidSpec, match=rf"external data location {location!r} leads outside the model's directory"
    ):
        op.check(
            onnx=path, reference=lambda x: x * 1.5, reproducer_dir=reproducers, **SPEC
        )  # fails: 2x vs 1.5x
    assert not reproducers.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model", "outside"]
    assert not any(p.name.startswith(".") or "tmp-" in p.name for p in folder.iterdir())


def test_a_name_cannot_leave_the_reproducer_directory(tmp_path):
    model = helper.make_model(
        helper.make_graph(
            [helper.make_node("Mul", ["x", "x"], ["y"])],
            "g",
            [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 4])],
            [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 4])],
        ),
        opset_imports=[helper.make_opsetid("", 17)],
    )
    reproducers = tmp_path / "inside" / "reproducers"
    for name in ("..", "../..", "/etc", ".", "a/../../b"):
        result = op.check(onnx=model, reference=lambda x: x, name=name, reproducer_dir=reproducers, **SPEC)
        bundle = result["ort-cpu"].reproducer
        assert os.path.commonpath([str(reproducers), bundle]) == str(reproducers), (name, bundle)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["inside"]
    assert sorted(p.name for p in (tmp_path / "inside").iterdir()) == ["reproducers"]
    assert len([p for p in reproducers.iterdir() if p.is_dir()]) == 5  # one bundle per name: none shared


def square(shape, elem=TensorProto.FLOAT) -> onnx.ModelProto:
    graph = helper.make_graph(
        [helper.make_node("Mul", ["x", "x"], ["y"])],
        "g",
        [helper.make_tensor_value_info("x", elem, shape)],
        [helper.make_tensor_value_info("y", elem, shape)],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


@pytest.mark.parametrize(
    ("model", "inputs", "message"),
    [
        (
            square(["batch", 4]),
            [op.Input("x", ("batch", 4, 1))],
            r"Input\('x'\) has shape \('batch', 4, 1\) \(rank 3\) but the ONNX graph's input is \(batch, 4\) \(rank 2\)",
        ),
        (
            square(["batch", 4]),
            [op.Input("x", ("batch", 4), dtype="float64")],
            r"Input\('x'\) is declared float64 but the ONNX graph's input is float32: declare dtype='float32'",
        ),
        (
            square(["batch", 4]),
            [op.Input("x", ("batch", 5))],
            r"Input\('x'\) axis 1 is 5 but the ONNX graph's input is \(batch, 4\): declare 4",
        ),
    ],
)
def test_a_spec_that_contradicts_a_prebuilt_graph_is_invalid_up_front(tmp_path, model, inputs, message):
    """These once surfaced as an ONNX Runtime error with a misleading "baked dim" hint."""
    with pytest.raises(op.InvalidSpec, match=message):
        op.check(
            onnx=model,
            reference=lambda x: x * x,
            inputs=inputs,
            dims={"batch": op.Dim(1, 3)},
            reproducer_dir=tmp_path,
        )


def test_empty_and_output_less_models_are_named(tmp_path):
    empty = tmp_path / "empty.onnx"
    empty.write_bytes(b"")
    spec = dict(inputs=[op.Input("x", ("batch", 4))], dims={"batch": op.Dim(1, 3)}, reproducer_dir=tmp_path)
    with pytest.raises(
        op.InvalidSpec, match=r"empty.onnx' is empty \(0 bytes\): was the export interrupted\?"
    ):
        op.check(onnx=str(empty), reference=abs, **spec)
    no_outputs = square(["batch", 4])
    del no_outputs.graph.output[:]
    with pytest.raises(
        op.InvalidSpec, match=r"onnx=<ModelProto> has no graph outputs, so there is nothing to compare"
    ):
        op.check(onnx=no_outputs, reference=abs, **spec)


def test_a_dim_declared_dynamic_that_the_graph_fixes_is_a_finding_not_a_refusal(tmp_path):
    result = op.check(
        onnx=square([2, 4]),
        reference=lambda x: x * x,
        inputs=[op.Input("x", ("batch", 4))],
        dims={"batch": op.Dim(1, 3)},
        examples=3,
        reproducer_dir=tmp_path,
    )
    assert result["ort-cpu"].status == "failed"  # batch 1 and 3 are rejected by the graph
    assert "is fixed at size 2 in the ONNX graph" in result["ort-cpu"].message


def test_an_example_over_the_memory_budget_is_refused_with_the_input_named(tmp_path):
    """Dim(1, 100000) on (batch, 4096) once tried to allocate gigabytes and died with a raw
    _ArrayMemoryError."""
    model = square(["batch", 4096])
    result = op.check(
        onnx=model,
        reference=lambda x: x * x,
        inputs=[op.Input("x", ("batch", 4096))],
        dims={"batch": op.Dim(1, 100000)},
        reproducer_dir=tmp_path,
    )
    message = result["ort-cpu"].message
    assert result["ort-cpu"].status == "error"
    assert message.startswith(
        "the largest example the spec declares (batch=100000) needs 1562 MiB of inputs "
        "(x 1562 MiB), over the budget of 1024 MiB"
    )
    assert message.endswith("(max_example_mb=4096)")
