"""Detection power: at default settings every planted export bug is caught, no correct export flagged.

The corpus grows with each bug class found in the wild. Planted bugs are edits of a correct
export (tests/parity_models.py); export bugs are models the exporters really get wrong.
"""

from __future__ import annotations

import json

import onnx
import pytest
import torch

import onnxparity as op
from parity_models import (
    Activations,
    AdaptivePool,
    BakedBatch,
    DataDependentBranch,
    GroupNormAudio,
    InPlaceInput,
    MeanBranch,
    Mlp,
    NanBoth,
    Piecewise,
    PixelScaleBranch,
    TwoInOut,
    drop_relu,
    move_clip_max,
    perturb_weights,
    round_thresholds_to_nearest,
    set_softmax_axis,
    truncate_embedding,
    weights_to_fp16,
)

ACT = op.ParitySpec(inputs=(op.Input("x", ("batch", 8), low=-10, high=10),), dims={"batch": op.Dim(1, 8)})
MLP = op.ParitySpec(inputs=(op.Input("x", ("batch", 16), low=-2, high=2),), dims={"batch": op.Dim(1, 16)})
TWO = op.ParitySpec(
    inputs=(
        op.Input("x", ("batch", "seq", 8)),
        op.Input("ids", ("batch", "seq"), dtype="int64", low=0, high=49),
    ),
    dims={"batch": op.Dim(1, 4), "seq": op.Dim(1, 12)},
)
POOL = op.ParitySpec(
    inputs=(op.Input("x", ("batch", 3, "h", "w")),),
    dims={"batch": op.Dim(1, 4), "h": op.Dim(4, 24), "w": op.Dim(4, 24)},
)
BAKED = op.ParitySpec(inputs=(op.Input("x", ("batch", 4, 5)),), dims={"batch": op.Dim(1, 8)})
NAN = op.ParitySpec(inputs=(op.Input("x", ("batch", 6), low=-1, high=1),), dims={"batch": op.Dim(1, 4)})
AUDIO = op.ParitySpec(
    inputs=(op.Input("x", ("batch", "samples"), low=-1, high=1),),
    dims={"batch": op.Dim(1, 2), "samples": op.Dim(100, 400)},
)


def _model(cls):
    torch.manual_seed(0)
    return cls().eval()


MODELS = {
    cls: _model(cls)
    for cls in (
        Activations,
        Mlp,
        TwoInOut,
        AdaptivePool,
        BakedBatch,
        DataDependentBranch,
        NanBoth,
        InPlaceInput,
        PixelScaleBranch,
        MeanBranch,
        Piecewise,
        GroupNormAudio,
    )
}


def exported_proto(session, model, spec) -> onnx.ModelProto:
    return onnx.load(session.prepare(model, spec).exported.path)


PLANTED = {
    "clip bound moved 6 -> 5.5 (value-range only)": (
        Activations,
        ACT,
        lambda m: move_clip_max(m, 5.5),
        "output_0",
    ),
    "softmax over the wrong axis": (Activations, ACT, lambda m: set_softmax_axis(m, 0), "output_1"),
    "relu dropped: NaN path": (Activations, ACT, drop_relu, "output_2"),
    "weights perturbed by 0.1%": (Mlp, MLP, lambda m: perturb_weights(m, 1e-3), "output"),
    "weights rounded through float16": (Mlp, MLP, weights_to_fp16, "output"),
    "weights perturbed by 0.1% in a model ill-conditioned on some inputs": (
        GroupNormAudio,
        AUDIO,
        lambda m: perturb_weights(m, 1e-3),
        "output",
    ),
}


#: the lossless variants: each must catch every planted bug on its own. onnx-reference is the
#: independent oracle (the ONNX spec's semantics, no ONNX Runtime code).
LOSSLESS = ["ort-cpu", "ort-cpu-noopt", "onnx-reference"]


