"""The tolerance rule, its NaN/inf cases and the diagnosis text."""

from __future__ import annotations

import numpy as np
import pytest

from onnxparity import Tolerance
from onnxparity.compare import compare_output, compare_outputs

TOL = Tolerance(atol=1e-3, rtol=1e-2)


def cmp(expected, actual, tol=TOL):
    return compare_output("y", np.asarray(expected), np.asarray(actual), tol)


def test_bound_is_inclusive_atol_plus_rtol_times_expected():
    # allowed = 1e-3 + 1e-2 * 10 = 0.101
    assert cmp([10.0], [10.1]).passed
    assert not cmp([10.0], [10.102]).passed
    assert not cmp([0.0], [0.0011]).passed  # near zero only atol counts
    assert cmp([0.0], [0.0009]).passed


def test_rtol_scales_with_expected_not_actual():
    tol = Tolerance(atol=0, rtol=0.5)
    assert cmp([2.0], [3.0], tol).passed  # |3-2| <= 0.5*2
    assert not cmp([1.0], [2.0], tol).passed  # |2-1| > 0.5*1 though 1 <= 0.5*2


def test_nan_matches_only_nan():
    assert cmp([np.nan, 1.0], [np.nan, 1.0]).passed
    result = cmp([np.nan, 1.0], [1.0, np.nan])
    assert not result.passed and result.mismatched == 2
    assert result.max_abs_error == float("inf")


def test_infinities_must_match_in_sign():
    assert cmp([np.inf, -np.inf], [np.inf, -np.inf]).passed
    assert not cmp([np.inf], [-np.inf]).passed
    assert not cmp([np.inf], [1e30]).passed
    assert not cmp([1.0], [np.inf]).passed


def test_integer_and_bool_outputs_compare_exactly_whatever_the_tolerance():
    loose = Tolerance(atol=10, rtol=10)
    result = cmp(np.array([1, 2, 3]), np.array([1, 2, 4]), loose)
    assert not result.passed and result.exact and result.mismatched == 1
    assert not cmp(np.array([True, False]), np.array([True, True]), loose).passed
    assert cmp(np.array([7], dtype=np.int64), np.array([7], dtype=np.int32)).passed


def test_shape_and_dtype_kind_mismatch_are_their_own_failures():
    shape = cmp(np.zeros((2, 3)), np.zeros((2, 4)))
    assert shape.problem == "shape" and not shape.passed
    kind = cmp(np.zeros(3, dtype=np.float32), np.zeros(3, dtype=np.int64))
    assert kind.problem == "dtype"


def test_metrics_and_worst_index():
    expected = np.zeros((2, 3), dtype=np.float32)
    actual = expected.copy()
    actual[1, 2] = 0.5
    actual[0, 1] = 0.01
    result = cmp(expected, actual)
    assert result.mismatched == 2 and result.mismatched_fraction == pytest.approx(2 / 6)
    assert result.max_abs_error == pytest.approx(0.5)
    assert result.worst[0].index == (1, 2)
    assert result.worst[0].expected == 0.0 and result.worst[0].actual == pytest.approx(0.5)


def test_explanation_reads_like_a_report():
    expected = np.array([[1.0, 6.0], [2.0, 6.0]], dtype=np.float32)
    actual = np.array([[1.0, 5.5], [2.0, 5.5]], dtype=np.float32)
    verdict = compare_outputs(["relu6"], [expected], [actual], Tolerance(atol=1e-5, rtol=1e-4))
    text = verdict.explain()
    assert "output 'relu6': 2 of 4 values differ (50%) beyond atol=1e-05, rtol=0.0001" in text
    assert "max abs error 0.5" in text
    assert "(0, 1)" in text and "5.5" in text and "-0.5" in text
    assert "index" in text and "expected" in text and "actual" in text


def test_output_count_mismatch_is_named():
    verdict = compare_outputs(["a"], [np.zeros(2)], [np.zeros(2), np.zeros(2)], TOL)
    assert not verdict.passed
    assert "returned 1 output(s) but the ONNX model returned 2" in verdict.explain()


def test_table_is_capped():
    result = cmp(np.zeros(500), np.ones(500))
    assert result.mismatched == 500 and len(result.worst) == 10


def test_string_outputs_compare_exactly_and_read_as_strings():
    verdict = compare_outputs(
        ["label"], [np.array(["cat", "dog"], dtype=object)], [np.array(["cat", "cow"], dtype=object)], TOL
    )
    result = verdict.outputs[0]
    assert not result.passed and result.exact and result.mismatched == 1
    text = verdict.explain()
    assert "1 of 2 values differ (50%) exactly" in text
    assert "'dog'" in text and "'cow'" in text and "max abs error" not in text
