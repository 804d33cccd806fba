"""What each forensics line means, on purpose: `pytest --onnx-parity examples/test_forensics_lines.py -rx`.

Each test fails on purpose and asserts the line it shows (docs/explanations/forensics.md shows them, generated from these tests):

- a **span**: a functional call (``F.interpolate``) between two modules of a TorchScript export,
  whose Resize mode was edited in the file — the framework exposes no value between the first
  conv's output and the second's, so the two nodes in between are named together;
- **ONNX Runtime against the spec**: MeanVarianceNormalization of a constant row, where ONNX
  Runtime 1.32 returns NaN and the spec 0 (``strict=False``: another version may fix it);
- **the graph optimizer**: a normalization written as ``(mean - x) / sqrt(var + eps)``, which
  ONNX Runtime 1.32's LayerNorm fusion gets wrong, named with the setting that fixes it
  (``strict=False`` for the same reason);
- **a likely cause in the input**: a correct file against a reference that flushes subnormal
  floats to zero, as TensorFlow does on CPU, on inputs that ask for subnormals
  (``allow_subnormal=True``; none is drawn otherwise).

test_failures.py shows a single named node and the spec's verdict that the graph is wrong.
"""

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper

import onnxparity as op

ON_PURPOSE = {"strict": True, "raises": pytest.fail.Exception}
#: what ONNX Runtime 1.32 does wrong: a later version may not
RUNTIME_SPECIFIC = {"strict": False, "raises": pytest.fail.Exception}


def failure_of(check, *, runtime_bug: str = "") -> str:
    """The failure message of ``check()``: an item the fixture fails raises pytest's Failed.
    A check that passes is an error here — or a skip where the failure is ``runtime_bug``, one
    version of ONNX Runtime's, which the installed one may not have."""
    import onnxruntime

    try:
        check()
    except pytest.fail.Exception as failed:
        return str(failed)
    if runtime_bug:
        pytest.skip(f"ONNX Runtime {onnxruntime.__version__} does not show {runtime_bug}")
    raise AssertionError("the check passed: this example shows nothing")


class Upsampler(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv1 = torch.nn.Conv2d(3, 4, 3, padding=1)
        self.conv2 = torch.nn.Conv2d(4, 4, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        up = torch.nn.functional.interpolate(self.conv1(x), scale_factor=2.0, mode="nearest")
        return self.conv2(up).mean((2, 3))


def torchscript_then_edited(model: torch.nn.Module, folder) -> onnx.ModelProto:
    """The TorchScript export (module scopes name its nodes), its Resize made linear by hand."""
    path = str(folder / "upsampler.onnx")
    torch.onnx.export(
        model,
        (torch.zeros(1, 3, 4, 4),),
        path,
        dynamo=False,
        input_names=["x"],
        output_names=["y"],
        dynamic_axes={"x": {0: "batch"}, "y": {0: "batch"}},
        opset_version=17,
    )
    edited = onnx.load(path)
    resize = next(n for n in edited.graph.node if n.op_type == "Resize")
    mode = next(a for a in resize.attribute if a.name == "mode")
    mode.s = b"linear"
    return edited


@pytest.mark.xfail(**ON_PURPOSE, reason="on purpose: a functional call's Resize edited in the file")
@pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::UserWarning", "ignore::FutureWarning")
@pytest.mark.onnx_parity(
    inputs=[op.Input("x", ("batch", 3, 4, 4), low=-1, high=1)], dims={"batch": op.Dim(1, 4)}, examples=6
)
def test_a_span_between_two_modules(onnx_parity, tmp_path):
    torch.manual_seed(0)
    model = Upsampler().eval()
    message = failure_of(lambda: onnx_parity.check(model, onnx=torchscript_then_edited(model, tmp_path)))
    assert "first divergence: between '/conv1/Conv_output_0' (agree, max abs " in message
    assert ": 2 nodes (module conv2 and code outside them) — /Resize, /conv2/Conv;" in message
    pytest.fail(message, pytrace=False)


def mvn_graph() -> onnx.ModelProto:
    graph = helper.make_graph(
        [
            helper.make_node("MeanVarianceNormalization", ["x"], ["m"], axes=[1], name="mvn"),
            helper.make_node("Add", ["m", "x"], ["y"], name="residual"),
        ],
        "mvn",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 4])],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def mvn(x: np.ndarray) -> np.ndarray:
    """The spec's MeanVarianceNormalization over axis 1 (0 where a row is constant), plus x."""
    centred = x - x.mean(1, keepdims=True)
    spread = np.sqrt((centred**2).mean(1, keepdims=True))
    return (np.divide(centred, spread, out=np.zeros_like(centred), where=spread > 0) + x).astype(np.float32)