@pytest.mark.parametrize("variant", LOSSLESS)
@pytest.mark.parametrize("bug", list(PLANTED))
def test_planted_bug_is_caught(parity_session, bug, variant):
    cls, spec, edit, output = PLANTED[bug]
    model = MODELS[cls]
    broken = edit(exported_proto(parity_session, model, spec))
    prepared = parity_session.prepare(model, spec, onnx=broken)
    result = parity_session.check_variant(prepared, spec, variant, name=f"planted {bug}")
    assert result.status == "failed", result
    assert f"output {output!r}" in result.message
    assert "shrunk input:" in result.message
    # the failing example is shrunk alone, not its group of five: 134-216 examples were run
    # (shrinking included) where 6-18 are now
    assert result.examples <= 40, result.examples


def test_baked_batch_is_caught_and_explained(parity_session):
    prepared = parity_session.prepare(MODELS[BakedBatch], BAKED)
    result = parity_session.check_variant(prepared, BAKED, "ort-cpu", name="export BakedBatch")
    assert result.status == "failed"
    assert "Got invalid dimensions for input: x" in result.message
    assert "input 'x' axis 0 ('batch') is fixed at size 2 in the ONNX graph" in result.message
    # Shrunk to the smallest batch that breaks it, not the export size.
    assert result.failing_example["dims"] == {"batch": 1}


def test_adaptive_pool_at_dynamic_size_is_caught(parity_session):
    """torch 2.13's dynamo exporter specialises AdaptiveAvgPool2d((2, 2)) to the traced size."""
    prepared = parity_session.prepare(MODELS[AdaptivePool], POOL)
    result = parity_session.check_variant(prepared, POOL, "ort-cpu", name="export AdaptivePool")
    assert result.status == "failed"
    assert "shrunk input: dims batch=1" in result.message


def test_branch_baked_by_the_tracing_fallback_is_caught(parity_session):
    spec = op.ParitySpec(inputs=(op.Input("x", ("batch", 4)),), dims={"batch": op.Dim(1, 8)})
    prepared = parity_session.prepare(MODELS[DataDependentBranch], spec)
    assert prepared.exported.exporter == "torch.onnx TorchScript exporter"
    result = parity_session.check_variant(prepared, spec, "ort-cpu", name="export DataDependentBranch")
    assert result.status == "failed"
    assert "output 'output': " in result.message
    assert "note: the dynamo exporter failed (GuardOnDataDependentSymNode: " in result.message


@pytest.mark.parametrize("variant", LOSSLESS)
def test_an_embedding_one_row_short_is_caught_at_the_vocabularys_last_id(parity_session, variant):
    """The last token id (a tokenizer's last special token) is out of the ONNX table's range:
    the ``extremes`` pattern draws the vocabulary's edges."""
    model = MODELS[TwoInOut]
    broken = truncate_embedding(exported_proto(parity_session, model, TWO))
    prepared = parity_session.prepare(model, TWO, onnx=broken)
    result = parity_session.check_variant(prepared, TWO, variant, name="planted short embedding")
    assert result.status == "failed", result
    assert "raised on an input the spec declares valid" in result.message
    assert "next: an index input reached a value outside the graph's table" in result.message


def test_a_branch_on_a_statistic_of_the_input_is_caught(parity_session):
    """``if x.mean() > 0`` traced: inputs whose mean is on the other side show it."""
    spec = op.ParitySpec(inputs=(op.Input("x", ("batch", 6)),), dims={"batch": op.Dim(1, 8)})
    prepared = parity_session.prepare(MODELS[MeanBranch], spec)
    assert prepared.exported.exporter == "torch.onnx TorchScript exporter"
    for examples in (None, 12):
        result = parity_session.check_variant(
            prepared, spec, "ort-cpu", name="export MeanBranch", examples=examples
        )
        assert result.status == "failed", result


PIXELS = op.ParitySpec(inputs=(op.Input("x", ("batch", 4), low=0, high=255),), dims={"batch": op.Dim(1, 8)})


