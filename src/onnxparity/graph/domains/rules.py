"""The rules of :mod:`onnxparity.graph.domains`: for each op type, how each of its inputs constrains
a graph input fed to it (a :class:`~onnxparity.graph.domains.Domain`, an
:class:`~onnxparity.graph.domains.Undrawable`, or None: no constraint at that position)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, cast

import onnxparity.graph.domains.structured as structured
from onnxparity.graph.domains.types import SMALL, Domain, GraphView, Undrawable, attribute, node_label

Rule = Callable[[Any, int, GraphView], "Domain | Undrawable | None"]


def _along(
    position: int, source: int, axis_of: Callable[[Any], int], what: str, *, low: int = 0, past_end: int = -1
) -> Rule:
    """Values counted along one axis of the node's input ``source`` (indices, k, positions,
    lengths): ``low … size + past_end`` — indices end at ``size - 1``, k and lengths at
    ``size``. Indices start at 0: ONNX also allows negative ones, but the frameworks a file is
    compared with do not (PyTorch's Embedding raises on them), so drawing them would fail a
    correct export. An axis whose size is not known before the run constrains nothing (an
    example both sides reject is then not counted)."""

    def rule(node: Any, at: int, graph: GraphView) -> Domain | Undrawable | None:
        if at != position:
            return None
        axis = axis_of(node)
        size = graph.size(node.input[source], axis)
        if not size:
            return None
        return Domain(
            low,
            size + past_end,
            f"{what} of {node_label(node)} into axis {axis} of {node.input[source]!r} (size {size})",
        )

    return rule


def _gather_nd(node: Any, position: int, graph: GraphView) -> Domain | Undrawable | None:
    if position != 1:
        return None
    batch = attribute(node, "batch_dims", 0)
    shape = graph.shapes.get(node.input[0])
    sizes = [s for s in (shape or ())[batch:] if s]
    if not sizes:
        return None  # not known before the run: no constraint
    return Domain(
        0, min(sizes) - 1, f"indices of {node_label(node)} into {node.input[0]!r} (smallest axis {min(sizes)})"
    )


def _axes(first: int = 1, inserted: bool = False) -> Rule:
    """An axes input (at ``first``): within the rank of the node's first input (``inserted``:
    of the output, which has one axis more per listed axis: Unsqueeze), a list's axes distinct
    (``Input.distinct``: -1 and rank-1 are one axis). A list whose length is not known before
    the run, or longer than the rank, is undrawable."""

    def rule(node: Any, position: int, graph: GraphView) -> Domain | Undrawable | None:
        if position != first:
            return None
        rank = graph.rank(node.input[0])
        count = graph.shapes.get(node.input[position])
        if rank is None:
            return None  # not known before the run: no constraint
        if count is None or len(count) > 1 or (len(count) == 1 and count[0] is None):
            return Undrawable(
                f"it lists axes of {node_label(node)}, how many is not known before the run, and drawn "
                "lists may repeat an axis, which the op rejects"
            )
        if inserted:
            rank += cast(int, count[0]) if count else 1  # (count[0] is known: None is undrawable above)
        if count and cast(int, count[0]) > rank:
            return Undrawable(f"it lists {count[0]} axes of {node_label(node)}, more than its rank {rank}")
        return Domain(-rank, rank - 1, f"axes of {node_label(node)} (rank {rank}, each once)", distinct=rank)

    return rule


def _axis(position: int, *, but_last: bool = False) -> Rule:
    """A single axis of the node's first input: within its rank (``but_last``: not the last
    axis, which DFT keeps for the real and imaginary parts)."""

    def rule(node: Any, at: int, graph: GraphView) -> Domain | Undrawable | None:
        if at != position:
            return None
        rank = graph.rank(node.input[0])
        if not rank or (but_last and rank < 2):
            return None  # not known before the run: no constraint
        if but_last:
            return Domain(0, rank - 2, f"the axis of {node_label(node)} (not the last of rank {rank})")
        return Domain(-rank, rank - 1, f"the axis of {node_label(node)} (rank {rank})")

    return rule


def _small(*positions: int, low: float = 1, high: float = SMALL, what: str = "a size") -> Rule:
    def rule(node: Any, position: int, graph: GraphView) -> Domain | Undrawable | None:
        if position not in positions:
            return None
        return Domain(low, high, f"{what} of {node_label(node)} (kept small: the output grows with it)")

    return rule


def _undrawable(*positions: int, why: str) -> Rule:
    def rule(node: Any, position: int, graph: GraphView) -> Domain | Undrawable | None:
        if position not in positions:
            return None
        return Undrawable(f"it is {why} of {node_label(node)}")

    return rule


def _positive(*positions: int, what: str = "a scale", low: float = 0.0625, high: float = 1.0) -> Rule:
    def rule(node: Any, position: int, graph: GraphView) -> Domain | Undrawable | None:
        if position not in positions:
            return None
        return Domain(low, high, f"{what} of {node_label(node)} (positive)")

    return rule


def _integer(position: int, low: int, high: int, what: str) -> Rule:
    """An integer input at ``position`` (a float one needs no bound: a float division by 0 is
    inf on both sides, a float power does not wrap)."""

    def rule(node: Any, at: int, graph: GraphView) -> Domain | Undrawable | None:
        if at != position or graph.kinds.get(node.input[at]) != "int":
            return None
        return Domain(low, high, f"{what} of {node_label(node)}")

    return rule


def _room(position: int, axis_default: int) -> Rule:
    """TensorScatter's write indices: room for the update along the axis of the cache."""

    def rule(node: Any, at: int, graph: GraphView) -> Domain | Undrawable | None:
        if at != position:
            return None
        axis = attribute(node, "axis", axis_default)
        cache, update = graph.size(node.input[0], axis), graph.size(node.input[1], axis)
        if cache is None or update is None or cache < update:
            return None  # not known before the run: no constraint
        return Domain(
            0, cache - update, f"write positions of {node_label(node)} (room {cache - update} along axis {axis})"
        )

    return rule


