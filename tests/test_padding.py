"""Padding is don't-care (issue 28): outputs whose leading axes are a mask's (or lengths')
(batch, seq) are compared at real positions only, the values left out are counted, and
``compare_padded=True`` compares them all. A 0/1 mask declared as plain values fails with the
``kind="mask"`` declaration to paste.

Left padding under causal attention is the case that made it: a left-pad position sees only
padding, PyTorch answers that row with 0 and the export does not, while every real token agrees
to 1e-7. The decoders (LLaMA, Mistral, Qwen2, GPT-2; base model and LM head) failed on correct
exports before; they pass now, and fail again with ``compare_padded=True``.
"""

from __future__ import annotations

import dataclasses
import re

import numpy as np
import pytest
from onnx import TensorProto, helper

import onnxparity as op
from onnxparity.forensics.inputs import declared_fix, degenerate, mask_declaration
from onnxparity.search.padding import NO_PADDING, YES, plan_from_graph

MASK = op.Input("attention_mask", ("batch", "seq"), kind="mask")
IDS = op.Input("input_ids", ("batch", "seq"), dtype="int64", low=0, high=9)
DECODER_IDS = op.Input("decoder_input_ids", ("batch", "decoder_seq"), dtype="int64", low=0, high=9)
DIMS = {"batch": op.Dim(1, 3), "seq": op.Dim(1, 8), "decoder_seq": op.Dim(1, 8)}


def _spec(*inputs: op.Input) -> op.ParitySpec:
    return op.ParitySpec(
        inputs=inputs, dims={k: v for k, v in DIMS.items() if any(k in i.shape for i in inputs)}
    )


# -- which outputs are padded: the file's dim names, then unambiguous shapes ---------------------
def test_outputs_along_the_mask_are_known_by_the_files_dim_names():
    """The dynamo exporter names dims s0, s1...: an output carrying the mask's names is padded
    along it; a fixed size, another input's dim or (batch, heads, ...) is not; a name no input
    carries, or no shape at all, is left to the example's shape."""
    spec = _spec(IDS, MASK, DECODER_IDS)
    inputs = {"input_ids": ("s0", "s1"), "attention_mask": ("s0", "s1"), "decoder_input_ids": ("s0", "s2")}
    outputs = {
        "hidden": ("s0", "s1", 32),
        "pooled": ("s0", 32),
        "decoder_hidden": ("s0", "s2", 32),
        "attentions": ("s0", 2, "s1", "s1"),
        "computed": ("s0", "Addhidden_dim_1", 32),
        "unshaped": None,
    }
    plan = plan_from_graph(spec, inputs, outputs)
    assert set(plan.outputs) == {"hidden", "computed", "unshaped"}
    (hidden,) = plan.outputs["hidden"]
    assert hidden.mask == MASK and hidden.by_name and hidden.known == (YES, YES)
    assert not plan.outputs["computed"][0].by_name and not plan.outputs["unshaped"][0].by_name
    # a fixed batch matches a fixed batch; a fixed sequence length never matches a fixed size
    fixed = _spec(op.Input("attention_mask", (1, "seq"), kind="mask"))
    assert set(plan_from_graph(fixed, {"attention_mask": (1, "s1")}, {"y": (1, "s1", 4)}).outputs) == {"y"}
    specialized = plan_from_graph(spec, {"attention_mask": (1, "s1")}, {"y": (1, "s1", 4), "z": (2, "s1")})
    assert set(specialized.outputs) == {"y"}  # an exporter fixed batch at 1 (a Dim(1, 1)): the mask's own
    fixed_seq = _spec(op.Input("attention_mask", ("batch", 8), kind="mask"))
    assert not plan_from_graph(fixed_seq, {"attention_mask": ("s0", 8)}, {"y": ("s0", 8, 8)})
    # compare_padded=True: no output is padded along that mask, and no file is read for it
    assert (
        plan_from_graph(_spec(IDS, dataclasses.replace(MASK, compare_padded=True)), inputs, outputs)
        is NO_PADDING
    )


