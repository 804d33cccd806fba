"""Model sources: a user registers an exporter for a new model type and checks it end to end
(tests/conftest.py removes what a test registers)."""

from __future__ import annotations

import hashlib
import os

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import onnxparity as op
from onnxparity.exporters import exporter_for, exporter_names, unregister_exporter


class NumpyAffine:
    """A model of no framework onnxparity knows: ``x @ weight + bias`` in numpy."""

    def __init__(self, weight: np.ndarray, bias: np.ndarray) -> None:
        self.weight = weight.astype(np.float32)
        self.bias = bias.astype(np.float32)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return x @ self.weight + self.bias


class NumpyAffineExporter(op.Exporter):
    """Everything onnxparity needs to know about NumpyAffine, in one class."""

    name = "numpy-affine"

    def __init__(self, transpose_bug: bool = False) -> None:
        self.transpose_bug = transpose_bug

    def detects(self, model):
        return isinstance(model, NumpyAffine)

    def declared_inputs(self, model, data=None):
        return (op.Input("x", ("batch", model.weight.shape[0])),)

    def fingerprint(self, model):
        return hashlib.blake2b(model.weight.tobytes() + model.bias.tobytes(), digest_size=8).hexdigest()

    def export(self, model, spec, *, workdir, opset):
        weight = model.weight.T.copy() if self.transpose_bug else model.weight
        n_in, n_out = model.weight.shape
        graph = helper.make_graph(
            [helper.make_node("MatMul", ["x", "w"], ["xw"]), helper.make_node("Add", ["xw", "b"], ["y"])],
            "affine",
            [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", n_in])],
            [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", n_out])],
            [numpy_helper.from_array(weight, "w"), numpy_helper.from_array(model.bias, "b")],
        )
        proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset or 17)])
        key = f"{self.name}-{self.fingerprint(model)}-{self.transpose_bug}"
        path = os.path.join(workdir, key, "model.onnx")
        os.makedirs(os.path.dirname(path), exist_ok=True)
        onnx.save(proto, path)
        return op.ExportedModel(
            path, ("x",), ("y",), exporter="numpy-affine exporter", opset=opset or 17, key=key
        )

    def reference(self, model, spec, exported):
        return lambda feeds: [model(np.asarray(feeds["x"]))]


def square_model() -> NumpyAffine:
    rng = np.random.default_rng(0)
    return NumpyAffine(rng.normal(size=(4, 4)), rng.normal(size=4))


def test_a_registered_exporter_checks_its_models_end_to_end(tmp_path):
    model = square_model()
    with pytest.raises(
        op.ExportError, match=r"no exporter for .*NumpyAffine .*register one with op.register_exporter"
    ):
        op.check(model, reproducer_dir=tmp_path)
    op.register_exporter(NumpyAffineExporter())
    assert exporter_for(model).name == "numpy-affine"
    result = op.check(
        model,
        dims={"batch": op.Dim(1, 8)},
        variants=["ort-cpu", "onnx-reference"],
        examples=5,
        reproducer_dir=tmp_path,
    )  # inputs come from declared_inputs
    assert result.passed, result.summary()
    assert result.exporter == "numpy-affine exporter"


def test_a_registered_exporter_with_an_export_bug_fails_with_a_diagnosis(tmp_path):
    op.register_exporter(NumpyAffineExporter(transpose_bug=True))
    result = op.check(square_model(), dims={"batch": op.Dim(1, 8)}, examples=5, reproducer_dir=tmp_path)
    assert result["ort-cpu"].status == "failed"
    assert (
        "ort-cpu differs from the reference (model from numpy-affine exporter, opset 17)"
        in result["ort-cpu"].message
    )


def test_the_latest_registration_is_asked_first_and_removal_restores_the_builtin():
    class Anything(NumpyAffineExporter):
        name = "anything"

        def detects(self, model):
            return True

    torch = pytest.importorskip("torch")
    linear = torch.nn.Linear(2, 2)
    assert exporter_for(linear).name == "torch"
    op.register_exporter(Anything())
    assert exporter_for(linear).name == "anything"
    unregister_exporter("anything")
    assert exporter_for(linear).name == "torch"
    assert {"torch", "tensorflow", "sklearn", "callable"} <= set(exporter_names())


