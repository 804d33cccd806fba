"""Strategies: boundary shapes first, dims and dtype ranges respected, shrinking reaches minimal."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import find, given, settings
from hypothesis import strategies as st

import onnxparity as op
from onnxparity.strategies import (
    PATTERNS,
    Example,
    boundary_examples,
    examples,
    export_dims,
    materialize,
    patterns_for,
)

SPEC = op.ParitySpec(
    inputs=[
        op.Input("image", ("batch", 3, "size", "size"), low=-2, high=3),
        op.Input("ids", ("batch", "seq"), dtype="int64", low=5, high=9),
        op.Input("mask", ("batch", "seq"), dtype="bool"),
        op.Input("half", ("seq",), dtype="float16", low=0.5, high=1.5),
    ],
    dims={"batch": op.Dim(1, 4), "size": op.Dim(32, 128, multiple_of=32), "seq": op.Dim(2, 9)},
)


def test_boundary_examples_are_all_min_then_all_max():
    low, high = boundary_examples(SPEC)
    assert low.dim_values == {"batch": 1, "size": 32, "seq": 2}
    assert high.dim_values == {"batch": 4, "size": 128, "seq": 9}


@settings(max_examples=30, deadline=None)
@given(examples(SPEC))
def test_drawn_examples_respect_dims_and_ranges(example):
    dims = example.dim_values
    assert dims["size"] % 32 == 0 and 32 <= dims["size"] <= 128
    assert 1 <= dims["batch"] <= 4 and 2 <= dims["seq"] <= 9
    arrays = materialize(SPEC, example)
    assert arrays["image"].shape == (dims["batch"], 3, dims["size"], dims["size"])
    assert arrays["image"].dtype == np.float32
    assert arrays["image"].min() >= -2 and arrays["image"].max() <= 3
    assert arrays["ids"].dtype == np.int64 and arrays["ids"].min() >= 5 and arrays["ids"].max() <= 9
    assert arrays["mask"].dtype == np.bool_ and arrays["mask"].shape == (dims["batch"], dims["seq"])
    assert arrays["half"].dtype == np.float16
    assert arrays["half"].min() >= 0.5 and arrays["half"].max() <= 1.5


@pytest.mark.parametrize("pattern", PATTERNS)
def test_every_pattern_stays_in_range_for_every_dtype(pattern):
    example = Example((("batch", 4), ("size", 64), ("seq", 9)), (pattern,) * 4, 3)
    arrays = materialize(SPEC, example)
    assert -2 <= arrays["image"].min() and arrays["image"].max() <= 3
    assert 5 <= arrays["ids"].min() and arrays["ids"].max() <= 9
    if pattern == "extremes":
        assert set(np.unique(arrays["ids"])) <= {5, 9}
        assert set(np.unique(arrays["image"])) <= {-2.0, 3.0}
    if pattern == "zeros":
        assert (arrays["image"] == 0).all() and (arrays["ids"] == 5).all()  # 0 out of range: nearest bound


def test_same_example_gives_same_arrays():
    example = Example(
        (("batch", 2), ("size", 32), ("seq", 3)), ("normal", "uniform", "uniform", "sparse"), 42
    )
    a, b = materialize(SPEC, example), materialize(SPEC, example)
    assert all(np.array_equal(a[k], b[k]) for k in a)


def test_shrinking_reaches_the_smallest_failing_shape_and_simplest_pattern():
    found = find(examples(SPEC), lambda e: e.dim_values["seq"] >= 5, settings=settings(database=None))
    assert found.dim_values == {"batch": 1, "size": 32, "seq": 5}
    assert set(found.patterns) == {"zeros"} and found.seed == 0


def test_export_dims_are_at_least_two_and_distinct():
    spec = op.ParitySpec(
        inputs=[op.Input("x", ("a", "b", 3, "c"))],
        dims={"a": op.Dim(1, 8), "b": op.Dim(1, 8), "c": op.Dim(2, 4)},
    )
    dims = export_dims(spec)
    assert all(v >= 2 for v in dims.values())
    assert len(set(dims.values())) == 3 and 3 not in dims.values()


@given(st.data())
@settings(max_examples=5, deadline=None)
def test_describe_names_shapes_patterns_and_seed(data):
    example = data.draw(examples(SPEC))
    text = example.describe(SPEC)
    assert f"seed {example.seed}" in text and "image[" in text


def test_rows_patterns_resample_real_rows_and_keep_records_together():
    from onnxparity.strategies import resolve_data

    spec = op.ParitySpec(
        inputs=[op.Input("age", ("batch", 1), low=0, high=100), op.Input("city", ("batch", 1), dtype="str")],
        dims={"batch": op.Dim(1, 8)},
    )
    data = {"age": np.array([[10.0], [20.0], [30.0]]), "city": np.array([["a"], ["b"], ["c"]])}
    resolved, rows = resolve_data(spec, data)
    assert resolved.inputs[1].categories == ("a", "b", "c")  # learned from the data
    example = Example((("batch", 6),), ("rows", "rows"), 7)
    arrays = materialize(resolved, example, rows)
    pairs = {(float(a), c) for a, c in zip(arrays["age"].ravel(), arrays["city"].ravel())}
    assert pairs <= {(10.0, "a"), (20.0, "b"), (30.0, "c")}
    jitter = materialize(resolved, Example((("batch", 6),), ("jitter", "rows"), 7), rows)
    assert not np.isin(jitter["age"], [10.0, 20.0, 30.0]).any()
    assert np.abs(jitter["age"] - arrays["age"]).max() < 2  # 1% of the spread, not a new value
    assert patterns_for(resolved.inputs[0], rows)[:2] == ("rows", "jitter")  # real rows shrink first


def test_data_that_does_not_fit_the_input_is_a_clear_error():
    from onnxparity.strategies import resolve_data

    spec = op.ParitySpec(inputs=[op.Input("X", ("batch", 4))], dims={"batch": op.Dim(1, 8)})
    with pytest.raises(
        op.InvalidSpec, match=r"data= for Input\('X'\) has shape \[10, 3\], which does not fit"
    ):
        resolve_data(spec, np.zeros((10, 3)))


def test_nan_is_drawn_only_where_allowed():
    spec = op.ParitySpec(
        inputs=[op.Input("x", ("batch", 50), allow_nan=True), op.Input("y", ("batch", 50))],
        dims={"batch": op.Dim(1, 4)},
    )
    example = Example((("batch", 4),), ("nan", "uniform"), 1)
    arrays = materialize(spec, example)
    assert np.isnan(arrays["x"]).any() and not np.isnan(arrays["y"]).any()
    assert "nan" not in patterns_for(spec.inputs[1]) and "nan" in patterns_for(spec.inputs[0])
