"""Variant forensics on one graph run two ways: ONNX Runtime's graph optimizer against the
unoptimized graph, and ONNX Runtime against the ONNX specification (the reference evaluator).

Each case is a real disagreement of the installed packages, found by probing, not a planted
edit; each test first checks that the disagreement is still there and skips with a reason
once a release fixes it:
- ONNX Runtime 1.32's LayerNorm fusion matches ``(mean - x) / sqrt(var + eps)`` (the operands
  of the Sub reversed) and rewrites it into LayerNormalization, flipping the output's sign.
- ONNX Runtime's MeanVarianceNormalization returns NaN on a constant input, where the spec's
  formula gives 0.
- The reference evaluator's LpNormalization with p=1 omits the absolute value."""

from __future__ import annotations

import json
import os

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from onnx import TensorProto, helper

import onnxparity as op
from onnxparity.forensics.runtime import _bisect, localize_optimizer, spec_values


class MeanMinusX(torch.nn.Module):
    """A normalization that centres on ``mean - x`` (a sign convention some codebases use)."""

    def __init__(self, width: int = 16) -> None:
        super().__init__()
        self.fc = torch.nn.Linear(width, width)
        self.weight = torch.nn.Parameter(torch.ones(width))
        self.bias = torch.nn.Parameter(torch.zeros(width))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.fc(x)
        centred = x.mean(-1, keepdim=True) - x
        variance = (centred**2).mean(-1, keepdim=True)
        return centred / torch.sqrt(variance + 1e-5) * self.weight + self.bias


LN_INPUTS = [op.Input("x", ("batch", 16))]
LN_DIMS = {"batch": op.Dim(1, 4)}


def _session(model, level):
    options = ort.SessionOptions()
    options.graph_optimization_level = level
    return ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])


def _mean_minus_x_graph():
    values = [helper.make_tensor(n, TensorProto.FLOAT, [], [v]) for n, v in (("two", 2.0), ("eps", 1e-5))]
    values += [
        helper.make_tensor(n, TensorProto.FLOAT, [16], [v] * 16) for n, v in (("gamma", 1.0), ("beta", 0.0))
    ]
    nodes = [
        helper.make_node("ReduceMean", ["x"], ["mu"], axes=[-1]),
        helper.make_node("Sub", ["mu", "x"], ["d"]),
        helper.make_node("Pow", ["d", "two"], ["d2"]),
        helper.make_node("ReduceMean", ["d2"], ["var"], axes=[-1]),
        helper.make_node("Add", ["var", "eps"], ["ve"]),
        helper.make_node("Sqrt", ["ve"], ["sd"]),
        helper.make_node("Div", ["d", "sd"], ["n"]),
        helper.make_node("Mul", ["n", "gamma"], ["g"]),
        helper.make_node("Add", ["g", "beta"], ["y"]),
    ]
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 16])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 16])],
        values,
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def _fusion_still_wrong() -> bool:
    model, x = _mean_minus_x_graph(), np.random.default_rng(0).standard_normal((2, 16)).astype(np.float32)
    plain = _session(model, ort.GraphOptimizationLevel.ORT_DISABLE_ALL).run(None, {"x": x})[0]
    fused = _session(model, ort.GraphOptimizationLevel.ORT_ENABLE_ALL).run(None, {"x": x})[0]
    return bool(np.abs(plain - fused).max() > 1e-3)


needs_wrong_fusion = pytest.mark.skipif(
    not _fusion_still_wrong(),
    reason=f"ONNX Runtime {ort.__version__} no longer fuses (mean - x) normalization into LayerNormalization",
)


@needs_wrong_fusion
def test_an_optimizer_rewrite_is_named_with_the_nodes_it_fused_and_a_verified_fix(parity_session):
    torch.manual_seed(0)
    result = op.check(
        MeanMinusX().eval(),
        inputs=LN_INPUTS,
        dims=LN_DIMS,
        examples=5,
        variants=["ort-cpu", "ort-cpu-noopt"],
        session=parity_session,
        name="mean-minus-x",
    )
    assert result["ort-cpu-noopt"].status == "passed"
    failed = result["ort-cpu"]
    assert failed.status == "failed"
    divergence = failed.divergence
    # the whole normalization, fed equal inputs
    assert len(divergence.nodes) == 9 and divergence.input_max_abs_error == 0.0
    assert divergence.tensor == "output" and divergence.max_abs_error > 1
    lines = failed.message.splitlines()
    rewrite = next(line for line in lines if "graph optimizer changes" in line)
    assert rewrite.endswith("(9 ops) into LayerNormalization:")
    assert "ReduceMean, Sub, Pow, ReduceMean, Add, Sqrt, Div, Mul" in rewrite
    fix = next(line for line in lines if "verified on this input" in line)
    assert "disabled_optimizers=['LayerNormFusion" in fix  # the name the installed release registers
    # the reproducer's subgraph shows it without onnxparity: default session options optimize
    bundle = failed.reproducer
    names = json.load(open(os.path.join(bundle, "names.json")))["subgraph_inputs"]  # .npz key -> ONNX name
    feeds = {names[k]: v for k, v in np.load(os.path.join(bundle, "subgraph_inputs.npz")).items()}
    shown = ort.InferenceSession(os.path.join(bundle, "subgraph.onnx"), providers=["CPUExecutionProvider"])
    (expected,) = np.load(os.path.join(bundle, "subgraph_expected.npz")).values()
    assert np.abs(shown.run(None, feeds)[0] - expected).max() > 1
    readme = open(os.path.join(bundle, "README.txt")).read()
    assert "(ONNX Runtime's without graph optimization, which agree)" in readme
    assert "model.onnx is the exported model; the variant ran it as is." in readme


