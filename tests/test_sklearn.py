"""scikit-learn: estimators, pipelines with string columns, label flips and ties, clear errors."""

from __future__ import annotations

import numpy as np
import onnx
import pytest

import onnxparity as op

pd = pytest.importorskip("pandas")
pytest.importorskip("skl2onnx")

from sklearn.base import BaseEstimator, ClassifierMixin  # noqa: E402
from sklearn.cluster import KMeans  # noqa: E402
from sklearn.compose import ColumnTransformer  # noqa: E402
from sklearn.datasets import load_diabetes, load_iris  # noqa: E402
from sklearn.ensemble import RandomForestClassifier  # noqa: E402
from sklearn.linear_model import LinearRegression, LogisticRegression  # noqa: E402
from sklearn.pipeline import Pipeline  # noqa: E402
from sklearn.preprocessing import OneHotEncoder, StandardScaler  # noqa: E402

X_IRIS, Y_IRIS = load_iris(return_X_y=True)
IRIS = [op.Input("X", ("batch", 4), low=0, high=8)]
BATCH = {"batch": op.Dim(1, 32)}


def frame(rows: int = 120) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    return pd.DataFrame(
        {
            "age": rng.uniform(18, 80, rows),
            "income": rng.uniform(0, 1e5, rows),
            "city": rng.choice(["oslo", "lima", "pune"], rows),
        }
    )


def pipeline(data: pd.DataFrame) -> Pipeline:
    target = ((data.age > 40) ^ (data.city == "oslo")).astype(int)
    features = ColumnTransformer(
        [
            ("num", StandardScaler(), ["age", "income"]),
            ("cat", OneHotEncoder(handle_unknown="ignore"), ["city"]),
        ]
    )
    return Pipeline([("features", features), ("clf", LogisticRegression())]).fit(data, target)


COLUMNS = [
    op.Input("age", ("batch", 1), low=18, high=80),
    op.Input("income", ("batch", 1), low=0, high=1e5),
    op.Input("city", ("batch", 1), dtype="str"),
]


@pytest.mark.parametrize(
    ("model", "outputs"),
    [
        (
            RandomForestClassifier(n_estimators=10, random_state=0).fit(X_IRIS, Y_IRIS),
            ["label", "probabilities"],
        ),
        (
            LogisticRegression(max_iter=500).fit(
                X_IRIS, np.array(["setosa", "versicolor", "virginica"])[Y_IRIS]
            ),
            ["label", "probabilities"],
        ),
        (StandardScaler().fit(X_IRIS), ["variable"]),
        (KMeans(3, n_init=2, random_state=0).fit(X_IRIS), ["label", "scores"]),
    ],
    ids=["random forest", "string labels", "transformer", "clusterer"],
)
def test_estimators_pass_at_default_tolerance(model, outputs, tmp_path):
    result = op.check(model, inputs=IRIS, dims=BATCH, examples=10, reproducer_dir=tmp_path)
    assert result.passed, result["ort-cpu"].message
    assert result.exporter == "skl2onnx"
    assert [o.name for o in result["ort-cpu"].outputs] == outputs


def test_regressor_in_float64_passes(tmp_path):
    X, y = load_diabetes(return_X_y=True)
    model = LinearRegression().fit(X, y)
    result = op.check(
        model,
        inputs=[op.Input("X", ("batch", 10), dtype="float64", low=-0.2, high=0.2)],
        dims=BATCH,
        examples=5,
        reproducer_dir=tmp_path,
    )
    assert result.passed and result["ort-cpu"].outputs[0].max_abs_error < 1e-9


def test_pipeline_with_string_column_learns_categories_from_data(tmp_path):
    data = frame()
    result = op.check(
        pipeline(data), inputs=COLUMNS, dims=BATCH, data=data, examples=10, reproducer_dir=tmp_path
    )
    assert result.passed, result["ort-cpu"].message


def test_string_input_without_categories_or_data_is_an_error():
    with pytest.raises(
        op.InvalidSpec,
        match=r"Input\('city'\) is a str input with no categories: give categories=\[...\] or data=",
    ):
        op.check(pipeline(frame()), inputs=COLUMNS, dims=BATCH)


