"""Boundaries through column selection (issue 28): the constants a graph branches on reach the
input column they belong to through Gather/ArrayFeatureExtractor, Slice, Split, Concat, casts,
reshapes and per-column affine ops — a ColumnTransformer's KBinsDiscretizer bin edges rounded
the wrong way to float32 are caught at default settings. A dim range no larger than the example
budget is tried value by value, and the result's coverage lists the dim values tried."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import onnxparity as op
from onnxparity.draw import Example, enumerated_dims, search_examples
from onnxparity.graph.boundaries import harvest, harvest_sites
from onnxparity.search.coverage import Coverage
from onnxparity.search.data import ExampleKey


def model(nodes, constants, width=5, opset=17, ml=False) -> onnx.ModelProto:
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", width])],
        [helper.make_tensor_value_info(nodes[-1].output[0], TensorProto.FLOAT, None)],
        [numpy_helper.from_array(np.asarray(v), k) for k, v in constants.items()],
    )
    opsets = [helper.make_opsetid("", opset)] + ([helper.make_opsetid("ai.onnx.ml", 3)] if ml else [])
    return helper.make_model(graph, opset_imports=opsets)


def found(proto) -> list[tuple]:
    return sorted(harvest(proto).get("x", ()), key=lambda p: (-1 if p[0] is None else p[0], p[1]))


F = np.float32
I64 = np.int64


# -- the graph: which column a threshold belongs to ------------------------------------------------
def test_gather_of_constant_columns_gives_each_threshold_its_column():
    """x[:, 3] > 0.5 and x[:, [4, 1]] < [2, -2]: each value belongs to the column it is compared
    with (before: every one to the whole input, drawn in every column)."""
    proto = model(
        [
            helper.make_node("Gather", ["x", "three"], ["c3"], axis=1),
            helper.make_node("Greater", ["c3", "half"], ["g"]),
            helper.make_node("Gather", ["x", "pick"], ["c41"], axis=-1),
            helper.make_node("Less", ["c41", "pair"], ["y"]),
        ],
        {"three": I64(3), "half": F(0.5), "pick": np.array([4, -4], I64), "pair": np.array([2, -2], F)},
    )
    assert found(proto) == [(1, -2.0), (3, 0.5), (4, 2.0)]


def test_gather_along_another_axis_keeps_the_columns():
    proto = model(
        [
            helper.make_node("Gather", ["x", "row"], ["r"], axis=0),
            helper.make_node("Less", ["r", "cut"], ["y"]),
        ],
        {"row": I64(0), "cut": np.array([1, 2, 3, 4, 5], F)},
    )
    assert found(proto) == [(j, float(j + 1)) for j in range(5)]


def test_slice_split_and_concat_follow_positions():
    """Slice x[:, 1:5:2] (columns 1, 3), Split into [2, 3] (the second part: columns 2, 3, 4),
    and a Concat of a computed column with the slice: a comparison per position lands on its
    input column, the computed column's threshold on none."""
    proto = model(
        [
            helper.make_node("Slice", ["x", "starts", "ends", "axes", "steps"], ["odd"]),
            helper.make_node("Split", ["x", "sizes"], ["left", "right"], axis=1),
            helper.make_node("ReduceSum", ["x", "one"], ["total"], keepdims=1),
            helper.make_node("Concat", ["total", "odd"], ["joined"], axis=1),
            helper.make_node("Greater", ["joined", "three"], ["g"]),
            helper.make_node("Less", ["right", "tail"], ["y"]),
        ],
        {
            "starts": np.array([1], I64),
            "ends": np.array([5], I64),
            "axes": np.array([-1], I64),
            "steps": np.array([2], I64),
            "sizes": np.array([2, 3], I64),
            "one": np.array([1], I64),
            "three": np.array([100, 11, 33], F),
            "tail": np.array([20, 30, 40], F),
        },
    )
    assert found(proto) == [(1, 11.0), (2, 20.0), (3, 30.0), (3, 33.0), (4, 40.0)]


