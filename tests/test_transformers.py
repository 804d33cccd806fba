"""Real-model calls: inputs reach ``forward`` by name, no cache comes back, and Hugging Face
models are a source of their own (names, declared inputs, masks with a real token per row)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import onnxparity as op
from onnxparity.exporters import exporter_for
from onnxparity.exporters.torch import make_reference, plan_call

DIMS = {"batch": op.Dim(1, 4), "seq": op.Dim(1, 12)}
IDS = op.Input("input_ids", ("batch", "seq"), dtype="int64", low=0, high=49, special_ids=(0, 1))
MASK = op.Input("attention_mask", ("batch", "seq"), kind="mask")


class DynamicCache:
    """Looks like transformers' cache: not a tensor, so no ONNX output can hold it."""

    def get_seq_length(self) -> int:
        return 0


class CachedLM(torch.nn.Module):
    """GPT-2's parameter order: passed positionally, ``attention_mask`` lands in
    ``past_key_values`` and the model raises as GPT-2 does (the survey's failure)."""

    def __init__(self) -> None:
        super().__init__()
        self.embed = torch.nn.Embedding(50, 8)

    def forward(self, input_ids, past_key_values=None, attention_mask=None, use_cache=True):
        if past_key_values is not None:
            past_key_values.get_seq_length()  # AttributeError on a tensor
        hidden = self.embed(input_ids) * attention_mask[..., None].to(torch.float32)
        return {"last_hidden_state": hidden, "cache": DynamicCache() if use_cache else None}


class ReturnsCache(torch.nn.Module):
    def forward(self, x):
        return x * 2, DynamicCache()


def test_inputs_named_after_forward_parameters_go_by_keyword(tmp_path):
    model = CachedLM().eval()
    inputs = [MASK, IDS]  # declared in neither forward's order nor GPT-2's
    spec = op.ParitySpec(inputs=inputs, dims=DIMS)
    call = plan_call(model, spec)
    assert call.keyword and dict(call.fixed) == {"use_cache": False}
    assert call.describe() == "by keyword, with use_cache=False"

    feeds = {"attention_mask": np.array([[1, 1, 0]]), "input_ids": np.array([[3, 4, 5]])}
    (hidden,) = make_reference(model, spec)(feeds)
    with torch.inference_mode():
        direct = model(torch.tensor([[3, 4, 5]]), attention_mask=torch.tensor([[1, 1, 0]]), use_cache=False)
    np.testing.assert_array_equal(hidden, direct["last_hidden_state"].numpy())

    result = op.check(model, inputs=inputs, dims=DIMS, examples=8, reproducer_dir=tmp_path)
    assert result["ort-cpu"].status == "passed", result["ort-cpu"].message
    assert result.exporter == "torch.onnx dynamo exporter"
    assert [o.name for o in result["ort-cpu"].outputs] == ["last_hidden_state"]


def test_keyword_inputs_through_the_torchscript_exporter(tmp_path):
    """opset 14 sends the export to the TorchScript exporter, which takes positional inputs:
    a wrapper passes them on by keyword, and the model stays in eval mode afterwards."""
    model = CachedLM().eval()
    result = op.check(model, inputs=[IDS, MASK], dims=DIMS, opset=14, examples=6, reproducer_dir=tmp_path)
    assert result["ort-cpu"].status == "passed", result["ort-cpu"].message
    assert result.exporter == "torch.onnx TorchScript exporter"
    assert not any(m.training for m in model.modules())


def test_an_input_named_after_another_parameter_is_an_error_not_a_mix_up():
    spec = op.ParitySpec(
        inputs=[op.Input("tokens", ("batch", "seq"), dtype="int64", high=49), MASK], dims=DIMS
    )
    with pytest.raises(op.InvalidSpec) as info:
        exporter_for(CachedLM()).check_fit(CachedLM().eval(), spec)
    assert str(info.value) == (
        "Input('attention_mask') would be passed by position to CachedLM.forward's parameter "
        "'past_key_values': inputs are passed by keyword only when every declared name is a forward "
        "parameter, and 'tokens': it is not (forward takes input_ids, past_key_values, attention_mask, "
        "use_cache); rename, or declare the inputs in forward's order"
    )
    positional = plan_call(torch.nn.Sequential(torch.nn.Identity()), spec)
    assert not positional.keyword and not positional.fixed  # forward(input): positional, as before