def test_label_flips_are_reported_with_rows_and_labels(parity_session, tmp_path):
    model = LogisticRegression(max_iter=500).fit(X_IRIS, Y_IRIS)
    spec = op.ParitySpec(inputs=tuple(IRIS), dims=BATCH)
    proto = onnx.load(parity_session.prepare(model, spec).exported.path)
    node = next(n for n in proto.graph.node if n.op_type == "LinearClassifier")
    classes = next(a for a in node.attribute if a.name == "classlabels_ints")
    classes.ints[1], classes.ints[2] = classes.ints[2], classes.ints[1]  # a wrong label mapping
    result = op.check(model, inputs=IRIS, dims=BATCH, onnx=proto, data=X_IRIS, reproducer_dir=tmp_path)
    failed = result["ort-cpu"]
    assert failed.status == "failed"
    assert [o.name for o in failed.verdict.failed_outputs] == ["label"]  # probabilities still agree
    assert "output 'label': " in failed.message and "exactly" in failed.message
    flip = failed.verdict.failed_outputs[0].worst[0]
    assert {flip.expected, flip.actual} == {1.0, 2.0}
    assert "index  expected  actual  difference" in failed.message


def test_ties_are_not_failures_but_a_flip_is():
    from onnxparity.verdict.compare import compare_outputs

    probabilities = np.array([[0.5, 0.5, 0.0], [0.2, 0.7, 0.1]])
    expected = [np.array([0, 1]), probabilities]
    tied = [np.array([1, 1]), probabilities.astype(np.float32)]
    flipped = [np.array([0, 0]), probabilities.astype(np.float32)]
    labels = {"label": ("probabilities", (0, 1, 2))}
    tol = op.Tolerance()
    assert compare_outputs(["label", "probabilities"], expected, tied, tol, labels).passed
    verdict = compare_outputs(["label", "probabilities"], expected, flipped, tol, labels)
    assert not verdict.passed and verdict.outputs[0].mismatched == 1


def test_unfitted_and_contradicting_specs_are_clear_errors():
    with pytest.raises(
        op.ExportError, match=r"LogisticRegression is not fitted: call fit\(\) before checking its export"
    ):
        op.check(LogisticRegression(), inputs=IRIS, dims=BATCH)
    fitted = RandomForestClassifier(n_estimators=2).fit(X_IRIS, Y_IRIS)
    with pytest.raises(op.InvalidSpec, match=r"has 5 features but RandomForestClassifier was fitted on 4"):
        op.check(fitted, inputs=[op.Input("X", ("batch", 5))], dims=BATCH)
    with pytest.raises(op.InvalidSpec, match=r"was fitted on columns \['age', 'income', 'city'\]"):
        op.check(
            pipeline(frame()),
            inputs=COLUMNS[:2] + [op.Input("town", ("batch", 1), dtype="str", categories=["a"])],
            dims=BATCH,
        )


class Handmade(ClassifierMixin, BaseEstimator):
    """An estimator skl2onnx has no converter for."""

    def fit(self, X, y):
        self.classes_ = np.unique(y)
        self.n_features_in_ = X.shape[1]
        return self

    def predict(self, X):
        return np.zeros(len(X), dtype=int)


def test_converter_failure_names_the_estimator_and_the_converters_message():
    with pytest.raises(op.ExportError) as info:
        op.check(Handmade().fit(X_IRIS, Y_IRIS), inputs=IRIS, dims=BATCH)
    assert str(info.value).startswith("skl2onnx could not convert Handmade: ")
    assert "Handmade" in str(info.value).split(":", 1)[1]


def test_missing_skl2onnx_is_a_skip_naming_the_extra(pytester: pytest.Pytester, warm_exporter):
    pytester.makeconftest("import sys\nsys.modules['skl2onnx'] = None\n")
    pytester.makepyfile(
        """
import pytest
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression
import onnxparity as op

@pytest.mark.onnx_parity(inputs=[op.Input("X", ("batch", 4))], dims={"batch": op.Dim(1, 4)})
def test_lr(onnx_parity):
    onnx_parity.check(LogisticRegression(max_iter=300).fit(*load_iris(return_X_y=True)))
"""
    )
    result = pytester.runpytest("--onnx-parity", "-rs")
    result.assert_outcomes(skipped=1)
    result.stdout.fnmatch_lines(["*skl2onnx is not installed: pip install 'onnxparity[[]sklearn[]]'*"])


