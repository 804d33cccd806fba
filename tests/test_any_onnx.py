"""Any ONNX file (issue 18): input domains read from the graph, the whole tensor type system,
tolerance by an output's precision, and scalar and zero-length inputs — each on a small graph
built here and checked against the ONNX reference evaluator, as a new user checks a file nobody
on the team wrote."""

from __future__ import annotations

import warnings

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import onnxparity as op
from onnxparity.errors import InvalidSpec
from onnxparity.exporters.prebuilt import graph_inputs
from onnxparity.graph.domains import Domain, Undrawable, derive
from onnxparity.spec import DEFAULT_TOLERANCE
from onnxparity.verdict.compare import compare_output
from onnxparity.verdict.explanation import explain_output


def _model(nodes, inputs, outputs, opset=21, initializers=()):
    graph = helper.make_graph(nodes, "g", inputs, outputs, initializer=list(initializers))
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 10 if opset <= 21 else 11
    return model


def _evaluator(model):
    from onnx.reference import ReferenceEvaluator

    runner = ReferenceEvaluator(model)
    names = [i.name for i in model.graph.input]
    return lambda *arrays: runner.run(None, dict(zip(names, arrays)))


def _check(model, tmp_path, **kwargs):
    return op.check(
        onnx=model,
        reference=_evaluator(model),
        examples=kwargs.pop("examples", 8),
        reproducer_dir=str(tmp_path),
        **kwargs,
    )


def _value(name, elem, shape):
    return helper.make_tensor_value_info(name, elem, shape)


# -- domains ---------------------------------------------------------------------------------
def _gather(indices_shape=(3,)):
    return _model(
        [helper.make_node("Gather", ["table", "ids"], ["y"], axis=0)],
        [_value("table", TensorProto.FLOAT, [5, 2]), _value("ids", TensorProto.INT64, list(indices_shape))],
        [_value("y", TensorProto.FLOAT, None)],
    )


def test_indices_are_drawn_within_the_axis_they_index(tmp_path):
    """Before: ids were drawn 0..100 into a table of 5 rows, and every check failed on an
    'out of range' the graph itself rules out."""
    inputs = graph_inputs(_gather())
    ids = next(i for i in inputs if i.name == "ids")
    assert (ids.low, ids.high) == (0, 4)  # (ONNX's negative indices: frameworks refuse them)
    assert ids.boundary_values() == (0.0, 4.0)  # the boundary pattern draws at the table's edges
    result = _check(_gather(), tmp_path)
    assert result["ort-cpu"].status == "passed", result["ort-cpu"].message


def test_a_declared_range_past_the_graphs_domain_is_noted(tmp_path):
    declared = [op.Input("table", (5, 2)), op.Input("ids", (3,), dtype="int64", low=0, high=9)]
    result = _check(_gather(), tmp_path, inputs=declared)
    assert result["ort-cpu"].status == "failed"  # id 5..9 is out of the table, as declared
    assert any(
        "Input('ids') is declared 0…9, but the graph takes 0…4 there (indices of Gather into axis 0" in n
        for n in result.notes
    ), result.notes


@pytest.mark.parametrize(
    ("op_type", "count", "keepdims"), [("ReduceSum", 2, 1), ("ReduceMax", 3, 0), ("ReduceL2", 0, 1), ("Unsqueeze", 2, None)]
)
def test_an_axes_list_is_drawn_with_each_axis_once(op_type, count, keepdims, tmp_path):
    """An axes input of several axes was refused ("drawn lists may repeat an axis"); it is now
    drawn distinct modulo the rank (-1 and rank-1 are one axis), in either form, and checked.
    An empty list (ReduceL2's default: every axis) is drawn as one."""
    attributes = {"keepdims": keepdims} if keepdims is not None else {}
    model = _model(
        [helper.make_node(op_type, ["x", "axes"], ["y"], **attributes)],
        [_value("x", TensorProto.FLOAT, [2, 3, 4]), _value("axes", TensorProto.INT64, [count])],
        [_value("y", TensorProto.FLOAT, None)],
        opset=18,
    )
    axes = next(i for i in graph_inputs(model) if i.name == "axes")
    rank = 5 if op_type == "Unsqueeze" else 3
    assert (axes.low, axes.high, axes.distinct) == (-rank, rank - 1, rank)
    result = _check(model, tmp_path, examples=10)
    assert result["ort-cpu"].status == "passed", result["ort-cpu"].message


def test_distinct_values_name_each_axis_once_in_every_pattern():
    from onnxparity.draw import PATTERNS, Example, materialize

    spec = op.ParitySpec(
        inputs=[op.Input("axes", ("rows", 3), dtype="int64", low=-4, high=3, distinct=4)], dims={"rows": op.Dim(1, 6)}
    )
    forms = set()
    for seed in range(20):
        for pattern in PATTERNS:
            values = materialize(spec, Example((("rows", 6),), (pattern,), seed))["axes"]
            assert values.shape == (6, 3) and values.min() >= -4 and values.max() <= 3
            assert all(len(set((row % 4).tolist())) == 3 for row in values), (pattern, values)
            forms |= set(values.ravel().tolist())
    assert forms == set(range(-4, 4))  # both forms of every axis are drawn
    zeros = materialize(spec, Example((("rows", 1),), ("zeros",), 0))["axes"]
    assert zeros.tolist() == [[0, 1, 2]]  # the simplest list
    with pytest.raises(op.InvalidSpec, match="distinct=2 cannot hold 3 distinct values"):
        op.Input("axes", (3,), dtype="int64", low=-2, high=1, distinct=2)
    with pytest.raises(op.InvalidSpec, match="needs an integer dtype"):
        op.Input("axes", (3,), distinct=4)
    with pytest.raises(op.InvalidSpec, match=r"distinct=4 needs each of 0..3, or its negative form, within "
                       r"low=0..high=2; 3 is not: widen the range, e.g. low=-4, high=3"):
        op.Input("axes", (3,), dtype="int64", low=0, high=2, distinct=4)


def test_a_domain_follows_the_values_through_ops_that_carry_them():
    """target -> Unsqueeze -> GatherElements (an expanded NegativeLogLikelihoodLoss)."""
    model = _model(
        [
            helper.make_node("Unsqueeze", ["target", "one"], ["t1"]),
            helper.make_node("GatherElements", ["scores", "t1"], ["y"], axis=1),
        ],
        [_value("scores", TensorProto.FLOAT, [3, 4]), _value("target", TensorProto.INT64, [3])],
        [_value("y", TensorProto.FLOAT, None)],
        initializers=[helper.make_tensor("one", TensorProto.INT64, [1], [1])],
    )
    found = derive(model, [op.Input("scores", (3, 4)), op.Input("target", (3,), dtype="int64")])
    assert found["target"] == Domain(0, 3, found["target"].why) and "GatherElements" in found["target"].why