def test_reshapes_keep_columns_only_where_the_last_axis_stays():
    """Reshape to (-1, 1, 5) and Unsqueeze(1) keep the last axis: per-position constants stay
    per column. Reshape to (-1,) mixes the columns: its threshold is every column's (None)."""
    proto = model(
        [
            helper.make_node("Reshape", ["x", "keep"], ["kept"]),
            helper.make_node("Unsqueeze", ["kept", "axis1"], ["more"]),
            helper.make_node("Greater", ["more", "cuts"], ["g"]),
            helper.make_node("Reshape", ["x", "flat"], ["flattened"]),
            helper.make_node("Less", ["flattened", "seven"], ["y"]),
        ],
        {
            "keep": np.array([-1, 1, 5], I64),
            "axis1": np.array([1], I64),
            "cuts": np.array([0.125, 0.25, 0.375, 0.5, 0.625], F),
            "flat": np.array([-1], I64),
            "seven": F(7.0),
        },
    )
    assert found(proto) == [(None, 7.0), (0, 0.125), (1, 0.25), (2, 0.375), (3, 0.5), (4, 0.625)]


def test_per_column_affine_maps_each_threshold_back_to_its_column_scale():
    """(x - mean) / std per column, then a Relu: 0 there is each column's mean; a Scaler
    (ai.onnx.ml, as StandardScaler converts) likewise."""
    mean, std = np.array([1, 2, 3, 4, 5], F), np.array([2, 2, 2, 2, 4], F)
    standardized = model(
        [
            helper.make_node("Sub", ["x", "mean"], ["centred"]),
            helper.make_node("Div", ["centred", "std"], ["z"]),
            helper.make_node("Relu", ["z"], ["y"]),
        ],
        {"mean": mean, "std": std},
    )
    assert found(standardized) == [(j, float(mean[j])) for j in range(5)]
    scaler = model(
        [
            helper.make_node(
                "Scaler", ["x"], ["z"], domain="ai.onnx.ml", offset=mean.tolist(), scale=(1 / std).tolist()
            ),
            helper.make_node("Greater", ["z", "one"], ["y"]),
        ],
        {"one": F(1.0)},
        ml=True,
    )
    assert found(scaler) == [(j, float(mean[j] + std[j])) for j in range(5)]


def test_a_value_compared_with_every_column_belongs_to_the_whole_input():
    proto = model(
        [
            helper.make_node("Cast", ["x"], ["c"], to=TensorProto.DOUBLE),
            helper.make_node("Relu", ["c"], ["y"]),
        ],
        {},
    )
    (site,) = harvest_sites(proto)["x"]
    assert (site.column, site.value) == (None, 0.0)
    assert site.describe("x") == "Relu 'Relu' at x = 0"


# -- scikit-learn through skl2onnx ----------------------------------------------------------------
skl2onnx = pytest.importorskip("skl2onnx")
from sklearn.compose import ColumnTransformer  # noqa: E402
from sklearn.linear_model import LinearRegression  # noqa: E402
from sklearn.pipeline import Pipeline  # noqa: E402
from sklearn.preprocessing import KBinsDiscretizer, StandardScaler  # noqa: E402
from sklearn.tree import DecisionTreeRegressor  # noqa: E402

BINNED = [1, 2]  # the columns binned; 0 and 3 pass through


def rows() -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.normal(size=(200, 4)) * [1, 10, 3, 0.1] + [0, 50, -2, 1]


def binned(strategy: str, estimator=None) -> Pipeline:
    x = rows()
    y = x[:, 0] * 2 - x[:, 1] * 0.1 + (x[:, 2] > -2) * 3
    bins = KBinsDiscretizer(n_bins=5, encode="ordinal", strategy=strategy)
    features = ColumnTransformer([("bins", bins, BINNED)], remainder="passthrough")
    return Pipeline([("features", features), ("model", estimator or LinearRegression())]).fit(x, y)


def converted(pipeline: Pipeline) -> onnx.ModelProto:
    return skl2onnx.to_onnx(pipeline, rows()[:1].astype(np.float32), target_opset=17)


def edges(pipeline: Pipeline) -> list[np.ndarray]:
    """Each binned column's inner bin edges (float64, as scikit-learn compares them)."""
    return [e[1:-1] for e in pipeline.named_steps["features"].named_transformers_["bins"].bin_edges_]