def swapped_labels(parity_session, model) -> onnx.ModelProto:
    """The model's export with class labels 1 and 2 swapped: probabilities right, labels wrong."""
    proto = onnx.load(
        parity_session.prepare(model, op.ParitySpec(inputs=tuple(IRIS), dims=BATCH)).exported.path
    )
    node = next(n for n in proto.graph.node if n.op_type == "LinearClassifier")
    classes = next(a for a in node.attribute if a.name == "classlabels_ints")
    classes.ints[1], classes.ints[2] = classes.ints[2], classes.ints[1]
    return proto


def test_agreement_counts_label_flips_over_every_example(parity_session, tmp_path):
    model = LogisticRegression(max_iter=500).fit(X_IRIS, Y_IRIS)
    broken = swapped_labels(parity_session, model)
    # Iris rows of classes 1 and 2 flip (two thirds): 30% agreement accepts that, 90% does not.
    loose = op.check(
        model,
        inputs=IRIS,
        dims=BATCH,
        onnx=broken,
        data=X_IRIS,
        tolerance=op.Agreement(labels=0.3),
        reproducer_dir=tmp_path,
    )
    assert loose.passed, loose["ort-cpu"].message
    label = next(o for o in loose["ort-cpu"].outputs if o.name == "label")
    assert 0.3 < label.mismatched_rate < 0.7 and label.values > 100  # the flip rate is recorded
    strict = op.check(
        model,
        inputs=IRIS,
        dims=BATCH,
        onnx=broken,
        data=X_IRIS,
        tolerance=op.Agreement(labels=0.9),
        reproducer_dir=tmp_path,
    )
    failed = strict["ort-cpu"]
    assert failed.status == "failed"
    assert failed.message.startswith("ort-cpu labels agree less often than Agreement(labels=0.9) asks")
    assert "output 'label': " in failed.message and "at most 10% allowed)" in failed.message
    assert "the example with the most flips: dims batch=" in failed.message
    assert failed.reproducer and "index  expected  actual  difference" in failed.message


def test_agreement_keeps_float_outputs_elementwise(parity_session, tmp_path):
    model = LogisticRegression(max_iter=500).fit(X_IRIS, Y_IRIS)
    proto = onnx.load(
        parity_session.prepare(model, op.ParitySpec(inputs=tuple(IRIS), dims=BATCH)).exported.path
    )
    node = next(n for n in proto.graph.node if n.op_type == "LinearClassifier")
    weights = next(a for a in node.attribute if a.name == "coefficients")
    weights.floats[:] = [w * 1.01 for w in weights.floats]  # 1% off: probabilities move
    result = op.check(
        model,
        inputs=IRIS,
        dims=BATCH,
        onnx=proto,
        tolerance=op.Agreement(labels=0.01),
        reproducer_dir=tmp_path,
    )
    failed = result["ort-cpu"]
    assert failed.status == "failed"
    assert failed.message.startswith("ort-cpu differs from the reference")
    assert "output 'probabilities': " in failed.message and "beyond atol=1e-05, rtol=0.0001" in failed.message
    with pytest.raises(
        op.InvalidSpec, match=r"Agreement\(labels=1.5\): labels must be a fraction in \(0, 1\]"
    ):
        op.Agreement(labels=1.5)


@pytest.mark.filterwarnings("ignore:The `probability` parameter:FutureWarning")
def test_reference_evaluator_skips_svm_probabilities_it_gets_wrong(parity_session):
    from sklearn.svm import SVC

    model = SVC(probability=True, random_state=0).fit(X_IRIS.astype(np.float32), Y_IRIS)
    result = op.check(
        model,
        inputs=IRIS,
        dims=BATCH,
        variants=["ort-cpu", "onnx-reference"],
        examples=5,
        session=parity_session,
    )
    skipped = result["onnx-reference"]
    assert skipped.status == "skipped"
    assert (
        "not supported by the reference evaluator: its ai.onnx.ml.SVMClassifier implementation is known to"
        in (skipped.message)
    )


