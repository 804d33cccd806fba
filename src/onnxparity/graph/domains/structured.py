"""Rules of :mod:`onnxparity.graph.domains` for inputs whose parts must agree with each other or
with another tensor: Split's sizes (adding up to the axis), Reshape's target (keeping the
element count), Resize's scales, sizes and region, Squeeze's axes (each of size 1), AffineGrid's
output size (theta's batch), Col2Im's image and block shapes (matching the columns), and
Dropout's training flag. Each gives a few whole values that are valid (:meth:`Domain.of`, the
simplest first), or an :class:`Undrawable` naming what is not known before the run."""

from __future__ import annotations

import itertools
import math
from typing import TYPE_CHECKING, Any, cast

from onnxparity.graph.domains.types import SMALL, Domain, GraphView, Undrawable, attribute, node_label

if TYPE_CHECKING:
    from onnxparity.graph.domains.rules import Rule


def _length(graph: GraphView, node: Any, position: int) -> int | None:
    """How many values the 1-D input at ``position`` holds, where fixed before the run."""
    shape = graph.fixed(node.input[position])
    return shape[0] if shape is not None and len(shape) == 1 else None


def split_sizes(node: Any, position: int, graph: GraphView, parts: int | None = None) -> Domain | Undrawable | None:
    """Split's sizes: one per output (``parts``: SplitToSequence's, one per element), adding up
    to the axis: even, first-heavy, last-heavy."""
    if position != 1:
        return None
    axis = attribute(node, "axis", 0)
    shape, parts = graph.fixed(node.input[0]), len(node.output) if parts is None else parts
    what = f"the split sizes of {node_label(node)} (they must add up to axis {axis}"
    if shape is None or not -len(shape) <= axis < len(shape):
        return Undrawable(f"it is {what}, whose size is not known before the run)")
    if _length(graph, node, 1) != parts:
        return Undrawable(f"it is {what}, one per output: {parts}, which its shape does not fix)")
    size = shape[axis]
    even = [size // parts + (1 if i < size % parts else 0) for i in range(parts)]  # (zeros where too short)
    rest = [1] * (parts - 1)
    heavy = [[size - parts + 1, *rest], [*rest, size - parts + 1]] if size >= parts else []
    return Domain.of([even, *heavy], f"{what} of size {size})")


def reshaped(shape: tuple[int, ...], target: list[int], allowzero: int) -> list[int] | None:
    """The shape Reshape gives ``shape`` for ``target`` (0 copies an axis unless
    ``allowzero``; one -1 is inferred), or None where the op rejects it."""
    out, inferred = [], None
    for index, entry in enumerate(target):
        if entry == -1:
            if inferred is not None:
                return None
            inferred = index
            out.append(1)
        elif entry == 0 and not allowzero:
            if index >= len(shape):
                return None
            out.append(shape[index])
        elif entry < 0:
            return None
        else:
            out.append(entry)
    count = math.prod(shape)
    if inferred is not None:
        known = math.prod(out)
        if (allowzero and 0 in target) or known == 0 or count % known:
            return None
        out[inferred] = count // known
    return out if math.prod(out) == count else None


def reshape_target(node: Any, position: int, graph: GraphView) -> Domain | Undrawable | None:
    """Reshape's target shape: forms that keep the element count — the shape itself, copies
    (0) and an inferred axis (-1), flattened, and split at a divisor. Where the data's sizes are
    drawn, only copies and -1 (valid at every size)."""
    if position != 1:
        return None
    what = f"the target shape of {node_label(node)} (it must keep the number of elements"
    count, rank = _length(graph, node, 1), graph.rank(node.input[0])
    if count is None or rank is None:
        return Undrawable(f"it is {what}; its length or the data's rank is not known before the run)")
    allowzero = attribute(node, "allowzero", 0)
    shape = graph.fixed(node.input[0])
    candidates: list[list[int]] = []
    if not allowzero:  # copies: valid whatever the sizes
        if count - 1 <= rank and count:
            candidates.append([0] * (count - 1) + [-1])
        if count >= rank:
            candidates.append([0] * rank + [1] * (count - rank))
    if shape is not None:
        total = math.prod(shape)
        ones = [1] * max(count - 1, 0)
        candidates[:0] = [list(shape)] if count == rank else []
        candidates += [[-1, *ones], [*ones, -1], [total, *ones], [*ones, total]]
        divisors = [d for d in range(2, total) if total % d == 0][:3]
        candidates += [[d, -1, *ones[1:]] for d in divisors if count >= 2]
        candidates = [c for c in candidates if reshaped(shape, c, allowzero) is not None]
    else:
        candidates = [c for c in candidates if reshaped(tuple(max(s or 1, 1) for s in graph.shapes[node.input[0]]), c, 0)]
    candidates = [c for c in candidates if len(c) == count]
    if not candidates:
        return Undrawable(f"it is {what}; no target of length {count} does so for every drawn size)")
    return Domain.of(candidates[:8], f"{what})")


def _resized_axes(node: Any, rank: int) -> tuple[list[int], list[int]]:
    """(the axes Resize's scales or sizes list, the ones drawn other than 1: the spatial
    axes of an image (2 onward) unless the node lists its axes or the rank is below 3)."""
    listed = attribute(node, "axes", None)
    axes = [a % rank for a in listed] if listed else list(range(rank))
    spatial = axes if listed or rank < 3 else [a for a in axes if a >= 2]
    return axes, spatial


def resize_inputs(node: Any, position: int, graph: GraphView) -> Domain | Undrawable | None:
    """Resize's (and Upsample's) region, scales and sizes: each axis its own — the spatial
    axes doubled, halved, or one of each; batch and channels kept."""
    if position not in (1, 2, 3):
        return None
    rank = graph.rank(node.input[0])
    label = node_label(node)
    if rank is None:
        if position == 1:
            return None
        return Undrawable(f"it is the scales or sizes of {label}, one per axis of data whose rank is not known")
    axes, spatial = _resized_axes(node, rank)
    length = _length(graph, node, position)
    if length == 0:
        return None  # an empty input: not used
    if position == 1:
        mode = attribute(node, "coordinate_transformation_mode", b"half_pixel")
        if mode not in (b"tf_crop_and_resize", "tf_crop_and_resize"):
            return None  # the region is read only when cropping
        if length != 2 * len(axes):
            return Undrawable(f"it is the crop region of {label}: {2 * len(axes)} values, which its shape does not fix")
        whole = [0.0] * len(axes) + [1.0] * len(axes)
        crop = [0.2 if a in spatial else 0.0 for a in axes] + [0.8 if a in spatial else 1.0 for a in axes]
        return Domain.of([whole, crop], f"the crop region of {label} (starts then ends, within [0, 1])")
    what = "scales" if position == 2 else "sizes"
    if length != len(axes):
        return Undrawable(f"it is the {what} of {label}: one per resized axis ({len(axes)}), which its shape does not fix")
    factors = [[2.0] * len(spatial), [0.5] * len(spatial), [2.0 if i % 2 == 0 else 0.5 for i in range(len(spatial))]]
    if position == 2:
        choices = [[f[spatial.index(a)] if a in spatial else 1.0 for a in axes] for f in factors]
        return Domain.of(choices, f"the scales of {label} (spatial axes doubled or halved, the others 1)")
    # (None only where not read: a spatial axis of a drawn shape)
    sizes = cast("list[int]", [graph.size(node.input[0], a) for a in axes])
    shape = graph.fixed(node.input[0])
    if shape is None and any(a not in spatial for a in axes):
        return Undrawable(
            f"it is the sizes of {label}: batch and channels must stay as they are, and their sizes are drawn"
        )
    choices = []
    for f in factors:
        row: list[float] = []
        for a, size in zip(axes, sizes):
            if a not in spatial:
                row.append(size)
            elif shape is None:
                row.append(SMALL if f[spatial.index(a)] > 1 else 2)  # a fixed size, whatever the drawn one
            else:
                row.append(max(1, int(size * f[spatial.index(a)])))
        choices.append(row)
    return Domain.of(choices, f"the sizes of {label} (spatial axes doubled or halved, the others kept)")


def squeeze_axes(node: Any, position: int, graph: GraphView) -> Domain | Undrawable | None:
    """Squeeze's axes: axes of size 1 (known before the run), each once."""
    if position != 1:
        return None
    shape, count = graph.shapes.get(node.input[0]), _length(graph, node, 1)
    name = node.input[0]
    ones = [a for a, size in enumerate(shape or ()) if size == 1 and (name, a) not in graph.free]
    if shape is None or count is None or count > len(ones):
        return Undrawable(
            f"it is the axes of {node_label(node)}, each of which must be of size 1, and "
            f"{'no' if not ones else len(ones)} axis of size 1 is known before the run"
        )
    picks = [list(p) for p in itertools.islice(itertools.combinations(ones, count), 4)]
    rank = len(shape)
    picks += [[a - rank for a in picks[0]]] if count else []
    return Domain.of(picks, f"the axes of {node_label(node)} (of size 1: {ones})")


def affine_grid_size(node: Any, position: int, graph: GraphView) -> Domain | Undrawable | None:
    """AffineGrid's output size: theta's batch, then channels and spatial sizes."""
    if position != 1:
        return None
    theta = graph.fixed(node.input[0])
    count = _length(graph, node, 1)
    if theta is None or count not in (4, 5):
        return Undrawable(f"it is the output size of {node_label(node)} (its batch must be theta's, not known before the run)")
    batch = theta[0]
    rows = [[batch, 1, 3, 4], [batch, 2, 5, 2]] if count == 4 else [[batch, 1, 2, 3, 4], [batch, 2, 3, 2, 2]]
    return Domain.of(rows, f"the output size of {node_label(node)} (theta's batch {batch})")


def col2im_shapes(node: Any, position: int, graph: GraphView) -> Domain | Undrawable | None:
    """Col2Im's image and block shapes: the first pair, largest blocks first, that matches the
    columns' sizes (a 1x1 block makes Col2Im a reshape: none of the overlap-add an export can
    get wrong would run). The two inputs must agree, so each takes that one value."""
    if position not in (1, 2):
        return None
    columns = graph.fixed(node.input[0])
    spatial = _length(graph, node, 1)
    label = node_label(node)
    if columns is None or len(columns) != 3 or spatial is None or _length(graph, node, 2) != spatial:
        return Undrawable(f"it is the image or block shape of {label} (they must match the columns, not known before the run)")
    ones = [1] * spatial
    dilations = attribute(node, "dilations", ones)
    strides = attribute(node, "strides", ones)
    pads = attribute(node, "pads", [0] * 2 * spatial)
    for block in sorted(itertools.product(range(1, 6), repeat=spatial), key=lambda b: -math.prod(b)):
        if columns[1] % math.prod(block):
            continue
        for image in itertools.product(range(1, 13), repeat=spatial):
            blocks = [
                (image[i] + pads[i] + pads[i + spatial] - dilations[i] * (block[i] - 1) - 1) // strides[i] + 1
                for i in range(spatial)
            ]
            if min(blocks) >= 1 and math.prod(blocks) == columns[2]:
                chosen = list(image) if position == 1 else list(block)
                return Domain.of([chosen], f"the {'image' if position == 1 else 'block'} shape of {label} "
                                 f"(image {list(image)} and block {list(block)} match columns {list(columns)})")
    return Undrawable(f"it is the image or block shape of {label}: no small pair matches columns {list(columns)}")


def training_flag(node: Any, position: int, graph: GraphView) -> Domain | Undrawable | None:
    """Dropout's training mode: False (in training, its output is random)."""
    if position != 2:
        return None
    return Domain.of([False], f"the training mode of {node_label(node)} (false: in training its output is random)")


def sequence_position(at: int, *, insert: bool = False) -> Rule:
    """A position in a sequence input (SequenceAt, SequenceErase; SequenceInsert may also name
    the end): within the shortest drawn sequence, in either form (``-n … n-1``)."""

    def rule(node: Any, position: int, graph: GraphView) -> Domain | Undrawable | None:
        if position != at:
            return None
        length = graph.sequence_length(node.input[0])
        if length is None:
            return None  # not known before the run: no constraint
        return Domain(
            -length, length - (0 if insert else 1), f"a position in {node.input[0]!r} of {node_label(node)} (at least {length} long)"
        )

    return rule
