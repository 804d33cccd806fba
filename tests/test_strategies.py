"""Strategies: boundary shapes first, dims and dtype ranges respected, shrinking reaches minimal;
masks and lengths never hold a row without a real token, drawn or shrunk."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from hypothesis import find, given, settings
from hypothesis import strategies as st
from hypothesis.errors import NoSuchExample

import onnxparity as op
from onnxparity.draw import (
    MASK_PATTERNS,
    PATTERNS,
    Example,
    boundary_examples,
    export_dims,
    materialize,
    patterns_for,
    rows_digest,
    sample_examples,
)
from onnxparity.draw.fills import fill
from onnxparity.search.strategies import examples

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
    low, high, band = boundary_examples(SPEC)
    assert low.dim_values == {"batch": 1, "size": 32, "seq": 2}
    assert high.dim_values == {"batch": 4, "size": 128, "seq": 9}
    # then the image (range -2..3, wider than 2) confined to [0, 1] at the smallest dims
    assert band.dim_values == low.dim_values and band.patterns == ("unit", "uniform", "uniform", "uniform")
    image = materialize(SPEC, band)["image"]
    assert image.min() >= 0 and image.max() <= 1


def test_band_and_boundary_patterns_stay_in_range_and_hit_the_boundaries():
    """A traced branch on the range (``if x.max() > 1: x = x / 255``) is only reached by a
    batch confined to a sub-range; a threshold bug only at (or next to) the threshold."""
    pixels = op.Input("x", ("batch", 4), low=0, high=255)
    ticks = op.Input("t", ("batch", 3), low=0, high=2e9, dtype="float64", boundaries=(1e9, (2, 1.7e9)))
    spec = op.ParitySpec(inputs=[pixels, ticks], dims={"batch": op.Dim(1, 64)})
    assert patterns_for(pixels) == (*PATTERNS, "band")
    assert patterns_for(ticks) == (*PATTERNS, "band", "boundary")
    unit = hits = 0
    for seed in range(40):
        band = materialize(spec, Example((("batch", 16),), ("band", "boundary"), seed))
        assert band["x"].min() >= 0 and band["x"].max() <= 255 and band["x"].max() - band["x"].min() < 255
        unit += bool(band["x"].max() <= 1)
        values = band["t"]
        assert values.min() >= 0 and values.max() <= 2e9
        hits += bool((values[:, :2] == 1e9).any() and (values[:, 2] == 1.7e9).any())
        assert not (values[:, :2] == 1.7e9).any()  # a column's boundary stays in its column
        assert not (values[:, 2] == 1e9).any()  # where it has its own, they replace the shared ones
    assert 10 <= unit <= 30  # the unit band half of the time
    assert hits >= 36  # 16 rows: the exact boundaries nearly always
    last = boundary_examples(spec)[-1]
    assert last.patterns == ("uniform", "boundary") and last.dim_values == {"batch": 64}


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


def test_normal_and_extremes_patterns_are_drawn_as_they_claim():
    """The normal pattern comes from a tabulated inverse CDF: its mean, spread and clipped tails
    are the normal's, and its values as distinct as uniform float32 draws (ties make false alarms)."""
    item = op.Input("x", (100_000,), low=-2, high=4)
    rng = np.random.default_rng(7)
    normal = fill(item, (100_000,), "normal", rng).astype(np.float64)
    assert abs(normal.mean() - 1.0) < 0.01 and abs(normal.std() - 0.9975) < 0.01  # sd 1 clipped at 3 sd: 0.9975
    assert normal.min() == -2 and normal.max() == 4
    assert 0.001 < np.mean((normal == -2) | (normal == 4)) < 0.0045  # the 0.27% beyond 3 sd, on the bounds
    assert 0.93 < np.mean(np.abs(normal - 1) < 2) < 0.97  # within 2 sd: 95.4%
    assert len(np.unique(normal)) > 0.99 * normal.size
    extremes = fill(item, (100_000,), "extremes", rng)
    assert set(np.unique(extremes).tolist()) == {-2.0, 4.0} and 0.49 < np.mean(extremes == 4) < 0.51
    for shape in ((), (0,), (3, 0), (5, 7)):
        for pattern in ("normal", "extremes", "uniform"):
            drawn = fill(op.Input("x", shape), shape, pattern, rng)
            assert isinstance(drawn, np.ndarray) and drawn.shape == shape and drawn.dtype == np.float32