# -- inputs inferred from what the fitted estimator knows ----------------------------------------
def inferred(model, data=None) -> op.Input:
    from onnxparity.exporters import exporter_for

    (item,) = exporter_for(model).declared_inputs(model, data)
    return item


def drawn_rows(model, count: int = 30) -> np.ndarray:
    """The rows a check at default settings draws for the model's inferred input."""
    from onnxparity.draw import materialize, sample_examples
    from onnxparity.planning import DEFAULT_DIM

    spec = op.ParitySpec(inputs=(inferred(model),), dims={"batch": DEFAULT_DIM})
    rows = np.concatenate([materialize(spec, e)["X"] for e in sample_examples(spec, count)])
    return rows.astype(np.float64)  # as the reference passes them (KMeans refuses float32)


def test_inferred_ranges_come_from_scalers_trees_and_centres():
    from sklearn.impute import SimpleImputer
    from sklearn.preprocessing import MinMaxScaler
    from sklearn.tree import DecisionTreeClassifier

    scaler = StandardScaler().fit(X_IRIS)
    low, high = scaler.mean_ - 3 * scaler.scale_, scaler.mean_ + 3 * scaler.scale_
    item = inferred(
        Pipeline([("scale", scaler), ("lr", LogisticRegression(max_iter=500))]).fit(X_IRIS, Y_IRIS)
    )
    assert (item.low, item.high) == pytest.approx((low.min(), high.max()))
    item = inferred(MinMaxScaler().fit(X_IRIS))
    assert (item.low, item.high) == pytest.approx((X_IRIS.min(), X_IRIS.max()))

    tree = DecisionTreeClassifier(max_depth=3, random_state=0).fit(X_IRIS, Y_IRIS)
    splits = tree.tree_.threshold[tree.tree_.feature >= 0]
    item = inferred(tree)
    assert item.low < splits.min() and item.high > splits.max()  # both sides of every split
    assert item.high - item.low < 2 * (splits.max() - splits.min())  # widened a little, not a lot
    # through steps that keep feature values: an imputer, then the tree
    assert inferred(Pipeline([("impute", SimpleImputer()), ("tree", tree)]).fit(X_IRIS, Y_IRIS)) == item

    kmeans = KMeans(3, n_init=2, random_state=0).fit(X_IRIS)
    item = inferred(kmeans)
    assert item.low < kmeans.cluster_centers_.min() and item.high > kmeans.cluster_centers_.max()


def test_inferred_ranges_reach_every_label():
    from sklearn.ensemble import GradientBoostingClassifier

    for model in (
        GradientBoostingClassifier(n_estimators=10, random_state=0).fit(X_IRIS, Y_IRIS),
        KMeans(3, n_init=2, random_state=0).fit(X_IRIS),
    ):
        # [-1, 1] gave both of these a single label: a pass that could not have failed
        assert len(np.unique(model.predict(drawn_rows(model)))) == 3, type(model).__name__


def test_data_rows_set_the_range_and_nothing_known_falls_back_with_a_note(tmp_path):
    from sklearn.decomposition import PCA

    model = LinearRegression().fit(X_IRIS, Y_IRIS)
    assert (inferred(model, X_IRIS).low, inferred(model, X_IRIS).high) == (X_IRIS.min(), X_IRIS.max())
    for unknown in (model, Pipeline([("pca", PCA(2)), ("lr", LinearRegression())]).fit(X_IRIS, Y_IRIS)):
        assert (inferred(unknown).low, inferred(unknown).high) == (-1.0, 1.0)
    result = op.check(model, examples=2, reproducer_dir=tmp_path)
    assert result.passed
    assert result.notes == (
        "input 'X' is drawn from [-1, 1] (the default): LinearRegression keeps no training range "
        "(no scaler statistics, split thresholds or cluster centres); give data= (real rows) or "
        "op.Input(low=, high=)",
    )


