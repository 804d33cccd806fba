"""What a failure looks like, on purpose: run `pytest --onnx-parity examples/test_failures.py -rx`.

Each test hands onnxparity an ONNX file that is wrong in one known place and expects the check to
fail (``xfail(strict=True, raises=pytest.fail.Exception)``: if it ever passed, or failed any other
way, the run would fail). The test also asserts what the diagnosis names — the first node that
goes wrong and the module it came from — so these double as a check that localization keeps
working. test_failures_keras.py and test_failures_sklearn.py do the same for a Keras layer and
a scikit-learn pipeline step. README's "What a failure looks like" shows the output.
"""

import onnx
import pytest
import torch
from onnx import helper

import onnxparity as op


class Encoder(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.proj = torch.nn.Linear(16, 32)
        self.norm = torch.nn.LayerNorm(32)
        self.head = torch.nn.Linear(32, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(torch.nn.functional.gelu(self.norm(self.proj(x))))


def exported_then_edited(model: torch.nn.Module, folder) -> onnx.ModelProto:
    """The model exported, then "cleaned up" by hand: LayerNorm's epsilon set to 1e-2 (the
    kind of edit a graph tool or a copied-over attribute makes)."""
    batch = torch.export.Dim("batch", min=1, max=16)
    path = str(folder / "encoder.onnx")
    torch.onnx.export(
        model,
        (torch.zeros(2, 16),),
        path,
        dynamo=True,
        input_names=["x"],
        dynamic_shapes=({0: batch},),
        verbose=False,
    )
    edited = onnx.load(path)
    norm = next(n for n in edited.graph.node if n.op_type == "LayerNormalization")
    for attribute in list(norm.attribute):
        if attribute.name == "epsilon":
            norm.attribute.remove(attribute)
    norm.attribute.append(helper.make_attribute("epsilon", 1e-2))
    return edited


@pytest.mark.xfail(
    strict=True, raises=pytest.fail.Exception, reason="on purpose: LayerNorm epsilon edited in the file"
)
@pytest.mark.onnx_parity(inputs=[op.Input("x", ("batch", 16), low=-3, high=3)], dims={"batch": op.Dim(1, 16)})
def test_edited_layer_norm_is_localized(onnx_parity, tmp_path):
    torch.manual_seed(0)
    model = Encoder().eval()
    with pytest.raises(pytest.fail.Exception) as failed:  # how the fixture fails an item
        onnx_parity.check(model, onnx=exported_then_edited(model, tmp_path))
    assert "first divergence: LayerNormalization 'node_layer_norm' (module norm)" in str(failed.value)
    raise failed.value


class MeanOverSeq(torch.nn.Module):
    """A mean over the sequence as a sum divided by its length (a value the export computes
    from the input's shape)."""

    def __init__(self) -> None:
        super().__init__()
        self.linear = torch.nn.Linear(8, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x).sum(dim=1) / x.shape[1]


@pytest.mark.xfail(
    strict=True, raises=pytest.fail.Exception, reason="on purpose: simplified with fixed input shapes"
)
@pytest.mark.onnx_parity(
    inputs=[op.Input("x", ("batch", "seq", 8))],
    dims={"batch": op.Dim(1, 4), "seq": op.Dim(1, 12)},
    variants=["onnxsim"],
    # what `onnxsim model.onnx out.onnx --overwrite-input-shape x:2,5,8` ships
    variant_options={"onnxsim": {"input_shapes": {"x": [2, 5, 8]}}},
)
def test_simplified_with_fixed_shapes(onnx_parity):
    pytest.importorskip("onnxsim")
    torch.manual_seed(0)
    with pytest.raises(pytest.fail.Exception) as failed:
        onnx_parity.check(MeanOverSeq().eval())
    assert "onnxsim fixed dims the export leaves dynamic (input 'x' dim 0 ('batch') fixed at 2" in str(failed.value)
    assert "next: drop input_shapes from variant_options['onnxsim']" in str(failed.value)
    raise failed.value
