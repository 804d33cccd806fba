"""Specs validate at construction, and their errors name the bad value and the fix."""

from __future__ import annotations

import subprocess
import sys

import pytest

import onnxparity as op
from onnxparity.planning import plan_items


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: op.Dim(8, 4), "Dim(min=8, max=4): min is larger than max"),
        (lambda: op.Dim(0, 4), "Dim(min=0): min must be at least 1"),
        (lambda: op.Dim(1.5, 4), "Dim(min=1.5): min must be an integer"),
        (lambda: op.Dim(33, 63, multiple_of=32), "no multiple of 32 lies in [33, 63]"),
        (lambda: op.Input("x", (2, 3), dtype="complex64"), "Input('x'): dtype complex64 is not drawn"),
        (lambda: op.Input("x", (2, 3), dtype="float4"), "Input('x'): unsupported dtype 'float4'"),
        (
            lambda: op.Input("x", (2,), low=3, high=-3),
            "low=3.0 is larger than high=-3.0 (both are inclusive); swap",
        ),
        (
            lambda: op.Input("ids", (2,), dtype="int64", low=0.5, high=9),
            "low=0.5 must be an integer for dtype int64",
        ),
        (lambda: op.Input("ids", (2,), dtype="uint8", low=0, high=300), "does not fit dtype uint8"),
        (lambda: op.Input("m", (2,), dtype="bool", low=0), "bool inputs take no low/high"),
        (lambda: op.Input("x", "batch"), "shape must be a tuple"),
        (lambda: op.Input("x", (-1, 3)), "axis 0 has size -1; sizes must be >= 0"),
        (lambda: op.Input("x", (2.0, 3)), "axis 0 is 2.0"),
        (lambda: op.Input("", (2,)), "name must be a non-empty string"),
        (lambda: op.Input("m", ("b", "s"), kind="masks"), "Input('m'): kind='masks' is unknown; use one of"),
        (
            lambda: op.Input("m", ("b", "s"), kind="mask", high=2),
            "Input('m'): high=2, but a mask holds 0 and 1",
        ),
        (
            lambda: op.Input("m", ("b", "s"), kind="mask", padding="top"),
            "padding='top' is unknown; use 'right'",
        ),
        (lambda: op.Input("m", ("b", "s"), padding="left"), "padding='left' is for kind='mask' inputs only"),
        (lambda: op.Input("m", (), kind="mask"), "a mask needs a sequence axis (its last); shape is ()"),
        (lambda: op.Input("m", ("b", "s"), kind="mask", dtype="str"), "a mask holds 0/1; give dtype='int64'"),
        (lambda: op.Input("n", ("b",), kind="lengths"), "kind='lengths' needs within=: the dim the lengths"),
        (
            lambda: op.Input("n", ("b",), kind="lengths", within=0),
            "within=0 must be a dim name or a size >= 1",
        ),
        (
            lambda: op.Input("n", ("b",), kind="lengths", within="s", dtype="float32"),
            "lengths are integers; give dtype='int64' (or int32), not float32",
        ),
        (lambda: op.Input("n", ("b",), kind="lengths", within=8, low=0), "low=0, but lengths lie in [1, 8]"),
        (lambda: op.Input("x", ("b",), within="s"), "within='s' is for kind='lengths' inputs only"),
        (
            lambda: op.Input("ids", ("b",), dtype="int64", high=99, special_ids=(0, 101)),
            "Input('ids'): special_ids has 101, outside [0, 99]; special ids lie in the vocabulary: "
            "give high=vocab_size - 1 (or drop 101)",
        ),
        (
            lambda: op.Input("x", ("b",), special_ids=(0,)),
            "special_ids= is for integer token ids, not dtype float32",
        ),
        (
            lambda: op.Input("i", ("b",), dtype="int64", special_ids=()),
            "special_ids=(): give a non-empty tuple",
        ),
        (
            lambda: op.Input("i", ("b",), dtype="int64", special_ids=(1.5,)),
            "special_ids has 1.5; token ids are",
        ),
        (
            lambda: op.Input("m", ("b", "s"), kind="mask", special_ids=(1,)),
            "special_ids= is for token-id inputs (kind='values'), not kind='mask'",
        ),
        (lambda: op.Tolerance(atol=-1), "Tolerance(atol=-1): atol must be a finite number >= 0"),
        (lambda: op.Tolerance(rtol=float("nan")), "rtol must be a finite number >= 0"),
    ],
)
def test_invalid_declarations_name_the_problem(make, message):
    with pytest.raises(op.InvalidSpec) as info:
        make()
    assert message in str(info.value)


def test_unknown_dim_name_names_the_input_axis_and_fix():
    with pytest.raises(op.InvalidSpec) as info:
        op.ParitySpec(inputs=[op.Input("x", ("batch", "seq"))], dims={"batch": op.Dim(1, 4)})
    assert str(info.value) == (
        "Input('x'): unknown dim name 'seq' at axis 1 (known: batch); "
        "declare it in dims={'seq': op.Dim(min, max)}"
    )