@pytest.mark.parametrize(
    ("node", "inputs", "name", "low", "high"),
    [
        (
            helper.make_node("Tile", ["x", "r"], ["y"]),
            [("x", TensorProto.FLOAT, [2]), ("r", TensorProto.INT64, [1])],
            "r",
            1,
            3,
        ),
        (
            helper.make_node("Div", ["a", "b"], ["y"]),
            [("a", TensorProto.INT32, [3]), ("b", TensorProto.INT32, [3])],
            "b",
            1,
            100,
        ),
        (
            helper.make_node("TopK", ["x", "k"], ["v", "i"]),
            [("x", TensorProto.FLOAT, [2, 6]), ("k", TensorProto.INT64, [1])],
            "k",
            0,
            6,
        ),
        (
            helper.make_node("CumSum", ["x", "axis"], ["y"]),
            [("x", TensorProto.FLOAT, [2, 3]), ("axis", TensorProto.INT64, [])],
            "axis",
            -2,
            1,
        ),
        (
            helper.make_node("ReduceSum", ["x", "axes"], ["y"]),
            [("x", TensorProto.FLOAT, [2, 3, 4]), ("axes", TensorProto.INT64, [1])],
            "axes",
            -3,
            2,
        ),
    ],
)
def test_counts_axes_and_divisors_get_their_domain(node, inputs, name, low, high):
    model = _model(
        [node], [_value(*i) for i in inputs], [_value(o, TensorProto.FLOAT, None) for o in node.output]
    )
    item = next(i for i in graph_inputs(model) if i.name == name)
    assert (item.low, item.high) == (low, high)


def test_an_input_no_drawn_value_fits_is_refused_by_name_and_op(tmp_path):
    """Reshape's target where the data's size is drawn and 0 does not copy an axis
    (allowzero=1): no target keeps the element count at every size."""
    model = _model(
        [helper.make_node("Reshape", ["x", "shape"], ["y"], allowzero=1)],
        [_value("x", TensorProto.FLOAT, ["batch", 6]), _value("shape", TensorProto.INT64, [2])],
        [_value("y", TensorProto.FLOAT, None)],
        opset=14,
    )
    with pytest.raises(InvalidSpec) as caught:
        _check(model, tmp_path)
    message = str(caught.value)
    assert "ONNX input 'shape': it is the target shape of Reshape (it must keep the number of elements" in message
    assert "op.Input('shape', (2,), dtype='int64', choices=[value, ...])" in message
    declared = [op.Input("x", ("batch", 6)), op.Input("shape", (2,), dtype="int64")]
    assert isinstance(derive(model, declared)["shape"], Undrawable)


def test_the_fix_for_an_undrawable_input_of_symbolic_length_is_one_that_can_be_declared():
    """Squeeze's axes of length 'n': the advice showed the shape ('n',) with choices=, which
    op.Input refuses ("choices= needs a fixed shape")."""
    model = _model(
        [helper.make_node("Squeeze", ["d", "axes"], ["y"])],
        [_value("d", TensorProto.FLOAT, [2, 3]), _value("axes", TensorProto.INT64, ["n"])],
        [_value("y", TensorProto.FLOAT, None)],
    )
    with pytest.raises(InvalidSpec) as caught:
        graph_inputs(model)
    message = str(caught.value)
    assert "choices=[value, ...]) with " in message and " a number (choices= are whole values of one shape)" in message
    assert "', ('" not in message  # no symbolic shape offered beside choices=


# -- structured inputs: whole values whose parts must agree (were refused as undrawable) ------
def _structured(node, inputs, opset=21):
    model = _model([node], [_value(*i) for i in inputs], [_value(o, TensorProto.FLOAT, None) for o in node.output], opset=opset)
    return model, {i.name: i for i in graph_inputs(model)}


def test_split_sizes_are_partitions_of_the_axis(tmp_path):
    model, found = _structured(
        helper.make_node("Split", ["x", "split"], ["a", "b", "c"], axis=1),
        [("x", TensorProto.FLOAT, [2, 7]), ("split", TensorProto.INT64, [3])],
        opset=13,
    )
    assert found["split"].choices == ((3, 2, 2), (5, 1, 1), (1, 1, 5))
    result = _check(model, tmp_path, examples=6)
    assert result["ort-cpu"].status == "passed", result["ort-cpu"].message


def test_reshape_targets_keep_the_element_count_at_every_drawn_size(tmp_path):
    model, found = _structured(
        helper.make_node("Reshape", ["x", "shape"], ["y"]),
        [("x", TensorProto.FLOAT, [2, 3, 4]), ("shape", TensorProto.INT64, [2])],
    )
    assert found["shape"].choices[0] == (0, -1)
    assert (24, 1) in found["shape"].choices and (2, -1) in found["shape"].choices
    assert _check(model, tmp_path, examples=6)["ort-cpu"].status == "passed"
    model, found = _structured(
        helper.make_node("Reshape", ["x", "shape"], ["y"]),
        [("x", TensorProto.FLOAT, ["batch", 6]), ("shape", TensorProto.INT64, [3])],
    )
    assert found["shape"].choices == ((0, 0, -1), (0, 0, 1))  # copies only: the batch is drawn
    assert _check(model, tmp_path, examples=6)["ort-cpu"].status == "passed"


def test_resize_scales_and_sizes_keep_batch_and_channels(tmp_path):
    model, found = _structured(
        helper.make_node("Resize", ["x", "", "scales"], ["y"], mode="linear"),
        [("x", TensorProto.FLOAT, [1, 2, 4, 6]), ("scales", TensorProto.FLOAT, [4])],
        opset=19,
    )
    assert found["scales"].choices == ((1.0, 1.0, 2.0, 2.0), (1.0, 1.0, 0.5, 0.5), (1.0, 1.0, 2.0, 0.5))
    assert _check(model, tmp_path, examples=6)["ort-cpu"].status == "passed"
    model, found = _structured(
        helper.make_node("Resize", ["x", "", "", "sizes"], ["y"], mode="nearest"),
        [("x", TensorProto.FLOAT, [1, 2, 4, 6]), ("sizes", TensorProto.INT64, [4])],
        opset=19,
    )
    assert found["sizes"].choices == ((1, 2, 8, 12), (1, 2, 2, 3), (1, 2, 8, 3))
    assert _check(model, tmp_path, examples=6)["ort-cpu"].status == "passed"


def test_squeeze_axes_training_flags_and_affine_grid_sizes(tmp_path):
    _, found = _structured(
        helper.make_node("Squeeze", ["x", "axes"], ["y"]),
        [("x", TensorProto.FLOAT, [1, 3, 1]), ("axes", TensorProto.INT64, [1])],
    )
    assert found["axes"].choices == ((0,), (2,), (-3,))
    _, found = _structured(
        helper.make_node("Dropout", ["x", "ratio", "training"], ["y"]),
        [("x", TensorProto.FLOAT, [3]), ("ratio", TensorProto.FLOAT, []), ("training", TensorProto.BOOL, [])],
    )
    assert found["training"].choices == (False,)
    _, found = _structured(
        helper.make_node("AffineGrid", ["theta", "size"], ["grid"]),
        [("theta", TensorProto.FLOAT, [2, 2, 3]), ("size", TensorProto.INT64, [4])],
    )
    assert {c[0] for c in found["size"].choices} == {2}  # theta's batch