def with_edges(proto: onnx.ModelProto, pipeline: Pipeline, rounding: str) -> onnx.ModelProto:
    """``proto`` with its bin edges stored as float32: ``up`` (the smallest float32 >= the
    edge: ``x < edge`` decides as scikit-learn does for every float32 x — correct),
    ``nearest`` (what skl2onnx writes: an edge rounded down sends a float32 exactly on it to
    the next bin), or ``one_down`` (up, but one edge a float32 step lower)."""
    edited = onnx.ModelProto()
    edited.CopyFrom(proto)
    ranges = [t for t in edited.graph.initializer if t.name.startswith("range_column")]
    assert len(ranges) == len(BINNED)
    for tensor, own in zip(sorted(ranges, key=lambda t: t.name), edges(pipeline)):
        stored = own.astype(F)
        up = np.where(stored.astype(np.float64) < own, np.nextafter(stored, F(np.inf)), stored)
        chosen = {"up": up, "nearest": stored, "one_down": up.copy()}[rounding]
        if rounding == "one_down":
            chosen[1] = np.nextafter(chosen[1], F(-np.inf))
        tensor.CopyFrom(numpy_helper.from_array(chosen.astype(F), tensor.name))
    return edited


def test_kbins_edges_behind_a_column_transformer_are_each_columns_boundaries():
    pipeline = binned("uniform")
    found_here = harvest(converted(pipeline))["X"]
    for column, own in zip(BINNED, edges(pipeline)):
        assert sorted(v for c, v in found_here if c == column) == sorted(float(F(e)) for e in own)
    assert {c for c, _ in found_here} == set(BINNED)


def test_tree_features_after_a_column_transformer_are_the_columns_they_hold():
    """The tree reads [scaled 1, scaled 2, passthrough 0, passthrough 3]: feature 2's splits are
    column 0's, feature 0's are column 1's mapped back through the scaler."""
    x = rows()
    features = ColumnTransformer([("scaled", StandardScaler(), [1, 2])], remainder="passthrough")
    tree = DecisionTreeRegressor(max_depth=4, random_state=0)
    pipeline = Pipeline([("features", features), ("tree", tree)]).fit(x, x[:, 0] + x[:, 1] / 10)
    found_here = harvest(converted(pipeline))["X"]
    t = pipeline.named_steps["tree"].tree_
    scaler = pipeline.named_steps["features"].named_transformers_["scaled"]
    inner = t.feature >= 0
    for feature, column in ((0, 1), (1, 2), (2, 0), (3, 3)):
        own = t.threshold[inner & (t.feature == feature)].astype(F).astype(np.float64)
        if feature < 2:
            own = own * scaler.scale_[feature] + scaler.mean_[feature]
        drawn = sorted(v for c, v in found_here if c == column)
        assert len(drawn) == len(own) and np.allclose(drawn, sorted(own), rtol=1e-6), (feature, drawn, own)


def declared(x: np.ndarray) -> dict:
    """The input as op.check(pipeline, data=x) infers it for its own export: the rows' range."""
    return dict(
        inputs=[op.Input("X", ("batch", 4), low=float(x.min()), high=float(x.max()))],
        dims={"batch": op.Dim(1, 16)},
    )


@pytest.mark.parametrize("strategy", ["uniform", "quantile"])
@pytest.mark.parametrize(("rounding", "passes"), [("nearest", False), ("one_down", False), ("up", True)])
def test_kbins_edges_rounded_the_wrong_way_fail_at_defaults(strategy, rounding, passes, tmp_path):
    """Before, no boundary reached X (the edges sit behind ArrayFeatureExtractor and Cast) and
    every file passed; now a float32 exactly on an edge rounded down is drawn, and only the
    correctly rounded file passes."""
    pipeline = binned(strategy)
    x = rows()
    edited = with_edges(converted(pipeline), pipeline, rounding)
    result = op.check(pipeline, onnx=edited, data=x, reproducer_dir=tmp_path, **declared(x))
    assert result.passed is passes, result["ort-cpu"].message
    if not passes:
        assert "boundary" in result["ort-cpu"].failing_example["patterns"]


# -- small dim ranges tried value by value ----------------------------------------------------------
def spec(**dims) -> op.ParitySpec:
    names = tuple(dims)
    return op.ParitySpec(inputs=(op.Input("x", (*names, 3)),), dims={n: op.Dim(*r) for n, r in dims.items()})


def test_a_dim_range_within_the_budget_is_tried_value_by_value():
    explicit, drawn = search_examples(spec(batch=(1, 4)), 5)
    assert sorted({e.dim_values["batch"] for e in explicit}) == [1, 2, 3, 4]
    assert drawn == 5  # batch 2 and 3 come on top of the 5 drawn, as the corners do
    assert len(explicit) == 4
    wide, drawn = search_examples(spec(batch=(1, 64)), 25)
    assert sorted({e.dim_values["batch"] for e in wide}) == [1, 64] and drawn == 25


