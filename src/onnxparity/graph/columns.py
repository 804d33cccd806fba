"""Which of a graph input's values a value of the graph holds, through the ops between a tabular
input and the nodes that branch on it: casts and reshapes, scalar affine ops (``x * 255``), and
column selection and plumbing — ``Gather``/``ArrayFeatureExtractor`` of constant columns,
``Slice``, ``Split`` and ``Concat`` along the last axis, per-column affine ops (``Scaler``, a
``Sub``/``Div`` by one constant per column): what scikit-learn's ``ColumnTransformer`` and
``Pipeline`` become in skl2onnx, or ``x[:, 2]`` in torch. :mod:`.boundaries` follows each graph
input forward through the nodes (in graph order) and maps a threshold back to the input column
it belongs to. Reads the graph only.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import NamedTuple

import numpy as np
import onnx

from onnxparity.graph.domains.types import attribute


class Source(NamedTuple):
    """The values one position holds: ``scale * x[..., column] + shift`` of the input ``x``
    (``column`` None: some column of it, not known which)."""

    column: int | None
    scale: float = 1.0
    shift: float = 0.0

    def then(self, scale: float, shift: float) -> Source:
        """This source with ``scale * v + shift`` applied after it."""
        return Source(self.column, scale * self.scale, scale * self.shift + shift)

    def inverse(self, value: float) -> float | None:
        """The input value that becomes ``value`` here (None where the scale is 0)."""
        return (value - self.shift) / self.scale if self.scale else None


class Trace(NamedTuple):
    """How a value holds one graph input's values.

    ``positions``: where known one by one, the source of each position along the value's last
    axis (None: a position holding something else, e.g. another input's column or a computed
    one). Otherwise ``every`` is the source of every element: one column's values, or (its
    ``column`` None) any of them — or, where ``identity``, position ``j`` of the last axis is
    column ``j`` (``width`` of them, None where not fixed), as in the input itself.
    ``rank``: the value's rank, None where not known."""

    positions: tuple[Source | None, ...] | None
    every: Source | None
    identity: bool = False
    rank: int | None = None
    width: int | None = None

    @staticmethod
    def start(item: onnx.ValueInfoProto) -> Trace:
        """A graph input itself: column ``j`` at position ``j`` of its last axis."""
        tensor = item.type.tensor_type if item.type.HasField("tensor_type") else None
        dims = list(tensor.shape.dim) if tensor is not None and tensor.HasField("shape") else None
        if not dims:  # a scalar, or a rank not known: its values as a whole
            return Trace(None, Source(None), rank=0 if dims == [] else None)
        fixed = int(dims[-1].dim_value) if dims[-1].HasField("dim_value") else None
        return Trace(None, Source(None), identity=True, rank=len(dims), width=fixed)

    @property
    def size(self) -> int | None:
        """How many positions the last axis has, where known."""
        return len(self.positions) if self.positions is not None else self.width if self.identity else None

    def one_by_one(self) -> tuple[Source | None, ...] | None:
        """The source of each position (None where not known, or wider than :data:`MAX_COLUMNS`)."""
        if self.positions is not None:
            return self.positions
        if self.identity and self.width is not None and self.width <= MAX_COLUMNS:
            assert self.every is not None
            return tuple(Source(j, *self.every[1:]) for j in range(self.width))
        return None

    def at(self, position: int) -> Source | None:
        """The source of a position along the last axis (None: not this input's, or not known)."""
        size = self.size
        if position < 0 or (size is not None and position >= size):
            return None
        if self.positions is not None:
            return self.positions[position]
        assert self.every is not None
        return Source(position, *self.every[1:]) if self.identity else self.every

    def everywhere(self) -> list[Source]:
        """The sources of all positions: what a value applied to every element meets (the
        input's columns as a whole where ``identity``)."""
        if self.positions is not None:
            return list(dict.fromkeys(s for s in self.positions if s is not None))
        assert self.every is not None
        return [self.every]

    def then(self, scale: float, shift: float, rank: int | None) -> Trace:
        if self.positions is not None:
            return _traced(tuple(None if s is None else s.then(scale, shift) for s in self.positions), rank)
        assert self.every is not None
        return self._replace(every=self.every.then(scale, shift), rank=rank)

    def ranked(self, rank: int | None) -> Trace:
        return self._replace(rank=rank)

    def lost(self, rank: int | None = None) -> Trace:
        """The same values, their columns no longer known (one column stays one column)."""
        if self.every is not None and not self.identity:
            return self._replace(rank=rank)
        uniform = {(s.scale, s.shift) for s in self.everywhere()}
        if len(uniform) != 1:  # positions under different affine maps, mixed: nothing to map back
            return Trace(None, Source(None, 0.0, 0.0), rank=rank)
        return Trace(None, Source(None, *uniform.pop()), rank=rank)

    def picked(self, indices: Sequence[int], rank: int | None) -> Trace | None:
        """Positions ``indices`` of the last axis (None: none of them holds this input)."""
        if self.positions is None and not self.identity:
            return self.ranked(rank)  # one column, or any: still that
        size = self.size
        if size is not None:
            if any(not -size <= i < size for i in indices):
                return self.lost(rank)
            indices = [i + size if i < 0 else i for i in indices]
        elif any(i < 0 for i in indices):
            return self.lost(rank)
        found = tuple(self.at(i) for i in indices)
        return _traced(found, rank) if any(s is not None for s in found) else None