def test_a_cache_among_the_outputs_names_the_fix(parity_session):
    spec = op.ParitySpec(inputs=[op.Input("x", ("batch", 3))], dims={"batch": op.Dim(1, 4)})
    with pytest.raises(op.ExportError) as info:
        parity_session.prepare(ReturnsCache().eval(), spec)
    message = str(info.value)
    assert message.startswith(
        "the model returned a DynamicCache at output_1: a key/value cache, not a tensor"
    )
    assert "call the model with use_cache=False: set model.config.use_cache = False" in message


# -- Hugging Face transformers -------------------------------------------------------------------
@pytest.fixture(scope="module")
def transformers():
    return pytest.importorskip("transformers")


def tiny_bert(transformers):
    torch.manual_seed(0)
    config = transformers.BertConfig(
        vocab_size=100, hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=37
    )
    return transformers.BertModel(config).eval()


def test_bert_passes_with_the_mask_it_declares(transformers, tmp_path):
    model = tiny_bert(transformers)
    assert exporter_for(model).name == "transformers"
    declared = exporter_for(model).declared_inputs(model)
    assert declared == (
        op.Input("input_ids", ("batch", "seq"), dtype="int64", low=0, high=99, special_ids=(0,)),
        op.Input("attention_mask", ("batch", "seq"), kind="mask"),
    )
    result = op.check(model, dims=DIMS, examples=12, reproducer_dir=tmp_path)  # inputs from the config
    variant = result["ort-cpu"]
    assert variant.status == "passed", variant.message
    assert [o.name for o in variant.outputs] == ["last_hidden_state", "pooler_output"]


def test_gpt2_gets_its_inputs_by_name_and_no_cache(transformers, tmp_path):
    torch.manual_seed(0)
    config = transformers.GPT2Config(vocab_size=100, n_embd=32, n_layer=2, n_head=2, n_positions=32)
    assert config.use_cache  # the default config returns a cache unless told not to
    model = transformers.GPT2Model(config).eval()
    ids = op.Input("input_ids", ("batch", "seq"), dtype="int64", low=0, high=99)
    result = op.check(model, inputs=[ids, MASK], dims=DIMS, examples=8, reproducer_dir=tmp_path)
    assert result["ort-cpu"].status == "passed", result["ort-cpu"].message
    assert [o.name for o in result["ort-cpu"].outputs] == ["last_hidden_state"]


def test_declared_inputs_of_encoder_decoder_vision_and_audio_models(transformers):
    t5 = transformers.T5Model(
        transformers.T5Config(vocab_size=100, d_model=16, d_kv=8, d_ff=16, num_layers=1, num_heads=2)
    )
    names = [(i.name, i.shape, i.kind) for i in exporter_for(t5).declared_inputs(t5)]
    assert names == [
        ("input_ids", ("batch", "seq"), "values"),
        ("attention_mask", ("batch", "seq"), "mask"),
        ("decoder_input_ids", ("batch", "decoder_seq"), "values"),
    ]
    assert exporter_for(t5).declared_inputs(t5)[0].special_ids == (0, 1)  # pad, eos
    vit = transformers.ViTModel(
        transformers.ViTConfig(
            hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=16, image_size=32
        )
    )
    assert exporter_for(vit).declared_inputs(vit) == (
        op.Input("pixel_values", ("batch", 3, 32, 32), low=-1, high=1),
    )
    whisper = transformers.WhisperConfig(
        vocab_size=100, d_model=16, encoder_layers=1, encoder_attention_heads=2, encoder_ffn_dim=16,
        num_mel_bins=16, max_source_positions=32,
    )  # fmt: skip
    encoder = transformers.models.whisper.modeling_whisper.WhisperEncoder(whisper)
    assert exporter_for(encoder).declared_inputs(encoder) == (
        op.Input("input_features", ("batch", 16, 64), low=-1, high=1),
    )


def test_the_fingerprint_covers_the_config(transformers):
    model = tiny_bert(transformers)
    source = exporter_for(model)
    before = source.fingerprint(model)
    model.config.use_cache = not model.config.use_cache
    assert source.fingerprint(model) != before
