"""Zoo: real Keras architectures export and pass, and a planted change is caught or reported.

For each model the correct export passes at the default settings (``ort-cpu``, default examples
and tolerance; only the batch is kept small), and the same ONNX file with its first layer's
kernel scaled by 1.01 fails, or passes reported weak (``power.weak``: it could not have failed).

Applications are ``weights=None`` at 32x32 with ten classes. As built, MobileNetV2 and
EfficientNetB0 give a softmax of 0.1 for every input (logits ~1e-12 and ~1e-8: activations
vanish layer by layer), so their checks are weak and the planted change passes; ResNet50's
softmax moves a little with the input (0.11 +- 0.004): its check is reported weak at the
TensorFlow tolerance (a 1.03% change of that part would pass), and the planted change fails. MobileNetV2 is also checked as trained
(BatchNormalization statistics from one batch, :func:`as_trained`): logits O(1), where ONNX
Runtime and TensorFlow differ by up to ~6e-5 of the output's scale (as far as each is from a
float64 run), beyond ``atol=1e-5`` on logits near zero; the TensorFlow source's default
tolerance (``scaled=2e-4``, ``exporters/tensorflow.py``) passes it, and the planted change
still fails. EfficientNetB0 as trained is left out: at inputs of all +-1 its fp32 logits are ~5% off a
float64 run in TensorFlow and ONNX Runtime alike. Each model is exported once.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

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
IMAGES = {"batch": op.Dim(1, 2)}  # applications: the reference runs eagerly, a second per few images
SIZE = 32
#: node types whose second input is a layer's kernel, in the order tf2onnx emits them
KERNEL_OPS = ("Conv", "MatMul", "Gemm", "LSTM", "GRU", "ConvTranspose")


def as_trained(model: keras.Model, seed: int = 0) -> keras.Model:
    """Set every BatchNormalization's moving mean and variance to one batch's statistics (one
    training-mode call at momentum 0, dropout off): activations stay O(1) through the network,
    as in a trained model, instead of vanishing layer by layer. 32 images: the last stages are
    1x1 at 32x32, and with 8 a few channels got variances near zero (EfficientNet's logits
    reached 5e4)."""
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


def application(name: str, *, trained: bool = False) -> keras.Model:
    """weights=None, ten classes at 32x32 (logits when ``trained``: softmax hides the scale)."""
    keras.utils.set_random_seed(0)
    build = getattr(keras.applications, name)
    kwargs = {"classifier_activation": None} if trained else {}
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


@dataclass(frozen=True)
class Case:
    build: Callable[[], keras.Model]
    dims: dict
    #: the correct check is weak: random-initialised outputs that hardly depend on the input
    #: (None: borderline, weak or not depending on the inputs drawn; its plant must still fail)
    weak: bool | None = False


TIME = {**BATCH, "steps_1": op.Dim(1, 8)}
MODELS = {
    # weights=None as built, default settings
    "mobilenetv2": Case(lambda: application("MobileNetV2"), IMAGES, weak=True),
    "efficientnetb0": Case(lambda: application("EfficientNetB0"), IMAGES, weak=True),
    # a near-uniform softmax (0.11 +- 0.005): borderline. The detectable change measured 1.03%
    # (weak), 0.83% and 1.43% as the search's draws changed; the planted x1.01 fails either way
    "resnet50": Case(lambda: application("ResNet50"), IMAGES, weak=None),
    "two-inputs": Case(two_branches, {**BATCH, "tokens_1": op.Dim(1, 8)}),
    "lstm": Case(recurrent, TIME),
    # BatchNormalization statistics set as trained: outputs O(1..100), logits compared
    "mobilenetv2-as-trained": Case(lambda: application("MobileNetV2", trained=True), IMAGES),
}


@pytest.fixture(scope="module")
def session(tmp_path_factory):
    with ParitySession(ParityConfig(reproducer_dir=str(tmp_path_factory.mktemp("zoo-keras")))) as s:
        yield s


@pytest.fixture(scope="module", params=list(MODELS))
def exported(request, session):
    """(name, model, its check's arguments, its ONNX file): built and exported once per model."""
    case = MODELS[request.param]
    started = time.perf_counter()
    model = case.build()
    path = session.prepare(model, build_spec(resolve(model), dims=case.dims)).exported.path
    print(f"\n{request.param}: built and exported in {time.perf_counter() - started:.1f}s")
    arguments = {"dims": case.dims, "session": session}
    return request.param, model, arguments, path


def output_scale(model: keras.Model) -> float:
    """max |output| on a batch of the inputs the check draws (uniform in [-1, 1])."""
    x = np.random.default_rng(1).uniform(-1, 1, (8, *model.inputs[0].shape[1:])).astype("float32")
    return float(np.abs(model(x, training=False)).max())


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
    return ", ".join(f"{o.name} {o.scale:.3g}" for o in outcome.power.outputs)


def test_correct_export_passes(exported):
    name, model, arguments, _ = exported
    started = time.perf_counter()
    outcome = op.check(model, **arguments)["ort-cpu"]
    seconds = time.perf_counter() - started
    print(f"{name}: correct check {seconds:.1f}s, {outcome.examples} examples, output scale {scale(outcome)}")
    assert outcome.status == "passed", outcome.message
    if outcome.power is not None:
        if MODELS[name].weak is not None:
            assert outcome.power.weak == MODELS[name].weak, outcome.power.reasons


def test_planted_kernel_change_fails_or_is_weak(exported):
    name, model, arguments, path = exported
    edited, kernel = planted(path)
    started = time.perf_counter()
    r = op.check(model, onnx=edited, **arguments)["ort-cpu"]
    caught = "failed" if r.status == "failed" else f"{r.status}, weak={r.power.weak if r.power else None}"
    print(f"{name}: planted {kernel} x1.01 -> {caught} in {time.perf_counter() - started:.1f}s")
    assert r.status == "failed" or (r.power is not None and r.power.weak), r.message
    if not MODELS[name].weak:
        assert r.status == "failed", f"{name}: a planted change passed a check that could have failed"


def test_a_masked_recurrent_model_passes_at_defaults():
    """Masking + LSTM over one feature, exported correctly, with a boundary at 0 (the mask value): the search draws
    one float step from it — 1e-45, a subnormal TensorFlow flushes to zero on CPU and ONNX
    Runtime does not. It failed on those; subnormals are now drawn only where an input allows
    them."""
    keras.utils.set_random_seed(0)
    steps = keras.Input((None, 1), name="x")
    hidden = keras.layers.LSTM(8)(keras.layers.Masking(mask_value=0.0)(steps))
    model = keras.Model(steps, keras.layers.Dense(3)(hidden))
    result = op.check(
        model,
        inputs=[op.Input("x", ("batch", "steps", 1), low=-1, high=1, boundaries=(0.0,))],
        dims={"batch": op.Dim(1, 3), "steps": op.Dim(1, 6)},
    )["ort-cpu"]
    assert result.status == "passed", result.message