#: at most this many positions are followed one by one (a wider last axis: as a whole)
MAX_COLUMNS = 4096


def _traced(positions: tuple[Source | None, ...], rank: int | None) -> Trace:
    """A trace of these positions: one source everywhere where every position has it."""
    kinds = set(positions)
    if len(kinds) == 1 and None not in kinds:
        return Trace(None, positions[0], rank=rank)
    return Trace(positions, None, rank=rank)


def is_last(axis: int, rank: int | None) -> bool | None:
    """Whether ``axis`` is the last axis of a value of ``rank`` (None: cannot tell)."""
    if rank is not None:
        return (axis + rank if axis < 0 else axis) == rank - 1
    return True if axis == -1 else False if axis < -1 else None


def _ints(name: str, constants: Mapping[str, np.ndarray]) -> list[int] | None:
    if not name or name not in constants or constants[name].dtype.kind not in "iu":
        return None
    return [int(v) for v in constants[name].ravel()]



Widths = Callable[[str], "int | None"]


def step(
    node: onnx.NodeProto,
    read: Mapping[int, Trace],
    constants: Mapping[str, np.ndarray],
    width: Widths,
) -> list[tuple[str, Trace]]:
    """The outputs of ``node`` that hold the traced input's values, with their traces, given
    the traces of the node's inputs that do (``read``: by input position)."""
    op = node.op_type
    if not node.output:
        return []
    out = node.output[0]
    if op == "Concat":
        return [(out, t)] if (t := _concat(node, read, constants, width)) is not None else []
    if op in ("Add", "Sub", "Mul", "Div", "Neg", "Scaler"):
        return [(out, t)] if (t := _affine(node, read, constants)) is not None else []
    if 0 not in read:
        return []
    trace = read[0]
    if op in _KEEPS:
        return [(out, trace)]
    if op == "Split":
        return _split(node, trace, constants)
    found = _reshaped(node, trace, constants) if op in _SHAPES else _selected(node, trace, constants)
    return [(out, found)] if found is not None else []


#: ops whose (first) output holds the same values as their first input, in the same shape
_KEEPS = {"Cast", "CastLike", "Identity", "Dropout", "Imputer"}
_SHAPES = {"Reshape", "Flatten", "Squeeze", "Unsqueeze", "Transpose", "Expand", "Tile"}