@pytest.mark.xfail(**RUNTIME_SPECIFIC, reason="ONNX Runtime 1.32: MeanVarianceNormalization of a constant row")
@pytest.mark.onnx_parity(
    inputs=[op.Input("x", ("batch", 4), low=-1, high=1)], dims={"batch": op.Dim(1, 3)}, examples=8
)
def test_onnx_runtime_against_the_spec(onnx_parity):
    message = failure_of(
        lambda: onnx_parity.check(onnx=mvn_graph(), reference=mvn), runtime_bug="the NaN of MVN on a constant row"
    )
    assert "first divergence: MeanVarianceNormalization 'mvn'" in message
    assert "ONNX Runtime is what differs" in message
    pytest.fail(message, pytrace=False)


class MeanMinusX(torch.nn.Module):
    """A normalization written as (mean - x) / sqrt(var + eps): correct, and exported correctly."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = torch.nn.Linear(16, 16)
        self.weight = torch.nn.Parameter(torch.ones(16))
        self.bias = torch.nn.Parameter(torch.zeros(16))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.fc(x)
        centred = x.mean(-1, keepdim=True) - x
        variance = (centred**2).mean(-1, keepdim=True)
        return centred / torch.sqrt(variance + 1e-5) * self.weight + self.bias


@pytest.mark.xfail(**RUNTIME_SPECIFIC, reason="ONNX Runtime 1.32: its LayerNorm fusion flips the sign")
@pytest.mark.onnx_parity(
    inputs=[op.Input("x", ("batch", 16))], dims={"batch": op.Dim(1, 4)}, examples=4, variants=["ort-cpu"]
)
def test_the_graph_optimizer(onnx_parity):
    torch.manual_seed(0)
    message = failure_of(
        lambda: onnx_parity.check(MeanMinusX().eval()), runtime_bug="the wrong LayerNorm fusion"
    )
    assert "ONNX Runtime's graph optimizer changes the result" in message
    assert "verified on this input: InferenceSession(..., disabled_optimizers=['LayerNormFusion" in message
    pytest.fail(message, pytrace=False)


def sign_graph() -> onnx.ModelProto:
    graph = helper.make_graph(
        [helper.make_node("Sign", ["x"], ["y"], name="sign")],
        "sign",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 4])],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def flushing_sign(x: np.ndarray) -> np.ndarray:
    """Sign as TensorFlow computes it on CPU: subnormal floats flushed to zero first."""
    return np.sign(np.where(np.abs(x) < np.finfo(np.float32).tiny, 0.0, x)).astype(np.float32)


@pytest.mark.xfail(**ON_PURPOSE, reason="on purpose: subnormal inputs, flushed by the reference")
@pytest.mark.onnx_parity(
    inputs=[op.Input("x", ("batch", 4), low=-1e-40, high=1e-40, allow_subnormal=True)],
    dims={"batch": op.Dim(1, 3)},
    examples=8,
)
def test_a_likely_cause_in_the_input(onnx_parity):
    message = failure_of(lambda: onnx_parity.check(onnx=sign_graph(), reference=flushing_sign))
    assert "likely cause: input 'x' holds " in message and "subnormal floats" in message
    assert "means something other than the framework's code" not in message
    pytest.fail(message, pytrace=False)
