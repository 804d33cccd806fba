"""XGBoost, LightGBM and CatBoost model sources: detection, inferred inputs, parity at defaults,
planted export bugs, clear errors."""

from __future__ import annotations

import sys

import numpy as np
import onnx
import pytest

import onnxparity as op
from onnxparity.draw import materialize, sample_examples
from onnxparity.exporters import exporter_for
from onnxparity.planning import DEFAULT_DIM

xgb = pytest.importorskip("xgboost")
lgb = pytest.importorskip("lightgbm")
pytest.importorskip("onnxmltools")

from sklearn.datasets import load_breast_cancer, load_diabetes, load_iris  # noqa: E402

X_CANCER, Y_CANCER = load_breast_cancer(return_X_y=True)
X_IRIS, Y_IRIS = load_iris(return_X_y=True)
X_DIABETES, Y_DIABETES = load_diabetes(return_X_y=True)
SMALL = {"n_estimators": 10, "max_depth": 3, "n_jobs": 1}


def _catboost(kind: str):
    cb = pytest.importorskip("catboost")
    small = {"iterations": 10, "depth": 3, "verbose": False, "thread_count": 1, "allow_writing_files": False}
    if kind == "binary":
        return cb.CatBoostClassifier(**small).fit(X_CANCER, Y_CANCER)
    if kind == "multiclass":
        return cb.CatBoostClassifier(**small).fit(X_IRIS, Y_IRIS)
    return cb.CatBoostRegressor(**small).fit(X_DIABETES, Y_DIABETES)


MODELS = {
    "xgboost binary": lambda: xgb.XGBClassifier(**SMALL).fit(X_CANCER, Y_CANCER),
    "xgboost multiclass": lambda: xgb.XGBClassifier(**SMALL).fit(X_IRIS, Y_IRIS),
    "xgboost regressor": lambda: xgb.XGBRegressor(**SMALL).fit(X_DIABETES, Y_DIABETES),
    "lightgbm binary": lambda: lgb.LGBMClassifier(verbose=-1, **SMALL).fit(X_CANCER, Y_CANCER),
    "lightgbm multiclass": lambda: lgb.LGBMClassifier(verbose=-1, **SMALL).fit(X_IRIS, Y_IRIS),
    "lightgbm regressor": lambda: lgb.LGBMRegressor(verbose=-1, **SMALL).fit(X_DIABETES, Y_DIABETES),
    "catboost binary": lambda: _catboost("binary"),
    "catboost multiclass": lambda: _catboost("multiclass"),
    "catboost regressor": lambda: _catboost("regressor"),
}
#: what writes each source's ONNX file, and a regressor's output name
CONVERTERS = {"xgboost": "onnxmltools", "lightgbm": "onnxmltools", "catboost": "catboost"}
REGRESSOR_OUTPUT = {"xgboost": "variable", "lightgbm": "variable", "catboost": "predictions"}
_fitted: dict = {}


def fitted(name: str):
    if name not in _fitted:
        _fitted[name] = MODELS[name]()
    return _fitted[name]


def exported(session, model) -> onnx.ModelProto:
    """The model's own export, as a check at default settings makes it."""
    spec = op.ParitySpec(inputs=exporter_for(model).declared_inputs(model), dims={"batch": DEFAULT_DIM})
    return onnx.load(session.prepare(model, spec).exported.path)


def drawn_rows(model, count: int = 30) -> np.ndarray:
    """Rows a check at default settings draws for the model (its inferred input)."""
    spec = op.ParitySpec(inputs=exporter_for(model).declared_inputs(model), dims={"batch": DEFAULT_DIM})
    return np.concatenate([materialize(spec, e)["X"] for e in sample_examples(spec, count)])


@pytest.mark.parametrize("name", list(MODELS))
def test_each_source_passes_at_defaults_with_inferred_inputs(name, parity_session):
    model = fitted(name)
    result = op.check(model, examples=10, session=parity_session)
    checked = result["ort-cpu"]
    assert result.passed, checked.message
    source = name.split()[0]
    assert result.exporter == CONVERTERS[source]
    assert exporter_for(model).name == source  # not the sklearn source, whose class XGBoost/LightGBM share
    expected = [REGRESSOR_OUTPUT[source]] if "regressor" in name else ["label", "probabilities"]
    assert [o.name for o in checked.outputs] == expected
    assert checked.power is None or not checked.power.weak, checked.power


