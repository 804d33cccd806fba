"""Failure forensics on scikit-learn exports: a pipeline's steps pair with the values skl2onnx
writes for them (its conversion topology), and a single estimator's node is named when it alone
computes the outputs (a tree ensemble)."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

import onnxparity as op

pytest.importorskip("skl2onnx")
from sklearn.datasets import load_breast_cancer  # noqa: E402
from sklearn.decomposition import PCA  # noqa: E402
from sklearn.ensemble import RandomForestRegressor  # noqa: E402
from sklearn.linear_model import LogisticRegression  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402

X, Y = load_breast_cancer(return_X_y=True)
X = X.astype(np.float32)


def exported(session, model):
    return onnx.load(
        session.prepare(
            model, op.ParitySpec(inputs=(op.Input("X", ("batch", 30)),), dims={"batch": op.Dim(1, 8)})
        ).exported.path
    )


def test_a_pipeline_step_is_named(parity_session):
    pipeline = make_pipeline(StandardScaler(), PCA(5), LogisticRegression(max_iter=500)).fit(X, Y)
    broken = exported(parity_session, pipeline)
    matrix = next(t for t in broken.graph.initializer if t.name == "transform_matrix")  # PCA's components
    value = numpy_helper.to_array(matrix).copy()
    value[0, 0] *= 1.5
    matrix.CopyFrom(numpy_helper.from_array(value, matrix.name))
    result = op.check(
        pipeline, onnx=broken, data=X, examples=8, session=parity_session, name="sklearn forensics pca"
    )
    found = result["ort-cpu"].divergence
    assert found is not None, result["ort-cpu"].message
    assert (found.op_type, found.source, found.tensor) == ("MatMul", "pca", "variable1")
    assert "(step pca)" in result["ort-cpu"].message


def test_a_wrong_tree_threshold_is_named(parity_session):
    forest = RandomForestRegressor(n_estimators=3, max_depth=3, random_state=0).fit(X, Y)
    broken = exported(parity_session, forest)
    (tree,) = broken.graph.node
    values = next(a for a in tree.attribute if a.name == "nodes_values")
    moved = list(values.floats)
    moved[0] += 1000.0  # the first split of the first tree, far off
    del values.floats[:]
    values.floats.extend(moved)
    result = op.check(
        forest, onnx=broken, data=X, examples=12, session=parity_session, name="sklearn forensics tree"
    )
    found = result["ort-cpu"].divergence
    assert found is not None and found.op_type == "TreeEnsembleRegressor" and found.nodes == (tree.name,)


def test_a_step_inside_a_column_transformer_is_named(parity_session):
    pd = pytest.importorskip("pandas")
    from sklearn.compose import ColumnTransformer
    from sklearn.preprocessing import OneHotEncoder

    rng = np.random.default_rng(0)
    frame = pd.DataFrame(
        {
            "age": rng.uniform(18, 80, 200),
            "income": rng.lognormal(10, 0.5, 200),
            "city": rng.choice(["paris", "oslo", "lima"], 200),
        }
    )
    features = ColumnTransformer(
        [
            ("numeric", StandardScaler(), ["age", "income"]),
            ("city", OneHotEncoder(handle_unknown="ignore"), ["city"]),
        ]
    )
    pipeline = make_pipeline(features, LogisticRegression()).fit(frame, frame.age > 45)
    spec = op.ParitySpec(
        inputs=(
            op.Input("age", ("batch", 1)),
            op.Input("income", ("batch", 1)),
            op.Input("city", ("batch", 1), dtype="str", categories=("paris", "oslo", "lima")),
        ),
        dims={"batch": op.Dim(1, 8)},
    )
    broken = onnx.load(parity_session.prepare(pipeline, spec).exported.path)
    scaler = next(n for n in broken.graph.node if n.op_type == "Scaler")
    offset = next(a for a in scaler.attribute if a.name == "offset")
    moved = list(offset.floats)
    moved[0] += 5.0  # the age column's mean, off
    del offset.floats[:]
    offset.floats.extend(moved)
    result = op.check(
        pipeline,
        onnx=broken,
        data=frame,
        examples=8,
        session=parity_session,
        name="sklearn forensics column transformer",
    )["ort-cpu"]
    found = result.divergence
    assert found is not None, result.message
    assert (found.op_type, found.source) == ("Scaler", "columntransformer.numeric")