def test_uniform_draws_are_numpys_own_and_no_pattern_holds_a_subnormal():
    """The float32 uniform fill reads the generator's raw words for speed: the values are still
    exactly ``rng.random``'s. Patterns filled from one or two scalars check those scalars for
    subnormals, not every value: a range whose constant or bound is subnormal still gets none."""
    item = op.Input("x", (3, 1001), low=0, high=1)
    assert np.array_equal(
        fill(item, (3, 1001), "uniform", np.random.default_rng(5)),
        np.random.default_rng(5).random((3, 1001), dtype=np.float32),
    )
    tiny = np.finfo(np.float32).tiny
    for low, high in ((0.0, 1e-39), (-1e-39, 0.0), (1e-40, 2e-40)):
        item = op.Input("x", (4, 6), low=low, high=high)
        for pattern in ("zeros", "constant", "extremes", "uniform", "normal", "band"):
            drawn = np.abs(fill(item, (4, 6), pattern, np.random.default_rng(3)))
            assert not ((drawn > 0) & (drawn < tiny)).any(), (low, high, pattern)


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
    from onnxparity.draw import resolve_data

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
    from onnxparity.draw import resolve_data

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


# -- input domains: masks, lengths, token ids with special ids ----------------------------------
MASKED = op.ParitySpec(
    inputs=[
        op.Input("input_ids", ("batch", "seq"), dtype="int64", low=0, high=99, special_ids=(0, 1, 2)),
        op.Input("attention_mask", ("batch", "seq"), kind="mask"),
        op.Input("left_mask", ("batch", "seq"), kind="mask", padding="left", dtype="bool"),
        op.Input("lengths", ("batch",), kind="lengths", within="seq"),
    ],
    dims={"batch": op.Dim(1, 6), "seq": op.Dim(1, 12)},
)


def assert_in_mask_domain(arrays: dict, seq: int) -> None:
    positions = np.arange(seq)
    right = arrays["attention_mask"]
    real = right.sum(-1)
    assert right.dtype == np.int64 and (real >= 1).all(), right  # a real token in every row
    assert (right == (positions < real[:, None])).all(), right  # ones, then zeros
    left = arrays["left_mask"]
    real = left.sum(-1)
    assert left.dtype == np.bool_ and (real >= 1).all(), left
    assert (left == (positions >= seq - real[:, None])).all(), left  # zeros, then ones
    lengths = arrays["lengths"]
    assert lengths.dtype == np.int64 and (1 <= lengths).all() and (lengths <= seq).all(), lengths


@settings(max_examples=100, deadline=None)
@given(examples(MASKED))
def test_drawn_masks_and_lengths_have_a_real_token_in_every_row(example):
    assert_in_mask_domain(materialize(MASKED, example), example.dim_values["seq"])


def test_no_search_finds_a_row_without_a_real_token():
    """Hypothesis, searching for it (and shrinking toward zeros), finds no empty row."""

    def empty_row(example):
        arrays = materialize(MASKED, example)
        return bool(
            (arrays["attention_mask"].sum(-1) == 0).any()
            or (arrays["left_mask"].sum(-1) == 0).any()
            or (arrays["lengths"] == 0).any()
        )

    with pytest.raises(NoSuchExample):
        find(examples(MASKED), empty_row, settings=settings(max_examples=300, database=None))


@pytest.mark.parametrize(
    ("name", "padded", "pattern"),
    [
        ("attention_mask", lambda a, seq: (a[:, -1] == 0).any(), "shortest"),
        ("left_mask", lambda a, seq: (~a[:, 0]).any(), "shortest"),
        ("lengths", lambda a, seq: (a < seq).any(), "shortest"),
    ],
)
def test_shrinking_a_padding_failure_stays_in_the_domain_and_is_minimal(name, padded, pattern):
    def fails(example):
        return bool(padded(materialize(MASKED, example)[name], example.dim_values["seq"]))

    found = find(examples(MASKED), fails, settings=settings(database=None))
    # The smallest shape with padding (seq 2), the simplest patterns elsewhere, seed 0.
    assert found.dim_values == {"batch": 1, "seq": 2} and found.seed == 0
    assert dict(zip((i.name for i in MASKED.inputs), found.patterns)) == {
        "input_ids": "zeros",
        "attention_mask": "full",
        "left_mask": "full",
        "lengths": "full",
    } | {name: pattern}
    assert_in_mask_domain(materialize(MASKED, found), 2)