class Deeper(torch.nn.Module):
    """The rewrite in the middle of a deeper network: layers before and after it."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = torch.nn.Sequential(torch.nn.Linear(16, 16), torch.nn.Tanh(), torch.nn.Linear(16, 16))
        self.norm = MeanMinusX()
        self.head = torch.nn.Sequential(torch.nn.ReLU(), torch.nn.Linear(16, 8), torch.nn.Softmax(-1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.norm(self.stem(x)))


@needs_wrong_fusion
def test_the_bisection_finds_a_rewrite_in_the_middle_of_a_network(parity_session):
    torch.manual_seed(0)
    failed = op.check(
        Deeper().eval(),
        inputs=LN_INPUTS,
        dims=LN_DIMS,
        examples=4,
        variants=["ort-cpu"],
        session=parity_session,
    )["ort-cpu"]
    divergence = failed.divergence
    assert len(divergence.nodes) == 9 and divergence.tensor != "output"
    assert divergence.op_type == "Add" and divergence.source == "norm"
    assert divergence.input_max_abs_error == 0.0


def test_localize_optimizer_says_nothing_where_the_optimizer_keeps_the_result(tmp_path):
    graph = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["r"]), helper.make_node("Neg", ["r"], ["y"])],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [3])],
    )
    path = str(tmp_path / "m.onnx")
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    assert localize_optimizer(path, {"x": np.arange(3, dtype=np.float32)}, op.Tolerance(), "ort-cpu") == (
        None,
        [],
        None,
    )


def test_bisect_finds_a_transition_even_where_the_predicate_is_not_monotonic():
    assert _bisect(0, 100, lambda k: k >= 37) == 37
    found = _bisect(0, 10, lambda k: k in (3, 4, 9, 10))
    assert found in (3, 9) and found - 1 not in (3, 4, 9, 10)


PLUGIN_TEST = """
import torch
import pytest
import onnxparity as op
from test_forensics_runtime import MeanMinusX, LN_INPUTS, LN_DIMS


@pytest.mark.onnx_parity(inputs=LN_INPUTS, dims=LN_DIMS, examples=4, variants=["ort-cpu"])
def test_norm(onnx_parity):
    torch.manual_seed(0)
    onnx_parity.check(MeanMinusX().eval())
"""


@needs_wrong_fusion
def test_the_plugin_names_the_optimizer_rewrite(pytester, warm_exporter):
    pytester.syspathinsert(os.path.dirname(__file__))
    pytester.makepyfile(test_norm=PLUGIN_TEST)
    report = pytester.path / "report.json"
    result = pytester.runpytest_inprocess(
        "--onnx-parity", f"--onnx-parity-report={report}", "-p", "no:cacheprovider"
    )
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "*ort-cpu: on this input ONNX Runtime's graph optimizer changes the result (the same nodes unoptimized "
            "compute other values); it rewrites ReduceMean, *into LayerNormalization:",
            "*first divergence: between * and 'output' (max abs error *): 9 nodes — *; the optimized graph keeps "
            "no value in between",
            "*verified on this input: InferenceSession(..., disabled_optimizers=[[]'LayerNormFusion*",
        ]
    )
    (item,) = json.loads(report.read_text())["items"]
    assert len(item["result"]["divergence"]["nodes"]) == 9


# -- ONNX Runtime against the spec -------------------------------------------------------------
class Standardize(torch.nn.Module):
    """A standardization of a gated value; the gate can make it constant (the spec gives 0)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gated = x * 0.0 + 1.0
        mean = gated.mean(dim=(0, 1), keepdim=True)
        spread = ((gated - mean) ** 2).mean(dim=(0, 1), keepdim=True).sqrt()
        return (gated - mean) / (spread + 1e-9) + x


def _mvn_graph():
    nodes = [
        helper.make_node("Mul", ["x", "zero"], ["z"], name="gate"),
        helper.make_node("Add", ["z", "one"], ["c"], name="shift"),
        helper.make_node("MeanVarianceNormalization", ["c"], ["m"], axes=[0, 1], name="mvn"),
        helper.make_node("Add", ["m", "x"], ["y"], name="residual"),
    ]
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 3])],
        [
            helper.make_tensor("zero", TensorProto.FLOAT, [], [0.0]),
            helper.make_tensor("one", TensorProto.FLOAT, [], [1.0]),
        ],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def _mvn_still_nan() -> bool:
    x = np.ones((1, 3), np.float32)
    ours = _session(_mvn_graph(), ort.GraphOptimizationLevel.ORT_DISABLE_ALL).run(None, {"x": x})[0]
    return bool(np.isnan(ours).any() and not np.isnan(spec_values(_mvn_graph(), {"x": x})["y"]).any())


