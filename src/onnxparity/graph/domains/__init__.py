"""Input domains read from the graph: the values a graph input may take, from the ops that
consume it.

A prebuilt ONNX file says what its inputs are for even where it declares no range: an input
fed to ``Gather``'s indices must lie within the indexed axis, one fed to ``ReduceSum``'s axes
within the rank, ``Tile``'s repeats and ``Pad``'s pads set how large the output grows, a
``Div`` of integers needs a divisor that is not 0, ``QuantizeLinear``'s scale is positive.
:func:`derive` follows each graph input to its consumers and gives either a :class:`Domain` (a
value range, with the reason) or an :class:`Undrawable` (no honest range exists, such as
``Reshape``'s target shape, which must multiply to the input's size): the caller then names the
input, the op and how to declare it instead of drawing values the op rejects.

Sizes are the smallest an axis can be (a symbolic axis of an inferred input: 1), so a derived
range is valid for every drawn shape. Knows nothing of frameworks, runtimes or pytest.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, cast

import numpy as np

from onnxparity.graph.domains.types import SMALL as SMALL  # (these four: re-exported)
from onnxparity.graph.domains.types import Domain as Domain
from onnxparity.graph.domains.types import GraphView as GraphView
from onnxparity.graph.domains.types import Undrawable as Undrawable
from onnxparity.graph.nodes import is_standard_domain, walk_nodes
from onnxparity.spec.choices import flat
from onnxparity.spec.dtypes import INTEGERS

#: ops whose outputs hold some of the values of their inputs at these positions (rearranged,
#: a part of them, or one of two): a rule met after them applies to the graph input, since
#: every value it constrains came from it
CARRIERS: dict[str, tuple[int, ...]] = {
    **dict.fromkeys(("Identity", "Unsqueeze", "Squeeze", "Reshape", "Flatten", "Transpose", "Expand"), (0,)),
    **dict.fromkeys(("Slice", "Gather", "GatherElements", "Split", "Tile"), (0,)),
    "Where": (1, 2),
    "Concat": tuple(range(64)),
}


def derive(proto: Any, inputs: Sequence[Any]) -> dict[str, Domain | Undrawable]:
    """The domain of each of ``inputs`` (:class:`~onnxparity.spec.Input`) the graph states,
    by input name (inputs no rule constrains are absent)."""
    min_sizes = {
        i.name: tuple(e if isinstance(e, int) else 1 for e in i.shape)  # a symbolic axis: 1 at least
        for i in inputs
    }
    kinds = {i.name: ("int" if i.dtype in INTEGERS else "other") for i in inputs}
    free = frozenset((i.name, axis) for i in inputs for axis, e in enumerate(i.shape) if not isinstance(e, int))
    graph = GraphView(proto, min_sizes, kinds, free)
    # each graph input, and what carries its values on unchanged (an Unsqueeze of indices)
    carried = {i.name: i.name for i in inputs}
    consumers: dict[str, list[tuple[Any, int]]] = {i.name: [] for i in inputs}
    for node, _ in walk_nodes(proto.graph):  # (topologically sorted, as ONNX requires)
        for position, name in enumerate(node.input):
            if name in carried:
                consumers[carried[name]].append((node, position))
                if position in CARRIERS.get(node.op_type, ()) or _integer_cast(node, kinds[carried[name]]):
                    for output in node.output:
                        carried[output] = carried[name]
    from onnxparity.graph.domains.rules import RULES

    found: dict[str, Domain | Undrawable] = {}
    for name, uses in consumers.items():
        domains = []
        for node, position in uses:
            standard = is_standard_domain(node.domain) or node.domain == "ai.onnx.ml"
            rule = RULES.get(node.op_type) if standard else None
            result = rule(node, position, graph) if rule is not None else None
            if isinstance(result, Undrawable):
                found[name] = result
                break
            if result is not None:
                domains.append(result)
        else:
            if domains:
                found[name] = _meet(domains)
    return found


#: ONNX's integer element types (TensorProto's numbers): a Cast between two keeps each value
_INTEGER_TYPES = frozenset((2, 3, 4, 5, 6, 7, 12, 13))


def _integer_cast(node: Any, kind: str) -> bool:
    """A Cast of integers to integers (indices cast to int64 before a Gather): it carries the
    values on, so the rules of the ops after it bound the input."""
    if node.op_type != "Cast" or kind != "int":
        return False
    to = next((a.i for a in node.attribute if a.name == "to"), None)
    return to in _INTEGER_TYPES


def _meet(domains: list[Domain]) -> Domain | Undrawable:
    """The values every one of ``domains`` allows: the common range, and the choices (where
    any rule gives whole values) that lie in it and in every other rule's choices."""
    low = max(d.low for d in domains)
    high = min(d.high for d in domains)
    why = "; ".join(dict.fromkeys(d.why for d in domains))
    distinct = max((d.distinct for d in domains if d.distinct), default=None)
    listed = [d.choices for d in domains if d.choices is not None]
    if not listed:
        return Domain(low, high, why, distinct) if low <= high else Undrawable(f"no value fits all of: {why}")
    kept = [
        c
        for c in listed[0]
        if all(c in other for other in listed[1:])
        and all(low <= v <= high for v in flat(c))
    ]
    return Domain.of(kept, why) if kept else Undrawable(f"no value fits all of: {why}")


