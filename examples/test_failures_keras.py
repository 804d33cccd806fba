"""What a Keras failure looks like, on purpose: `pytest --onnx-parity examples/test_failures_keras.py -rx`.

The model's own ONNX export (``model.export(format="onnx")``), then LayerNormalization's
epsilon constant changed in the file. The diagnosis names the edited node (tf2onnx names values
after TensorFlow's tensors) and its layer (see test_failures.py for PyTorch).
"""

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

keras = pytest.importorskip(
    "keras", reason="tensorflow is not installed: pip install 'onnxparity[tensorflow]'"
)

import onnxparity as op  # noqa: E402


def model() -> keras.Model:
    keras.utils.set_random_seed(0)
    x = keras.Input((8,), name="x")
    hidden = keras.layers.Dense(16, activation="relu", name="hidden")(x)
    normed = keras.layers.LayerNormalization(name="norm")(hidden)
    return keras.Model(x, keras.layers.Dense(4, name="head")(normed))


def exported_then_edited(net: keras.Model, folder) -> onnx.ModelProto:
    path = str(folder / "net.onnx")
    net(np.zeros((1, 8), np.float32))  # Keras exports only a model that has been called
    net.export(path, format="onnx", verbose=False)
    edited = onnx.load(path)
    add = next(n for n in edited.graph.node if n.name.endswith("norm_1/add"))  # variance + epsilon
    epsilon = next(t for t in edited.graph.initializer if t.name == add.input[1])
    epsilon.CopyFrom(numpy_helper.from_array(np.full_like(numpy_helper.to_array(epsilon), 0.5), epsilon.name))
    return edited


@pytest.mark.xfail(
    strict=True,
    raises=pytest.fail.Exception,
    reason="on purpose: LayerNormalization's epsilon edited in the file",
)
@pytest.mark.onnx_parity(inputs=[op.Input("x", ("batch", 8), low=-3, high=3)], dims={"batch": op.Dim(1, 8)})
def test_edited_keras_layer_norm_is_localized(onnx_parity, tmp_path):
    net = model()
    with pytest.raises(pytest.fail.Exception) as failed:
        onnx_parity.check(net, onnx=exported_then_edited(net, tmp_path))
    assert "first divergence: Add 'functional_1/norm_1/add' (layer norm) — inputs agree" in str(failed.value)
    raise failed.value
