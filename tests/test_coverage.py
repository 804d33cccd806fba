"""Branch coverage inside the network: which side of each inner branching node (a Clip after a
MatMul, a Where on a computed mask) the search reached, measured on the values the node sees."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import onnxparity as op
from onnxparity.config import ParityConfig
from onnxparity.graph.branches import harvest_branches
from onnxparity.graph.nodes import node_source
from onnxparity.runner import ParitySession

W = np.full((4, 4), 0.1, np.float32)


def hidden_clip() -> onnx.ModelProto:
    """y = Clip(x @ W, 0, 6): x in [-1, 1] keeps x @ W within ±0.4, so the upper bound is
    never reached; the Clip is behind a MatMul, out of reach of the inputs' own boundaries."""
    graph = helper.make_graph(
        [
            helper.make_node("MatMul", ["x", "w"], ["h"], name="hidden/MatMul"),
            helper.make_node("Clip", ["h", "lo", "hi"], ["y"], name="hidden/act/Clip"),
        ],
        "hidden_clip",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 4])],
        [
            numpy_helper.from_array(W, "w"),
            helper.make_tensor("lo", TensorProto.FLOAT, [], [0.0]),
            helper.make_tensor("hi", TensorProto.FLOAT, [], [6.0]),
        ],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def masked() -> onnx.ModelProto:
    """y = Where(max(x) > 50, -x, x): a branch on a computed value no input in [-1, 1] takes."""
    graph = helper.make_graph(
        [
            helper.make_node("ReduceMax", ["x"], ["m"], name="peak", keepdims=1),
            helper.make_node("Greater", ["m", "fifty"], ["big"], name="gt"),
            helper.make_node("Neg", ["x"], ["negated"], name="neg"),
            helper.make_node("Where", ["big", "negated", "x"], ["y"], name="select"),
        ],
        "masked",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 4])],
        [helper.make_tensor("fifty", TensorProto.FLOAT, [], [50.0])],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def masked_reference(x):
    return [np.where(x.max() > 50, -x, x)]


def check(session, model, reference, low, high, variants=("ort-cpu",)):
    return op.check(
        onnx=model,
        reference=reference,
        inputs=[op.Input("x", ("batch", 4), low=low, high=high)],
        dims={"batch": op.Dim(1, 3)},
        variants=list(variants),
        examples=6,
        session=session,
    )


PLUGIN_TEST = """
import numpy as np
import pytest
import onnxparity as op
from test_coverage import W, hidden_clip


@pytest.mark.onnx_parity(inputs=[op.Input("x", ("batch", 4), low={low}, high={high})],
                         dims={{"batch": op.Dim(1, 2)}}, examples=5)
def test_hidden(onnx_parity):
    onnx_parity.check(onnx=hidden_clip(), reference=lambda x: np.clip(x @ W, 0, 6))
"""


@pytest.mark.parametrize(("low", "high", "unreached"), [(-1, 1, True), (-100, 100, False)])
def test_an_inner_clip_bound_never_reached_is_reported(pytester, low, high, unreached):
    """The Clip sits behind a MatMul, so the inputs' own boundaries cannot see it: the values
    it receives are measured. Inputs in [-1, 1] never reach its upper bound; in [-100, 100] they do."""
    pytester.syspathinsert(__import__("os").path.dirname(__file__))
    pytester.makepyfile(test_hidden=PLUGIN_TEST.format(low=low, high=high))
    report = pytester.path / "report.json"
    result = pytester.runpytest_inprocess(
        "--onnx-parity", f"--onnx-parity-report={report}", "-p", "no:cacheprovider"
    )
    result.assert_outcomes(passed=1)
    (item,) = json.loads(report.read_text())["items"]
    coverage = item["result"]["coverage"]
    assert coverage["sides"] == 2
    if unreached:
        tried = item["result"]["examples"]
        assert coverage["unreached"] == [
            f"Clip 'hidden/act/Clip' (hidden/act): upper bound 6 never reached in {tried} examples"
        ]
        result.stdout.fnmatch_lines(
            [
                "coverage: 1 item(s) never reached a side of a boundary the graph branches on:",
                "*test_hidden[[]ort-cpu[]] (1 of 2 sides unreached)",
                f"    Clip 'hidden/act/Clip' (hidden/act): upper bound 6 never reached in {tried} examples",
            ]
        )
    else:
        assert coverage["unreached"] == []


