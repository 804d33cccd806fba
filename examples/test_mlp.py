"""An MLP over a dynamic batch: the smallest parity check. Run: pytest --onnx-parity examples/"""

import pytest
import torch

import onnxparity as op


class MLP(torch.nn.Module):
    def __init__(self, features: int = 32, hidden: int = 64, classes: int = 10) -> None:
        super().__init__()
        self.layers = torch.nn.Sequential(
            torch.nn.Linear(features, hidden),
            torch.nn.GELU(),
            torch.nn.Linear(hidden, hidden),
            torch.nn.ReLU(),
            torch.nn.Linear(hidden, classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.log_softmax(self.layers(x), dim=-1)


@pytest.mark.onnx_parity(
    inputs=[op.Input("x", ("batch", 32), dtype="float32", low=-3, high=3)],
    dims={"batch": op.Dim(1, 64)},
    # ort-offline: a built-in post-export step; shape-inferred: a rewrite of our own (conftest.py)
    variants=[*op.ALL_VARIANTS, "ort-offline", "shape-inferred"],
    # Every variant at two opsets: test_mlp[ort-cpu-opset17], test_mlp[ort-cpu-opset21], ...
    opset=op.Opset(matrix=[17, 21]),
    tolerance={"ort-cpu": op.Tolerance(atol=1e-4, rtol=1e-4)},
)
def test_mlp(onnx_parity):
    onnx_parity.check(MLP().eval())