def test_unused_dim_is_a_likely_typo():
    with pytest.raises(op.InvalidSpec, match="dims declares 'bacth' but no input uses it"):
        op.ParitySpec(inputs=[op.Input("x", ("batch",))], dims={"batch": op.Dim(1, 4), "bacth": op.Dim(1, 4)})


def test_duplicate_input_names_are_rejected():
    with pytest.raises(op.InvalidSpec, match="'x' is declared more than once"):
        op.ParitySpec(inputs=[op.Input("x", (1,)), op.Input("x", (2,))])


def test_specs_are_frozen_and_do_not_keep_callers_lists():
    shape = ["batch", 3]
    dims = {"batch": op.Dim(1, 4)}
    item = op.Input("x", shape)
    spec = op.ParitySpec(inputs=[item], dims=dims)
    shape.append(5)
    dims["other"] = op.Dim(1, 2)
    assert item.shape == ("batch", 3)
    assert list(spec.dims) == ["batch"]
    with pytest.raises(AttributeError):
        item.name = "y"  # type: ignore[misc]
    with pytest.raises(TypeError):
        spec.dims["z"] = op.Dim(1, 2)  # type: ignore[index]


def test_defaults_per_dtype():
    assert (op.Input("x", (1,)).low, op.Input("x", (1,)).high) == (-1.0, 1.0)
    ids = op.Input("ids", (1,), dtype="int64")
    assert (ids.low, ids.high) == (0, 100)
    assert op.Input("x", (1,), dtype="float").dtype == "float64"


def test_narrow_dtypes_are_accepted_by_name_before_ml_dtypes_is_imported():
    """numpy knows 'bfloat16' only once ml_dtypes registered it: a fresh process declaring a
    bfloat16 input was refused with a message listing bfloat16 as supported."""
    names = ["bfloat16", "float8_e4m3fn", "float4_e2m1fn", "int4", "uint2"]
    program = (
        "import sys; import onnxparity as op\n"
        "assert 'ml_dtypes' not in sys.modules\n"
        f"print([op.Input('x', (2,), dtype=d).dtype for d in {names!r}])"
    )
    done = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == str(names)


def test_dim_values_respect_multiple_of():
    dim = op.Dim(30, 130, multiple_of=32)
    assert (dim.first, dim.last, dim.values_count) == (32, 128, 4)
    assert 64 in dim and 48 not in dim and 160 not in dim


def test_policy_lookup_exact_then_pattern_then_variant_default_then_star():
    int8_default = op.Agreement(cosine=0.99)
    spec = op.ParitySpec(
        inputs=[op.Input("x", (2,))],
        variants=["ort-cpu", "int8-dynamic", "int8-static", "fp16"],
        tolerance={
            "*": op.Tolerance(1e-3, 0),
            "int8-*": op.Tolerance(1e-1, 0),
            "int8-static": op.Tolerance(1, 0),
        },
    )
    assert spec.policy_for("ort-cpu").atol == 1e-3
    assert spec.policy_for("int8-dynamic", int8_default).atol == 1e-1
    assert spec.policy_for("int8-static", int8_default).atol == 1
    # "*" (a bare Tolerance) ranks below a variant's own default: lossy variants keep theirs
    assert spec.policy_for("fp16", op.Agreement(cosine=0.9)) == op.Agreement(cosine=0.9)
    bare = op.ParitySpec(inputs=[op.Input("x", (2,))])
    assert bare.policy_for("ort-cpu") == op.Tolerance(atol=1e-5, rtol=1e-4)
    assert bare.policy_for("int8-dynamic", int8_default) is int8_default
    single = op.ParitySpec(inputs=[op.Input("x", (2,))], tolerance=op.Tolerance(0.5, 0.5))
    assert single.policy_for("anything").atol == 0.5
    assert single.policy_for("int8-dynamic", int8_default) is int8_default


