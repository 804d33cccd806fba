"""A Keras CNN checked at dynamic batch and spatial size (channels last)."""

import pytest

keras = pytest.importorskip(
    "keras", reason="tensorflow is not installed: pip install 'onnxparity[tensorflow]'"
)

import onnxparity as op  # noqa: E402


def small_cnn() -> keras.Model:
    image = keras.Input((None, None, 3), name="image")
    x = keras.layers.Conv2D(16, 3, padding="same", activation="relu")(image)
    x = keras.layers.BatchNormalization()(x)
    x = keras.layers.MaxPooling2D()(x)
    x = keras.layers.Conv2D(32, 3, padding="same", activation="relu")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    logits = keras.layers.Dense(10, name="logits")(x)
    return keras.Model(image, logits)


@pytest.mark.onnx_parity(
    inputs=[op.Input("image", ("batch", "size", "size", 3), dtype="float32", low=-1, high=1)],
    dims={"batch": op.Dim(1, 8), "size": op.Dim(16, 64, multiple_of=8)},
    variants=op.ALL_VARIANTS,
)
def test_keras_cnn(onnx_parity):
    onnx_parity.check(small_cnn())