def test_a_declared_input_without_the_choices_the_graph_takes_gets_a_note():
    model, _ = _structured(
        helper.make_node("Split", ["x", "split"], ["a", "b"], axis=0),
        [("x", TensorProto.FLOAT, [4]), ("split", TensorProto.INT64, [2])],
        opset=13,
    )
    from onnxparity.exporters.prebuilt import declared_outside
    from onnxparity.spec import ParitySpec

    spec = ParitySpec(inputs=(op.Input("x", (4,)), op.Input("split", (2,), dtype="int64", low=0, high=4)))
    (note,) = declared_outside(model, spec)
    assert "Input('split') is declared 0…4, but the graph takes whole values there (the split sizes of Split" in note
    assert "(declare choices=)" in note
    fixed = ParitySpec(inputs=(op.Input("x", (4,)), op.Input("split", (2,), dtype="int64", choices=[[1, 3]])))
    assert declared_outside(model, fixed) == []  # (1, 3) is one of the graph's
    other = ParitySpec(inputs=(op.Input("x", (4,)), op.Input("split", (2,), dtype="int64", choices=[[0, 4]])))
    assert "is declared with other choices" in declared_outside(model, other)[0]


def test_a_fixed_value_declared_for_it_is_checked(tmp_path):
    """What the refusal advises works: low == high fixes the value."""
    model = _model(
        [helper.make_node("Reshape", ["x", "shape"], ["y"])],
        [_value("x", TensorProto.FLOAT, [2, 6]), _value("shape", TensorProto.INT64, [2])],
        [_value("y", TensorProto.FLOAT, None)],
    )
    result = _check(
        model, tmp_path, inputs=[op.Input("x", (2, 6)), op.Input("shape", (2,), dtype="int64", low=3, high=4)]
    )
    assert result["ort-cpu"].status == "failed"  # 3x3, 4x4 ... do not hold 12 values
    fixed = [op.Input("x", (2, 6)), op.Input("shape", (2,), dtype="int64", low=-1, high=-1)]
    assert (
        _check(model, tmp_path, inputs=fixed)["ort-cpu"].status == "failed"
    )  # two -1s: invalid, and said so


# -- types --------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "elem", [TensorProto.INT16, TensorProto.UINT16, TensorProto.UINT32, TensorProto.UINT64]
)
def test_every_integer_type_onnx_runtime_runs_is_drawn_and_compared(elem, tmp_path):
    model = _model(
        [helper.make_node("Add", ["a", "b"], ["y"])],
        [_value("a", elem, [2, 3]), _value("b", elem, [2, 3])],
        [_value("y", elem, [2, 3])],
    )
    assert [i.dtype for i in graph_inputs(model)] == [helper.tensor_dtype_to_np_dtype(elem).name] * 2
    assert _check(model, tmp_path, examples=4)["ort-cpu"].status == "passed"


@pytest.mark.parametrize(
    ("nodes", "elem_in", "elem_out", "scale"),
    [
        ([helper.make_node("Identity", ["x"], ["y"])], TensorProto.BFLOAT16, TensorProto.BFLOAT16, False),
        ([helper.make_node("Cast", ["x"], ["y"], to=TensorProto.FLOAT)], TensorProto.FLOAT8E4M3FN, TensorProto.FLOAT, False),
        ([helper.make_node("Cast", ["x"], ["y"], to=TensorProto.FLOAT8E5M2)], TensorProto.FLOAT, TensorProto.FLOAT8E5M2, False),
        ([helper.make_node("DequantizeLinear", ["x", "s"], ["y"])], TensorProto.INT4, TensorProto.FLOAT, True),
        ([helper.make_node("DequantizeLinear", ["x", "s"], ["y"])], TensorProto.UINT4, TensorProto.FLOAT, True),
        ([helper.make_node("Cast", ["x"], ["y"], to=TensorProto.FLOAT)], TensorProto.INT2, TensorProto.FLOAT, False),
        ([helper.make_node("Cast", ["x"], ["y"], to=TensorProto.INT8)], TensorProto.UINT2, TensorProto.INT8, False),
        ([helper.make_node("Cast", ["x"], ["y"], to=TensorProto.FLOAT)], TensorProto.FLOAT8E8M0, TensorProto.FLOAT, False),
        ([helper.make_node("Cast", ["x"], ["y"], to=TensorProto.FLOAT8E8M0)], TensorProto.FLOAT, TensorProto.FLOAT8E8M0, False),
    ],
    ids=["bfloat16", "float8e4m3fn-in", "float8e5m2-out", "int4", "uint4", "int2", "uint2", "e8m0-in", "e8m0-out"],
)
def test_narrow_types_cross_as_typed_ortvalues_and_are_checked(nodes, elem_in, elem_out, scale, tmp_path):
    """bfloat16, float8, int4 and int2 were skipped ("ONNX Runtime's Python API exchanges no ...
    arrays with numpy"); they now go in and come out as typed OrtValues of raw bytes (int4
    packed two per byte, int2 four: an odd count of 5 per row here), in the test process and in
    a worker."""
    scales = [numpy_helper.from_array(np.asarray(0.5, np.float32), "s")] if scale else []
    newer = {TensorProto.INT2, TensorProto.UINT2, TensorProto.FLOAT8E8M0} & {elem_in, elem_out}  # (opset 25's types)
    model = _model(
        nodes,
        [_value("x", elem_in, ["batch", 5])],
        [_value("y", elem_out, ["batch", 5])],
        initializers=scales,
        opset=25 if newer else 21,
    )
    result = _check(model, tmp_path, variants=["ort-cpu", "ort-cpu-noopt", "onnx-reference"], examples=6)
    for variant in ("ort-cpu", "ort-cpu-noopt", "onnx-reference"):
        assert result[variant].status == "passed", result[variant].message
        assert result[variant].examples >= 6


def test_a_narrow_typed_model_that_differs_is_caught(tmp_path):
    """The typed path compares, not only runs: a bfloat16 output 10% off its reference fails
    (bfloat16's default tolerance is 2^-6, atol and rtol)."""
    import ml_dtypes

    model = _model(
        [helper.make_node("Cast", ["x"], ["b"], to=TensorProto.BFLOAT16), helper.make_node("Identity", ["b"], ["y"])],
        [_value("x", TensorProto.FLOAT, [4])],
        [_value("y", TensorProto.BFLOAT16, [4])],
    )

    def reference(x):
        return [(x.astype(ml_dtypes.bfloat16).astype(np.float32) * 1.1).astype(ml_dtypes.bfloat16)]

    result = op.check(onnx=model, reference=reference, variants=["ort-cpu"], examples=6, reproducer_dir=tmp_path)
    assert result["ort-cpu"].status == "failed"
    assert "output 'y'" in result["ort-cpu"].message