def _reshaped(node: onnx.NodeProto, trace: Trace, constants: Mapping[str, np.ndarray]) -> Trace | None:
    """Reshape and kin: the columns stay where the last axis does."""
    op, rank = node.op_type, trace.rank
    width = trace.size
    if op == "Reshape":
        shape = _ints(node.input[1] if len(node.input) > 1 else "", constants)
        if shape is None:
            return trace.lost()
        kept = shape and (
            (width is not None and shape[-1] == width)
            or (shape[-1] == 0 and len(shape) == rank and not attribute(node, "allowzero", 0))
        )
        return trace.ranked(len(shape)) if kept else trace.lost(len(shape))
    if op == "Flatten":
        axis = attribute(node, "axis", 1)
        return trace.ranked(2) if rank is not None and is_last(axis, rank) else trace.lost(2)
    if op == "Transpose":
        perm = attribute(node, "perm")
        if perm is None:
            return trace if rank == 1 else trace.lost(rank)
        return trace.ranked(len(perm)) if perm[-1] == len(perm) - 1 else trace.lost(len(perm))
    if op in ("Squeeze", "Unsqueeze"):
        axes = attribute(node, "axes") or _ints(node.input[1] if len(node.input) > 1 else "", constants)
        if op == "Squeeze" and axes is None:  # every axis of size 1: not the last where it is wider
            return trace.ranked(None) if width is not None and width > 1 else trace.lost()
        if axes is None:
            return trace.lost()
        new = None if rank is None else rank + len(axes) if op == "Unsqueeze" else rank - len(axes)
        touched = [is_last(a, new if op == "Unsqueeze" else rank) for a in axes]
        return trace.ranked(new) if not any(t is None or t for t in touched) else trace.lost(new)
    if op == "Expand":  # broadcasting keeps a last axis wider than 1
        shape = _ints(node.input[1] if len(node.input) > 1 else "", constants)
        new = None if shape is None or rank is None else max(rank, len(shape))
        return (
            trace.ranked(new) if width != 1 and (width is not None or not trace.identity) else trace.lost(new)
        )
    repeats = _ints(node.input[1] if len(node.input) > 1 else "", constants)  # Tile
    if trace.positions is None and not trace.identity:
        return trace
    positions = trace.one_by_one()
    if (
        positions is not None
        and repeats
        and len(repeats) == rank
        and len(positions) * repeats[-1] <= MAX_COLUMNS
    ):
        return _traced(positions * repeats[-1], rank)
    return trace.lost(rank)


def _selected(node: onnx.NodeProto, trace: Trace, constants: Mapping[str, np.ndarray]) -> Trace | None:
    """Gather and ArrayFeatureExtractor of constant indices, Slice of constant bounds."""
    op, rank = node.op_type, trace.rank
    if op == "ArrayFeatureExtractor":
        indices: list[int] | np.ndarray | None  # a list here, an array for Gather
        indices = _ints(node.input[1], constants)
        return trace.lost() if indices is None else trace.picked(indices, rank)
    if op == "Gather":
        if len(node.input) < 2 or node.input[1] not in constants:
            return trace.lost()
        indices = constants[node.input[1]]
        if indices.dtype.kind not in "iu":
            return trace.lost()
        new = None if rank is None else rank - 1 + indices.ndim
        last = is_last(attribute(node, "axis", 0), rank)
        if last is False:
            return trace.ranked(new)
        if last is None or indices.ndim > 1:
            return trace.lost(new)
        return trace.picked([int(i) for i in indices.ravel()], new)
    if op == "Slice":
        return _sliced(node, trace, constants)
    return None


def _sliced(node: onnx.NodeProto, trace: Trace, constants: Mapping[str, np.ndarray]) -> Trace | None:
    rank = trace.rank
    if len(node.input) >= 3:  # opset 10 on: bounds as inputs
        starts, ends = _ints(node.input[1], constants), _ints(node.input[2], constants)
        axes = _ints(node.input[3], constants) if len(node.input) > 3 and node.input[3] else None
        steps = _ints(node.input[4], constants) if len(node.input) > 4 and node.input[4] else None
        if len(node.input) > 3 and node.input[3] and axes is None:
            return trace.lost()
    else:
        starts, ends, axes = attribute(node, "starts"), attribute(node, "ends"), attribute(node, "axes")
        steps = None
    if starts is None or ends is None or (len(node.input) > 4 and node.input[4] and steps is None):
        return trace.lost()
    axes = list(axes) if axes is not None else list(range(len(starts)))
    steps = list(steps) if steps is not None else [1] * len(starts)
    found = trace
    for axis, start, end, stride in zip(axes, starts, ends, steps):
        last = is_last(axis, rank)
        if last is None or stride == 0:
            return trace.lost()
        if not last:
            continue
        if found.positions is None and not found.identity:
            continue  # one column, or any: still that
        if found.size is None or found.size > MAX_COLUMNS:
            return found.lost()
        chosen = list(range(found.size))[slice(start, end, stride)]
        picked = found.picked(chosen, rank) if chosen else None
        if picked is None:
            return None
        found = picked
    return found


def _split(node: onnx.NodeProto, trace: Trace, constants: Mapping[str, np.ndarray]) -> list[tuple[str, Trace]]:
    axis, outputs = attribute(node, "axis", 0), [o for o in node.output]
    last = is_last(axis, trace.rank)
    if last is False or (trace.positions is None and not trace.identity):
        return [(o, trace) for o in outputs if o]
    width = trace.size
    if last is None or width is None or width > MAX_COLUMNS:
        return [(o, trace.lost()) for o in outputs if o]
    sizes = _ints(node.input[1], constants) if len(node.input) > 1 and node.input[1] else None
    sizes = sizes or attribute(node, "split")
    if not sizes:  # equal parts, the last one smaller (opset 18's num_outputs)
        size = math.ceil(width / len(outputs))
        sizes = [min(size, max(0, width - k * size)) for k in range(len(outputs))]
    found, start = [], 0
    for name, size in zip(outputs, sizes):
        picked = trace.picked(list(range(start, start + size)), trace.rank) if size > 0 else None
        if name and picked is not None:
            found.append((name, picked))
        start += size
    return found


