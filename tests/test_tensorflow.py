"""TensorFlow / Keras: each accepted model kind exports and passes; errors name the problem."""

from __future__ import annotations

import re

import numpy as np
import onnx
import pytest

import onnxparity as op

keras = pytest.importorskip("keras")
tf = pytest.importorskip("tensorflow")
pytest.importorskip("tf2onnx")

BATCH = {"batch": op.Dim(1, 4)}


def functional() -> keras.Model:
    keras.utils.set_random_seed(0)
    image = keras.Input((None, None, 3), name="image")
    x = keras.layers.Conv2D(4, 3, padding="same", activation="relu")(image)
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(image, keras.layers.Dense(3, name="logits")(x))


class Subclassed(keras.Model):
    def __init__(self) -> None:
        super().__init__()
        self.dense = keras.layers.Dense(3)

    def call(self, x, training=False):
        return {"scores": self.dense(x), "doubled": x * 2}


class Module(tf.Module):
    def __init__(self) -> None:
        self.w = tf.Variable(np.random.default_rng(0).normal(size=(4, 2)).astype("float32"))

    @tf.function(input_signature=[tf.TensorSpec([None, 4], tf.float32)])
    def __call__(self, x):
        return tf.nn.softmax(x @ self.w)


@pytest.fixture(scope="module")
def saved_model_dir(tmp_path_factory):
    module = Module()
    path = tmp_path_factory.mktemp("saved") / "scorer"
    tf.saved_model.save(module, str(path), signatures=module.__call__.get_concrete_function())
    return str(path)


def test_functional_keras_model_passes_with_spec_names(parity_session):
    spec = op.ParitySpec(
        inputs=(op.Input("image", ("batch", "h", "w", 3)),),
        dims={**BATCH, "h": op.Dim(4, 16), "w": op.Dim(4, 16)},
    )
    prepared = parity_session.prepare(functional(), spec)
    result = parity_session.check_variant(prepared, spec, "ort-cpu", name="keras functional", examples=5)
    assert result.status == "passed", result.message
    # TensorFlow's kernels sum in another order than ONNX Runtime's: its default adds a term
    # scaled to the output (exporters/tensorflow.py measures it), also for a file checked against it
    assert result.policy == op.Tolerance(atol=1e-5, rtol=1e-4, scaled=2e-4)
    prebuilt = parity_session.prepare(functional(), spec, onnx=prepared.exported.path)
    again = parity_session.check_variant(prebuilt, spec, "ort-cpu", name="keras functional file", examples=2)
    assert again.policy == result.policy
    graph = onnx.load(prepared.exported.path).graph
    assert [i.name for i in graph.input] == ["image"]
    assert [d.dim_param or d.dim_value for d in graph.input[0].type.tensor_type.shape.dim] == [
        "batch",
        "h",
        "w",
        3,
    ]
    assert [o.name for o in graph.output] == ["output"]
    assert prepared.exported.exporter == "tf2onnx from_function"


def test_sequential_subclassed_module_and_saved_model_pass(tmp_path, saved_model_dir):
    keras.utils.set_random_seed(0)
    sequential = keras.Sequential(
        [keras.Input((6,)), keras.layers.Dense(5, activation="tanh"), keras.layers.Dense(2)]
    )
    cases = [
        (sequential, [op.Input("x", ("batch", 6))]),
        (Subclassed(), [op.Input("x", ("batch", 5))]),
        (Module(), [op.Input("x", ("batch", 4))]),
        (saved_model_dir, [op.Input("x", ("batch", 4))]),
    ]
    for model, inputs in cases:
        result = op.check(model, inputs=inputs, dims=BATCH, examples=4, reproducer_dir=tmp_path)
        assert result.passed, result["ort-cpu"].message
    named = op.check(
        Subclassed(), inputs=[op.Input("x", ("batch", 5))], dims=BATCH, examples=2, reproducer_dir=tmp_path
    )
    assert [o.name for o in named["ort-cpu"].outputs] == ["doubled", "scores"]  # tf.nest: sorted keys
    assert (
        op.check(saved_model_dir, inputs=[op.Input("x", ("batch", 4))], dims=BATCH, examples=2).name
        == "scorer"
    )


def two_inputs() -> keras.Model:
    """Functional, two inputs as a list (a dynamic time axis on one), called as model([a, b])."""
    keras.utils.set_random_seed(0)
    numeric = keras.Input((5,), name="numeric")
    tokens = keras.Input((None, 3), name="tokens")
    pooled = keras.layers.GlobalAveragePooling1D()(tokens)
    return keras.Model(
        [numeric, tokens], keras.layers.Dense(2)(keras.layers.Concatenate()([numeric, pooled]))
    )