def test_float4_is_drawn_and_a_missing_kernel_is_named(tmp_path):
    """float4 (e2m1) inputs are drawn (they were refused: "onnxparity draws none"); ONNX Runtime
    1.32 has no CPU Cast from float4, and the variant says so, naming the op."""
    model = _model(
        [helper.make_node("Cast", ["x"], ["y"], to=TensorProto.FLOAT)],
        [_value("x", TensorProto.FLOAT4E2M1, [5])],
        [_value("y", TensorProto.FLOAT, [5])],
        opset=25,
    )
    assert [i.dtype for i in graph_inputs(model)] == ["float4_e2m1fn"]
    result = _check(model, tmp_path, variants=["ort-cpu", "onnx-reference"], examples=4)
    assert result["onnx-reference"].status == "passed", result["onnx-reference"].message
    assert result["ort-cpu"].status == "error", result["ort-cpu"].message
    assert "Could not find an implementation for Cast" in result["ort-cpu"].message


@pytest.mark.parametrize("bits, kind", [(4, "int4"), (4, "uint4"), (4, "float4_e2m1fn"), (2, "int2"), (2, "uint2")])
def test_packed_values_survive_packing(bits, kind):
    """The ONNX layout (the first value in the lowest bits, the last byte padded) and back, for
    every value of the kind, at counts that do and do not fill the last byte."""
    import ml_dtypes

    from onnxparity.variants.narrow import pack, unpack

    every = np.arange(2**bits, dtype=np.uint8).view(getattr(ml_dtypes, kind))
    for count in (1, 2**bits - 1, 2**bits, 2**bits + 3):
        values = np.resize(every, count)
        packed = pack(values, bits)
        assert packed.size == -(-count * bits // 8)
        back = unpack(packed, count, kind, bits)
        assert back.dtype == values.dtype and back.view(np.uint8).tolist() == (values.view(np.uint8) & (2**bits - 1)).tolist()
    assert pack(np.asarray([1, 2, 3, 0], np.uint8).view(getattr(ml_dtypes, kind)), bits).tolist() == (
        [0x21, 0x03] if bits == 4 else [0b00111001]
    )


def test_float8_e8m0_takes_a_positive_range_only():
    with pytest.raises(InvalidSpec, match="float8_e8m0fnu holds only positive values"):
        op.Input("x", (2,), dtype="float8e8m0", low=-1.0, high=1.0)
    assert op.Input("x", (2,), dtype="float8e8m0").low == 0.125


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (
            _value("x", TensorProto.COMPLEX64, [2]),
            "ONNX input 'x' is a tensor(complex64): onnxparity draws none",
        ),
        (  # (a sequence is drawn now: its elements stacked)
            helper.make_value_info(
                "x", helper.make_map_type_proto(TensorProto.STRING, helper.make_tensor_type_proto(TensorProto.FLOAT, []))
            ),
            "ONNX input 'x' is a map(",
        ),
    ],
)
def test_inputs_it_cannot_draw_are_refused_by_type_name(value, message):
    model = _model(
        [helper.make_node("Identity", ["x"], ["y"])], [value], [_value("y", TensorProto.FLOAT, None)]
    )
    with pytest.raises(InvalidSpec, match=message.replace("(", r"\(").replace(")", r"\)")):
        graph_inputs(model)


# -- scalars and zero-length axes -----------------------------------------------------------------
def test_scalar_inputs_are_drawn_as_0d_arrays_and_stay_0d_in_the_worker(tmp_path):
    """Before: a numpy scalar escaped op.check ('Cannot set flags on array scalars'); then the
    worker that runs a prebuilt file turned a 0-d input into shape (1,)."""
    model = _model(
        [helper.make_node("Clip", ["x", "lo", "hi"], ["y"])],
        [
            _value("x", TensorProto.FLOAT, [3]),
            _value("lo", TensorProto.FLOAT, []),
            _value("hi", TensorProto.FLOAT, []),
        ],
        [_value("y", TensorProto.FLOAT, [3])],
    )
    assert _check(model, tmp_path)["ort-cpu"].status == "passed"
    scalar = _model(
        [helper.make_node("Identity", ["x"], ["y"])],
        [_value("x", TensorProto.FLOAT, [])],
        [_value("y", TensorProto.FLOAT, [])],
    )
    result = _check(scalar, tmp_path, variant_options={"ort-cpu": {"isolate": True}})
    assert result["ort-cpu"].status == "passed", result["ort-cpu"].message


def test_a_zero_length_axis_the_graph_fixes_stays_fixed(tmp_path):
    """Before: a dim_value of 0 was read as unknown and drawn 1..16, which ONNX Runtime rejects."""
    model = _model(
        [helper.make_node("Relu", ["x"], ["y"])],
        [_value("x", TensorProto.FLOAT, [0, 3])],
        [_value("y", TensorProto.FLOAT, [0, 3])],
    )
    assert graph_inputs(model)[0].shape == (0, 3)
    assert _check(model, tmp_path)["ort-cpu"].status == "passed"


# -- tolerance by precision --------------------------------------------------------------------------
def test_the_default_tolerance_follows_a_narrow_outputs_precision():
    expected = np.array([1.0, 0.5, -2.0], np.float16)
    one_ulp = np.nextafter(expected, np.float16(np.inf))
    assert compare_output("y", expected, one_ulp, DEFAULT_TOLERANCE).passed  # float16: 2 ulps at 1.0
    assert not compare_output(
        "y", expected.astype(np.float32), one_ulp.astype(np.float32), DEFAULT_TOLERANCE
    ).passed
    declared = op.Tolerance(atol=1e-5, rtol=1e-4)  # a tolerance the user declared is kept as it is
    assert not compare_output("y", expected, one_ulp, declared).passed
    far = compare_output("y", expected, expected * np.float16(1.01), DEFAULT_TOLERANCE)
    assert "beyond atol=0.00195312, rtol=0.00195312" in explain_output(far, DEFAULT_TOLERANCE)  # what applied


def test_bfloat16_outputs_are_compared_as_numbers():
    import ml_dtypes

    expected = np.array([1.0, 3.0], ml_dtypes.bfloat16)
    assert compare_output("y", expected, expected.copy(), DEFAULT_TOLERANCE).passed
    far = np.array([1.0, 3.5], ml_dtypes.bfloat16)
    result = compare_output("y", expected, far, DEFAULT_TOLERANCE)
    assert not result.passed and result.max_abs_error == 0.5


