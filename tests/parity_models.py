"""Small models and ONNX graph edits that plant real export-bug classes, shared by the tests.

Each planted bug is an edit a broken exporter (or a broken build step) really makes: a moved
Clip bound, a Softmax over the wrong axis, a dropped Relu that opens a NaN path, perturbed
weights. They are made by editing a correct export with the onnx API.
"""

from __future__ import annotations

import numpy as np
import onnx
import torch
from onnx import numpy_helper


class Mlp(torch.nn.Module):
    def __init__(self, features: int = 16, hidden: int = 32, out: int = 8) -> None:
        super().__init__()
        self.fc1 = torch.nn.Linear(features, hidden)
        self.fc2 = torch.nn.Linear(hidden, out)

    def forward(self, x):
        return self.fc2(torch.relu(self.fc1(x)))


class Activations(torch.nn.Module):
    """Three outputs, each the target of one planted edit: Clip, Softmax, Relu->Sqrt."""

    def forward(self, x):
        return torch.nn.functional.relu6(x) * 2, torch.softmax(x, -1), torch.sqrt(torch.relu(x))


class BakedBatch(torch.nn.Module):
    """``int(x.shape[0])`` turns the batch into a constant at export time."""

    def forward(self, x):
        return x.reshape(int(x.shape[0]), -1) * 2


class DataDependentBranch(torch.nn.Module):
    """The dynamo exporter refuses the data-dependent ``if``; the TorchScript fallback traces
    it and keeps only the branch the export example took."""

    def forward(self, x):
        if x.sum() > 0:
            return x * 2
        return -x


class AdaptivePool(torch.nn.Module):
    """AdaptiveAvgPool2d((2, 2)) at a dynamic size: exported with a fixed kernel."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 4, 3, padding=1)
        self.pool = torch.nn.AdaptiveAvgPool2d((2, 2))

    def forward(self, x):
        return self.pool(self.conv(x)).flatten(1)


class TwoInOut(torch.nn.Module):
    """Two inputs (float features, int64 ids), dict outputs including an integer argmax."""

    def __init__(self) -> None:
        super().__init__()
        self.embed = torch.nn.Embedding(50, 8)
        self.fc = torch.nn.Linear(8, 5)

    def forward(self, x, ids):
        hidden = x + self.embed(ids)
        scores = self.fc(hidden)
        return {"scores": scores, "label": scores.argmax(-1)}


class NanBoth(torch.nn.Module):
    """log of negative inputs is NaN in PyTorch and in ONNX alike: not a parity failure."""

    def forward(self, x):
        return torch.log(x)


# -- graph edits ---------------------------------------------------------------------------


def _node(model: onnx.ModelProto, op_type: str) -> onnx.NodeProto:
    return next(n for n in model.graph.node if n.op_type == op_type)


def _initializer(model: onnx.ModelProto, name: str) -> onnx.TensorProto:
    return next(t for t in model.graph.initializer if t.name == name)


def move_clip_max(model: onnx.ModelProto, value: float) -> onnx.ModelProto:
    """A Clip whose upper bound moved (6 -> 5.5): visible only for inputs beyond it."""
    model = _copy(model)
    bound = _initializer(model, _node(model, "Clip").input[2])
    old = numpy_helper.to_array(bound)
    bound.CopyFrom(numpy_helper.from_array(np.asarray(value, dtype=old.dtype), bound.name))
    return model


def set_softmax_axis(model: onnx.ModelProto, axis: int) -> onnx.ModelProto:
    """A Softmax over the wrong axis."""
    model = _copy(model)
    node = _node(model, "Softmax")
    for attr in node.attribute:
        if attr.name == "axis":
            attr.i = axis
    return model


def drop_relu(model: onnx.ModelProto) -> onnx.ModelProto:
    """Remove a Relu and feed its input onward: opens a NaN path (Sqrt of negatives)."""
    model = _copy(model)
    relu = _node(model, "Relu")
    for node in model.graph.node:
        for i, name in enumerate(node.input):
            if name == relu.output[0]:
                node.input[i] = relu.input[0]
    model.graph.node.remove(relu)
    return model


def perturb_weights(model: onnx.ModelProto, relative: float) -> onnx.ModelProto:
    """Scale the largest weight tensor by ``1 + relative``: a slightly wrong weight file."""
    model = _copy(model)
    tensor = max(model.graph.initializer, key=lambda t: numpy_helper.to_array(t).size)
    values = numpy_helper.to_array(tensor)
    tensor.CopyFrom(numpy_helper.from_array((values * (1 + relative)).astype(values.dtype), tensor.name))
    return model


def weights_to_fp16(model: onnx.ModelProto) -> onnx.ModelProto:
    """Weights rounded through float16 and back: a build step that lost precision."""
    model = _copy(model)
    for tensor in model.graph.initializer:
        values = numpy_helper.to_array(tensor)
        if values.dtype == np.float32:
            tensor.CopyFrom(
                numpy_helper.from_array(values.astype(np.float16).astype(np.float32), tensor.name)
            )
    return model


def _copy(model: onnx.ModelProto) -> onnx.ModelProto:
    clone = onnx.ModelProto()
    clone.CopyFrom(model)
    return clone


class OutlierMlp(torch.nn.Module):
    """Right in float32, hostile to int8: hidden channel 0 is 1000x the others (an activation
    outlier, as large language models have), so a per-tensor activation scale leaves the other
    channels a handful of int8 steps. The output is unchanged in float (channel 0 is scaled back)."""

    def __init__(self, features: int = 16, hidden: int = 32, out: int = 8) -> None:
        super().__init__()
        self.fc1 = torch.nn.Linear(features, hidden)
        self.fc2 = torch.nn.Linear(hidden, out)
        with torch.no_grad():
            self.fc1.weight[0] *= 1000.0
            self.fc1.bias[0] = 1000.0
            self.fc2.weight[:, 0] /= 1000.0
            self.fc2.bias.zero_()

    def forward(self, x):
        return self.fc2(torch.relu(self.fc1(x)))


class Elementwise(torch.nn.Module):
    """No weights at all: nothing for int8 quantization to quantize."""

    def forward(self, x):
        return torch.tanh(x) * 2.0 + 1.0


class InPlaceInput(torch.nn.Module):
    """Modifies its input in place: correct in both runtimes, but a checker that hands the
    framework and ONNX Runtime the same array would compare against a mutated input."""

    def forward(self, x):
        x.mul_(2.0)
        return x + 1.0


class PixelScaleBranch(torch.nn.Module):
    """``if x.max() > 1: x = x / 255`` — pixels given as 0-255 or as 0-1. The TorchScript
    fallback traces it on a 0-255 example, so the ONNX graph always divides: only a batch whose
    values all lie in [0, 1] (inside the declared 0-255) is wrong."""

    def __init__(self) -> None:
        super().__init__()
        self.linear = torch.nn.Linear(4, 3)

    def forward(self, x):
        if x.max() > 1:
            x = x / 255
        return self.linear(x)


def round_thresholds_to_nearest(proto, thresholds) -> object:
    """A tree converter that casts float64 split thresholds to the nearest float32 (skl2onnx
    rounds down, so that ``x <= t`` holds on the same side in float32): an input exactly on a
    threshold rounded up takes the other branch. ``thresholds``: the tree's own (float64)."""
    import numpy as np
    from onnx import helper

    for node in proto.graph.node:
        if node.op_type.startswith("TreeEnsemble"):
            attributes = {a.name: a for a in node.attribute}
            modes = [m.decode() for m in attributes["nodes_modes"].strings]
            split = iter(t for t in thresholds if t != -2)  # sklearn marks leaves with -2
            values = [float(np.float32(next(split))) if m != "LEAF" else 0.0 for m in modes]
            attributes["nodes_values"].CopyFrom(helper.make_attribute("nodes_values", values))
    return proto