def test_a_branch_only_a_sub_range_reaches_is_caught(parity_session):
    """Traced on 0-255 pixels, the graph always divides by 255: only batches confined to [0, 1]
    show it. Uniform, normal, extremes and sparse fills of 0-255 essentially never are one;
    the unit-band example is tried first."""
    prepared = parity_session.prepare(MODELS[PixelScaleBranch], PIXELS)
    assert prepared.exported.exporter == "torch.onnx TorchScript exporter"
    result = parity_session.check_variant(prepared, PIXELS, "ort-cpu", name="export PixelScaleBranch")
    assert result.status == "failed", result
    assert result.failing_example["patterns"] in (["unit"], ["band"])
    half = parity_session.check_variant(
        prepared, PIXELS, "ort-cpu", name="export PixelScaleBranch", examples=12
    )
    assert half.status == "failed"


def epoch_tree():
    """A depth-2 regression tree on one feature of epoch seconds (float32 spacing there: 128)."""
    import numpy as np
    from sklearn.tree import DecisionTreeRegressor

    rng = np.random.default_rng(0)
    seconds = rng.uniform(1.6e9, 1.8e9, (400, 1))
    return DecisionTreeRegressor(max_depth=2, random_state=0).fit(seconds, np.sin(seconds[:, 0] / 3e7))


EPOCHS = op.ParitySpec(
    inputs=(op.Input("X", ("batch", 1), low=1.6e9, high=1.8e9),),
    dims={"batch": op.Dim(1, 16)},
)


def test_tree_thresholds_rounded_the_wrong_way_are_caught(parity_session):
    """Only inputs exactly on a threshold's float32 value flip (0.13% of uniform rows at this
    magnitude): the boundary pattern draws at and next to the graph's split values, per feature."""
    tree = epoch_tree()
    correct = parity_session.prepare(tree, EPOCHS)
    passed = parity_session.check_variant(correct, EPOCHS, "ort-cpu", name="tree correct")
    assert passed.status == "passed", passed.message
    broken = round_thresholds_to_nearest(exported_proto(parity_session, tree, EPOCHS), tree.tree_.threshold)
    prepared = parity_session.prepare(tree, EPOCHS, onnx=broken)
    result = parity_session.check_variant(prepared, EPOCHS, "ort-cpu", name="tree rounded to nearest")
    assert result.status == "failed", result
    assert result.failing_example["patterns"] == ["boundary"]


@pytest.mark.parametrize(
    ("cls", "spec"),
    [
        (Activations, ACT),
        (Mlp, MLP),
        (TwoInOut, TWO),
        (NanBoth, NAN),
        (InPlaceInput, NAN),
        (Piecewise, NAN),
        (GroupNormAudio, AUDIO),
    ],
    ids=[
        "activations",
        "mlp",
        "two inputs, dict outputs, int argmax",
        "NaN in both",
        "in-place on its input",
        "heavy branching on constants (drawn at them)",
        "a GroupNorm audio front end (ill-conditioned on near-constant waveforms)",
    ],
)
@pytest.mark.parametrize("variant", LOSSLESS)
def test_correct_export_passes(parity_session, cls, spec, variant):
    prepared = parity_session.prepare(MODELS[cls], spec)
    result = parity_session.check_variant(prepared, spec, variant, name=f"correct {cls.__name__}")
    assert result.status == "passed", result.message
    assert result.examples >= (25 if variant != "onnx-reference" else 10)
    if cls is Piecewise:  # the graph's constants became boundaries of x, mapped back through x * 255
        searched = parity_session.searched_spec(prepared, spec).inputs[0].boundary_values()
        for value in (0.25, -0.75, -0.5, 0.5, 0.1, 0.3, 128 / 255, 0.75):  # 0.3 from relu(x - 0.3)
            assert any(abs(v - value) < 1e-7 for v in searched), (value, searched)