def test_an_input_that_sets_an_outputs_size_is_guarded_before_anything_runs(tmp_path):
    """Before: Tile with repeats declared (or drawn) up to 100 built outputs of ~10^10 values and
    hung the run; now the item errs first, naming the input, the op and the budget."""
    model = _model(
        [helper.make_node("Tile", ["x", "repeats"], ["y"])],
        [_value("x", TensorProto.FLOAT, [64, 64]), _value("repeats", TensorProto.INT64, [2])],
        [_value("y", TensorProto.FLOAT, None)],
    )
    declared = [op.Input("x", (64, 64)), op.Input("repeats", (2,), dtype="int64", low=1, high=1000)]
    result = _check(model, tmp_path, inputs=declared)
    assert result["ort-cpu"].status == "error"
    assert (
        "Input('repeats') is declared up to 1000, and its values set the size of Tile's output: up to 1.562e+04 MiB"
        in (result["ort-cpu"].message)
    )
    assert _check(model, tmp_path)["ort-cpu"].status == "passed"  # inferred: repeats of 1..3


def _columns(count):
    """Concat of ``count`` (batch, 1) inputs along axis 1: a tabular model's columns."""
    names = [f"x{i}" for i in range(count)]
    return _model(
        [helper.make_node("Concat", names, ["y"], axis=1)],
        [_value(n, TensorProto.FLOAT, ["batch", 1]) for n in names],
        [_value("y", TensorProto.FLOAT, ["batch", count])],
    )


def test_a_node_with_a_hundred_inputs_is_checked(tmp_path):
    """Before: a Concat of 100 tensors (a tabular model's columns, a feature stack) crashed every
    check with KeyError: 'Concat' in the guard on inputs that set an output's size (it looked up
    any op with more than 99 inputs)."""
    result = _check(_columns(100), tmp_path, examples=5)["ort-cpu"]
    assert result.status == "passed", result.message


def test_a_model_with_hundreds_of_inputs_is_searched_as_asked(tmp_path):
    """Before: with 900 inputs (a pattern byte each), ten examples per Hypothesis example drew
    past Hypothesis's 8 KiB per test case; every one overran, none ran, and the check passed on
    its 4 explicit examples, asked for 10 more. Groups are now sized to fit."""
    result = _check(_columns(900), tmp_path, examples=10)["ort-cpu"]
    assert result.status == "passed", result.message
    assert result.examples >= 10


def test_groups_fit_hypothesis_and_an_undrawable_width_is_refused():
    from onnxparity.search.strategies import GROUP, group_for, group_size

    assert group_size(10) == GROUP and group_size(500) == 8 and group_size(5000) == 1
    wide = op.ParitySpec(inputs=[op.Input(f"x{i}", (1,)) for i in range(8001)])
    with pytest.raises(InvalidSpec, match=r"8001 inputs: one drawn example takes 8005 bytes \(one per input\)"):
        group_for(wide)


def test_col2im_shapes_are_drawn_with_blocks_that_overlap(tmp_path):
    """Col2Im's image and block shapes as graph inputs must match the columns: before, the rule
    took the smallest block, 1x1, with which Col2Im is a reshape (none of the overlap-add an
    export can get wrong runs); now the largest block that matches, here 3x3."""
    model = _model(
        [helper.make_node("Col2Im", ["columns", "image", "block"], ["y"])],
        [
            _value("columns", TensorProto.FLOAT, [1, 9, 16]),
            _value("image", TensorProto.INT64, [2]),
            _value("block", TensorProto.INT64, [2]),
        ],
        [_value("y", TensorProto.FLOAT, None)],
        opset=18,
    )
    declared = [op.Input("columns", (1, 9, 16)), op.Input("image", (2,), dtype="int64"), op.Input("block", (2,), dtype="int64")]
    found = derive(model, declared)
    assert found["block"].choices == ((3, 3),), found["block"]
    ((height, width),) = found["image"].choices
    assert (height - 2) * (width - 2) == 16  # the image's 3x3 blocks: the columns' 16
    assert _check(model, tmp_path, examples=5)["ort-cpu"].status == "passed"


def test_split_lists_crop_regions_and_an_input_two_rules_constrain_are_drawn_as_the_ops_take_them(tmp_path):
    """Rules no test reached before: SplitToSequence's split as a list (sizes adding up to the
    axis), Resize's crop region (within [0, 1]);
    and an input two rules constrain (split sizes that are also Tile's repeats) takes what both
    allow. Each graph is correct: it must pass at the defaults."""
    split = _model(
        [
            helper.make_node("SplitToSequence", ["x", "split"], ["parts"], axis=0),
            helper.make_node("ConcatFromSequence", ["parts"], ["y"], axis=1, new_axis=0),
        ],
        [_value("x", TensorProto.FLOAT, [6, 2]), _value("split", TensorProto.INT64, [3])],
        [_value("y", TensorProto.FLOAT, None)],
    )
    declared = [op.Input("x", (6, 2)), op.Input("split", (3,), dtype="int64")]
    found = derive(split, declared)
    assert found["split"].choices and all(sum(c) == 6 and len(c) == 3 for c in found["split"].choices)
    assert _check(split, tmp_path, examples=8)["ort-cpu"].status == "passed"

    crop = _model(
        [helper.make_node("Resize", ["x", "roi", "", "sizes"], ["y"], coordinate_transformation_mode="tf_crop_and_resize")],
        [_value("x", TensorProto.FLOAT, [1, 1, 4, 4]), _value("roi", TensorProto.FLOAT, [8]), _value("sizes", TensorProto.INT64, [4])],
        [_value("y", TensorProto.FLOAT, None)],
    )
    declared = [op.Input("x", (1, 1, 4, 4)), op.Input("roi", (8,)), op.Input("sizes", (4,), dtype="int64")]
    region = derive(crop, declared)["roi"]
    assert all(0 <= v <= 1 for c in region.choices for v in c) and "crop region" in region.why
    assert _check(crop, tmp_path, examples=8)["ort-cpu"].status == "passed"

    both = _model(
        [helper.make_node("Split", ["x", "sizes"], ["a", "b"], axis=0), helper.make_node("Tile", ["z", "sizes"], ["t"])],
        [_value("x", TensorProto.FLOAT, [5, 2]), _value("sizes", TensorProto.INT64, [2]), _value("z", TensorProto.FLOAT, [1, 1])],
        [_value("a", TensorProto.FLOAT, None), _value("b", TensorProto.FLOAT, None), _value("t", TensorProto.FLOAT, None)],
    )
    declared = [op.Input("x", (5, 2)), op.Input("sizes", (2,), dtype="int64"), op.Input("z", (1, 1))]
    met = derive(both, declared)["sizes"]
    assert met.choices and all(sum(c) == 5 and min(c) >= 1 for c in met.choices)
    assert "split sizes" in met.why and "Tile" in met.why
    assert _check(both, tmp_path, examples=8)["ort-cpu"].status == "passed"