def test_padded_positions_take_the_references_values_and_are_counted():
    spec = _spec(IDS, op.Input("attention_mask", ("batch", "seq"), kind="mask", padding="left"))
    plan = plan_from_graph(spec, {"attention_mask": ("s0", "s1")}, {"y": ("s0", "s1", 2), "p": ("s0", 2)})
    mask = np.array([[0, 1, 1], [1, 1, 1]], np.int64)
    expected = [np.zeros((2, 3, 2), np.float32), np.zeros((2, 2), np.float32)]
    actual = [np.full((2, 3, 2), 5.0, np.float16), np.full((2, 2), 5.0, np.float32)]
    actual[0].flags.writeable = False  # a cached output: never written
    compared, left_out = plan.apply(
        ("y", "p"), expected, actual, {"attention_mask": mask}, {"batch": 2, "seq": 3}
    )
    assert left_out == {"y": 2}  # one padded position x 2 values; 'p' is compared in full
    assert compared[0].dtype == np.float16 and compared[1] is actual[1]
    assert (
        compared[0][0, 0].tolist() == [0.0, 0.0]
        and (compared[0][0, 1:] == 5).all()
        and (actual[0] == 5).all()
    )
    # shapes that differ are the comparison's to report: nothing is left out
    assert (
        plan.apply(("y",), [np.zeros((2, 4, 2))], [np.zeros((2, 3, 2))], {"attention_mask": mask}, {})[1]
        == {}
    )


def test_shapes_decide_only_where_unambiguous():
    """No dim names to go by: the output's leading sizes equal the mask's, and the sequence
    length is no other dim's value in this example."""
    spec = _spec(IDS, MASK)
    plan = plan_from_graph(spec, {}, {"y": None})
    mask = np.array([[1, 1, 0], [1, 0, 0]], np.int64)
    values = [np.zeros((2, 3, 4), np.float32)], [np.ones((2, 3, 4), np.float32)]
    assert plan.apply(("y",), *values, {"attention_mask": mask}, {"batch": 2, "seq": 3})[1] == {"y": 12}
    square = np.array([[1, 0], [1, 1]], np.int64)  # batch = seq = 2: which axis is which?
    values = [np.zeros((2, 2, 4), np.float32)], [np.ones((2, 2, 4), np.float32)]
    assert plan.apply(("y",), *values, {"attention_mask": square}, {"batch": 2, "seq": 2})[1] == {}


def test_lengths_pad_the_positions_past_each_rows_length():
    lengths = op.Input("lengths", ("batch",), kind="lengths", within="seq")
    spec = _spec(op.Input("x", ("batch", "seq", 3)), lengths)
    plan = plan_from_graph(spec, {"x": ("b", "t", 3), "lengths": ("b",)}, {"y": ("b", "t", 5), "h": ("b", 5)})
    assert set(plan.outputs) == {"y"}
    feeds = {"lengths": np.array([4, 1], np.int64)}
    _, left_out = plan.apply(
        ("y",), [np.zeros((2, 4, 5))], [np.ones((2, 4, 5))], feeds, {"batch": 2, "seq": 4}
    )
    assert left_out == {"y": 3 * 5}


def test_compare_padded_is_for_masks_and_lengths():
    assert dataclasses.replace(MASK, compare_padded=True).compare_padded is True
    with pytest.raises(
        op.InvalidSpec, match="compare_padded= is True or False, for kind='mask' or 'lengths'"
    ):
        op.Input("x", ("batch", 4), compare_padded=True)
    with pytest.raises(op.InvalidSpec, match="compare_padded="):
        op.Input("attention_mask", ("batch", "seq"), kind="mask", compare_padded="yes")