def dict_inputs() -> keras.Model:
    """Functional, inputs and outputs as dicts, called as model({"numeric": ..., "tokens": ...})."""
    keras.utils.set_random_seed(0)
    numeric = keras.Input((5,), name="numeric")
    tokens = keras.Input((None, 3), name="tokens")
    joined = keras.layers.Concatenate()([numeric, keras.layers.GlobalMaxPooling1D()(tokens)])
    return keras.Model(
        {"tokens": tokens, "numeric": numeric}, {"score": keras.layers.Dense(2)(joined), "joined": joined}
    )


TOKENS = {**BATCH, "tokens_1": op.Dim(1, 5)}


def test_multi_input_models_pass_with_the_inputs_they_declare(parity_session):
    for model, outputs in ((two_inputs(), ["output"]), (dict_inputs(), ["joined", "score"])):
        result = op.check(model, dims=TOKENS, examples=6, session=parity_session)
        assert result.passed, result["ort-cpu"].message
        assert [o.name for o in result["ort-cpu"].outputs] == outputs
        spec = op.ParitySpec(inputs=op.exporters.resolve(model).declared_inputs(), dims=TOKENS)
        assert [(i.name, i.shape) for i in spec.inputs] == [
            ("numeric", ("batch", 5)),
            ("tokens", ("batch", "tokens_1", 3)),
        ]
        graph = onnx.load(parity_session.prepare(model, spec).exported.path).graph
        assert [i.name for i in graph.input] == ["numeric", "tokens"]


def test_dict_model_inputs_are_matched_by_name_not_position(tmp_path):
    inputs = [op.Input("tokens", ("batch", "t", 3)), op.Input("numeric", ("batch", 5))]
    result = op.check(
        dict_inputs(), inputs=inputs, dims={**BATCH, "t": op.Dim(1, 4)}, examples=4, reproducer_dir=tmp_path
    )
    assert result.passed, result["ort-cpu"].message


def test_keras_export_fallback_takes_a_multi_input_signature_as_one_structure(monkeypatch, tmp_path):
    from onnxparity.exporters import tensorflow as tf_exporter

    def unavailable(*args, **kwargs):
        raise RuntimeError("tf2onnx unavailable")

    monkeypatch.setattr(tf_exporter, "_via_tf2onnx", unavailable)
    for model in (two_inputs(), dict_inputs()):
        result = op.check(model, dims=TOKENS, examples=4, reproducer_dir=tmp_path)
        assert result.passed, result["ort-cpu"].message


def test_recurrent_model_with_a_dynamic_time_axis_passes(tmp_path):
    keras.utils.set_random_seed(0)
    steps = keras.Input((None, 4), name="steps")
    hidden = keras.layers.LSTM(8, return_sequences=True)(steps)
    model = keras.Model(steps, keras.layers.Dense(2)(keras.layers.GRU(6)(hidden)))
    dims = {**BATCH, "steps_1": op.Dim(1, 6)}
    result = op.check(model, dims=dims, examples=8, reproducer_dir=tmp_path)
    outcome = result["ort-cpu"]
    assert outcome.passed, outcome.message
    assert outcome.dims_covered["steps_1"][0] < outcome.dims_covered["steps_1"][1]


def normalized() -> keras.Model:
    """A Normalization layer without given mean/variance keeps them as eager tensors, which a
    traced function captures (as EfficientNet's does)."""
    keras.utils.set_random_seed(0)
    x = keras.Input((4,), name="x")
    return keras.Model(x, keras.layers.Dense(2)(keras.layers.Normalization()(x)))


def test_captured_constants_are_frozen_not_left_as_graph_inputs(parity_session):
    spec = op.ParitySpec(inputs=(op.Input("x", ("batch", 4)),), dims=BATCH)
    prepared = parity_session.prepare(normalized(), spec)
    assert prepared.exported.exporter == "tf2onnx from_function"
    assert [i.name for i in onnx.load(prepared.exported.path).graph.input] == ["x"]
    result = parity_session.check_variant(prepared, spec, "ort-cpu", name="normalized", examples=4)
    assert result.status == "passed", result.message