@pytest.mark.parametrize("name", list(MODELS))
def test_inferred_range_reaches_past_every_split_and_outputs_vary(name):
    model = fitted(name)
    (item,) = exporter_for(model).declared_inputs(model)
    X = X_CANCER if "binary" in name else X_IRIS if "multiclass" in name else X_DIABETES
    assert item.shape == ("batch", X.shape[1]) and item.dtype == "float32"
    features, thresholds, _ = exporter_for(model).splits(model)
    assert item.low < thresholds.min() and item.high > thresholds.max()
    predictions = model.predict(drawn_rows(model))
    if "regressor" in name:
        assert len(np.unique(predictions)) > 20  # [-1, 1] gave one constant for XGBoost on real scales
    else:
        assert set(np.unique(predictions)) == set(np.unique(model.classes_))  # every class is drawn


@pytest.mark.parametrize("name", ["xgboost binary", "lightgbm multiclass"])
def test_the_old_default_range_gave_one_label_and_the_inferred_one_every_class(name):
    model = fitted(name)
    old = op.ParitySpec(inputs=(op.Input("X", ("batch", model.n_features_in_)),), dims={"batch": DEFAULT_DIM})
    rows = np.concatenate([materialize(old, e)["X"] for e in sample_examples(old, 30)])
    assert len(np.unique(model.predict(rows))) == 1  # [-1, 1]: a pass that could not have failed
    assert len(np.unique(model.predict(drawn_rows(model)))) == len(model.classes_)


def test_a_moved_leaf_weight_fails_with_a_diagnosis(parity_session, tmp_path):
    model = fitted("xgboost multiclass")
    proto = exported(parity_session, model)
    node = next(n for n in proto.graph.node if n.op_type == "TreeEnsembleClassifier")
    weights = next(a for a in node.attribute if a.name == "class_weights").floats
    weights[0] += 0.5  # one leaf of the first tree
    result = op.check(
        model,
        onnx=proto,
        inputs=exporter_for(model).declared_inputs(model),
        dims={"batch": DEFAULT_DIM},
        data=X_IRIS,
        reproducer_dir=tmp_path,
    )
    failed = result["ort-cpu"]
    assert failed.status == "failed"
    assert failed.message.startswith("ort-cpu differs from the reference")
    assert "output 'probabilities': " in failed.message and "beyond atol=1e-05, rtol=0.0001" in failed.message
    assert "worst mismatches:" in failed.message and "shrunk input: dims batch=" in failed.message
    assert failed.reproducer
    assert failed.message.rstrip().splitlines()[-1].startswith("next:")


def test_a_moved_split_threshold_fails(parity_session, tmp_path):
    model = fitted("lightgbm regressor")
    proto = exported(parity_session, model)
    node = next(n for n in proto.graph.node if n.op_type == "TreeEnsembleRegressor")
    attrs = {a.name: a for a in node.attribute}
    root = list(attrs["nodes_nodeids"].ints).index(0)  # the first tree's root split
    feature = attrs["nodes_featureids"].ints[root]
    attrs["nodes_values"].floats[root] = float(
        np.median(X_DIABETES[:, feature]) + X_DIABETES[:, feature].std()
    )
    result = op.check(
        model,
        onnx=proto,
        inputs=exporter_for(model).declared_inputs(model),
        dims={"batch": DEFAULT_DIM},
        data=X_DIABETES,
        reproducer_dir=tmp_path,
    )
    failed = result["ort-cpu"]
    assert failed.status == "failed"
    assert "output 'variable': " in failed.message


def test_models_fitted_on_named_columns_convert_and_keep_their_names(parity_session):
    pd = pytest.importorskip("pandas")
    columns = ["sepal length", "sepal width", "petal length", "petal width"]
    frame = pd.DataFrame(X_IRIS, columns=columns)
    xgboost = xgb.XGBClassifier(**SMALL).fit(frame, Y_IRIS)
    lightgbm = lgb.LGBMClassifier(verbose=-1, **SMALL).fit(frame, Y_IRIS)
    for model in (xgboost, lightgbm):
        result = op.check(model, examples=5, session=parity_session)
        assert result.passed, result["ort-cpu"].message
    # onnxmltools reads XGBoost feature ids as 'f<i>': a copy without names was converted
    assert xgboost.get_booster().feature_names == columns


