"""Zoo: real Keras architectures export and pass, and a planted change is caught.

For each model the correct export passes at the default settings (``ort-cpu``, default examples
and tolerance; only the batch is kept small), and the same ONNX file with its first layer's
kernel scaled by 1.01 either fails or passes reported weak (``power.weak``: it could not have
failed). Applications are ``weights=None`` at 32x32 with ten logits. Random-initialised
MobileNetV2 and EfficientNetB0 output ~1e-12 and ~1e-8 logits (a constant 0.1 after softmax):
checks of them prove nothing, so besides MobileNetV2 as built (the weak case, kept), the
applications are checked with their BatchNormalization statistics set from one batch, as a
trained model's are (:func:`as_trained`). Each model is exported once (module fixtures).
"""

from __future__ import annotations

import time

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

import onnxparity as op
from onnxparity.config import ParityConfig
from onnxparity.exporters import resolve
from onnxparity.planning import build_spec
from onnxparity.runner import ParitySession

keras = pytest.importorskip("keras")
pytest.importorskip("tensorflow")
pytest.importorskip("tf2onnx")

pytestmark = [pytest.mark.zoo, pytest.mark.filterwarnings("ignore::onnxparity.WeakCheck")]

BATCH = {"batch": op.Dim(1, 4)}
SIZE = 32
#: node types whose second input is a layer's kernel, in the order tf2onnx emits them
KERNEL_OPS = ("Conv", "MatMul", "Gemm", "LSTM", "GRU", "ConvTranspose")


def as_trained(model: keras.Model, seed: int = 0) -> keras.Model:
    """Set every BatchNormalization's moving mean and variance to one batch's statistics (one
    training-mode call at momentum 0): activations stay O(1) through the network, as in a
    trained model, instead of vanishing layer by layer."""
    norms = [layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)]
    drops = [layer for layer in model.layers if isinstance(layer, keras.layers.Dropout)]
    saved = [layer.momentum for layer in norms], [layer.rate for layer in drops]
    for layer in norms:
        layer.momentum = 0.0
    for layer in drops:  # statistics of the network as it runs at inference
        layer.rate = 0.0
    shape = (32, *model.inputs[0].shape[1:])
    model(np.random.default_rng(seed).uniform(-1, 1, shape).astype("float32"), training=True)
    for layer, momentum in zip(norms, saved[0]):
        layer.momentum = momentum
    for layer, rate in zip(drops, saved[1]):
        layer.rate = rate
    return model


def application(name: str, *, trained: bool, **kwargs) -> keras.Model:
    keras.utils.set_random_seed(0)
    build = getattr(keras.applications, name)
    model = build(weights=None, input_shape=(SIZE, SIZE, 3), include_top=True, classes=10, **kwargs)
    return as_trained(model) if trained else model


def two_branches() -> keras.Model:
    """Functional, two inputs (a vector and a variable-length sequence), called with a list."""
    keras.utils.set_random_seed(0)
    numeric = keras.Input((6,), name="numeric")
    tokens = keras.Input((None, 4), name="tokens")
    a = keras.layers.Dense(16, activation="relu")(numeric)
    b = keras.layers.GlobalAveragePooling1D()(
        keras.layers.Conv1D(8, 3, padding="same", activation="tanh")(tokens)
    )
    return keras.Model([numeric, tokens], keras.layers.Dense(3)(keras.layers.Concatenate()([a, b])))


def recurrent() -> keras.Model:
    keras.utils.set_random_seed(0)
    steps = keras.Input((None, 6), name="steps")
    hidden = keras.layers.LSTM(16, return_sequences=True)(steps)
    return keras.Model(steps, keras.layers.Dense(4)(keras.layers.LSTM(8)(hidden)))


MODELS = {
    "mobilenetv2-as-built": (lambda: application("MobileNetV2", trained=False), BATCH),
    "mobilenetv2": (lambda: application("MobileNetV2", trained=True, classifier_activation=None), BATCH),
    "efficientnetb0": (
        lambda: application("EfficientNetB0", trained=True, classifier_activation=None),
        BATCH,
    ),
    "resnet50": (lambda: application("ResNet50", trained=True, classifier_activation=None), BATCH),
    "two-inputs": (two_branches, {**BATCH, "tokens_1": op.Dim(1, 8)}),
    "lstm": (recurrent, {**BATCH, "steps_1": op.Dim(1, 8)}),
}
#: models whose correct check must be strong (power not weak), and the one that must be weak
WEAK = {"mobilenetv2-as-built"}


@pytest.fixture(scope="module")
def session(tmp_path_factory):
    with ParitySession(ParityConfig(reproducer_dir=str(tmp_path_factory.mktemp("zoo-keras")))) as s:
        yield s


@pytest.fixture(scope="module", params=list(MODELS))
def exported(request, session):
    """(name, model, dims, path of its ONNX file): built and exported once per model."""
    build, dims = MODELS[request.param]
    started = time.perf_counter()
    model = build()
    path = session.prepare(model, build_spec(resolve(model), dims=dims)).exported.path
    print(f"\n{request.param}: built and exported in {time.perf_counter() - started:.1f}s")
    return request.param, model, dims, path


def planted(path: str) -> tuple[onnx.ModelProto, str]:
    """The ONNX model with its first layer's kernel (the first weighted node's initializer)
    scaled by 1.01, and that initializer's name."""
    model = onnx.load(path)
    initializers = {t.name: t for t in model.graph.initializer}
    for node in model.graph.node:
        if node.op_type in KERNEL_OPS and len(node.input) > 1 and node.input[1] in initializers:
            kernel = initializers[node.input[1]]
            kernel.CopyFrom(
                numpy_helper.from_array(numpy_helper.to_array(kernel) * np.float32(1.01), kernel.name)
            )
            return model, kernel.name
    raise AssertionError(f"no weighted node with an initializer kernel in {path}")


def scale(outcome) -> str:
    if outcome.power is None:
        return "n/a (power not measured)"
    return ", ".join(f"{o.name} {o.scale:.3g} (spread {o.spread:.3g})" for o in outcome.power.outputs)


def test_correct_export_passes(exported, session):
    name, model, dims, _ = exported
    started = time.perf_counter()
    outcome = op.check(model, dims=dims, session=session)["ort-cpu"]
    print(f"{name}: correct check {time.perf_counter() - started:.1f}s, output scale {scale(outcome)}")
    assert outcome.status == "passed", outcome.message
    if outcome.power is not None:
        assert outcome.power.weak == (name in WEAK), outcome.power.reasons


def test_planted_kernel_change_fails_or_is_weak(exported, session):
    name, model, dims, path = exported
    edited, kernel = planted(path)
    started = time.perf_counter()
    r = op.check(model, onnx=edited, dims=dims, session=session)["ort-cpu"]
    caught = "failed" if r.status == "failed" else f"{r.status}, weak={r.power.weak if r.power else None}"
    print(f"{name}: planted {kernel} x1.01 -> {caught} in {time.perf_counter() - started:.1f}s")
    assert r.status == "failed" or (r.power is not None and r.power.weak), r.message
    if name not in WEAK:
        assert r.status == "failed", f"{name}: the planted change passed a check reported strong"