def test_lightgbm_thresholds_onnxmltools_rounds_up_are_caught(parity_session):
    """onnxmltools stores LightGBM's float64 split thresholds as the nearest float32: rows exactly
    on one rounded up go the other way. onnxparity's own LightGBM export rounds them down (and
    says so); a file converted by onnxmltools directly is caught at the boundary pattern."""
    lightgbm = pytest.importorskip("lightgbm")
    onnxmltools = pytest.importorskip("onnxmltools")
    from onnxmltools.convert.common.data_types import FloatTensorType
    from sklearn.datasets import load_diabetes

    x, y = load_diabetes(return_X_y=True)
    model = lightgbm.LGBMRegressor(n_estimators=20, num_leaves=8, verbose=-1, random_state=0).fit(x, y)
    spec = op.ParitySpec(
        inputs=(op.Input("X", ("batch", 10), low=-0.2, high=0.2),), dims={"batch": op.Dim(1, 16)}
    )
    ours = parity_session.prepare(model, spec)
    assert any("rounded down here (as skl2onnx does)" in n for n in ours.exported.notes)
    assert parity_session.check_variant(ours, spec, "ort-cpu", name="lightgbm ours").status == "passed"
    direct = onnxmltools.convert_lightgbm(
        model, initial_types=[("X", FloatTensorType([None, 10]))], zipmap=False
    )
    prepared = parity_session.prepare(model, spec, onnx=direct)
    result = parity_session.check_variant(prepared, spec, "ort-cpu", name="lightgbm via onnxmltools")
    assert result.status == "failed", result
    assert result.failing_example["patterns"] == ["boundary"]


def test_a_failure_on_a_boundary_or_band_example_says_what_that_points_at(parity_session):
    prepared = parity_session.prepare(MODELS[PixelScaleBranch], PIXELS)
    result = parity_session.check_variant(prepared, PIXELS, "ort-cpu", name="export PixelScaleBranch")
    assert "hint: this input's values all lie in" in result.message
    assert "look for a branch on the values' range that the export baked in" in result.message


CLIP6 = """
import numpy as np, pytest
from onnx import TensorProto, helper
import onnxparity as op


def clip6():
    graph = helper.make_graph(
        [helper.make_node("Clip", ["x", "lo", "hi"], ["y"], name="act/Clip")], "relu6",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 4])],
        [helper.make_tensor("lo", TensorProto.FLOAT, [], [0.0]), helper.make_tensor("hi", TensorProto.FLOAT, [], [6.0])],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


@pytest.mark.onnx_parity(inputs=[op.Input("x", ("batch", 4), low={low}, high={high})],
                         dims={{"batch": op.Dim(1, 2)}}, examples=5)
def test_relu6(onnx_parity):
    onnx_parity.check(onnx=clip6(), reference=lambda x: np.clip(x, 0, 6))
"""


@pytest.mark.parametrize(("low", "high", "unreached"), [(-1, 1, True), (-10, 10, False)])
def test_a_boundary_side_no_input_reached_is_reported(pytester, low, high, unreached):
    """A Clip at 6 on inputs declared in [-1, 1]: the check never saw the clipped side, and the
    summary and the report say so; declared in [-10, 10], every side is reached."""
    pytester.makepyfile(test_clip=CLIP6.format(low=low, high=high))
    report = pytester.path / "report.json"
    result = pytester.runpytest_inprocess(
        "--onnx-parity", f"--onnx-parity-report={report}", "-p", "no:cacheprovider"
    )
    result.assert_outcomes(passed=1)
    (item,) = json.loads(report.read_text())["items"]
    coverage = item["result"]["coverage"]
    assert coverage["sides"] == 4
    if unreached:
        assert coverage["unreached"] == ["Clip 'act/Clip' at x = 6: no value above it in 8 examples"]
        result.stdout.fnmatch_lines(
            [
                "coverage: 1 item(s) never reached a side of a boundary the graph branches on:",
                "  test_clip.py::test_relu6[[]ort-cpu[]] (1 of 4 sides unreached)",
                "    Clip 'act/Clip' at x = 6: no value above it in 8 examples",
            ]
        )
    else:
        assert coverage["unreached"] == []
        assert "coverage:" not in result.stdout.str()
