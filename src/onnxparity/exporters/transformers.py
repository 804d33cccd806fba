"""Hugging Face ``transformers`` PyTorch models -> ONNX, and the model itself as the reference.

A ``PreTrainedModel`` is a ``torch.nn.Module``, so the torch source does the work (dynamo
exporter first, TorchScript fallback; inputs by keyword when named after ``forward``'s
parameters); this source adds what a Hugging Face model knows about itself:

- **the call**: ``use_cache=False`` (and ``return_dict=True`` where ``forward`` takes it), in
  the export and the reference alike, so no key/value cache comes back and the outputs keep
  their ``ModelOutput`` field names (``last_hidden_state``, ``pooler_output``, ``logits``,
  ``encoder_last_hidden_state``);
- **the inputs it declares** (``inputs=`` may be left out), read from its config: token ids
  within the vocabulary with the config's special ids (pad, bos, eos, decoder start), an
  attention mask (``kind="mask"``: every row holds a real token), ``decoder_input_ids`` for
  encoder-decoders (T5), ``pixel_values`` at the config's image size (ViT),
  ``input_features`` at the config's mel bins and frames (the Whisper encoder);
- **a fingerprint with the config**: attention implementation and cache settings change the
  export without changing a weight.

Measured with tiny random-weight configs (torch 2.13, transformers 5.24, 2 cores): the dynamo
exporter exports BERT, DistilBERT, RoBERTa, GPT-2, ViT and the Whisper encoder in 3-7 s each;
on T5 with its default SDPA attention it fails after ~17 s (``Cannot view a tensor with shape
[s, s, 2, 8]`` in the FX decomposition of ``attn_output.reshape``) and the TorchScript
fallback exports it in under a second, with parity at every shape (T5 with
``attn_implementation="eager"`` exports through dynamo). Detection reads the class's module
root, so ``transformers`` is never imported here.
"""

from __future__ import annotations

import hashlib
from typing import Any

from onnxparity.exporters.base import class_root
from onnxparity.exporters.torch import TorchExporter
from onnxparity.exporters.torch_call import Call, forward_parameters, plan_call
from onnxparity.spec import Input, ParitySpec

#: config attributes holding special token ids, in the order they are declared.
SPECIAL_ID_FIELDS = (
    "pad_token_id",
    "bos_token_id",
    "eos_token_id",
    "sep_token_id",
    "cls_token_id",
    "decoder_start_token_id",
)

#: what the call passes where ``forward`` takes it and the spec does not declare it.
FIXED_KWARGS = {"use_cache": False, "return_dict": True}


def config_digest(model: Any) -> str:
    """A digest of the model's config (what changes the export besides the weights)."""
    config = getattr(model, "config", None)
    if config is None:
        return ""
    try:
        text = config.to_json_string(use_diff=False)
    except Exception:  # a config with values JSON cannot hold
        text = repr(sorted(vars(config).items(), key=lambda kv: kv[0]))
    text += str(getattr(config, "_attn_implementation", ""))
    return hashlib.blake2b(text.encode(), digest_size=8).hexdigest()


def special_ids(config: Any, vocab_size: int) -> tuple[int, ...] | None:
    """The config's special token ids that lie in the vocabulary (tiny configs keep the
    pretrained ids, e.g. GPT-2's 50256, outside a 100-token vocabulary: those are dropped)."""
    found: list[int] = []
    for name in SPECIAL_ID_FIELDS:
        value = getattr(config, name, None)
        for v in value if isinstance(value, (list, tuple)) else (value,):
            if isinstance(v, int) and not isinstance(v, bool) and 0 <= v < vocab_size:
                found.append(v)
    return tuple(dict.fromkeys(found)) or None


def declared_inputs(model: Any) -> tuple[Input, ...] | None:
    """The inputs a Hugging Face model declares through its config and ``forward`` (None: a
    main input this source does not know; then ``inputs=`` must be given)."""
    config = getattr(model, "config", None)
    params = forward_parameters(model) or {}
    main = getattr(model, "main_input_name", "input_ids")
    if config is None or main not in params:
        return None
    if main == "input_ids" and isinstance(getattr(config, "vocab_size", None), int):
        vocab = config.vocab_size
        ids = dict(dtype="int64", low=0, high=vocab - 1, special_ids=special_ids(config, vocab))
        inputs = [Input("input_ids", ("batch", "seq"), **ids)]
        if "attention_mask" in params:
            inputs.append(Input("attention_mask", ("batch", "seq"), kind="mask"))
        if getattr(config, "is_encoder_decoder", False) and "decoder_input_ids" in params:
            inputs.append(Input("decoder_input_ids", ("batch", "decoder_seq"), **ids))
        return tuple(inputs)
    if main == "pixel_values" and isinstance(getattr(config, "image_size", None), int):
        size, channels = config.image_size, getattr(config, "num_channels", 3)
        return (Input("pixel_values", ("batch", channels, size, size), low=-1, high=1),)
    if main == "input_features" and isinstance(getattr(config, "num_mel_bins", None), int):
        frames = 2 * getattr(config, "max_source_positions", 1500)  # Whisper: two conv strides
        return (Input("input_features", ("batch", config.num_mel_bins, frames), low=-1, high=1),)
    return None


class TransformersExporter(TorchExporter):
    """A Hugging Face ``transformers`` PyTorch model (``PreTrainedModel``), in eval mode."""

    name = "transformers"
    extra = "transformers"
    packages = ("torch", "onnx", "onnxscript", "transformers")

    def detects(self, model: Any) -> bool:
        roots = set(class_root(model))
        return "transformers" in roots and "torch" in roots  # not the TF/Flax classes of 4.x

    def declared_inputs(self, model: Any, data: Any = None) -> tuple[Input, ...] | None:
        return declared_inputs(model)

    def fingerprint(self, model: Any) -> str:
        return f"{super().fingerprint(model)}-{config_digest(model)}"

    def plan_call(self, model: Any, spec: ParitySpec) -> Call:
        return plan_call(model, spec, FIXED_KWARGS)


#: the built-in instance (:data:`onnxparity.exporters.BUILTINS` names it)
EXPORTER = TransformersExporter()