needs_mvn_nan = pytest.mark.skipif(
    not _mvn_still_nan(),
    reason=f"ONNX Runtime {ort.__version__} no longer returns NaN for MeanVarianceNormalization of a constant",
)
MVN_INPUTS = [op.Input("x", ("batch", 3))]


@needs_mvn_nan
def test_the_spec_narrows_an_export_span_to_the_node_where_onnx_runtime_parts_from_it(parity_session):
    """The framework's values pair with the outputs only (a hand-built file): the span is four
    nodes; the reference evaluator, run on that span, names the one ONNX Runtime gets wrong."""
    failed = op.check(
        Standardize().eval(),
        onnx=_mvn_graph(),
        inputs=MVN_INPUTS,
        dims={"batch": op.Dim(1, 3)},
        examples=4,
        variants=["ort-cpu"],
        session=parity_session,
        name="mvn",
    )["ort-cpu"]
    assert failed.status == "failed"
    assert (failed.divergence.node, failed.divergence.nodes, failed.divergence.nonfinite) == (
        "mvn",
        ("mvn",),
        3,
    )
    lines = failed.message.splitlines()
    assert any(
        line.startswith("first divergence: between ") and "nodes — gate, shift, mvn, residual" in line
        for line in lines
    )
    spec = next(line for line in lines if line.startswith("the ONNX reference evaluator (the spec)"))
    assert (
        "as the framework does: ONNX Runtime parts from the spec here (MeanVarianceNormalization 'mvn'"
        in spec
    )
    assert "not the export" in spec
    cut = onnx.load(os.path.join(failed.reproducer, "subgraph.onnx"))
    assert [n.name for n in cut.graph.node] == ["mvn"]
    assert (
        "# the ONNX reference evaluator's 'm'" in open(os.path.join(failed.reproducer, "README.txt")).read()
    )


@needs_mvn_nan
def test_without_framework_values_the_whole_graph_is_run_against_the_spec(parity_session):
    failed = op.check(
        onnx=_mvn_graph(),
        reference=lambda x: [x],
        inputs=MVN_INPUTS,
        dims={"batch": op.Dim(1, 3)},
        examples=4,
        variants=["ort-cpu"],
        session=parity_session,
        name="mvn-callable",
    )["ort-cpu"]
    assert failed.divergence.node == "mvn"
    assert failed.message.splitlines()[-8:-4] == [
        # (the reference is a callable: the lines name it, not a framework)
        "reference values: not localized — the reference (a callable, or stored outputs) exposes no intermediate "
        "values; with the framework model itself as the reference (op.check(model, onnx=...)) the first diverging "
        "node is named",
        "ONNX Runtime against the ONNX reference evaluator (the spec) on this input (no graph optimization):",
        "first divergence: MeanVarianceNormalization 'mvn' — inputs agree (max abs 0), output 'm' 3 values NaN "
        "or infinite where the reference is finite",
        "  the spec's outputs on this input are the reference's: ONNX Runtime is what differs (report it to ONNX "
        "Runtime with subgraph.onnx from the reproducer)",
    ]


# -- the spec's evaluator against ONNX Runtime ---------------------------------------------------
class L1Normalize(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.normalize(x, p=1, dim=-1) * 2.0


def _lp_graph():
    nodes = [
        helper.make_node("LpNormalization", ["x"], ["n"], axis=-1, p=1, name="l1norm"),
        helper.make_node("Mul", ["n", "two"], ["y"], name="scale"),
    ]
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 5])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 5])],
        [helper.make_tensor("two", TensorProto.FLOAT, [], [2.0])],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def _reference_lp_still_wrong() -> bool:
    x = np.array([[1.0, -3.0, 2.0, 0.5, -1.0]], np.float32)
    expected = x / np.abs(x).sum(-1, keepdims=True) * 2
    return bool(np.abs(spec_values(_lp_graph(), {"x": x})["y"] - expected).max() > 1e-3)


@pytest.mark.skipif(
    not _reference_lp_still_wrong(), reason=f"onnx {onnx.__version__}'s evaluator fixed LpNormalization p=1"
)
def test_a_reference_evaluator_defect_is_named_against_onnx_runtime(parity_session):
    result = op.check(
        L1Normalize().eval(),
        onnx=_lp_graph(),
        inputs=[op.Input("x", ("batch", 5))],
        dims={"batch": op.Dim(1, 3)},
        examples=6,
        variants=["ort-cpu", "onnx-reference"],
        session=parity_session,
        name="l1",
    )
    assert result["ort-cpu"].status == "passed"
    failed = result["onnx-reference"]
    assert (failed.divergence.node, failed.divergence.nodes) == ("l1norm", ("l1norm",))
    lines = failed.message.splitlines()
    at = lines.index("onnx-reference against ONNX Runtime's CPU on this input (no graph optimization):")
    assert lines[at + 1].startswith(
        "first divergence: LpNormalization 'l1norm' — inputs agree (max abs 0), output 'n'"
    )