def test_inputs_both_sides_refuse_are_counted_on_a_pass_and_warn_nothing(tmp_path):
    """Indices through an Add before a Gather: no rule bounds them, so most drawn ids are past
    the table and both sides refuse them. Before: the pass said nothing of them, and each one
    among the explicit examples raised Hypothesis's deprecation of reject() outside a test.
    Through a Cast of integers the Gather's bound now reaches the input: nothing is refused."""
    table = numpy_helper.from_array(np.arange(40, dtype=np.float32).reshape(10, 4), "table")
    zero = numpy_helper.from_array(np.zeros((), np.int64), "zero")

    def gather(first):
        return _model(
            [first, helper.make_node("Gather", ["table", "i"], ["y"])],
            [_value("ids", TensorProto.INT32 if first.op_type == "Cast" else TensorProto.INT64, ["n"])],
            [_value("y", TensorProto.FLOAT, ["n", 4])],
            initializers=[table, zero],
        )

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        added = _check(gather(helper.make_node("Add", ["ids", "zero"], ["i"])), tmp_path, examples=12)["ort-cpu"]
    assert added.status == "passed" and added.rejected > 0
    assert added.to_dict()["rejected"]["line"].startswith("the first: dims ")
    assert not [w for w in caught if "reject" in str(w.message)]
    cast = _check(gather(helper.make_node("Cast", ["ids"], ["i"], to=TensorProto.INT64)), tmp_path, examples=12)["ort-cpu"]
    assert cast.status == "passed" and cast.rejected == 0 and cast.examples >= 12


def test_int8_layers_non_finite_on_one_side_have_no_cosine_and_unnamed_nodes_get_no_empty_proposal(tmp_path):
    """1 / (x W)^2 quantized: where the square rounds to 0 the int8 graph's Reciprocal is inf.
    Before: its row read 'cosine 0.9987' (over the finite rest; 1.0000 when all were inf), and
    with unnamed nodes the proposal was "excluding [] from quantization is not enough"."""
    weights = numpy_helper.from_array(np.random.default_rng(0).normal(size=(8, 8)).astype(np.float32), "w")
    eps = numpy_helper.from_array(np.array(1e-6, np.float32), "eps")
    model = _model(
        [
            helper.make_node("MatMul", ["x", "w"], ["m"]),
            helper.make_node("Mul", ["m", "m"], ["sq"]),
            helper.make_node("Add", ["sq", "eps"], ["v"]),
            helper.make_node("Reciprocal", ["v"], ["r"]),
            helper.make_node("Mul", ["r", "eps"], ["y"]),
        ],
        [_value("x", TensorProto.FLOAT, ["n", 8])],
        [_value("y", TensorProto.FLOAT, ["n", 8])],
        opset=17,
        initializers=[weights, eps],
    )
    result = _check(model, tmp_path, variants=["int8-static"], examples=10)["int8-static"]
    assert result.status == "failed"
    lines = result.message.splitlines()
    assert "  Reciprocal 'r': SQNR -inf dB (values non-finite on one side), cosine n/a" in lines
    assert any(line.startswith("its node has no name, and nodes_to_exclude takes node names") for line in lines)
    assert not any(line.startswith("excluding []") for line in lines)


def test_a_boundary_side_past_the_inputs_range_is_not_reported_unreached(tmp_path):
    """ids index a 10-row table (so they are drawn 0..9) and are compared with 9 (an end-of-text
    id, the vocabulary's last). Before: coverage said "Equal at ids = 9: no value above it", a
    side no input the model takes can reach; it is no longer among the sides."""
    table = numpy_helper.from_array(np.random.RandomState(0).randn(10, 4).astype(np.float32), "table")
    nine = numpy_helper.from_array(np.array(9, dtype=np.int64), "nine")
    model = _model(
        [helper.make_node("Gather", ["table", "ids"], ["emb"]), helper.make_node("Equal", ["ids", "nine"], ["eos"])],
        [_value("ids", TensorProto.INT64, ["b", "s"])],
        [_value("emb", TensorProto.FLOAT, ["b", "s", 4]), _value("eos", TensorProto.BOOL, ["b", "s"])],
        initializers=[table, nine],
    )
    result = _check(model, tmp_path, examples=10)["ort-cpu"]
    assert result.status == "passed", result.message
    assert not any("no value above" in line for line in result.coverage["unreached"]), result.coverage
    assert result.coverage["sides"] == 1  # below 9 only


def test_an_already_quantized_file_skips_the_converting_variants(tmp_path):
    """A file from quantize_dynamic. Before: fp16 could not load its converted graph (float16
    into DynamicQuantizeLinear), int8-static raised the quantizer's KeyError, int8-dynamic
    passed having quantized nothing new; each now skips, saying the file is already quantized."""
    from onnxruntime.quantization import quantize_dynamic

    rng = np.random.default_rng(0)
    model = _model(
        [helper.make_node("MatMul", ["x", "w1"], ["m"]), helper.make_node("Relu", ["m"], ["r"]),
         helper.make_node("MatMul", ["r", "w2"], ["y"])],
        [_value("x", TensorProto.FLOAT, ["n", 8])],
        [_value("y", TensorProto.FLOAT, ["n", 4])],
        opset=17,
        initializers=[
            numpy_helper.from_array(rng.normal(size=(8, 16)).astype(np.float32), "w1"),
            numpy_helper.from_array(rng.normal(size=(16, 4)).astype(np.float32), "w2"),
        ],
    )
    onnx.save(model, tmp_path / "float.onnx")
    quantize_dynamic(str(tmp_path / "float.onnx"), str(tmp_path / "int8.onnx"))
    quantized = onnx.load(tmp_path / "int8.onnx")
    result = _check(quantized, tmp_path, variants=["ort-cpu", "fp16", "int8-static", "int8-dynamic"], examples=4)
    assert result["ort-cpu"].status == "passed", result["ort-cpu"].message
    for variant in ("fp16", "int8-static", "int8-dynamic"):
        assert result[variant].status == "skipped", (variant, result[variant].message)
        assert f"{variant} does not apply: the file is already quantized (" in result[variant].message


def _concat():
    """Concat along axis 0 of x (n, b) and y (m, 1): valid only where b is 1, which no op
    states in a way onnxparity reads."""
    return _model(
        [helper.make_node("Concat", ["x", "y"], ["z"], axis=0)],
        [_value("x", TensorProto.FLOAT, ["n", "b"]), _value("y", TensorProto.FLOAT, ["m", 1])],
        [_value("z", TensorProto.FLOAT, None)],
    )


def test_inferred_inputs_both_sides_reject_are_outside_the_models_domain(tmp_path):
    """Inputs read from the graph claim every b in 1..16; the file takes only b = 1. Before: the
    check failed ('the reference model raised on an input the spec declares valid') though ONNX
    Runtime refuses the same input — a false alarm on a correct file."""
    result = _check(_concat(), tmp_path, examples=10)
    assert result["ort-cpu"].status == "passed", result["ort-cpu"].message
    assert result["ort-cpu"].dims_covered["b"] == (1, 1)  # only the accepted examples count
    declared = [op.Input("x", ("n", "b")), op.Input("y", ("m", 1))]
    dims = {"n": op.Dim(1, 4), "b": op.Dim(1, 4), "m": op.Dim(1, 4)}
    stated = _check(_concat(), tmp_path, inputs=declared, dims=dims, examples=10)["ort-cpu"]
    assert stated.status == "failed"  # a user's declaration is theirs: it is wrong, and said so
    assert "the reference model raised on an input the spec declares valid" in stated.message


