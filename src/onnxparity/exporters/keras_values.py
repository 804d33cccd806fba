"""A Keras model's layer outputs, by the name of the ONNX value each became (tf2onnx exports).

tf2onnx names every node after the TensorFlow op it converts, and those carry the layer's scope:
``sequential_1/dense_1/MatMul``. Keras 3 traces each layer under its name plus one ``_N``
suffix (layer ``dense`` is scope ``dense_1``, layer ``dense_1`` is ``dense_1_2``), so a scope
token names a layer once that one suffix is dropped. A Sequential or functional model's layer
outputs are read through a second model with them as outputs, on the failing input; each pairs
with the one ONNX value that leaves the layer's nodes (produced inside, read outside). A layer
with several such values, or several outputs, is left out rather than guessed; a subclassed
model has no layer outputs to read, and the caller says so.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import numpy as np

from ..errors import NoMapping
from ..onnxutils import leaving_values
from ..spec import ParitySpec

_SUFFIX = re.compile(r"_\d+$")


def layer_of(token: str) -> str:
    """The Keras 3 layer name a tf2onnx scope token stands for (its one ``_N`` suffix dropped)."""
    return _SUFFIX.sub("", token)


def _scopes(node: Any) -> list[str]:
    return (node.name or "").strip("/").split("/")[:-1]


def source_of(node: Any) -> str | None:
    """The layer a node of a tf2onnx export of a Keras model came from (None: not in one)."""
    scopes = _scopes(node)
    return layer_of(scopes[1]) if len(scopes) > 1 else None


def intermediates(
    model: Any, spec: ParitySpec, ordered: list, feeds: Mapping[str, np.ndarray], graph: Any
) -> dict:
    import keras

    layers = [layer for layer in getattr(model, "layers", []) if type(layer).__name__ != "InputLayer"]
    try:
        probe = keras.Model(model.inputs, [layer.output for layer in layers])
    except Exception:
        raise NoMapping(
            "only Sequential and functional Keras models expose their layers' outputs; this one is "
            "subclassed (or a layer has several outputs)"
        ) from None
    arrays = [np.array(feeds[i.name]) for i in ordered]
    try:
        outputs = probe(arrays, training=False)
    except Exception as exc:
        raise NoMapping(
            f"the model's layers did not run on the failing input ({type(exc).__name__})"
        ) from None
    tokens = [(node, [layer_of(s) for s in _scopes(node)]) for node in graph.node]
    paired: dict[str, np.ndarray] = {}
    for layer, output in zip(layers, outputs if isinstance(outputs, (list, tuple)) else [outputs]):
        if isinstance(output, (list, tuple, dict)):
            continue
        members = {id(node) for node, names in tokens if layer.name in names}
        leaving = leaving_values(graph, lambda node, members=members: id(node) in members) if members else []
        if len(leaving) == 1 and leaving[0] not in paired:
            paired[leaving[0]] = np.asarray(output)
    if not paired:
        raise NoMapping(
            "no layer's output pairs with exactly one value of the ONNX graph (not a tf2onnx export?)"
        )
    return paired