def _concat(
    node: onnx.NodeProto, read: Mapping[int, Trace], constants: Mapping[str, np.ndarray], width: Widths
) -> Trace | None:
    """Concat: along the last axis, which position came from which input (its width from the
    traces, the constants or the graph's shapes); along another, the columns where every traced
    input agrees on them."""
    first = next(iter(read.values()))
    last = is_last(attribute(node, "axis", 0), first.rank)
    if last is False:
        return first if all(t == first for t in read.values()) else first.lost()
    if last is None:
        return first.lost()
    positions: list[Source | None] = []
    for index, name in enumerate(node.input):
        trace = read.get(index)
        known = trace.one_by_one() if trace is not None else None
        if known is not None:
            positions += known
            continue
        size = width(name) if name not in constants else (constants[name].shape or (1,))[-1]
        if size is None or len(positions) + size > MAX_COLUMNS:
            return first.lost()
        if trace is None:
            positions += [None] * size
        else:
            positions += [trace.at(j) for j in range(size)]
    return _traced(tuple(positions), first.rank) if any(s is not None for s in positions) else None


def _affine(node: onnx.NodeProto, read: Mapping[int, Trace], constants: Mapping[str, np.ndarray]) -> Trace | None:
    """Add/Sub/Mul/Div by a constant (one value, or one per column), Neg, and ai.onnx.ml's
    Scaler (``(x - offset) * scale``, per column)."""
    op = node.op_type
    if op in ("Neg", "Scaler"):
        if 0 not in read:
            return None
        trace = read[0]
        if op == "Neg":
            return trace.then(-1.0, 0.0, trace.rank)
        offset = [float(v) for v in attribute(node, "offset", [0.0])]
        scale: list[float] | np.ndarray = [float(v) for v in attribute(node, "scale", [1.0])]
        return _per_column(trace, np.asarray(scale), -np.asarray(offset) * np.asarray(scale))
    if len(node.input) != 2 or len(read) != 1:
        return None
    ((index, trace),) = read.items()
    other = node.input[1 - index]
    if other not in constants or constants[other].dtype.kind not in "iuf" or not constants[other].size:
        return None
    k = constants[other].astype(np.float64)
    rank = None if trace.rank is None else max(trace.rank, k.ndim)
    if op == "Add":
        scale, shift = np.ones_like(k), k
    elif op == "Mul":
        scale, shift = k, np.zeros_like(k)
    elif op == "Sub":
        scale, shift = (np.ones_like(k), -k) if index == 0 else (-np.ones_like(k), k)
    elif index == 0 and np.all(k != 0):  # Div of the input by a constant
        scale, shift = 1.0 / k, np.zeros_like(k)
    else:
        return None
    if k.size == 1:
        s = float(scale.ravel()[0])
        return trace.then(s, float(shift.ravel()[0]), rank) if s != 0 else None
    if any(d != 1 for d in k.shape[:-1]):  # not one value per column
        return None
    return _per_column(trace, scale.ravel(), shift.ravel(), rank)


def _per_column(trace: Trace, scale: np.ndarray, shift: np.ndarray, rank: int | None = None) -> Trace | None:
    """``trace`` with ``scale * v + shift`` applied per last-axis position (one value: all)."""
    rank = trace.rank if rank is None else rank
    if scale.size == 1 and shift.size == 1:
        return trace.then(float(scale[0]), float(shift[0]), rank) if scale[0] != 0 else None
    positions = trace.one_by_one()
    if positions is None:
        if trace.every is None or trace.identity:
            return None
        positions = (trace.every,) * max(scale.size, shift.size)  # one column, broadcast
    n = len(positions)
    if scale.size not in (1, n) or shift.size not in (1, n):
        return None
    scale, shift = np.broadcast_to(scale, (n,)), np.broadcast_to(shift, (n,))
    found = tuple(
        None if s is None or a == 0 else s.then(float(a), float(b))
        for s, a, b in zip(positions, scale, shift)
    )
    return _traced(found, rank) if any(s is not None for s in found) else None
