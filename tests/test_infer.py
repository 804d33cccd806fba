"""Specs the model already tells: inputs read from the model, only ranges left to declare."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import onnxparity as op
from onnxparity.exporters import resolve
from onnxparity.planning import DEFAULT_DIM
from onnxparity.planning import build_spec as _build_spec
from parity_models import Mlp


def build_spec(model, *, onnx=None, data=None, **declared):
    return _build_spec(resolve(model, onnx=onnx), data=data, **declared)


def test_prebuilt_onnx_inputs_are_read_from_the_graph(parity_session, tmp_path):
    torch.manual_seed(0)
    model = Mlp().eval()
    spec = op.ParitySpec(inputs=(op.Input("x", ("batch", 16)),), dims={"batch": op.Dim(1, 8)})
    path = parity_session.prepare(model, spec).exported.path
    inferred = build_spec(model, onnx=path)
    assert inferred.inputs == (op.Input("x", ("batch", 16), dtype="float32"),)
    assert inferred.dims == {"batch": DEFAULT_DIM}
    narrowed = build_spec(model, onnx=path, dims={"batch": op.Dim(2, 3)})
    assert narrowed.dims == {"batch": op.Dim(2, 3)}  # declared ranges win over the default
    assert op.check(model, onnx=path, examples=3, reproducer_dir=tmp_path).passed


def test_pytorch_modules_must_declare_inputs():
    with pytest.raises(op.InvalidSpec, match=r"Mlp does not declare its inputs: give inputs=\[op.Input"):
        op.check(Mlp().eval())


def test_keras_inputs_are_read_from_the_model(tmp_path):
    keras = pytest.importorskip("keras")
    keras.utils.set_random_seed(0)
    image = keras.Input((None, None, 3), name="image")
    model = keras.Model(image, keras.layers.Conv2D(2, 3, padding="same")(image))
    spec = build_spec(model, dims={"image_1": op.Dim(4, 8), "image_2": op.Dim(4, 8)})
    assert spec.inputs == (op.Input("image", ("batch", "image_1", "image_2", 3)),)
    result = op.check(model, dims=dict(spec.dims), examples=3, reproducer_dir=tmp_path)
    assert result.passed, result["ort-cpu"].message


def test_sklearn_inputs_are_read_from_the_estimator(tmp_path):
    pd = pytest.importorskip("pandas")
    pytest.importorskip("skl2onnx")
    from sklearn.compose import ColumnTransformer
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    X, y = load_iris(return_X_y=True)
    forest = LogisticRegression(max_iter=300).fit(X, y)
    assert build_spec(forest).inputs == (op.Input("X", ("batch", 4)),)
    assert op.check(forest, data=X, examples=3, reproducer_dir=tmp_path).passed

    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"age": rng.uniform(18, 80, 60), "city": rng.choice(["a", "b"], 60)})
    pipe = Pipeline(
        [
            ("f", ColumnTransformer([("n", StandardScaler(), ["age"]), ("c", OneHotEncoder(), ["city"])])),
            ("m", LogisticRegression()),
        ]
    ).fit(frame, (frame.age > 40).astype(int))
    spec = build_spec(pipe, data=frame)
    assert [(i.name, i.dtype) for i in spec.inputs] == [("age", "float32"), ("city", "str")]
    assert spec.inputs[0].low == pytest.approx(frame.age.min(), rel=1e-6)
    assert op.check(pipe, data=frame, examples=3, reproducer_dir=tmp_path).passed
    with pytest.raises(op.InvalidSpec, match=r"was fitted on named columns \['age', 'city'\]: give data="):
        build_spec(pipe)
