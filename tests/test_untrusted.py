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