def _pads(node: Any, position: int, graph: GraphView) -> Domain | Undrawable | None:
    if position != 1:
        return None
    high = 2
    if attribute(node, "mode", b"constant") in (b"reflect", "reflect"):  # reflecting needs room
        shape = graph.shapes.get(node.input[0])
        if shape is not None and None not in shape:  # (unknown sizes: pads past them are rejected by both)
            high = min(high, min(cast("tuple[int, ...]", shape)) - 1)
    return Domain(0, high, f"the pads of {node_label(node)} (kept small: the output grows with them)")


def _split_size(node: Any, position: int, graph: GraphView) -> Domain | Undrawable | None:
    """SplitToSequence's split: one size within the axis, or a list adding up to it."""
    if position != 1:
        return None
    axis = attribute(node, "axis", 0)
    size, count = graph.size(node.input[0], axis), graph.shapes.get(node.input[1])
    if count is not None and len(count) == 1:  # a list: as Split's sizes, one per element
        return structured.split_sizes(node, position, graph, parts=count[0])
    if count != () or not size:
        return Undrawable(f"it is the split sizes of {node_label(node)} (they must add up to the axis)")
    return Domain(1, size, f"the split size of {node_label(node)} (axis {axis} of size {size})")


def _chain(*rules: Rule) -> Rule:
    def rule(node: Any, position: int, graph: GraphView) -> Domain | Undrawable | None:
        for each in rules:
            found = each(node, position, graph)
            if found is not None:
                return found
        return None

    return rule


def _axis_attribute(default: int = 0) -> Callable[[Any], int]:
    return lambda node: attribute(node, "axis", default)


_REDUCE = (
    "ReduceSum",
    "ReduceMean",
    "ReduceMax",
    "ReduceMin",
    "ReduceProd",
    "ReduceL1",
    "ReduceL2",
    "ReduceLogSum",
    "ReduceLogSumExp",
    "ReduceSumSquare",
)