def test_graph_inputs_the_spec_does_not_declare_are_an_export_error_naming_them(monkeypatch):
    import tf2onnx

    from onnxparity.exporters import tensorflow as tf_exporter

    def tf2onnx_from_function(call, signature, opset, path):  # the conversion before the fix
        function = tf.function(lambda *args: call(*args), input_signature=signature)
        tf2onnx.convert.from_function(function, input_signature=signature, opset=opset, output_path=path)

    monkeypatch.setattr(tf_exporter, "_via_tf2onnx", tf2onnx_from_function)
    with pytest.raises(op.ExportError) as info:
        op.check(normalized(), dims=BATCH, examples=2)
    text = str(info.value)
    for exporter in ("tf2onnx from_function", "Keras model.export"):
        assert f"{exporter}: ExportError: graph inputs the spec does not declare: [" in text
    assert re.search(r"\['[\w/]*normalization\w*/Sub/y:0', '[\w/]*/Sqrt/x:0'\] \(declared: \['x'\]\)", text)
    assert "is a value the exporter did not freeze into a constant" in text
    assert "baked in" not in text and "ValidationError" not in text


def test_invalid_node_is_reported_with_the_checkers_message():
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, activation="gelu")])
    with pytest.raises(op.ExportError) as info:
        op.check(model, inputs=[op.Input("x", ("batch", 4))], dims=BATCH)
    text = str(info.value)
    assert (
        "tf2onnx from_function: ValidationError: No Op registered for Erfc with domain_version of 15" in text
    )
    assert "Keras model.export: ValidationError:" in text


@pytest.mark.parametrize(
    ("inputs", "message"),
    [
        ([op.Input("x", ("batch", 8))], "Input('x') axis 1 is 8 but the model's input"),
        ([op.Input("x", ("batch", "features"))], "is the dynamic dim 'features' but the model's input"),
        ([op.Input("x", ("batch",))], "Input('x') has rank 1 but the model's input"),
    ],
)
def test_spec_contradicting_the_model_is_an_error_before_export(inputs, message):
    model = keras.Sequential([keras.Input((6,)), keras.layers.Dense(2)])
    dims = {**BATCH, "features": op.Dim(2, 9)} if "features" in inputs[0].shape else BATCH
    with pytest.raises(op.InvalidSpec, match=message.replace("(", r"\(").replace(")", r"\)")):
        op.check(model, inputs=inputs, dims=dims)


def test_broken_tensorflow_export_fails_with_a_diagnosis(parity_session, tmp_path):
    from parity_models import perturb_weights

    spec = op.ParitySpec(
        inputs=(op.Input("image", ("batch", "h", "w", 3)),),
        dims={**BATCH, "h": op.Dim(4, 16), "w": op.Dim(4, 16)},
    )
    model = functional()
    broken = perturb_weights(onnx.load(parity_session.prepare(model, spec).exported.path), 1e-2)
    result = op.check(model, inputs=spec.inputs, dims=spec.dims, onnx=broken, reproducer_dir=tmp_path)
    message = result["ort-cpu"].message
    assert message.startswith("ort-cpu differs from the reference (model from prebuilt ONNX, opset 15):")
    assert "output 'output': " in message and "shrunk input: dims batch=1, h=4, w=4;" in message


def test_missing_tensorflow_is_a_skip_naming_the_extra(
    pytester: pytest.Pytester, saved_model_dir, warm_exporter
):
    pytester.makeconftest("import sys\nsys.modules['tensorflow'] = None\n")
    pytester.makepyfile(
        f"""
import pytest
import onnxparity as op

@pytest.mark.onnx_parity(inputs=[op.Input("x", ("batch", 4))], dims={{"batch": op.Dim(1, 4)}})
def test_saved(onnx_parity):
    onnx_parity.check({saved_model_dir!r})
"""
    )
    result = pytester.runpytest("--onnx-parity", "-rs")
    result.assert_outcomes(skipped=1)
    result.stdout.fnmatch_lines(["*tensorflow is not installed: pip install 'onnxparity[[]tensorflow[]]'*"])


def test_token_ids_of_a_keras_embedding_are_drawn_within_its_vocabulary(tmp_path):
    """An int32 input read from the model, into Embedding(50, 8). Before: ids were drawn over
    int32's default range, TensorFlow refused 85 on the export example and the advice was to
    check shapes and dtypes; the ids are now drawn in [0, 49]."""
    model = keras.Sequential(
        [keras.Input((None,), dtype="int32"), keras.layers.Embedding(50, 8), keras.layers.GlobalAveragePooling1D()]
    )
    result = op.check(model, examples=6, reproducer_dir=tmp_path)["ort-cpu"]
    assert result.status == "passed", result.message
    from onnxparity.exporters.tensorflow import declared_inputs

    (ids,) = declared_inputs(model)
    assert (ids.low, ids.high) == (0, 49)