def test_agreement_float_tolerance_and_metrics():
    labels_only = op.Agreement(labels=0.999)
    assert labels_only.float_tolerance == op.Tolerance()  # float outputs stay elementwise
    metrics = op.Agreement(cosine=0.99, sqnr_db=20)
    assert metrics.has_metrics and metrics.float_tolerance is None  # the metrics decide
    both = op.Agreement(cosine=0.99, tolerance=op.Tolerance(1e-2, 0))
    assert both.float_tolerance == op.Tolerance(1e-2, 0)
    assert metrics.describe() == "Agreement(cosine=0.99, sqnr_db=20)"
    for bad, message in (
        (dict(cosine=1.5), r"cosine must be in \(-1, 1\]"),
        (dict(top1=0), r"top1 must be a fraction"),
        (dict(sqnr_db=float("inf")), r"finite number of dB"),
    ):
        with pytest.raises(op.InvalidSpec, match=message):
            op.Agreement(**bad)
    with pytest.raises(op.InvalidSpec, match=r"Agreement\(tolerance=0.1\): give op.Tolerance"):
        op.Agreement(tolerance=0.1)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: op.Opset(min=21, max=17), r"Opset\(min=21, max=17\): min is larger than max"),
        (lambda: op.Opset(max=17, matrix=[13, 21]), r"opset 21 lies outside min=None, max=17"),
        (lambda: op.Opset(target=17, matrix=[17]), r"give one; a matrix exports at each of its opsets"),
        (lambda: op.Opset(forbidden_ops="Loop"), r"give a list of op types, e.g. \['Loop', 'If'\]"),
        (lambda: op.Opset(allowed_ops=["If"], forbidden_ops=["If"]), r"'If' is both allowed and forbidden"),
        (lambda: op.Latency(p95_ms=0), r"Latency\(p95_ms=0\): give a positive number"),
        (lambda: op.Latency(at={"batch": 0}), r"give concrete dims, e.g. \{'batch': 1, 'size': 224\}"),
        (
            lambda: op.ParitySpec(inputs=[op.Input("x", (2,))], latency="fast"),
            r"give op.Latency\(...\) or a list",
        ),
        (
            lambda: op.ParitySpec(inputs=[op.Input("x", (2,))], variant_options={"fp16": ["LSTM"]}),
            r"give a dict variant name -> dict of options, e.g. \{'int8-static': \{'method': 'entropy'\}\}",
        ),
    ],
)
def test_budget_declarations_name_the_bad_value(make, message):
    with pytest.raises(op.InvalidSpec, match=message):
        make()


def test_items_planned_from_a_declaration():
    items = plan_items(
        ["ort-cpu", "fp16"],
        op.Opset(matrix=[17, 21]),
        [op.Latency(), op.Latency(variant="fp16"), op.Latency(p50_ms=5)],
    )
    assert [i.id for i in items] == [
        "ort-cpu-opset17",
        "ort-cpu-opset21",
        "fp16-opset17",
        "fp16-opset21",
        "opset",
        "latency-ort-cpu",
        "latency-fp16",
        "latency-ort-cpu-2",
    ]


def test_input_domains_resolve_defaults_and_survive_replace():
    import dataclasses

    mask = op.Input("attention_mask", ("batch", "seq"), kind="mask")
    assert (mask.dtype, mask.low, mask.high, mask.padding) == ("int64", 0, 1, "right")
    left = op.Input("m", ("batch", "seq"), dtype=bool, kind="mask", padding="left")
    assert left.dtype == "bool" and left.padding == "left"
    lengths = op.Input("lengths", ("batch",), kind="lengths", within="seq")
    assert (lengths.dtype, lengths.low, lengths.high) == ("int64", 1, None)
    assert op.Input("n", ("batch",), kind="lengths", within=8).high == 8
    ids = op.Input("ids", ("batch", "seq"), dtype="int64", low=0, high=99, special_ids=[0, 2, 0, 1])
    assert ids.special_ids == (0, 2, 1) and ids.kind == "values"
    # dataclasses.replace re-validates with the resolved values: no "take no low/high" error
    for item in (mask, left, lengths, ids):
        assert dataclasses.replace(item, name="renamed").name == "renamed"
    # the old positional constructor still works
    assert op.Input("x", (2,), "int32", 0, 9).high == 9 and op.Input("x", (2,)).dtype == "float32"


def test_a_lengths_input_must_name_a_declared_dim():
    from onnxparity.draw import resolve_data

    spec = op.ParitySpec(
        inputs=[
            op.Input("x", ("batch", "seq")),
            op.Input("n", ("batch",), kind="lengths", within="sequence"),
        ],
        dims={"batch": op.Dim(1, 4), "seq": op.Dim(1, 8)},
    )
    with pytest.raises(
        op.InvalidSpec, match=r"Input\('n'\): within='sequence' is not a declared dim \(known: batch, seq\)"
    ):
        resolve_data(spec, None)


@pytest.mark.parametrize(
    ("declared", "message"),
    [
        (
            dict(tolerance={"ort-cpuu": op.Tolerance()}),
            "tolerance['ort-cpuu'] names no variant of this check (its variants: ort-cpu, fp16); did you mean 'ort-cpu'?",
        ),
        (
            dict(tolerance={"int8-*": op.Agreement(cosine=0.9)}),
            "tolerance['int8-*'] matches no variant of this check (its variants: ort-cpu, fp16)",
        ),
        (
            dict(variant_options={"fp61": {"isolate": False}}),
            "variant_options['fp61'] names no variant of this check (its variants: ort-cpu, fp16); did you mean 'fp16'?",
        ),
    ],
)
def test_keys_that_name_no_variant_of_the_check_are_errors(declared, message):
    """A misspelt variant in tolerance= or variant_options= was once silently ignored."""
    with pytest.raises(op.InvalidSpec) as raised:
        op.ParitySpec(inputs=[op.Input("x", (2,))], variants=["ort-cpu", "fp16"], **declared)
    assert str(raised.value) == message
    assert op.ParitySpec(
        inputs=[op.Input("x", (2,))], variants=["ort-cpu", "fp16"], tolerance={"*": op.Tolerance()}
    )