def test_mask_patterns_draw_the_lengths_they_name():
    seq = 8
    for pattern, check in {
        "full": lambda n: (n == seq).all(),
        "shortest": lambda n: (n == 1).all(),
        # one row full, the others shorter and all different
        "ragged": lambda n: (n == seq).sum() == 1 and len(set(n.tolist())) == len(n),
        "uniform": lambda n: ((1 <= n) & (n <= seq)).all(),
        "extremes": lambda n: set(n.tolist()) <= {1, seq},
    }.items():
        example = Example((("batch", 5), ("seq", seq)), ("uniform", pattern, pattern, pattern), 11)
        arrays = materialize(MASKED, example)
        assert_in_mask_domain(arrays, seq)
        for lengths in (arrays["attention_mask"].sum(-1), arrays["left_mask"].sum(-1), arrays["lengths"]):
            assert check(lengths), (pattern, lengths)
    many_rows = materialize(
        MASKED, Example((("batch", 6), ("seq", 3)), ("zeros", "ragged", "ragged", "ragged"), 1)
    )
    assert_in_mask_domain(many_rows, 3)  # more rows than lengths: they repeat, none is empty
    assert (many_rows["attention_mask"].sum(-1) == 3).any()


def test_lengths_within_a_fixed_size_and_mask_defaults():
    spec = op.ParitySpec(
        inputs=[op.Input("n", ("batch", 2), kind="lengths", within=5, dtype="int32")],
        dims={"batch": op.Dim(1, 3)},
    )
    values = materialize(spec, Example((("batch", 3),), ("extremes",), 4))["n"]
    assert values.dtype == np.int32 and values.shape == (3, 2) and set(values.ravel().tolist()) <= {1, 5}
    assert patterns_for(MASKED.inputs[1]) == MASK_PATTERNS
    low, high = boundary_examples(MASKED)  # a padded row and a full one at both corners
    assert low.patterns == high.patterns == ("uniform", "ragged", "ragged", "ragged")
    assert "left_mask[1, 1] ragged (left padding)" in low.describe(MASKED)


def test_calibration_samples_stay_in_the_mask_domain():
    for example in sample_examples(MASKED, 32, seed=3):
        assert_in_mask_domain(materialize(MASKED, example), example.dim_values["seq"])


def test_special_ids_and_vocabulary_edges_are_drawn():
    ids = MASKED.inputs[0]
    assert patterns_for(ids)[-1] == "special" and "special" not in patterns_for(SPEC.inputs[1])
    example = Example((("batch", 6), ("seq", 12)), ("special", "full", "full", "full"), 5)
    values = materialize(MASKED, example)["input_ids"]
    assert {0, 1, 2, 99} <= set(values.ravel().tolist())  # special ids and both edges
    assert ((0 <= values) & (values <= 99)).all()
    assert len(set(values.ravel().tolist())) > 10  # ordinary ids too
    extremes = materialize(MASKED, replace(example, patterns=("extremes", "full", "full", "full")))
    assert set(extremes["input_ids"].ravel().tolist()) == {0, 1, 2, 99}


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (
            dict(boundaries=("half",)),
            r"Input\('x'\): boundaries has 'half'; give finite values, or \(column, value\)",
        ),
        (
            dict(boundaries=((-1, 0.5),)),
            r"boundaries has \(-1, 0.5\); give finite values, or \(column, value\) pairs with a column >= 0",
        ),
        (dict(boundaries=(float("nan"),)), r"boundaries has nan"),
        (dict(boundaries=0.5), r"boundaries=0.5: give a tuple of values or \(column, value\) pairs"),
        (
            dict(dtype="bool", boundaries=(0.5,)),
            r"boundaries= is for numeric inputs \(kind='values'\), not bool",
        ),
    ],
)
def test_bad_boundaries_name_the_entry_and_the_fix(kwargs, message):
    with pytest.raises(op.InvalidSpec, match=message):
        op.Input("x", ("batch", 3), **kwargs)


def test_real_rows_digest_tells_dtypes_apart():
    """The rows' digest keys every cache the drawn arrays depend on: zeros as float32 and as
    int32 are the same bytes, and were the same key."""
    zeros = np.zeros((4, 3), dtype=np.float32)
    assert rows_digest({"x": zeros}) != rows_digest({"x": zeros.astype(np.int32)})
    assert rows_digest({"x": zeros}) != rows_digest({"x": zeros.reshape(3, 4)})
    assert rows_digest({"x": zeros}) == rows_digest({"x": zeros.copy()})