def test_when_both_sides_reject_every_drawn_input_the_item_says_so(tmp_path):
    model = _model(
        [helper.make_node("Concat", ["x", "y"], ["z"], axis=0)],
        [_value("x", TensorProto.FLOAT, [2, "b"]), _value("y", TensorProto.FLOAT, [2, 17])],  # b is 1..16
        [_value("z", TensorProto.FLOAT, None)],
    )
    result = _check(model, tmp_path, examples=6)["ort-cpu"]
    assert result.status == "error"
    assert "drawn inputs was rejected by both the reference and ort-cpu" in result.message
    # the first such input, and what each side said of it: the op that refused it is named
    lines = result.message.splitlines()
    assert lines[1].startswith("the first: dims b=") and "x[2, " in lines[1]
    assert lines[2].startswith("  the reference: ") and lines[3].startswith("  ort-cpu: ")
    assert "Concat" in lines[3]


def test_string_inputs_are_drawn_from_the_graphs_own_strings_and_a_few_of_every_kind(tmp_path):
    """Before: every str input of a file was refused ('no categories'); now its LabelEncoder's
    keys (and unknown strings: empty, spaced, non-ASCII) are drawn."""
    model = helper.make_model(
        helper.make_graph(
            [
                helper.make_node(
                    "LabelEncoder",
                    ["x"],
                    ["y"],
                    domain="ai.onnx.ml",
                    keys_strings=["cat", "dog"],
                    values_int64s=[1, 2],
                    default_int64=-1,
                )
            ],
            "g",
            [_value("x", TensorProto.STRING, ["n"])],
            [_value("y", TensorProto.INT64, ["n"])],
        ),
        opset_imports=[helper.make_opsetid("", 21), helper.make_opsetid("ai.onnx.ml", 4)],
    )
    model.ir_version = 10
    (x,) = graph_inputs(model)
    assert x.categories[:2] == ("cat", "dog") and "" in x.categories and "ÄÖü ß" in x.categories
    assert _check(model, tmp_path)["ort-cpu"].status == "passed"


# -- sequences, optionals, and a graph without inputs (were refused by type) --------------------
def _sequence_model():
    """y = x with t inserted at position p: seq(tensor(float)) in and out."""
    seq = helper.make_tensor_sequence_value_info
    return _model(
        [helper.make_node("SequenceInsert", ["x", "t", "p"], ["y"])],
        [seq("x", TensorProto.FLOAT, [3]), _value("t", TensorProto.FLOAT, [3]), _value("p", TensorProto.INT64, [])],
        [seq("y", TensorProto.FLOAT, [3])],
    )


def test_sequences_are_drawn_stacked_and_compared_in_their_tensor_form(tmp_path):
    """A sequence input is drawn as its elements stacked (a dim of its length), split back
    inside the graph; a sequence output is compared as its values, shapes and count; the
    reference takes and returns lists as the original graph does."""
    model = _sequence_model()
    found = {i.name: i for i in graph_inputs(model)}
    assert found["x"].shape == ("x_length", 3)
    assert (found["p"].low, found["p"].high) == (-1, 1)  # a position in the shortest drawn sequence
    with warnings.catch_warnings():  # (its shapes and count are compared, not measured: no weak-check claim)
        warnings.simplefilter("error", op.WeakCheck)
        result = op.check(onnx=model, reference=_evaluator(model), variants=["ort-cpu", "onnx-reference"],
                          examples=8, reproducer_dir=tmp_path)
    assert result["ort-cpu"].status == "passed", result["ort-cpu"].message
    assert result["onnx-reference"].status == "passed", result["onnx-reference"].message
    assert [o.name for o in result["ort-cpu"].outputs] == ["y:values", "y:shapes", "y:count"]


@pytest.mark.parametrize(
    ("planted", "output"),
    [
        (lambda items: [items[0] * 1.01, *items[1:]], "y:values"),  # one element's values
        (lambda items: items[:-1], "y:count"),  # one element fewer
    ],
    ids=["value", "length"],
)
def test_a_sequence_that_differs_is_caught_naming_the_part(planted, output, tmp_path):
    model = _sequence_model()
    evaluate = _evaluator(model)

    def reference(x, t, p):
        (items,) = evaluate(x, t, p)
        return [planted([np.asarray(a) for a in items])]

    result = op.check(onnx=model, reference=reference, examples=8, reproducer_dir=tmp_path)["ort-cpu"]
    assert result.status == "failed"
    assert f"output {output!r}" in result.message


def test_optional_inputs_are_drawn_present(tmp_path):
    optional = helper.make_optional_type_proto(helper.make_tensor_type_proto(TensorProto.FLOAT, [4]))
    model = _model(
        [helper.make_node("OptionalGetElement", ["x"], ["y"])],
        [helper.make_value_info("x", optional)],
        [_value("y", TensorProto.FLOAT, [4])],
        opset=18,
    )
    assert [(i.name, i.shape) for i in graph_inputs(model)] == [("x", (4,))]
    result = _check(model, tmp_path, variants=["onnx-reference"], examples=4)
    assert result["onnx-reference"].status == "passed", result["onnx-reference"].message
    # an optional sequence: its elements stacked, made a sequence and then a present optional in the graph
    nested = helper.make_optional_type_proto(helper.make_sequence_type_proto(helper.make_tensor_type_proto(TensorProto.FLOAT, [4])))
    model = _model(
        [helper.make_node("Identity", ["x"], ["y"])], [helper.make_value_info("x", nested)], [helper.make_value_info("y", nested)], opset=18
    )
    assert [(i.name, i.shape) for i in graph_inputs(model)] == [("x", ("x_length", 4))]
    result = _check(model, tmp_path, variants=["ort-cpu", "onnx-reference"], examples=4)
    assert result["ort-cpu"].status == "passed", result["ort-cpu"].message
    assert [o.name for o in result["ort-cpu"].outputs] == ["y:present", "y:values", "y:shapes", "y:count"]
    # the evaluator cannot run an optional output's tensor form: skipped saying so, not failed
    assert result["onnx-reference"].status == "skipped"
    assert "optional output" in result["onnx-reference"].message


def test_an_optional_tensor_output_is_compared_as_its_presence_and_value(tmp_path):
    """Its value part took the output's own name, defined twice in the converted graph: every
    variant was an error ("Duplicate definition of name (y)")."""
    optional = helper.make_optional_type_proto(helper.make_tensor_type_proto(TensorProto.FLOAT, [4]))
    model = _model(
        [helper.make_node("Optional", ["x"], ["y"])],
        [_value("x", TensorProto.FLOAT, [4])],
        [helper.make_value_info("y", optional)],
        opset=18,
    )
    result = _check(model, tmp_path, variants=["ort-cpu", "onnx-reference"], examples=4)
    assert result["ort-cpu"].status == "passed", result["ort-cpu"].message
    assert [o.name for o in result["ort-cpu"].outputs] == ["y:present", "y:value"]
    # before: onnx-reference failed ("shape [1, 4] but the reference has [4]"): the evaluator's If
    # wraps the optional in one more list, as for an optional sequence; it skips saying so
    assert result["onnx-reference"].status == "skipped", result["onnx-reference"].message
    assert "the file's optional output, compared in its tensor form" in result["onnx-reference"].message


