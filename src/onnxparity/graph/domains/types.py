"""What a domain rule reads and returns: the graph it walks (:class:`GraphView`), a drawable
:class:`Domain` and an :class:`Undrawable` input. Shared by :mod:`.rules` and the walk in
the package, so neither imports the other back."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

#: the largest count, size or repeat a drawn input may ask for (outputs stay small)
SMALL = 4


@dataclass(frozen=True)
class Domain:
    """A value range for one input (inclusive), and the ops it comes from."""

    low: float
    high: float
    why: str
    #: an axes list: its values distinct modulo this (the rank), see ``Input.distinct``
    distinct: int | None = None


@dataclass(frozen=True)
class Undrawable:
    """No range of drawn values is valid for this input; ``why`` names the op and the reason."""

    why: str


class GraphView:
    """The sizes and ranks of the graph's tensors that are known before a run: the graph
    inputs' as given (their smallest or largest), initializers', and shape inference's."""

    def __init__(
        self, proto: Any, min_sizes: Mapping[str, tuple[int | None, ...]], kinds: Mapping[str, str]
    ) -> None:
        import onnx

        #: "int" for a graph input of an integer type (a divisor rule applies only to those)
        self.kinds = kinds

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

    def size(self, name: str, axis: int) -> int | None:
        """The smallest size of ``name``'s axis ``axis`` (negative counts from the end)."""
        shape = self.shapes.get(name)
        if shape is None or not -len(shape) <= axis < len(shape):
            return None
        return shape[axis]
