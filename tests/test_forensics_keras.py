"""Failure forensics on Keras exports: tf2onnx names each value after the TensorFlow tensor it
converts, so the traced model, pruned to those tensors, gives TensorFlow's own value of each:
the diagnosis names the edited node itself and the layer it belongs to — for subclassed models
too, which expose no layer outputs."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

import onnxparity as op
from test_forensics import check_edited

keras = pytest.importorskip("keras")
pytest.importorskip("tf2onnx")

SPEC = op.ParitySpec(
    inputs=(op.Input("x", ("batch", 8), low=-3, high=3),), dims={"batch": op.Dim(1, 4)}, examples=6
)


@pytest.fixture(scope="module")
def functional(parity_session):
    keras.utils.set_random_seed(0)
    x = keras.Input((8,), name="x")
    hidden = keras.layers.Dense(16, activation="relu", name="hidden")(x)
    normed = keras.layers.LayerNormalization(name="norm")(hidden)
    model = keras.Model(x, keras.layers.Dense(4, name="head")(normed))
    return model, parity_session.prepare(model, SPEC).exported.path


def _scale_initializer(proto, name, factor):
    tensor = next(t for t in proto.graph.initializer if t.name == name)
    value = numpy_helper.to_array(tensor)
    tensor.CopyFrom(numpy_helper.from_array((value * factor).astype(value.dtype), name))


def norm_epsilon(proto):
    """LayerNormalization's epsilon (the constant its variance is added to) 1e-3 -> 0.5."""
    add = next(n for n in proto.graph.node if n.name.endswith("norm_1/add"))
    tensor = next(t for t in proto.graph.initializer if t.name == add.input[1])
    tensor.CopyFrom(numpy_helper.from_array(np.full_like(numpy_helper.to_array(tensor), 0.5), add.input[1]))
    return add.name, "norm"


def hidden_weights(proto):
    matmul = next(n for n in proto.graph.node if n.name.endswith("hidden_1/MatMul"))
    _scale_initializer(proto, matmul.input[1], 1.01)
    return matmul.name, "hidden"


@pytest.mark.parametrize("edit", [norm_epsilon, hidden_weights], ids=lambda f: f.__name__)
def test_the_edited_node_of_a_keras_layer_is_named(parity_session, functional, edit):
    model, path = functional
    broken = onnx.load(path)
    edited, layer = edit(broken)
    result = check_edited(parity_session, model, broken, f"keras forensics {edit.__name__}", SPEC, examples=6)
    found = result.divergence
    assert result.status == "failed" and found is not None, result.message
    assert found.source == layer and found.node == edited and found.nodes == (edited,)
    assert found.input_max_abs_error < 1e-5 < found.max_abs_error
    line = next(line for line in result.message.splitlines() if "first divergence:" in line)
    assert f"(layer {layer})" in line


def test_a_subclassed_keras_model_is_localized_node_by_node_too(parity_session):
    """No layer outputs to read, but the traced function's tensors pair all the same."""

    class Subclassed(keras.Model):
        def __init__(self):
            super().__init__()
            # named: Keras numbers unnamed layers per process ("dense_20" after other tests' layers)
            self.hidden = keras.layers.Dense(16, activation="relu", name="hidden")
            self.head = keras.layers.Dense(4, name="head")

        def call(self, x):
            return self.head(self.hidden(x))

    keras.utils.set_random_seed(0)
    model = Subclassed()
    model(np.zeros((1, 8), np.float32))
    broken = onnx.load(parity_session.prepare(model, SPEC).exported.path)
    matmul = next(n for n in broken.graph.node if n.op_type == "MatMul")
    _scale_initializer(broken, matmul.input[1], 1.5)
    result = check_edited(parity_session, model, broken, "keras forensics subclassed", SPEC, examples=4)
    assert result.status == "failed" and result.divergence is not None
    assert result.divergence.node == matmul.name and result.divergence.source == "hidden"


def test_a_tf_module_says_it_is_not_localized(parity_session):
    """A tf.Module whose tf.function has its own signature is traced as one call
    (StatefulPartitionedCall) that tf2onnx inlines: its ops are not in the outer trace, and
    nothing is guessed."""
    tf = pytest.importorskip("tensorflow")

    class Affine(tf.Module):
        def __init__(self):
            super().__init__()
            rng = np.random.default_rng(0)
            self.w = tf.Variable(rng.normal(size=(8, 4)).astype(np.float32))
            self.b = tf.Variable(rng.normal(size=(4,)).astype(np.float32))

        @tf.function(input_signature=[tf.TensorSpec([None, 8], tf.float32, name="x")])
        def __call__(self, x):
            return tf.nn.relu(tf.matmul(x, self.w) + self.b) * 2.0

    model = Affine()
    broken = onnx.load(parity_session.prepare(model, SPEC).exported.path)
    matmul = next(n for n in broken.graph.node if n.op_type == "MatMul")
    _scale_initializer(broken, matmul.input[1], 1.5)
    result = check_edited(parity_session, model, broken, "tf module forensics", SPEC, examples=4)
    assert result.status == "failed" and result.divergence is None
    assert "first divergence: not localized — the traced function's tensors do not pair" in result.message
