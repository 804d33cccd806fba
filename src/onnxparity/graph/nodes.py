"""An ONNX graph's nodes: walking them (subgraphs included), their domains, where the framework
says they came from, and the values that leave a set of them. Reads a loaded model; runs nothing.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from onnxparity.spec.budgets import STANDARD_DOMAINS as STANDARD_DOMAINS  # (these three: re-exported)
from onnxparity.spec.budgets import canonical_domain as canonical_domain
from onnxparity.spec.budgets import is_standard_domain as is_standard_domain


#: the two spellings of ONNX's standard operator domain.
def walk_nodes(graph: Any, where: str = "") -> Iterator[tuple[Any, str]]:
    """``(node, where)`` for every node of ``graph``, subgraphs (If/Loop/Scan bodies) included;
    ``where`` is the path to a subgraph's node, like ``"If_0/then_branch/"`` (``""`` at the top)."""
    for node in graph.node:
        yield node, where
        for attribute in node.attribute:
            subgraphs = ([attribute.g] if attribute.HasField("g") else []) + list(attribute.graphs)
            for sub in subgraphs:
                yield from walk_nodes(sub, f"{where}{node.name or node.op_type}/{attribute.name}/")


def all_graphs(graph: Any) -> Iterator[Any]:
    """``graph`` and every subgraph in it."""
    yield graph
    for node, _ in walk_nodes(graph):
        for attribute in node.attribute:
            if attribute.HasField("g"):
                yield attribute.g
            yield from attribute.graphs


def default_opset(proto: Any) -> int | None:
    """The model's opset of the standard domain (None when it imports none)."""
    for entry in proto.opset_import:
        if is_standard_domain(entry.domain):
            return int(entry.version)
    return None


def with_outputs(model: Any, names: set[str]) -> Any:
    """A copy of ``model`` whose graph outputs also list ``names`` (untyped: ORT infers them)."""
    import onnx

    copy = onnx.ModelProto()
    copy.CopyFrom(model)
    known = {o.name for o in copy.graph.output}
    for name in sorted(names - known):
        copy.graph.output.append(onnx.ValueInfoProto(name=name))
    return copy


def node_source(node: Any) -> str | None:
    """The framework-side module or layer ``node`` came from, where the exporter recorded it;
    None otherwise (never guessed from an op's own name).

    - PyTorch's dynamo exporter: metadata ``pkg.torch.onnx.name_scopes``, each entry a module's
      qualified name (``['', 'encoder', 'encoder.layers.0', 'encoder.layers.0.linear1',
      'linear']`` → ``encoder.layers.0.linear1``; the last entry is the op itself, the first the
      root module).
    - PyTorch's TorchScript exporter: the node name's scope (``/encoder/layers.0/linear1/MatMul``
      → ``encoder.layers.0.linear1``).
    - tf2onnx: the node name's scope (``sequential/dense/MatMul`` → ``sequential/dense``).
    """
    for entry in getattr(node, "metadata_props", ()):
        if entry.key == "pkg.torch.onnx.name_scopes":
            scopes = [s.strip(" '\"") for s in entry.value.strip("[]").split(",")]
            modules = [s for s in scopes[1:-1] if s]
            cumulative = all(b.startswith(f"{a}.") for a, b in zip(modules, modules[1:]))
            return (modules[-1] if cumulative else ".".join(modules)) if modules else None
    name = getattr(node, "name", "") or ""
    if "/" not in name.strip("/"):
        return None
    scope = name.rsplit("/", 1)[0]
    return scope.strip("/").replace("/", ".") if name.startswith("/") else scope


def scope_tokens(node: Any) -> list[str]:
    """The scope of a node's name as tokens: ``/encoder/layers.0/linear1/MatMul`` ->
    ``['encoder', 'layers', '0', 'linear1']``; ``model_1/dense_1/MatMul`` -> ``['model_1', 'dense_1']``."""
    parts = (getattr(node, "name", "") or "").strip("/").split("/")[:-1]
    return [token for part in parts for token in part.split(".") if token]


def leaving_values(graph: Any, belongs: Any) -> list[str]:
    """The values produced by nodes for which ``belongs(node)`` holds and read by a node for
    which it does not (or that are graph outputs), in graph order: what leaves that part."""
    inside = {id(node) for node in graph.node if belongs(node)}
    produced = [out for node in graph.node if id(node) in inside for out in node.output if out]
    read_outside = {value for node in graph.node if id(node) not in inside for value in node.input}
    outputs = {o.name for o in graph.output}
    return [value for value in produced if value in read_outside or value in outputs]


def node_names(nodes: Iterable[Any]) -> list[str]:
    """Each node's name, or ``<op type>#<index>`` for a node without one."""
    return [node.name or f"{node.op_type}#{i}" for i, node in enumerate(nodes)]