# -- a whole check: a correct file, a reference that answers padding with 0 ----------------------
def _doubling_model():
    """y = 2x over (batch, seq, 4), and its sum over the sequence (compared in full)."""
    graph = helper.make_graph(
        [
            helper.make_node("Add", ["x", "x"], ["y"], name="double"),
            helper.make_node("ReduceSum", ["x", "axes"], ["total"], name="total", keepdims=0),
        ],
        "g",
        [
            helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", "seq", 4]),
            helper.make_tensor_value_info("attention_mask", TensorProto.INT64, ["batch", "seq"]),
        ],
        [
            helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", "seq", 4]),
            helper.make_tensor_value_info("total", TensorProto.FLOAT, ["batch", 4]),
        ],
        [helper.make_tensor("axes", TensorProto.INT64, [1], [1])],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def _zero_at_padding(scale: float = 2.0):
    def reference(x, mask):  # what PyTorch does at a left-pad position under causal attention
        return [np.where(mask[..., None] != 0, scale * x, 0.0).astype(np.float32), x.sum(axis=1)]

    return reference


def _check(tmp_path, reference, mask: op.Input, variants=("ort-cpu",)):
    return op.check(
        onnx=_doubling_model(),
        reference=reference,
        inputs=[op.Input("x", ("batch", "seq", 4)), mask],
        dims={"batch": op.Dim(1, 3), "seq": op.Dim(1, 6)},
        variants=list(variants),
        examples=12,
        reproducer_dir=tmp_path,
    )


def test_a_reference_that_zeroes_padding_passes_and_the_report_counts_what_was_left_out(tmp_path):
    left = op.Input("attention_mask", ("batch", "seq"), kind="mask", padding="left")
    result = _check(tmp_path, _zero_at_padding(), left, variants=("ort-cpu", "ort-cpu-noopt"))
    for name in ("ort-cpu", "ort-cpu-noopt"):
        item = result[name]
        assert item.status == "passed", item.message
        y, total = item.outputs
        assert y.name == "y" and 0 < y.padded_left_out < y.values and total.padded_left_out == 0
        assert item.to_dict()["outputs"][0]["padded_left_out"] == y.padded_left_out
    # the anchor (ort-cpu) is measured at real positions too: no padded garbage in its distance
    assert result["ort-cpu-noopt"].outputs[0].max_abs_error_vs_ort_cpu == 0.0
    compared = _check(tmp_path, _zero_at_padding(), dataclasses.replace(left, compare_padded=True))["ort-cpu"]
    assert compared.status == "failed" and compared.outputs[0].padded_left_out == 0


def test_a_difference_at_real_positions_still_fails_and_says_what_was_left_out(tmp_path):
    """A reference off by 0.5% at the real tokens of padded rows (a bug that shows only with
    padding, so the shrunk example has some): it fails, and the failure says what it left out."""

    def off_in_padded_rows(x, mask):
        scale = np.where((mask == 0).any(axis=1), 2.01, 2.0)[:, None, None]
        return [np.where(mask[..., None] != 0, scale * x, 0.0).astype(np.float32), x.sum(axis=1)]

    left = op.Input("attention_mask", ("batch", "seq"), kind="mask", padding="left")
    result = _check(tmp_path, off_in_padded_rows, left)["ort-cpu"]
    assert result.status == "failed" and "output 'y'" in result.message
    (padding,) = [line for line in result.message.splitlines() if line.startswith("padding: ")]
    assert re.match(
        r"padding: values at padded positions left out of the comparison \('y': \d+ of \d+\)", padding
    )
    assert padding.endswith("op.Input(..., compare_padded=True) compares them too")


def test_the_terminal_summary_counts_the_padded_values_left_out():
    from onnxparity.report.render import terminal

    outputs = [{"name": "y", "max_abs_error": 0.0, "values": 96, "padded_left_out": 24}]
    item = {"test": "t.py::test_x", "nodeid": "t.py::test_x[ort-cpu]", "item": "ort-cpu", "kind": "parity"}
    document = {
        "items": [{**item, "status": "passed", "result": {"outputs": outputs}}],
        "summary": {"passed": 1},
    }
    lines = terminal(document)
    assert any(
        line.startswith("padding: 1 item(s) compared outputs at real positions only, 24 padded")
        for line in lines
    )


# -- first tries: a 0/1 mask declared as plain values ---------------------------------------------
def test_a_plain_0_1_mask_is_named_with_a_declaration_to_paste():
    first_try = op.Input("attention_mask", ("batch", "seq"), dtype="int64", low=0, high=1)
    empty = degenerate({"attention_mask": np.array([[1, 1], [0, 0]], np.int64)}, [first_try])
    (line,) = empty
    assert line.startswith(
        "likely cause: input 'attention_mask' has 1 row(s) with no real token (row 1 is all 0)"
    )
    declaration = 'op.Input("attention_mask", ("batch", "seq"), kind="mask")'
    assert declaration in line and eval(declaration) == MASK  # one a user can paste
    (led,) = degenerate({"attention_mask": np.array([[0, 1], [1, 1]], np.int64)}, [first_try])
    pasted = 'op.Input("attention_mask", ("batch", "seq"), kind="mask", padding="left")'
    assert pasted in led and "under causal attention" in led
    assert eval(pasted) == dataclasses.replace(MASK, padding="left")
    int32 = op.Input("attention_mask", ("batch", 8), dtype="int32", low=0, high=1)
    assert mask_declaration("attention_mask", np.zeros((1, 8), np.int32), int32) == (
        'op.Input("attention_mask", ("batch", 8), dtype="int32", kind="mask")'
    )
    assert declared_fix(empty).startswith(f"declare it {declaration} so every drawn row has a real token")
    assert declared_fix(["likely cause: input 'x' holds 1 subnormal floats"]) == ""
    # a declared mask never has such a row; right padding alone explains nothing
    assert degenerate({"attention_mask": np.array([[1, 0]], np.int64)}, [first_try]) == []


@pytest.mark.zoo
def test_int8_static_calibrated_on_blank_images_says_so(tmp_path):
    """Every calibration= image all zeros: each calibrated range is a bias's, and the failure says
    where the calibration came from and that it was blank (before: only the saturation)."""
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3), torch.nn.ReLU(), torch.nn.Conv2d(8, 8, 3)).eval()
    blank = [{"x": np.zeros((1, 3, 12, 12), np.float32)}] * 2
    result = op.check(
        model,
        inputs=[op.Input("x", ("batch", 3, 12, 12))],
        dims={"batch": op.Dim(1, 2)},
        variants=["int8-static"],
        calibration=blank,
        examples=6,
        reproducer_dir=tmp_path,
    )["int8-static"]
    assert result.status == "failed"
    assert (
        "calibration: minmax on 2 feeds given by calibration= (every feed's 'x' is all zeros"
        in result.message
    )