def test_calibration_without_int8_static_is_an_error():
    with pytest.raises(
        op.InvalidSpec, match=r"calibration= calibrates int8-static, which this check does not run"
    ):
        op.check(onnx=b"unused", reference=abs, inputs=[op.Input("x", (2,))], calibration=[{"x": [1.0, 2.0]}])


# -- choices: whole values, one per example -------------------------------------------------
def test_choices_are_whole_values_drawn_first_then_at_random():
    import numpy as np

    from onnxparity.draw import fill, patterns_for

    item = op.Input("split", (2,), dtype="int64", choices=([2, 4], [3, 3], [1, 5]))
    assert (item.low, item.high) == (1, 5) and item.choices == ((2, 4), (3, 3), (1, 5))
    assert patterns_for(item) == ("first", "choice")
    rng = np.random.default_rng(0)
    assert fill(item, (2,), "first", rng).tolist() == [2, 4]
    drawn = {tuple(fill(item, (2,), "choice", rng).tolist()) for _ in range(30)}
    assert drawn == {(2, 4), (3, 3), (1, 5)}  # every choice, nothing else
    assert op.Input("split", (2,), dtype="int64", choices=(c for c in ([2, 4], [1, 5]))).choices == ((2, 4), (1, 5))
    flag = op.Input("training", (), dtype="bool", choices=(False,))
    assert fill(flag, (), "choice", rng).dtype == np.bool_ and not fill(flag, (), "choice", rng)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (dict(shape=(2,), choices=([1, 2, 3],)), r"choices\[0\]=\[1, 2, 3\] is not a value of shape \(2,\)"),
        (dict(shape=(1,), choices=([float("inf")],), dtype="float32"), "holds a value that is not finite"),
        (dict(shape=(2,), choices=()), "give a non-empty list of values of shape"),
        (dict(shape=(2,), choices=([1.5, 2],)), "holds a fraction; int64 needs integers"),
        (dict(shape=(2,), choices=([1, 2],), low=2), "a choice holds 1, below low=2"),
        (dict(shape=("n",), choices=([1],)), r"choices= needs a fixed shape .*not \('n',\)"),
        (dict(shape=(2,), choices=([0, 1],), distinct=2), "choices= fixes whole values; drop distinct="),
    ],
)
def test_bad_choices_say_what_is_wrong(kwargs, message):
    with pytest.raises(op.InvalidSpec, match=message):
        op.Input("s", **{"dtype": "int64", **kwargs})


def test_choices_keep_integers_exact_and_take_strings():
    """An int64 past 2**53 is no float64: the choices (and the range) keep it exact."""
    import numpy as np

    from onnxparity.draw import fill

    big = op.Input("h", (1,), dtype="uint64", choices=([2**64 - 1],))
    assert (big.low, big.high) == (2**64 - 1, 2**64 - 1)
    assert fill(big, (1,), "first", None).tolist() == [2**64 - 1]
    assert fill(op.Input("i", (1,), dtype="int64", choices=([2**62 + 1],)), (1,), "first", None)[0] == 2**62 + 1
    words = op.Input("w", (2,), dtype="str", choices=(["a", ""], ["b", " c"]))
    assert fill(words, (2,), "first", np.random.default_rng(0)).tolist() == ["a", ""]


def test_choices_over_a_wide_range_get_no_unit_band_example():
    """A stored pixel row (0..255) as a choice: the corner examples draw it whole; the unit-band
    corner (values in [0, 1] inside a wider range) crashed with 'unknown pattern unit'."""
    from onnxparity.draw import CHOICE_PATTERNS, search_examples
    from onnxparity.spec import ParitySpec

    spec = ParitySpec(inputs=(op.Input("x", (2,), choices=([0.0, 255.0],)),))
    explicit, drawn = search_examples(spec, 10)
    assert drawn == 0 and [e.patterns for e in explicit] == [("first",)]  # one point: nothing else to try
    wider = ParitySpec(inputs=(op.Input("x", (2,), choices=([0.0, 255.0], [3.0, 4.0])),))
    explicit, drawn = search_examples(wider, 10)
    assert drawn == 10 and all(p in CHOICE_PATTERNS for e in explicit for p in e.patterns)