def test_a_bad_exporter_is_refused_by_name():
    class Nameless(op.Exporter):
        def detects(self, model):
            return False

    with pytest.raises(op.InvalidSpec, match=r"give the exporter a name"):
        op.register_exporter(Nameless())
    with pytest.raises(
        op.InvalidSpec, match=r"register_exporter\('torch'\): already registered; pass replace=True"
    ):
        op.register_exporter(type("T", (NumpyAffineExporter,), {"name": "torch"})())


def test_an_exported_graph_with_undeclared_inputs_is_a_clear_export_error(tmp_path):
    """An exporter that leaves a constant as a graph input (Keras EfficientNet's Normalization
    did) is named as such, not left to a runtime error blamed on baked dims."""
    from onnxparity.exporters import exported_model

    class LeavesConstantAsInput(NumpyAffineExporter):
        name = "leaky-affine"

        def export(self, model, spec, *, workdir, opset):
            n_in, n_out = model.weight.shape
            graph = helper.make_graph(
                [helper.make_node("MatMul", ["x", "w"], ["y"])],
                "leaky",
                [
                    helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", n_in]),
                    helper.make_tensor_value_info("normalization/Sub/y:0", TensorProto.FLOAT, [n_in, n_out]),
                ],
                [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", n_out])],
            )
            graph.node[0].input[1] = "normalization/Sub/y:0"
            proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
            path = os.path.join(workdir, "leaky", "model.onnx")
            os.makedirs(os.path.dirname(path), exist_ok=True)
            onnx.save(proto, path)
            return exported_model(path, proto, spec, exporter="leaky exporter", key="leaky")

    op.register_exporter(LeavesConstantAsInput())
    with pytest.raises(
        op.ExportError,
        match=r"the graph leaky exporter exported has inputs the spec does not "
        r"declare: 'normalization/Sub/y:0' \(declared: x\); these look like constants",
    ):
        op.check(square_model(), dims={"batch": op.Dim(1, 4)}, examples=2, reproducer_dir=tmp_path)


def test_exports_of_one_model_at_two_opsets_keep_a_file_each(tmp_path):
    """The export folder was named after the key's first 48 characters, which cut off its opset:
    the opset-13 (TorchScript) export overwrote the default (dynamo) one still in use."""
    import dataclasses

    import torch

    from onnxparity.runner import ParitySession
    from parity_models import Mlp

    spec = op.ParitySpec(inputs=(op.Input("x", ("batch", 16)),), dims={"batch": op.Dim(1, 4)})
    torch.manual_seed(0)
    model = Mlp().eval()
    with ParitySession(workdir=str(tmp_path)) as session:
        default = session.prepare(model, spec).exported
        at13 = session.prepare(model, dataclasses.replace(spec, opset=13)).exported
        assert default.path != at13.path
        versions = {o.domain: o.version for o in onnx.load(default.path).opset_import}
        assert versions[""] == default.opset != 13


def test_a_check_reads_a_torch_models_weights_once_and_copies_none():
    """A 2.25 GB embedding peaked at 2.07x its weights: the fingerprint hashed a bytes copy of
    every parameter, and the export hashed them all again. The fingerprint now reads each
    tensor's own memory, once per check (``state_dict`` is what it walks)."""
    import tracemalloc

    torch = pytest.importorskip("torch")
    from onnxparity.exporters.torch import fingerprint

    class Counted(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.linear = torch.nn.Linear(2048, 2048)  # 16 MB of weights
            self.walks = 0

        def forward(self, x):
            return self.linear(x)

        def state_dict(self, *args, **kwargs):
            self.walks += 1
            return super().state_dict(*args, **kwargs)

    model = Counted().eval()
    tracemalloc.start()
    try:
        fingerprint(model)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 1 << 20, f"fingerprint allocated {peak / 2**20:.1f} MiB for 16 MiB of weights"
    model.walks = 0
    result = op.check(model, inputs=[op.Input("x", ("batch", 2048))], dims={"batch": op.Dim(1, 2)}, examples=2)
    assert result["ort-cpu"].status == "passed"
    assert model.walks == 1