def test_an_all_zero_input_under_int8_is_named():
    (line,) = degenerate({"x": np.zeros((1, 3, 4, 4), np.float32)}, [], "int8-static")
    assert line.startswith(
        "likely cause: input 'x' is all zeros (a blank image or signal): under int8-static"
    )
    assert degenerate({"x": np.zeros((1, 3, 4, 4), np.float32)}, [], "ort-cpu") == []


# -- Hugging Face models at tiny configs (zoo) ---------------------------------------------------
VOCAB = 64
HF_DIMS = {"batch": op.Dim(1, 3), "seq": op.Dim(1, 8)}
HF_IDS = op.Input("input_ids", ("batch", "seq"), dtype="int64", low=0, high=VOCAB - 1)
FIRST_TRY = op.Input("attention_mask", ("batch", "seq"), dtype="int64", low=0, high=1)


def _decoder(model: str, config: str):
    def build(transformers):
        sizes = dict(hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2)
        sizes.update(num_key_value_heads=1, max_position_embeddings=64)
        return getattr(transformers, model)(getattr(transformers, config)(vocab_size=VOCAB, **sizes))

    return build


def _gpt2(model: str):
    def build(transformers):
        config = transformers.GPT2Config(
            vocab_size=VOCAB, n_embd=16, n_layer=1, n_head=2, n_positions=64, bos_token_id=0, eos_token_id=0
        )
        return getattr(transformers, model)(config)

    return build


def _encoder(model: str, config: str):
    def build(transformers):
        sizes = dict(hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32)
        return getattr(transformers, model)(getattr(transformers, config)(vocab_size=VOCAB, **sizes))

    return build


def _distilbert(transformers):
    config = transformers.DistilBertConfig(vocab_size=VOCAB, dim=16, n_layers=1, n_heads=2, hidden_dim=32)
    return transformers.DistilBertModel(config)


#: decoder-only models (base and LM head), padded on the left as generation pads
DECODERS = {
    "llama": _decoder("LlamaModel", "LlamaConfig"),
    "llama-lm": _decoder("LlamaForCausalLM", "LlamaConfig"),
    "mistral": _decoder("MistralModel", "MistralConfig"),
    "mistral-lm": _decoder("MistralForCausalLM", "MistralConfig"),
    "qwen2": _decoder("Qwen2Model", "Qwen2Config"),
    "qwen2-lm": _decoder("Qwen2ForCausalLM", "Qwen2Config"),
    "gpt2": _gpt2("GPT2Model"),
    "gpt2-lm": _gpt2("GPT2LMHeadModel"),
}
#: BERT-family encoders, padded on the right
ENCODERS = {
    "bert": _encoder("BertModel", "BertConfig"),
    "distilbert": _distilbert,
    "roberta": _encoder("RobertaModel", "RobertaConfig"),
}


