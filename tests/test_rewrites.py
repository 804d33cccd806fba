"""Post-export steps as variants (issue 29): simplifiers, ONNX Runtime's fusion optimizer (float32
and float16), its offline-optimized graph, the ORT format and a user's own rewrite. For each, a
correct model passes and a planted bug of the step's known class fails with the step named and
the forensics' evidence: a folded shape-dependent value, dims fixed by a simplifier, a fused
attention that reads a left-padded mask as end indices (ONNX Runtime's default for BERT), a
float16 fused graph that overflows."""

from __future__ import annotations

import pytest
import torch

import onnxparity as op
from onnxparity.variants import unregister_variant
from rewrite_models import HEADS, HIDDEN, VOCAB, ClassicEncoder, MeanOverSeq, fold_shapes, torchscript_file

SEQ_INPUT = [op.Input("x", ("batch", "seq", 8))]
SEQ_DIMS = {"batch": op.Dim(1, 4), "seq": op.Dim(1, 12)}
FUSION = {"model_type": "bert", "num_heads": HEADS, "hidden_size": HIDDEN}


def text_inputs(padding: str = "right") -> list[op.Input]:
    return [
        op.Input("input_ids", ("batch", "seq"), dtype="int64", low=3, high=VOCAB - 1),
        op.Input("attention_mask", ("batch", "seq"), kind="mask", padding=padding),
    ]


TEXT_DIMS = {"batch": op.Dim(1, 3), "seq": op.Dim(2, 12)}


@pytest.fixture(scope="module")
def encoder_file(tmp_path_factory):
    torch.manual_seed(0)
    model = ClassicEncoder().eval()
    return model, torchscript_file(model, str(tmp_path_factory.mktemp("encoder")))


@pytest.mark.parametrize(
    "variant", ["onnxslim", "onnxsim", "onnxoptimizer", "onnxscript-optimizer", "ort-offline", "ort-format"]
)
def test_a_correct_model_passes_each_step_and_the_report_says_what_the_step_did(variant):
    torch.manual_seed(0)
    result = op.check(MeanOverSeq().eval(), inputs=SEQ_INPUT, dims=SEQ_DIMS, variants=[variant], examples=6)
    checked = result[variant]
    assert checked.status == "passed", checked.message
    build = checked.to_dict()["build"]
    assert build["step"] == variant and len(build["nodes"]) == 2 and build["fixed_dims"] == []


def _checked_with(name: str, rewrite, examples: int):
    """MeanOverSeq checked on the rewrite ``rewrite`` registered as ``name`` (then unregistered)."""
    op.register_rewrite(name, rewrite, replace=True)
    try:
        torch.manual_seed(0)
        result = op.check(MeanOverSeq().eval(), inputs=SEQ_INPUT, dims=SEQ_DIMS, variants=[name], examples=examples)
    finally:
        unregister_variant(name)
    return result[name]


@pytest.mark.parametrize("simplifier", ["onnxslim", "onnxsim", "onnxoptimizer", "onnxscript-optimizer"])
def test_a_folded_shape_dependent_value_fails_naming_the_step_and_the_folded_value(simplifier):
    def folded(model):
        return fold_shapes(model, simplifier)

    checked = _checked_with("folded", folded, examples=8)
    assert checked.status == "failed"
    assert "rewrite step: folded (test_a_folded_shape_dependent_value_fails" in checked.message
    assert "folded made the difference" in checked.message
    assert "was folded into a constant" in checked.message and "input's Shape" in checked.message


@pytest.mark.parametrize("variant", ["onnxsim", "onnxslim"])
def test_dims_fixed_by_a_simplifier_fail_naming_them(variant):
    torch.manual_seed(0)
    result = op.check(
        MeanOverSeq().eval(),
        inputs=SEQ_INPUT,
        dims=SEQ_DIMS,
        variants=[variant],
        examples=6,
        variant_options={variant: {"input_shapes": {"x": [2, 5, 8]}}},
    )
    checked = result[variant]
    assert checked.status == "failed"
    assert f"{variant} fixed dims the export leaves dynamic (input 'x' dim 0 ('batch') fixed at 2" in checked.message
    assert f"next: drop input_shapes from variant_options[{variant!r}]" in checked.message


class MeanMinusX(torch.nn.Module):
    """A normalization written as (mean - x) / sqrt(var + eps): ONNX Runtime 1.32's LayerNorm
    fusion flips its sign (examples/test_forensics_lines.py), and a saved optimized graph keeps it."""

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