class MeanBranch(torch.nn.Module):
    """``if x.mean() > 0: x = x * 2`` — a branch on a statistic of the input: the TorchScript
    fallback keeps the side the export example's mean fell on, for every input."""

    def forward(self, x):
        if x.mean() > 0:
            x = x * 2
        return x + 1


class Piecewise(torch.nn.Module):
    """A correct export full of branches on constants (clamp, where, comparisons, max, relu,
    hardswish): the boundary pattern draws exactly at them, and it must still pass."""

    def forward(self, x):
        gated = torch.where(x * 255 > 128, x, -x)
        steps = (x > 0.25).to(x.dtype) + (x <= -0.75).to(x.dtype)
        return (
            torch.clamp(x, -0.5, 0.5)
            + gated
            + steps
            + torch.maximum(x, torch.tensor(0.1))
            + (torch.nn.functional.hardswish(x * 4) + torch.relu(x - 0.3))
        )


def truncate_embedding(model: onnx.ModelProto) -> onnx.ModelProto:
    """An embedding table exported one row short: the last token id of the vocabulary (the edge
    a tokenizer emits for its last special token) is out of range in the ONNX graph."""
    model = _copy(model)
    gather = _node(model, "Gather")
    table = _initializer(model, gather.input[0])
    rows = numpy_helper.to_array(table)[:-1]
    table.CopyFrom(numpy_helper.from_array(rows, table.name))
    return model


class HalfOverflow(torch.nn.Module):
    """An intermediate past float16's 65504 (a product of large activations, as in an
    unnormalised attention score) that later layers scale back down: fine in float32, infinite
    in float16 from that node on."""

    def __init__(self) -> None:
        super().__init__()
        self.up = torch.nn.Linear(4, 8)
        self.down = torch.nn.Linear(8, 2)
        with torch.no_grad():
            self.up.weight.copy_(300.0 * torch.ones(8, 4) / 4)  # activations up to 300

    def forward(self, x):
        h = self.up(x)
        squared = h * h  # up to 9e4: past 65504
        return self.down(torch.sqrt(squared + 1.0) / 300.0)


class GroupNormAudio(torch.nn.Module):
    """A waveform front end as Wav2Vec2's: a strided convolution, a GroupNorm over time per
    channel, a second convolution and a LayerNorm over channels. Correct, and ill-conditioned
    on a constant waveform: the first convolution's output is then constant over time, its
    variance 0, and the GroupNorm divides rounding noise by sqrt(epsilon) — float32 and float64
    PyTorch differ by 3e-5, one float32 rounding of the input moves float64 by more."""

    def __init__(self) -> None:
        super().__init__()
        self.c1 = torch.nn.Conv1d(1, 8, 10, stride=5, bias=False)
        self.norm = torch.nn.GroupNorm(8, 8)
        self.c2 = torch.nn.Conv1d(8, 8, 3, stride=2, bias=False)
        self.ln = torch.nn.LayerNorm(8)
        self.proj = torch.nn.Linear(8, 16)

    def forward(self, x):
        h = torch.nn.functional.gelu(self.norm(self.c1(x[:, None])))
        h = torch.nn.functional.gelu(self.c2(h)).transpose(1, 2)
        return self.proj(self.ln(h))
