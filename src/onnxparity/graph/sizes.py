"""The least size of each symbolic dim an ONNX graph can take: a convolution or pooling window
needs an input at least as long as the window, and a stack of them more. An ONNX file read
without a declaration drew every such dim from 1, and at lengths shorter than the windows ONNX
Runtime refuses the input while the reference evaluator returns an empty output: a correct file
failed. Found by ONNX's own shape inference at each candidate size (no op rule of our own).
Knows nothing of frameworks, ONNX Runtime or the search."""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping, Sequence
from typing import Any

import onnx

from onnxparity.graph.nodes import walk_nodes
from onnxparity.spec import Dim, Input

#: ops whose outputs shrink with a window: only graphs holding one are searched
WINDOWED = frozenset(("Conv", "MaxPool", "AveragePool", "LpPool", "ConvInteger", "QLinearConv", "DeformConv"))


#: the largest size tried for a dim whose range stops short of the windows (doubling from it)
GROWN_LIMIT = 8192


def least_dims(proto: Any, inputs: Sequence[Input], dims: Mapping[str, Dim], names: Collection[str]) -> dict[str, Dim]:
    """``dims`` with each of ``names`` raised to the least size at which ONNX's shape inference
    gives no value of the graph a size below 1 (the other dims at their largest); a dim that
    fits at its least size is left as it is. Where the graph does not fit even at the largest
    sizes (a deep CNN: five stride-2 windows need 63 pixels, past the 1-16 drawn by default),
    ``names`` grow together, doubling, up to :data:`GROWN_LIMIT`; each then takes as many values
    from its least size up as it had (none fits: left as they are, for the refusals to say so)."""
    found = dict(dims)
    if not names or not any(node.op_type in WINDOWED for node, _ in walk_nodes(proto.graph)):
        return found
    proto = _light(proto)
    largest = {n: d.last for n, d in dims.items()}
    grown = not _fits(proto, inputs, largest)
    if grown:
        size = max(largest[n] for n in names)
        while not _fits(proto, inputs, {**largest, **dict.fromkeys(names, size)}):
            if size >= GROWN_LIMIT:
                return found
            size = min(2 * size, GROWN_LIMIT)
        largest.update(dict.fromkeys(names, size))
    for name in names:
        dim = dims[name]
        if _fits(proto, inputs, {**largest, name: dim.first}):
            continue
        if not grown:
            values = (dim.value(i) for i in range(dim.values_count))
            least = next(v for v in values if _fits(proto, inputs, {**largest, name: v}))
            found[name] = Dim(least, dim.max, dim.multiple_of)
            continue
        low, high = dim.first, largest[name]  # low does not fit, high does: bisect
        while high - low > 1:
            middle = (low + high) // 2
            low, high = (low, middle) if _fits(proto, inputs, {**largest, name: middle}) else (middle, high)
        step = dim.multiple_of or 1
        least = -(-high // step) * step
        found[name] = Dim(least, least + dim.max - dim.min, dim.multiple_of)
    return found


def _light(proto: Any) -> Any:
    """``proto`` without the values of its large initializers (weights: shape inference reads
    their dims, not their values), so each candidate size copies kilobytes, not the model."""
    light = onnx.ModelProto()
    light.CopyFrom(proto)
    for tensor in light.graph.initializer:
        if math.prod(tensor.dims) > 4096:
            for field in ("raw_data", "float_data", "double_data", "int32_data", "int64_data"):
                tensor.ClearField(field)
            del tensor.external_data[:]
            tensor.data_location = onnx.TensorProto.DEFAULT
    return light


def _fits(proto: Any, inputs: Sequence[Input], sizes: Mapping[str, int]) -> bool:
    """Whether the graph, its inputs at ``sizes``, infers no value of size 0 or less."""
    fixed = onnx.ModelProto()
    fixed.CopyFrom(proto)
    fixed.graph.ClearField("value_info")  # an exporter's symbolic shapes would stand for the fixed ones
    for output in fixed.graph.output:
        if output.type.HasField("tensor_type"):
            output.type.tensor_type.ClearField("shape")
    shapes = {i.name: i.shape for i in inputs}
    for value in fixed.graph.input:
        for axis, entry in enumerate(shapes.get(value.name, ())):
            if isinstance(entry, str) and entry in sizes and axis < len(value.type.tensor_type.shape.dim):
                dim = value.type.tensor_type.shape.dim[axis]
                dim.ClearField("dim_param")
                dim.dim_value = int(sizes[entry])
    try:
        inferred = onnx.shape_inference.infer_shapes(fixed)
    except Exception:  # a graph ONNX cannot infer: nothing is known, so nothing is narrowed
        return True
    values = [*inferred.graph.input, *inferred.graph.value_info, *inferred.graph.output]
    known = {
        v.name: [d.dim_value if d.HasField("dim_value") else None for d in v.type.tensor_type.shape.dim]
        for v in values
        if v.type.HasField("tensor_type")
    }
    if any(size is not None and size <= 0 for shape in known.values() for size in shape):
        return False
    # ONNX's inference truncates a negative window count toward zero (a length 4 under a window
    # of 5, stride 2, infers 1 where ONNX Runtime refuses): each window is checked against its input
    kernels = {t.name: list(t.dims) for t in proto.graph.initializer}
    return all(_window_fits(node, known, kernels) for node in inferred.graph.node if node.op_type in WINDOWED)


def _window_fits(node: Any, known: Mapping[str, list[int | None]], kernels: Mapping[str, list[int]]) -> bool:
    """Whether each spatial axis of ``node``'s input, padded, holds its (dilated) window."""
    attributes = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
    if attributes.get("auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET", b"VALID", "VALID"):
        return True  # SAME_*: padded to fit
    shape = known.get(node.input[0])
    weight = kernels.get(node.input[1]) if len(node.input) > 1 else None
    kernel = attributes.get("kernel_shape") or (weight[2:] if weight else None)
    if not shape or not kernel:
        return True
    spatial = shape[2:]
    pads = list(attributes.get("pads") or [0] * 2 * len(kernel))
    dilations = list(attributes.get("dilations") or [1] * len(kernel))
    return all(
        size is None or size + pads[i] + pads[i + len(kernel)] >= dilations[i] * (kernel[i] - 1) + 1
        for i, size in enumerate(spatial[: len(kernel)])
    )