def test_a_saved_optimized_graph_keeps_the_optimizers_wrong_fusion_and_names_it():
    torch.manual_seed(0)
    variants = ["ort-cpu", "ort-offline", "ort-format"]
    result = op.check(
        MeanMinusX().eval(), inputs=[op.Input("x", ("batch", 16))], dims={"batch": op.Dim(1, 4)}, variants=variants,
        examples=4,
    )
    if result["ort-cpu"].passed:
        pytest.skip("this ONNX Runtime's LayerNorm fusion no longer flips the sign (1.32's did)")
    for name in ("ort-offline", "ort-format"):
        checked = result[name]
        assert checked.status == "failed", checked.message
        assert f"{name} made the difference" in checked.message
        assert checked.divergence is not None and checked.divergence.op_type == "LayerNormalization"
    assert "the .ort file computes what the same optimization saved as ONNX computes" in result["ort-format"].message
    # ort-cpu fails too, from the same optimizer: the anchor's line no longer blames the export
    assert "ort-cpu shares what differs (the export, or ONNX Runtime on it" in result["ort-offline"].message
    assert "the export itself differs" not in result["ort-offline"].message


@pytest.mark.parametrize("variant", ["ort-transformers", "ort-transformers-fp16"])
def test_the_fusion_optimizer_passes_a_right_padded_encoder_and_records_its_fusions(encoder_file, variant):
    model, path = encoder_file
    result = op.check(
        model, onnx=path, inputs=text_inputs("right"), dims=TEXT_DIMS, variants=[variant], examples=8,
        variant_options={variant: FUSION},
    )
    checked = result[variant]
    assert checked.status == "passed", checked.message
    assert checked.build["fusions"]["Attention"] == 2 and checked.build["fusions"]["SkipLayerNormalization"] == 4


def test_a_fused_attention_that_reads_a_left_padded_mask_as_end_indices_fails_with_the_fusion_confirmed(encoder_file):
    model, path = encoder_file
    result = op.check(
        model, onnx=path, inputs=text_inputs("left"), dims=TEXT_DIMS, variants=["ort-transformers"], examples=10,
        variant_options={"ort-transformers": FUSION},
    )
    checked = result["ort-transformers"]
    assert checked.status == "failed"
    assert "ort-transformers made the difference" in checked.message
    assert "confirmed: fused again with enable_attention=False, the graph agrees with the export" in checked.message
    assert "variant_options={'ort-transformers': {'attention_mask_format': 'raw'}}" in checked.message
    assert checked.divergence is not None and checked.divergence.op_type == "Attention"
    fixed = op.check(
        model, onnx=path, inputs=text_inputs("left"), dims=TEXT_DIMS, variants=["ort-transformers"], examples=10,
        variant_options={"ort-transformers": {**FUSION, "attention_mask_format": "raw"}},
    )
    assert fixed["ort-transformers"].status == "passed", fixed["ort-transformers"].message


def test_a_float16_fused_graph_that_overflows_fails_naming_the_conversion(tmp_path):
    torch.manual_seed(0)
    model = ClassicEncoder(scale=1e5).eval()
    path = torchscript_file(model, str(tmp_path))
    result = op.check(
        model, onnx=path, inputs=text_inputs(), dims=TEXT_DIMS, variants=["ort-transformers-fp16"], examples=6,
        variant_options={"ort-transformers-fp16": FUSION},
    )
    checked = result["ort-transformers-fp16"]
    assert checked.status == "failed"
    assert "the fusions (float32) agree with the export on this input" in checked.message
    assert "the float16 conversion made the difference" in checked.message
    assert "past float16's 65504" in checked.message


transformers = pytest.importorskip("transformers")


def tiny_bert():
    config = transformers.BertConfig(
        vocab_size=VOCAB, hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=37
    )
    torch.manual_seed(0)
    return transformers.BertModel(config).eval()


def test_a_tiny_bert_from_a_config_passes_the_fusion_optimizer_with_the_type_read_from_its_config():
    result = op.check(
        tiny_bert(),
        inputs=[
            op.Input("input_ids", ("batch", "seq"), dtype="int64", low=0, high=VOCAB - 1, special_ids=(0, 1, 2)),
            op.Input("attention_mask", ("batch", "seq"), kind="mask"),
        ],
        dims=TEXT_DIMS,
        variants=["ort-transformers"],
        examples=6,
    )
    checked = result["ort-transformers"]
    assert checked.status == "passed", checked.message
    assert "model_type 'bert'" in checked.build["what"] and checked.build["fusions"]["SkipLayerNormalization"] == 4