#: (op type) -> how each of its inputs constrains a graph input fed to it
RULES: dict[str, Rule] = {
    "Gather": _along(1, 0, _axis_attribute(), "indices"),
    "GatherElements": _along(1, 0, _axis_attribute(), "indices"),
    "ScatterElements": _along(1, 0, _axis_attribute(), "indices"),
    "GatherND": _gather_nd,
    "ScatterND": _gather_nd,
    "ArrayFeatureExtractor": _along(1, 0, lambda node: -1, "indices"),
    **{op: _axes() for op in _REDUCE},
    "Squeeze": structured.squeeze_axes,
    "Unsqueeze": _axes(inserted=True),
    "CumSum": _axis(1),
    "CumProd": _axis(1),
    "Slice": _chain(
        _axes(first=3),
        _small(4, low=1, high=2, what="a step"),
        _small(1, 2, low=-SMALL, high=SMALL, what="a start or end"),
    ),
    "Split": structured.split_sizes,
    "Reshape": structured.reshape_target,
    "Expand": _small(1, low=1, high=1, what="the target shape"),
    "Tile": _small(1, low=1, high=3, what="the repeats"),
    "Pad": _chain(_pads, _axes(first=3)),
    "ConstantOfShape": _small(0, low=0, high=SMALL, what="the shape"),
    "Range": _chain(
        _small(0, low=0, high=SMALL, what="the start"),
        _small(1, low=0, high=2 * SMALL, what="the limit"),
        _small(2, low=1, high=2, what="the step"),
    ),
    "TopK": _along(1, 0, _axis_attribute(-1), "k", past_end=0),
    "OneHot": _small(1, low=1, high=2 * SMALL, what="the depth"),
    "Resize": structured.resize_inputs,
    "Upsample": _positive(
        1, what="the scales (the integer 2: nearest mode takes integers)", low=2.0, high=2.0
    ),
    "AffineGrid": structured.affine_grid_size,
    "Attention": _along(6, 1, lambda node: -2, "key lengths", low=1, past_end=0),  # nonpad_kv_seqlen
    "RotaryEmbedding": _along(3, 1, lambda node: 0, "positions"),  # rows of the cos cache
    "TensorScatter": _room(2, -2),
    "SplitToSequence": _split_size,
    "SequenceAt": structured.sequence_position(1),
    "SequenceErase": structured.sequence_position(1),
    "SequenceInsert": structured.sequence_position(2, insert=True),
    "Pow": _integer(1, 0, 3, "an integer exponent (integer powers overflow past it)"),
    "Dropout": _chain(
        _positive(1, what="the ratio", low=0.0, high=0.5),
        structured.training_flag,
    ),
    "DFT": _chain(_small(1, low=1, high=2 * SMALL, what="the DFT length"), _axis(2, but_last=True)),
    "STFT": _chain(
        _small(1, low=1, high=SMALL, what="the frame step"),
        _small(3, low=1, high=2 * SMALL, what="the frame length"),
    ),
    "MelWeightMatrix": _undrawable(
        0, 1, 2, 3, 4, why="a mel filter bank parameter (bins, length, rate and edges must agree)"
    ),
    "QLinearMatMul": _positive(1, 4, 6),
    "QLinearConv": _positive(1, 4, 6),
    "Div": _integer(1, 1, 100, "an integer divisor (0 is undefined)"),
    "Mod": _integer(1, 1, 100, "an integer divisor (0 is undefined)"),
    "NegativeLogLikelihoodLoss": _along(1, 0, lambda node: 1, "class targets"),
    "SoftmaxCrossEntropyLoss": _along(1, 0, lambda node: 1, "class targets"),
    "ReverseSequence": _along(
        1, 0, lambda node: attribute(node, "time_axis", 0), "sequence lengths", low=1, past_end=0
    ),
    **dict.fromkeys(
        ("RNN", "GRU", "LSTM"),
        _along(
            4,
            0,
            lambda node: 1 if attribute(node, "layout", 0) else 0,
            "sequence lengths",
            low=1,
            past_end=0,
        ),
    ),
    "QuantizeLinear": _positive(1),
    "DequantizeLinear": _positive(1),
    "NonMaxSuppression": _chain(
        _small(2, low=0, high=SMALL, what="the boxes kept per class"),
        _positive(3, 4, what="a threshold", low=0.0, high=1.0),
    ),
    "Col2Im": structured.col2im_shapes,
    "MaxUnpool": _undrawable(1, 2, why="the indices or output shape (they must match the pooling)"),
    "CenterCropPad": _small(1, low=1, high=SMALL, what="the target shape"),
    "Trilu": _small(1, low=-SMALL, high=SMALL, what="the diagonal"),
    "BitShift": _small(1, low=0, high=7, what="the shift"),
    "Loop": _small(0, low=0, high=SMALL, what="the trip count"),
}