def test_a_declared_range_that_misses_the_model_gets_a_note(tmp_path):
    model = RandomForestClassifier(n_estimators=3, random_state=0).fit(X_IRIS, Y_IRIS)
    narrow = [op.Input("X", ("batch", 4))]  # [-1, 1]: below most of iris' splits
    result = op.check(model, inputs=narrow, dims=BATCH, examples=2, reproducer_dir=tmp_path)
    (note,) = result.notes
    assert note.startswith("input 'X' is drawn from [-1, 1] but RandomForestClassifier's split thresholds")
    assert note.endswith("give data= (real rows) or a low=/high= covering that")


def test_isolation_forest_converts_at_ml_opset_3_and_passes(tmp_path):
    from sklearn.ensemble import IsolationForest

    model = IsolationForest(n_estimators=10, random_state=0).fit(X_IRIS)
    result = op.check(model, examples=10, data=X_IRIS, reproducer_dir=tmp_path)
    assert result.passed, result["ort-cpu"].message
    assert [o.name for o in result["ort-cpu"].outputs] == ["label", "scores"]


def test_hist_gradient_boosting_converts_or_names_the_protobuf_fix(tmp_path):
    import google.protobuf
    from sklearn.ensemble import HistGradientBoostingRegressor

    X, y = load_diabetes(return_X_y=True)
    model = HistGradientBoostingRegressor(max_iter=10).fit(X, y)
    if int(google.protobuf.__version__.split(".")[0]) < 7:
        assert op.check(model, examples=5, reproducer_dir=tmp_path).passed
        return
    with pytest.raises(op.ExportError) as info:
        op.check(model, examples=5, reproducer_dir=tmp_path)
    assert str(info.value).startswith("skl2onnx could not convert HistGradientBoostingRegressor: TypeError: ")
    assert "install 'protobuf<7' until skl2onnx fixes it" in str(info.value)


def test_unfitted_estimator_without_inputs_says_not_fitted():
    from sklearn.preprocessing import Normalizer

    for model in (
        LogisticRegression(),
        Pipeline([("scale", StandardScaler()), ("lr", LogisticRegression())]),
    ):
        with pytest.raises(op.ExportError, match=rf"^{type(model).__name__} is not fitted: call fit\(\)"):
            op.check(model)
    # stateless: nothing to fit, so nothing records the number of features either
    with pytest.raises(op.InvalidSpec, match=r"^Normalizer does not know how many features it takes"):
        op.check(Normalizer())


def test_a_pipeline_fitted_on_a_numpy_array_of_strings_is_drawn_strings(tmp_path):
    """OneHotEncoder(handle_unknown='ignore') then LogisticRegression, fitted on a numpy array of
    strings (no column names). Before: its input was declared float32, skl2onnx failed on it and
    the advice named estimators known not to convert; with data= the rows' conversion to float
    raised numpy's ValueError. Now its categories are drawn, and data= rows are used as strings."""
    x = np.array([["a", "x"], ["b", "y"], ["c", "x"], ["a", "z"]] * 5)
    model = Pipeline([("encode", OneHotEncoder(handle_unknown="ignore")), ("fit", LogisticRegression())])
    model.fit(x, [0, 1, 1, 0] * 5)
    for data in (None, x):
        result = op.check(model, data=data, examples=8, reproducer_dir=tmp_path)["ort-cpu"]
        assert result.status == "passed", result.message
    numbers = LinearRegression().fit(np.eye(3), [0, 1, 2])
    with pytest.raises(op.InvalidSpec, match=r"data= for Input\('X'\) holds <U1 values that are not float32"):
        op.check(numbers, data=np.array([["a", "b", "c"]] * 4), examples=4)


def test_a_fitted_text_pipeline_is_told_to_declare_a_string_input():
    """TfidfVectorizer then LogisticRegression, fitted: text vectorizers record no
    n_features_in_, and the advice was "fit it, or give inputs=[op.Input('X', ('batch',
    n_features))]" — a fitted model, and a float input it cannot read."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    docs = ["a cat sat", "a dog ran", "the cat ran", "the dog sat"] * 3
    model = Pipeline([("words", TfidfVectorizer()), ("fit", LogisticRegression())]).fit(docs, [0, 1, 0, 1] * 3)
    with pytest.raises(op.InvalidSpec, match=r"Pipeline takes text \(TfidfVectorizer reads one document per row\)"):
        op.check(model, examples=4)