def test_a_model_without_a_config_needs_its_type_declared():
    result = op.check(MeanOverSeq().eval(), inputs=SEQ_INPUT, dims=SEQ_DIMS, variants=["ort-transformers"], examples=2)
    checked = result["ort-transformers"]
    assert checked.status == "error"
    assert "declare variant_options={'ort-transformers': {'model_type': 'bert'}}" in checked.message


def test_a_missing_simplifier_skips_naming_the_extra():
    from onnxparity.errors import VariantUnavailable
    from onnxparity.variants.simplify import _require

    with pytest.raises(VariantUnavailable, match=r"pip install 'onnxparity\[simplify\]'"):
        _require("onnxparity_no_such_simplifier", "no-such-simplifier")


def test_a_registered_rewrite_is_keyed_by_its_code():
    """A reused result or stored file of a user's rewrite is keyed by the function's code: an
    edited rewrite is a new key."""
    from onnxparity.variants import get_variant

    def first(model):
        return model

    def second(model):
        model.doc_string = "edited"
        return model

    keys = []
    for function in (first, second, first):
        op.register_rewrite("mine", function, replace=True)
        keys.append(get_variant("mine").build.key_parts())
    unregister_variant("mine")
    assert keys[0] == keys[2] != keys[1] and keys[0]["code"]


def test_the_plugin_runs_the_steps_named_on_the_command_line(pytester):
    """pytest --onnx-parity --onnx-parity-variants=ort-transformers,onnxslim on a module whose
    marker names them: both pass, other variants are deselected, and the JSON report keeps what
    each step did."""
    import json

    pytester.makepyfile(
        test_steps="""
        import pytest, torch
        import onnxparity as op

        class Encoder(torch.nn.Module):
            def __init__(self):
                super().__init__()
                layer = torch.nn.TransformerEncoderLayer(16, 2, dim_feedforward=32, batch_first=True)
                self.encoder = torch.nn.TransformerEncoder(layer, 1, enable_nested_tensor=False)

            def forward(self, x):
                return self.encoder(x)

        @pytest.mark.onnx_parity(
            inputs=[op.Input("x", ("batch", "seq", 16))],
            dims={"batch": op.Dim(1, 3), "seq": op.Dim(1, 8)},
            variants=["ort-cpu", "ort-transformers", "onnxslim"],
            variant_options={"ort-transformers": {"model_type": "bert", "num_heads": 2, "hidden_size": 16}},
            examples=4,
        )
        def test_encoder(onnx_parity):
            torch.manual_seed(0)
            onnx_parity.check(Encoder().eval())
        """
    )
    result = pytester.runpytest(
        "--onnx-parity", "--onnx-parity-variants=ort-transformers,onnxslim", "--onnx-parity-report=r.json", "-v"
    )
    result.assert_outcomes(passed=2, deselected=1)
    result.stdout.fnmatch_lines(["*test_encoder?ort-transformers? PASSED*", "*test_encoder?onnxslim? PASSED*"])
    report = json.loads((pytester.path / "r.json").read_text())
    steps = {item["result"]["variant"]: item["result"]["build"]["step"] for item in report["items"]}
    assert steps == {"ort-transformers": "ort-transformers", "onnxslim": "onnxslim"}


@pytest.mark.parametrize(
    ("rewrite", "said"),
    [
        (lambda model: None, "returned NoneType, not an onnx.ModelProto"),
        (lambda model: _renamed_output(model), "changed the model's outputs: the export's are ['output'], the rewritten file's ['renamed']"),
    ],
    ids=["not-a-model", "renamed-output"],
)
def test_a_rewrite_that_breaks_the_interface_is_that_variants_error_saying_how(rewrite, said):
    checked = _checked_with("broken", rewrite, examples=2)
    assert checked.status == "error" and said in checked.message


def _renamed_output(model):
    old = model.graph.output[0].name
    for node in model.graph.node:
        node.output[:] = ["renamed" if o == old else o for o in node.output]
    model.graph.output[0].name = "renamed"
    return model