def test_string_labels_pass(parity_session):
    model = lgb.LGBMClassifier(verbose=-1, **SMALL).fit(
        X_IRIS, np.array(["setosa", "versicolor", "virginica"])[Y_IRIS]
    )
    result = op.check(model, examples=5, session=parity_session)
    assert result.passed, result["ort-cpu"].message


def test_lightgbm_label_shape_is_freed_and_noted(parity_session):
    model = fitted("lightgbm binary")
    label = next(o for o in exported(parity_session, model).graph.output if o.name == "label")
    assert label.type.tensor_type.shape.dim[0].dim_param == "batch"
    result = op.check(model, examples=2, session=parity_session)
    assert any("onnxmltools declared output 'label' with a first axis fixed at 1" in n for n in result.notes)


def test_unfitted_models_and_contradicting_specs_are_clear_errors():
    for model in (xgb.XGBClassifier(), lgb.LGBMRegressor()):
        with pytest.raises(
            op.ExportError,
            match=rf"^{type(model).__name__} is not fitted: call fit\(\) before checking its export",
        ):
            op.check(model)
    model = fitted("xgboost multiclass")
    with pytest.raises(op.InvalidSpec, match=r"has shape \('batch', 5\) but XGBClassifier was fitted on 4"):
        op.check(model, inputs=[op.Input("X", ("batch", 5))], dims={"batch": DEFAULT_DIM})
    with pytest.raises(op.InvalidSpec, match=r"dtype float64: xgboost exports take float32 features"):
        op.check(model, inputs=[op.Input("X", ("batch", 4), dtype="float64")], dims={"batch": DEFAULT_DIM})
    with pytest.raises(op.ExportError, match=r"xgboost.core.Booster is not a scikit-learn-API xgboost model"):
        op.check(model.get_booster(), inputs=[op.Input("X", ("batch", 4))], dims={"batch": DEFAULT_DIM})


def test_missing_onnxmltools_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "onnxmltools", None)
    with pytest.raises(
        op.FrameworkNotInstalled, match=r"onnxmltools is not installed: pip install 'onnxparity\[gbdt\]'"
    ):
        op.check(fitted("lightgbm regressor"), examples=1)


def test_large_targets_near_zero_get_a_default_tolerance_from_float32_rounding(parity_session):
    """float32 summation of many leaves moved a correct export's output near zero by up to 19x
    the default tolerance (a false alarm): the exporter now sets the model's default atol from
    the rounding bound, and says so."""
    from sklearn.datasets import make_regression

    X, y = make_regression(300, 4, random_state=0)
    model = xgb.XGBRegressor(n_estimators=50, max_depth=3).fit(X, y * 1000)
    result = op.check(model, examples=2, session=parity_session)
    (note,) = [n for n in result.notes if "in float32: rounding alone" in n]
    assert (
        note.startswith("XGBRegressor adds 50 trees' leaves")
        and "this model's default tolerance is atol=" in note
    )
    policy = result["ort-cpu"].policy
    assert policy.atol > 1e-5 and policy.rtol == 1e-4
    declared = op.check(model, examples=2, session=parity_session, tolerance=op.Tolerance(atol=1e-3))
    assert declared["ort-cpu"].policy == op.Tolerance(atol=1e-3)  # a declared tolerance wins
    assert not [n for n in op.check(fitted("xgboost regressor"), examples=2).notes if "rounding" in n]


def test_catboost_probabilities_are_read_under_its_zipmap_and_opsets_are_refused(parity_session):
    model = fitted("catboost multiclass")
    proto = exported(parity_session, model)
    assert "ZipMap" not in {n.op_type for n in proto.graph.node}
    assert [i.name for i in proto.graph.input] == ["X"]
    result = op.check(model, examples=2, session=parity_session)
    assert any(n.startswith("CatBoost's export ends in a ZipMap") for n in result.notes)
    with pytest.raises(op.ExportError, match=r"CatBoost's ONNX export has no opset choice"):
        op.check(model, opset=17, session=parity_session)