def test_the_product_of_small_ranges_fits_the_budget():
    both = spec(batch=(1, 2), seq=(1, 3))
    assert enumerated_dims(both, 6) == ("batch", "seq")
    explicit, drawn = search_examples(both, 6)
    assert {tuple(sorted(e.dim_values.items())) for e in explicit} == {
        (("batch", b), ("seq", s)) for b in (1, 2) for s in (1, 2, 3)
    }
    assert drawn == 6
    assert enumerated_dims(both, 5) == ("batch",)  # 6 combinations do not fit 5: the narrowest range alone
    assert enumerated_dims(spec(batch=(1, 8), seq=(1, 3)), 5) == ("seq",)


def test_the_dim_values_tried_are_the_coverage():
    coverage = Coverage({})
    for batch in (4, 1, 2, 1):
        key = ExampleKey("digest", "", Example((("batch", batch),), ("uniform",), 0))
        coverage.add({"x": np.zeros((batch, 3), F)}, key)
    assert coverage.report(4) == {"dims": {"batch": [1, 2, 4]}}


def onnx_identity() -> onnx.ModelProto:
    graph = helper.make_graph(
        [helper.make_node("Identity", ["x"], ["y"])],
        "identity",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 3])],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def wrong_at_batch_three(x):
    return [x + 1.0 if len(x) == 3 else x]


@pytest.mark.parametrize("name", ["n3", "n7", "n18"])
def test_a_model_wrong_only_at_batch_three_fails_at_five_examples(name, tmp_path):
    """Before, batch 1 and 4 (the corners) and 5 drawn examples: batch 3 was missed at these
    names' seeds (3 of the first 20). Now 2 and 3 are explicit examples, beside the 5 drawn."""
    result = op.check(
        onnx=onnx_identity(),
        reference=wrong_at_batch_three,
        inputs=[op.Input("x", ("batch", 3))],
        dims={"batch": op.Dim(1, 4)},
        examples=5,
        name=name,
        reproducer_dir=tmp_path,
    )
    assert not result.passed
    assert result["ort-cpu"].failing_example["dims"] == {"batch": 3}


def test_the_result_and_the_report_list_the_dim_values_tried(pytester):
    pytester.makepyfile(
        test_batch="""
import numpy as np, pytest
from onnx import TensorProto, helper
import onnxparity as op


def identity():
    graph = helper.make_graph(
        [helper.make_node("Identity", ["x"], ["y"])], "identity",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 3])],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


@pytest.mark.onnx_parity(inputs=[op.Input("x", ("batch", 3))], dims={"batch": op.Dim(1, 4)}, examples=5)
def test_identity(onnx_parity):
    onnx_parity.check(onnx=identity(), reference=lambda x: [x])
"""
    )
    report = pytester.path / "report.json"
    result = pytester.runpytest_inprocess(
        "--onnx-parity", f"--onnx-parity-report={report}", "-p", "no:cacheprovider"
    )
    result.assert_outcomes(passed=1)
    (item,) = json.loads(report.read_text())["items"]
    assert item["result"]["coverage"] == {"dims": {"batch": [1, 2, 3, 4]}}


@pytest.mark.parametrize(("rounding", "passes"), [("nearest", False), ("up", True)])
def test_a_file_checked_with_the_models_rows_draws_at_their_range(rounding, passes, tmp_path):
    """op.check(pipeline, onnx=file, data=rows) with nothing declared: the file's inputs took
    the default range [-1, 1], where no bin edge lies, and a wrongly rounded file passed; they
    now take the rows' range, as the model's own export does."""
    pipeline = binned("uniform")
    edited = with_edges(converted(pipeline), pipeline, rounding)
    result = op.check(pipeline, onnx=edited, data=rows(), reproducer_dir=tmp_path)
    assert result.passed is passes, result["ort-cpu"].message


def test_the_own_export_moves_edges_rounded_down_and_passes(tmp_path):
    """skl2onnx stores each bin edge as the nearest float32 (a float32 exactly on an edge that
    rounded down falls in the next bin): onnxparity's own export moves those edges up and says
    so, and the correct pipeline passes at defaults."""
    pipeline = binned("uniform")
    result = op.check(pipeline, data=rows(), reproducer_dir=tmp_path)
    assert result.passed, result["ort-cpu"].message
    assert any("KBinsDiscretizer bin edge(s) moved up to the next float32" in note for note in result.notes)
