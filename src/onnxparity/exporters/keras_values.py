"""TensorFlow's intermediate values, by the name of the ONNX value each became (tf2onnx exports).

- **Node by node** (:func:`by_tensor_name`, tried first): tf2onnx names every value it converts
  after the TensorFlow tensor (``functional_1/norm_1/add:0``), and tracing the model again gives
  the same op names, so the trace is pruned to those tensors and run on the failing input. An op
  tf2onnx turns into several nodes keeps its name on the first one, whose value is not the op's
  (``SquaredDifference`` becomes a Sub, then a Mul ``SquaredDifference__6``): those stay
  unpaired. A tf.function with its own signature is traced as one call that tf2onnx inlines;
  its ops are not in the outer trace.
- **Layer by layer** (:func:`intermediates`, for Keras models when the first pairs nothing):
  Keras 3 traces each layer under its name plus one ``_N`` suffix (layer ``dense`` is scope
  ``dense_1``, layer ``dense_1`` is ``dense_1_2``), so a scope token names a layer once that
  suffix is dropped. A Sequential or functional model's layer outputs pair with the one ONNX
  value that leaves each layer's nodes; a layer with several such values, or several outputs,
  is left out rather than guessed.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import numpy as np

from onnxparity.errors import NoMapping
from onnxparity.graph.nodes import leaving_values
from onnxparity.spec import Input, ParitySpec

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
    model: Any, spec: ParitySpec, ordered: list[Input], feeds: Mapping[str, np.ndarray], graph: Any
) -> dict[str, np.ndarray]:
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


def by_tensor_name(
    call: Any, signature: list[Any], ordered: list[Input], feeds: Mapping[str, np.ndarray], graph: Any
) -> dict[str, np.ndarray]:
    """TensorFlow's own value of every ONNX value named after a TensorFlow tensor (``op:0``).

    tf2onnx names the values it converts after the TensorFlow tensors, and tracing the model
    again gives the same op names, so the traced graph is pruned to those tensors and run on
    the failing input (``tf.compat.v1.wrap_function``). Values tf2onnx introduces (``__6:0``)
    have no TensorFlow counterpart and stay unpaired."""
    import tensorflow as tf

    wrapped = tf.compat.v1.wrap_function(lambda *args: call(*args), signature)
    # An op tf2onnx converts to several nodes keeps its name on the first (SquaredDifference ->
    # Sub, then Mul "SquaredDifference__6"): that value is not the op's; such ops stay unpaired.
    split = {node.name.split("__")[0] for node in graph.node if "__" in node.name}
    names, fetches = [], []
    for node in graph.node:
        if node.name in split:
            continue
        for value in node.output:
            if ":" not in value:
                continue
            try:
                tensor = wrapped.graph.get_tensor_by_name(value)
            except (KeyError, ValueError):
                continue
            if tensor.dtype.is_floating or tensor.dtype.is_integer or tensor.dtype == tf.bool:
                names.append(value)
                fetches.append(tensor)
    if not fetches:
        return {}
    placeholders = [t for t in wrapped.inputs if t.dtype != tf.resource][: len(ordered)]
    pruned = wrapped.prune(feeds=placeholders, fetches=fetches)
    results = pruned(*[tf.constant(np.asarray(feeds[i.name])) for i in ordered])
    return {name: np.asarray(value) for name, value in zip(names, results)}