@pytest.fixture(scope="module")
def hf(tmp_path_factory: pytest.TempPathFactory):
    """(transformers, a session, the models built once) for this module's zoo tests."""
    transformers = pytest.importorskip("transformers")
    import torch

    from onnxparity.config import ParityConfig
    from onnxparity.runner import ParitySession

    built = {}

    def model(name: str):
        if name not in built:
            torch.manual_seed(0)
            built[name] = {**DECODERS, **ENCODERS}[name](transformers).eval()
        return built[name]

    config = ParityConfig(reproducer_dir=str(tmp_path_factory.mktemp("padding-reproducers")))
    with ParitySession(config) as session:
        yield session, model


def _hf_check(hf, name: str, mask: op.Input, label: str) -> op.VariantResult:
    session, model = hf
    result = op.check(
        model(name), inputs=[HF_IDS, mask], dims=HF_DIMS, examples=8, session=session, name=f"{label} {name}"
    )
    return result["ort-cpu"]


@pytest.mark.zoo
@pytest.mark.parametrize("name", list(DECODERS))
def test_decoders_pass_with_left_padding(hf, name):
    """Failed before on correct exports: a left-pad position under causal attention sees only
    padding (PyTorch answers 0 there). Compared at every position, they fail again."""
    left = op.Input("attention_mask", ("batch", "seq"), kind="mask", padding="left")
    result = _hf_check(hf, name, left, "left-padded")
    assert result.status == "passed", result.message
    (output,) = result.outputs
    assert output.name in ("last_hidden_state", "logits") and output.padded_left_out > 0
    assert output.max_abs_error < 1e-5
    everything = _hf_check(hf, name, dataclasses.replace(left, compare_padded=True), "compare-padded")
    assert everything.status == "failed" and everything.outputs[0].padded_left_out == 0


@pytest.mark.zoo
@pytest.mark.parametrize("name", list(ENCODERS))
def test_bert_family_passes_with_right_padding(hf, name):
    result = _hf_check(hf, name, MASK, "right-padded")
    assert result.status == "passed", result.message
    hidden = result.outputs[0]
    assert hidden.name == "last_hidden_state" and hidden.padded_left_out > 0
    assert all(o.padded_left_out == 0 for o in result.outputs[1:])  # pooler_output: (batch, hidden)


@pytest.mark.zoo
@pytest.mark.parametrize("name", [*DECODERS, *ENCODERS])
def test_a_0_1_first_try_fails_naming_the_mask_declaration(hf, name):
    """attention_mask declared dtype="int64", low=0, high=1 draws rows with no real token; the
    failure names them and prints the declaration to paste (before: `op.Input(..., kind=...)`)."""
    result = _hf_check(hf, name, FIRST_TRY, "first-try")
    assert result.status == "failed"
    causes = [
        line
        for line in result.message.splitlines()
        if line.startswith("likely cause: input 'attention_mask'")
    ]
    assert causes, result.message
    assert 'op.Input("attention_mask", ("batch", "seq"), kind="mask"' in causes[0]


@pytest.mark.zoo
def test_left_padding_hides_no_real_difference(hf):
    """The first layer's norm weight x1.01 inside the file: every real token moves, and the check
    with left padding fails, naming the node that reads the weight."""
    import onnx
    from onnx import numpy_helper

    session, model = hf
    left = op.Input("attention_mask", ("batch", "seq"), kind="mask", padding="left")
    spec = op.ParitySpec(inputs=[HF_IDS, left], dims=HF_DIMS)
    proto = onnx.load(session.prepare(model("llama-lm"), spec).exported.path)
    weight = next(t for t in proto.graph.initializer if t.name.endswith("input_layernorm.weight"))
    weight.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(weight) * np.float32(1.01), weight.name))
    result = op.check(
        model("llama-lm"), onnx=proto, inputs=[HF_IDS, left], dims=HF_DIMS, examples=8, session=session,
        name="planted llama-lm",
    )["ort-cpu"]  # fmt: skip
    assert result.status == "failed"
    assert result.divergence is not None and weight.name in next(
        n.input for n in proto.graph.node if n.name == result.divergence.node
    )