def test_a_graph_without_inputs_is_checked_on_its_one_run(tmp_path):
    constant = helper.make_node("Constant", [], ["y"], value=numpy_helper.from_array(np.arange(3, dtype=np.float32)))
    model = _model([constant], [], [_value("y", TensorProto.FLOAT, [3])])
    assert graph_inputs(model) == ()
    result = op.check(onnx=model, reference=lambda: [np.arange(3, dtype=np.float32)], reproducer_dir=tmp_path)
    assert result["ort-cpu"].status == "passed" and result["ort-cpu"].examples == 1
    wrong = op.check(onnx=model, reference=lambda: [np.ones(3, np.float32)], reproducer_dir=tmp_path)["ort-cpu"]
    assert wrong.status == "failed" and "the input space is one point" in wrong.message
    with pytest.raises(InvalidSpec, match="declare at least one op.Input"):
        op.check(onnx=model, inputs=[], reference=lambda: [np.ones(3, np.float32)])


def test_a_narrow_output_that_differs_is_localized_and_said_of_the_reference(tmp_path):
    """Cast to int2: ONNX Runtime rounds and wraps where the spec truncates (a known difference).
    The forensics probe ran ONNX Runtime through numpy ('No corresponding Numpy type for Tensor
    Type. Int2x4'): now typed, it names the Cast and says the spec sides with the reference."""
    model = _model(
        [helper.make_node("Cast", ["x"], ["y"], to=TensorProto.INT2)],
        [_value("x", TensorProto.FLOAT, [7])],
        [_value("y", TensorProto.INT2, [7])],
        opset=25,
    )
    result = op.check(onnx=model, reference=_evaluator(model), examples=10, reproducer_dir=tmp_path)["ort-cpu"]
    assert result.status == "failed"
    lines = result.message.splitlines()
    assert any(line.startswith("first divergence: Cast") for line in lines), result.message
    assert any("computes this value as the reference does: ONNX Runtime parts from the spec" in line for line in lines)
    assert "framework" not in result.message


def test_a_callable_may_return_one_sequence_output_as_its_list_of_elements(tmp_path):
    """A graph of one sequence output: the reference's return is read as that output's elements
    (``[a, b]``) or as the list of outputs (``[[a, b]]``, the evaluator's form); both compare."""
    model = _sequence_model()
    evaluate = _evaluator(model)
    for reference in (lambda x, t, p: evaluate(x, t, p), lambda x, t, p: list(evaluate(x, t, p)[0])):
        result = op.check(onnx=model, reference=reference, examples=6, reproducer_dir=tmp_path)["ort-cpu"]
        assert result.status == "passed", result.message


def test_sequences_one_sequence_map_maps_together_share_their_length():
    """SequenceMap needs its sequences of one length: drawn apart, ONNX Runtime rejected them."""
    body = helper.make_graph(
        [helper.make_node("Add", ["a", "b"], ["c"])], "body",
        [_value("a", TensorProto.FLOAT, ["n"]), _value("b", TensorProto.FLOAT, ["n"])],
        [_value("c", TensorProto.FLOAT, ["n"])],
    )
    seq = helper.make_tensor_sequence_value_info
    model = _model(
        [helper.make_node("SequenceMap", ["x0", "x1"], ["y"], body=body)],
        [seq("x0", TensorProto.FLOAT, ["n"]), seq("x1", TensorProto.FLOAT, ["n"])],
        [seq("y", TensorProto.FLOAT, ["n"])],
        opset=17,
    )
    found = {i.name: i.shape for i in graph_inputs(model)}
    assert found == {"x0": ("x0_length", "n"), "x1": ("x0_length", "n")}


def test_only_a_containers_structure_is_left_out_of_the_power_measure():
    """A sequence's shapes and count and an optional's presence are constant by design; a real
    tensor output that happens to be named like one ('a:count') is measured like any other."""
    from onnxparity.graph.containers import structural_outputs

    plan = {"inputs": {}, "outputs": [["a:count", ("tensor", 1)], ["s", ("seq", ("tensor", 1))], ["o", ("optional", ("tensor", 1))]]}
    assert structural_outputs(plan) == {"s:shapes", "s:count", "o:present"}


def test_a_prebuilt_file_failing_against_a_callable_is_advised_in_the_references_words(tmp_path):
    """The advice diagnosis adds said "an input the framework model accepts" of a callable
    reference: there is no framework model."""
    shape = numpy_helper.from_array(np.asarray([2, 4], dtype=np.int64), "target")  # a baked batch
    model = _model(
        [helper.make_node("Reshape", ["x", "target"], ["y"])],
        [_value("x", TensorProto.FLOAT, ["batch", 4])],
        [_value("y", TensorProto.FLOAT, ["batch", 4])],
        initializers=[shape],
    )
    result = op.check(
        onnx=model, reference=lambda x: [x.reshape(len(x), -1)], dims={"batch": op.Dim(1, 4)}, examples=8,
        reproducer_dir=str(tmp_path), variants=["ort-cpu"],
    )["ort-cpu"]
    assert result.status == "failed", result.message
    assert "rejects an input the reference accepts" in result.message
    assert "framework" not in result.message, result.message
    # no notes: the advice pointed at "(see the notes)" anyway, and named dims= alone (the CLI's is --inputs)
    assert "see the notes" not in result.message and "note:" not in result.message
    assert "narrow the declared dims (dims=; onnxparity check: --inputs)" in result.message


def test_a_sequence_of_maps_output_is_named_as_one_with_the_zipmap_fix():
    """skl2onnx's ZipMap output, seq(map(int64, float)), was refused as "is a map" with no way out."""
    from onnxparity.graph.containers import tensor_form

    zipmap = helper.make_sequence_type_proto(
        helper.make_map_type_proto(TensorProto.INT64, helper.make_tensor_type_proto(TensorProto.FLOAT, []))
    )
    model = _model(
        [helper.make_node("ZipMap", ["x"], ["p"], domain="ai.onnx.ml", classlabels_int64s=[0, 1])],
        [_value("x", TensorProto.FLOAT, ["batch", 2])],
        [helper.make_value_info("p", zipmap)],
    )
    with pytest.raises(InvalidSpec) as caught:
        tensor_form(model)
    message = str(caught.value)
    assert message.startswith("ONNX output 'p' is a sequence of maps: onnxparity compares tensors")
    assert "{'zipmap': False}" in message
