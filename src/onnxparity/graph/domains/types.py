"""What a domain rule reads and returns: the graph it walks (:class:`GraphView`), a drawable
:class:`Domain` and an :class:`Undrawable` input. Shared by :mod:`.rules` and the walk in
the package, so neither imports the other back."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from onnxparity.spec.choices import flat, nested

#: the largest count, size or repeat a drawn input may ask for (outputs stay small)
SMALL = 4


def attribute(node: Any, name: str, default: Any = None) -> Any:
    """The value of ``node``'s attribute ``name``, or ``default`` where it has none."""
    import onnx

    for found in node.attribute:
        if found.name == name:
            return onnx.helper.get_attribute_value(found)
    return default


def node_label(node: Any) -> str:
    """How a rule's reason names a node: its type, and its name where it has one."""
    return f"{node.op_type} {node.name!r}" if node.name else node.op_type


@dataclass(frozen=True)
class Domain:
    """A value range for one input (inclusive), and the ops it comes from."""

    low: float
    high: float
    why: str
    #: an axes list: its values distinct modulo this (the rank), see ``Input.distinct``
    distinct: int | None = None
    #: whole values the input must take one of (Split's sizes, Reshape's target), as nested
    #: tuples of its fixed shape, the simplest first (see ``Input.choices``); None: any in range
    choices: tuple[Any, ...] | None = None

    @classmethod
    def of(cls, choices: list[Any], why: str) -> Domain:
        """A domain of whole values: ``choices`` (nested lists or tuples), duplicates dropped,
        ``low``/``high`` their extremes."""
        kept = tuple(dict.fromkeys(nested(c) for c in choices))
        values = [float(v) for c in kept for v in flat(c)] or [0.0]
        return cls(min(values), max(values), why, choices=kept)


@dataclass(frozen=True)
class Undrawable:
    """No range of drawn values is valid for this input; ``why`` names the op and the reason."""

    why: str


class GraphView:
    """The sizes and ranks of the graph's tensors that are known before a run: the graph
    inputs' as given (their smallest or largest), initializers', and shape inference's."""

    def __init__(
        self,
        proto: Any,
        min_sizes: Mapping[str, tuple[int | None, ...]],
        kinds: Mapping[str, str],
        free: frozenset[tuple[str, int]] = frozenset(),
    ) -> None:
        import onnx

        #: "int" for a graph input of an integer type (a divisor rule applies only to those)
        self.kinds = kinds
        #: (graph input, axis) pairs whose size is drawn: ``min_sizes`` holds their smallest
        self.free = free
        #: sequence value -> the tensor its elements are the rows of (``SplitToSequence``, axis 0)
        self.sequences = {
            node.output[0]: node.input[0]
            for node in proto.graph.node
            if node.op_type == "SplitToSequence"
            and len(node.input) == 1
            and not any(a.name == "axis" and a.i != 0 for a in node.attribute)
            and any(a.name == "keepdims" and a.i == 0 for a in node.attribute)
        }

        self.shapes: dict[str, tuple[int | None, ...]] = dict(min_sizes)
        for tensor in proto.graph.initializer:
            self.shapes[tensor.name] = tuple(tensor.dims)
        try:
            inferred = onnx.shape_inference.infer_shapes(proto).graph.value_info
        except Exception:  # shape inference is a help, never a requirement
            inferred = []
        for value in inferred:
            if value.name not in self.shapes and value.type.tensor_type.HasField("shape"):
                self.shapes[value.name] = tuple(
                    d.dim_value if d.HasField("dim_value") else None for d in value.type.tensor_type.shape.dim
                )

    def rank(self, name: str) -> int | None:
        shape = self.shapes.get(name)
        return None if shape is None else len(shape)

    def sequence_length(self, name: str) -> int | None:
        """The smallest length of sequence ``name`` where a graph input's stacked elements make
        it (:mod:`onnxparity.graph.containers`: ``SplitToSequence`` of axis 0, one per row)."""
        stacked = self.sequences.get(name)
        return None if stacked is None else self.size(stacked, 0)

    def fixed(self, name: str) -> tuple[int, ...] | None:
        """``name``'s shape where every size is known before the run (none drawn), else None."""
        shape = self.shapes.get(name)
        if shape is None or None in shape or any((name, axis) in self.free for axis in range(len(shape))):
            return None
        return shape  # type: ignore[return-value]

    def size(self, name: str, axis: int) -> int | None:
        """The smallest size of ``name``'s axis ``axis`` (negative counts from the end)."""
        shape = self.shapes.get(name)
        if shape is None or not -len(shape) <= axis < len(shape):
            return None
        return shape[axis]