def test_the_coverage_flag_turns_inner_coverage_off_and_names_its_values(pytester):
    pytester.syspathinsert(__import__("os").path.dirname(__file__))
    pytester.makepyfile(test_hidden=PLUGIN_TEST.format(low=-1, high=1))
    result = pytester.runpytest_inprocess(
        "--onnx-parity", "--onnx-parity-coverage=inputs", "-p", "no:cacheprovider"
    )
    result.assert_outcomes(passed=1)
    assert "coverage:" not in result.stdout.str()
    wrong = pytester.runpytest_inprocess(
        "--onnx-parity", "--onnx-parity-coverage=everything", "-p", "no:cacheprovider"
    )
    assert wrong.ret != 0
    wrong.stderr.fnmatch_lines(["*--onnx-parity-coverage must be one of inner, inputs, got 'everything'*"])


def test_a_computed_condition_never_true_is_reported(parity_session):
    result = check(parity_session, masked(), masked_reference, -1, 1)
    assert result["ort-cpu"].passed
    assert result["ort-cpu"].coverage["unreached"] == [
        "Greater 'gt': no value above 50 in 9 examples",  # batch 2 among them: Dim(1, 3) is tried value by value
        "Where 'select': condition never true in 9 examples",
    ]
    reached = check(parity_session, masked(), masked_reference, -100, 100)["ort-cpu"].coverage
    assert reached["sides"] == 4 and reached["unreached"] == []


def test_inner_coverage_runs_once_per_model_and_inputs_and_can_be_turned_off(tmp_path):
    """The variants of a model search the same input space: its first search measures the inner
    branches (one more model run per example), the others do not repeat it."""
    with ParitySession(ParityConfig(reproducer_dir=str(tmp_path))) as session:
        result = check(
            session, hidden_clip(), lambda x: [np.clip(x @ W, 0, 6)], -1, 1, ("ort-cpu", "ort-cpu-noopt")
        )
        first, second = result["ort-cpu"].coverage, result["ort-cpu-noopt"].coverage
        assert first["sides"] == 2 and len(first["unreached"]) == 1
        assert second == {"dims": {"batch": [1, 2, 3]}}  # no inner sides measured, no input boundary on x
    with ParitySession(ParityConfig(reproducer_dir=str(tmp_path), coverage="inputs")) as session:
        result = check(session, hidden_clip(), lambda x: [np.clip(x @ W, 0, 6)], -1, 1)
        assert "sides" not in result["ort-cpu"].coverage and session.timings["coverage"] < 1


def test_the_branches_are_read_from_every_kind_of_node():
    nodes = [
        helper.make_node("MatMul", ["x", "w"], ["h"], name="mm"),
        helper.make_node("Clip", ["h"], ["c"], min=-1.0, max=1.0),  # opset 6: bounds as attributes
        helper.make_node("Equal", ["h", "three"], ["eq"], name="eq"),
        helper.make_node("Max", ["two", "h"], ["mx"], name="mx"),
        helper.make_node("Relu", ["x"], ["r"], name="on_input"),  # an input's own site: skipped
        helper.make_node("LeakyRelu", ["h"], ["lr"], name="leaky"),
    ]
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 2])],
        [],
        [
            numpy_helper.from_array(np.eye(2, dtype=np.float32), "w"),
            helper.make_tensor("three", TensorProto.FLOAT, [], [3.0]),
            helper.make_tensor("two", TensorProto.FLOAT, [], [2.0]),
        ],
    )
    found = {b.node: b for b in harvest_branches(helper.make_model(graph), skip={"on_input"})}
    assert set(found) == {"Clip#1", "eq", "mx", "leaky"}
    assert [(s.test, s.value) for s in found["Clip#1"].sides] == [("below", -1.0), ("above", 1.0)]
    assert [s.label for s in found["eq"].sides] == [
        "no value below 3",
        "no value above 3",
        "no value equal to 3",
    ]
    assert found["mx"].tensor == "h" and [s.value for s in found["mx"].sides] == [2.0, 2.0]
    assert found["leaky"].sides[0].label == "no value below 0"


def test_the_framework_source_of_a_node_is_read_where_the_exporter_recorded_it():
    dynamo = helper.make_node("Clip", ["a"], ["b"], name="n4")
    entry = dynamo.metadata_props.add()
    # as the dynamo exporter writes it: each module by its qualified name (a Hugging Face BERT's
    # embedding came out as "embeddings.embeddings.word_embeddings" when these were joined)
    entry.key = "pkg.torch.onnx.name_scopes"
    entry.value = "['', 'embeddings', 'embeddings.word_embeddings', 'embedding']"
    assert node_source(dynamo) == "embeddings.word_embeddings"
    assert (
        node_source(helper.make_node("Relu", ["a"], ["b"], name="/features/features.2/Relu"))
        == "features.features.2"
    )
    assert (
        node_source(helper.make_node("Relu", ["a"], ["b"], name="sequential/dense/Relu"))
        == "sequential/dense"
    )
    assert node_source(helper.make_node("Relu", ["a"], ["b"], name="Relu_3")) is None
    assert node_source(helper.make_node("Relu", ["a"], ["b"], name="/Relu")) is None
