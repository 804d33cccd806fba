"""Models for the post-export steps' tests (tests/test_rewrites.py).

``ClassicEncoder`` is a BERT-like encoder written the way BERT was before scaled-dot-product
attention (``(1 - mask) * -10000`` added to the scores): its TorchScript export is what ONNX
Runtime's fusion optimizer recognises as ``Attention`` and ``EmbedLayerNormalization``.
"""

from __future__ import annotations

import math
import os

import numpy as np
import onnx
import torch

HIDDEN, HEADS, VOCAB, INTER = 32, 2, 100, 37


class Layer(torch.nn.Module):
    def __init__(self, scale: float = 1.0) -> None:
        super().__init__()
        self.q, self.k, self.v, self.o = (torch.nn.Linear(HIDDEN, HIDDEN) for _ in range(4))
        self.norm1 = torch.nn.LayerNorm(HIDDEN, eps=1e-12)
        self.up, self.down = torch.nn.Linear(HIDDEN, INTER), torch.nn.Linear(INTER, HIDDEN)
        self.norm2 = torch.nn.LayerNorm(HIDDEN, eps=1e-12)
        with torch.no_grad():  # scale > 1: activations past float16's range before a LayerNorm
            self.down.weight.mul_(scale)
            self.down.bias.mul_(scale)

    def heads(self, x: torch.Tensor) -> torch.Tensor:
        batch, seq, _ = x.size()
        return x.view(batch, seq, HEADS, HIDDEN // HEADS).permute(0, 2, 1, 3)

    def forward(self, x: torch.Tensor, extended_mask: torch.Tensor) -> torch.Tensor:
        q, k, v = self.heads(self.q(x)), self.heads(self.k(x)), self.heads(self.v(x))
        scores = torch.matmul(q, k.transpose(-1, -2)) / math.sqrt(HIDDEN // HEADS) + extended_mask
        context = torch.matmul(torch.softmax(scores, dim=-1), v).permute(0, 2, 1, 3).contiguous()
        context = context.view(context.size(0), context.size(1), HIDDEN)
        x = self.norm1(self.o(context) + x)
        return self.norm2(self.down(torch.nn.functional.gelu(self.up(x))) + x)


class ClassicEncoder(torch.nn.Module):
    def __init__(self, scale: float = 1.0) -> None:
        super().__init__()
        self.words = torch.nn.Embedding(VOCAB, HIDDEN)
        self.positions = torch.nn.Embedding(64, HIDDEN)
        self.segments = torch.nn.Embedding(2, HIDDEN)
        self.norm = torch.nn.LayerNorm(HIDDEN, eps=1e-12)
        self.layers = torch.nn.ModuleList([Layer(scale), Layer(scale)])

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        positions = torch.arange(input_ids.size(1), dtype=torch.long).unsqueeze(0).expand_as(input_ids)
        x = self.norm(self.words(input_ids) + self.positions(positions) + self.segments(torch.zeros_like(input_ids)))
        extended = (1.0 - attention_mask.unsqueeze(1).unsqueeze(2).to(torch.float32)) * -10000.0
        for layer in self.layers:
            x = layer(x, extended)
        return x


def torchscript_file(model: torch.nn.Module, folder: str) -> str:
    """The model exported by torch.onnx's TorchScript exporter (what the fusion optimizer's
    patterns were written for), dynamic batch and sequence."""
    path = os.path.join(folder, "encoder.onnx")
    ids = torch.randint(3, VOCAB, (2, 8))
    mask = torch.ones(2, 8, dtype=torch.int64)
    dynamic = {0: "batch", 1: "seq"}
    torch.onnx.export(
        model,
        (ids, mask),
        path,
        dynamo=False,
        input_names=["input_ids", "attention_mask"],
        output_names=["hidden"],
        dynamic_axes={"input_ids": dynamic, "attention_mask": dynamic, "hidden": dynamic},
        opset_version=17,
    )
    return path


class MeanOverSeq(torch.nn.Module):
    """A mean over the sequence as a sum divided by the sequence's length: the length is a value
    the export computes from the input's shape (Shape -> Gather -> Cast)."""

    def __init__(self) -> None:
        super().__init__()
        self.linear = torch.nn.Linear(8, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x).sum(dim=1) / x.shape[1]


SIMPLIFIERS = {
    "onnxslim": lambda model: __import__("onnxslim").slim(model),
    "onnxsim": lambda model: __import__("onnxsim").simplify(model, check_n=0)[0],
    "onnxoptimizer": lambda model: __import__("onnxoptimizer").optimize(model),
    "onnxscript-optimizer": lambda model: __import__("onnxscript.optimizer").optimizer.optimize(model),
}


def fold_shapes(model: onnx.ModelProto, simplifier: str = "onnxslim") -> onnx.ModelProto:
    """A constant folder's classic bug, planted: every ``Shape`` of a graph input replaced by a
    constant holding the shape the folder assumed (batch 2, sequence 5), then the simplifier's own
    folding carries that constant on — as a simplifier run with fixed shapes on a model that is
    then fed others does."""
    assumed = {"batch": 2, "seq": 5}
    inputs = {
        i.name: [assumed.get(d.dim_param, d.dim_value) for d in i.type.tensor_type.shape.dim]
        for i in model.graph.input
    }
    for index, node in enumerate(model.graph.node):
        if node.op_type == "Shape" and node.input[0] in inputs:
            bounds = {a.name: a.i for a in node.attribute}
            shape = inputs[node.input[0]][bounds.get("start", 0) : bounds.get("end", None)]
            constant = onnx.helper.make_node(
                "Constant",
                [],
                list(node.output),
                name=node.name,
                value=onnx.numpy_helper.from_array(np.array(shape, dtype=np.int64)),
            )
            model.graph.node[index].CopyFrom(constant)
    return SIMPLIFIERS[simplifier](model)