#: ops whose output size an input's values set: (op type, the position of that input)
_SIZERS = {"Tile": 1, "ConstantOfShape": 0, "Expand": 1, "Pad": 1, "OneHot": 1, "Upsample": 1, "Resize": 2}


def output_bounds(proto: Any, inputs: Sequence[Any], dims: Mapping[str, int]) -> list[tuple[str, str, float]]:
    """(input, op, largest output elements) for each input whose values set the size of an
    op's output, at the inputs' largest declared values and ``dims`` (every dim at its
    largest): what a drawn example could ask that op to allocate."""
    from onnxparity.graph.domains.types import node_label

    declared = {i.name: i for i in inputs if i.low is not None and i.dtype not in ("bool", "str")}
    sizers = [
        n
        for n, _ in walk_nodes(proto.graph)
        if n.op_type in _SIZERS and len(n.input) > _SIZERS[n.op_type] and n.input[_SIZERS[n.op_type]] in declared
    ]
    if not sizers:  # the common case: no shape inference to pay for
        return []
    largest = {i.name: tuple(dims.get(e, e) if isinstance(e, str) else e for e in i.shape) for i in inputs}
    graph = GraphView(proto, cast("Mapping[str, tuple[int | None, ...]]", largest), {})  # (every dim in dims)
    found = []
    for node in sizers:
        item = declared[node.input[_SIZERS[node.op_type]]]
        count: tuple[int | None, ...] | int | None  # the input's shape, then its element count
        count = graph.shapes.get(item.name)
        count = int(np.prod(cast("tuple[int, ...]", count))) if count is not None and None not in count else 1
        data = graph.shapes.get(node.input[0]) if node.op_type != "ConstantOfShape" else ()
        if data is None or None in data:
            continue
        elements = float(np.prod(cast("tuple[int, ...]", data), dtype=np.float64)) if data else 1.0
        high = max(abs(float(item.high)), abs(float(item.low)))
        if node.op_type in ("Tile", "Upsample", "Resize"):
            bound = elements * high**count
        elif node.op_type in ("ConstantOfShape", "Expand"):
            bound = max(elements, high**count)
        elif node.op_type == "Pad":
            bound = float(np.prod([d + 2 * high for d in cast("tuple[int, ...]", data)], dtype=np.float64))
        else:  # OneHot: one row of depth per index
            bound = elements * high
        found.append((item.name, node_label(node), bound))
    return found


#: strings every inferred str input is drawn from, beside the graph's own: empty, spaces,
#: case, digits, punctuation and non-ASCII (what string ops split, normalize and match on)
DEFAULT_STRINGS = (
    "",
    "a",
    "A",
    "hello",
    "Hello World",
    " padded ",
    "a.b,c;d",
    "123",
    "ÄÖü ß",
    "www.example.com",
)


def graph_strings(proto: Any, limit: int = 24) -> tuple[str, ...]:
    """The strings a graph holds (attributes such as LabelEncoder's keys, StringNormalizer's
    stopwords, StringSplit's delimiter; string constants and initializers), at most ``limit``:
    the values its string ops treat specially, which a drawn input should hit."""
    import onnx
    from onnx import numpy_helper

    found: dict[str, None] = {}

    def add(value: Any) -> None:
        text = value.decode("utf-8", "replace") if isinstance(value, bytes) else value
        if isinstance(text, str) and len(found) < limit:
            found.setdefault(text)

    for tensor in proto.graph.initializer:
        if tensor.data_type == onnx.TensorProto.STRING:
            for value in numpy_helper.to_array(tensor).ravel()[:limit]:
                add(value)
    for node, _ in walk_nodes(proto.graph):
        for attribute in node.attribute:
            if attribute.type == onnx.AttributeProto.STRINGS:
                for value in attribute.strings[:limit]:
                    add(value)
            elif attribute.type == onnx.AttributeProto.STRING and node.op_type not in ("Cast", "Constant"):
                add(attribute.s)
            elif (
                attribute.type == onnx.AttributeProto.TENSOR
                and attribute.t.data_type == onnx.TensorProto.STRING
            ):
                for value in numpy_helper.to_array(attribute.t).ravel()[:limit]:
                    add(value)
    return tuple(found)
