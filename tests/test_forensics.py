"""Failure forensics: on a failing example, the first ONNX node that goes wrong is named (with
the module it came from), and the bundle holds that node cut out as a model of its own.

The corpus: planted edits of a correct PyTorch export, one per bug class met in real exports
(a moved constant, a changed attribute, a dropped bias value, a flipped weight bit, a changed
reduction axis, a wrongly decomposed op, a removed clamp, a changed resize mode, a changed
epsilon). Each is checked as a prebuilt file against the PyTorch model, as a user hands over a
file they edited, and the localizer must name the edited node."""

from __future__ import annotations

import dataclasses
import json
import os

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from onnx import helper, numpy_helper

import onnxparity as op


class Forensic(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 8, 3, padding=1)
        self.act = torch.nn.ReLU6()
        self.up = torch.nn.Upsample(scale_factor=2, mode="nearest")
        self.conv2 = torch.nn.Conv2d(8, 8, 3, padding=1)
        self.norm = torch.nn.LayerNorm(8)
        self.fc = torch.nn.Linear(8, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv2(self.up(self.act(self.conv(x) * 8)))
        h = h.mean((2, 3))
        h = h - h.mean(dim=1, keepdim=True)
        h = torch.nn.functional.gelu(self.norm(h))
        return torch.softmax(self.fc(h), dim=-1)


SPEC = op.ParitySpec(
    inputs=(op.Input("x", ("batch", 3, "s", "s"), low=-1, high=1),),
    dims={"batch": op.Dim(1, 4), "s": op.Dim(4, 12)},
    examples=6,
)


def check_edited(session, model, broken, name, spec=SPEC, examples=6):
    """``broken`` (an edited export of ``model``) checked on ort-cpu as a prebuilt file."""
    return op.check(
        model, onnx=broken, inputs=spec.inputs, dims=spec.dims, examples=examples, session=session, name=name
    )["ort-cpu"]


def _node(model, op_type):
    return next(n for n in model.graph.node if n.op_type == op_type)


def _set(model, name, array):
    tensor = next(t for t in model.graph.initializer if t.name == name)
    dtype = numpy_helper.to_array(tensor).dtype
    tensor.CopyFrom(numpy_helper.from_array(np.asarray(array).astype(dtype), name))


def _initializer(model, name):
    return numpy_helper.to_array(next(t for t in model.graph.initializer if t.name == name)).copy()


def _attribute(node, name, value):
    for attribute in node.attribute:
        if attribute.name == name:
            node.attribute.remove(attribute)
            break
    node.attribute.append(helper.make_attribute(name, value))


def moved_clip(m):
    _set(m, _node(m, "Clip").input[2], 5.5)
    return {_node(m, "Clip").name}


def softmax_axis(m):
    _attribute(_node(m, "Softmax"), "axis", 0)
    return {_node(m, "Softmax").name}


def dropped_bias(m):
    conv = [n for n in m.graph.node if n.op_type == "Conv"][1]
    bias = _initializer(m, conv.input[2])
    bias[0] = 0
    _set(m, conv.input[2], bias)
    return {conv.name}


def flipped_bit(m):
    gemm = _node(m, "Gemm")
    weight = _initializer(m, gemm.input[1])
    weight.view(np.uint32)[0, 0] ^= 1 << 30  # an exponent bit
    _set(m, gemm.input[1], weight)
    return {gemm.name}


def reduce_axis(m):
    second = [n for n in m.graph.node if n.op_type == "ReduceMean"][1]  # the mean over features
    _set(m, second.input[1], np.array([0]))
    return {second.name}


def decomposed_gelu(m):
    """GELU replaced by x * sigmoid(1.702 x), off by up to 2e-2: one of the replacements is named."""
    gelu = _node(m, "Gelu")
    at, x, y = list(m.graph.node).index(gelu), gelu.input[0], gelu.output[0]
    new = [
        helper.make_node("Mul", [x, "k"], ["scaled"], name="gelu_scale"),
        helper.make_node("Sigmoid", ["scaled"], ["gate"], name="gelu_sigmoid"),
        helper.make_node("Mul", [x, "gate"], [y], name="gelu_out"),
    ]
    m.graph.initializer.append(numpy_helper.from_array(np.array(1.702, np.float32), "k"))
    m.graph.node.remove(gelu)
    for offset, node in enumerate(new):
        m.graph.node.insert(at + offset, node)
    return {n.name for n in new}


def removed_clamp(m):
    clip = _node(m, "Clip")
    clip.op_type = "Identity"
    del clip.input[1:]
    return {clip.name}


def resize_mode(m):
    _attribute(_node(m, "Resize"), "mode", "linear")
    return {_node(m, "Resize").name}


def epsilon(m):
    _attribute(_node(m, "LayerNormalization"), "epsilon", 0.5)
    return {_node(m, "LayerNormalization").name}


EDITS = {
    f.__name__: f
    for f in (
        moved_clip,
        softmax_axis,
        dropped_bias,
        flipped_bit,
        reduce_axis,
        decomposed_gelu,
        removed_clamp,
        resize_mode,
        epsilon,
    )
}
#: the module each edited node came from, as the dynamo exporter recorded it (None: a root op)
SOURCES = {
    "moved_clip": "act",
    "dropped_bias": "conv2",
    "flipped_bit": "fc",
    "removed_clamp": "act",
    "resize_mode": "up",
    "epsilon": "norm",
    "softmax_axis": None,
    "reduce_axis": None,
    "decomposed_gelu": None,
}


@pytest.fixture(scope="module")
def forensic(parity_session):
    torch.manual_seed(0)
    model = Forensic().eval()
    return model, parity_session.prepare(model, SPEC).exported.path


@pytest.mark.parametrize("edit", list(EDITS))
def test_the_localizer_names_the_edited_node(parity_session, forensic, edit):
    model, path = forensic
    broken = onnx.load(path)
    edited = EDITS[edit](broken)
    result = check_edited(parity_session, model, broken, f"forensics {edit}")
    assert result.status == "failed"
    found = result.divergence
    assert found is not None, result.message
    assert (found.node in edited or set(found.nodes) == edited) and found.source == SOURCES[edit]
    assert found.input_max_abs_error < 1e-5 < found.max_abs_error
    line = next(line for line in result.message.splitlines() if "first divergence:" in line).strip()
    if found.span:  # the framework exposes no value inside: the span is named, not one of its nodes
        assert line.startswith("first divergence: between ") and f"{len(found.nodes)} nodes" in line
        assert "the framework exposes no value in between" in line
    else:
        assert line.startswith(f"first divergence: {found.op_type} {found.node!r}")
    assert (f"(module {found.source})" in line) == (found.source is not None)
    assert result.to_dict()["divergence"]["node"] == found.node
    # the ONNX spec computes the edited node as ONNX Runtime does: the file is wrong, not the runtime
    assert (
        "the ONNX reference evaluator (the spec) computes this value as ONNX Runtime does: the exported graph "
        "means something other than the framework's code here"
    ) in result.message.splitlines()
    if edit == "decomposed_gelu":
        assert set(found.nodes) == edited and line.startswith(
            "first divergence: between 'layer_norm' (agree, max abs "
        ) and "and 'gelu' (max abs error " in line and ": 3 nodes — gelu_scale, gelu_sigmoid, gelu_out;" in line
    if edit == "reduce_axis":  # a shape, not a number, is what differs
        assert "has shape (1, 8) where the framework's has (1, 1)" in line


def test_the_bundle_holds_the_first_divergent_node_as_a_model_that_shows_it(parity_session, forensic):
    model, path = forensic
    broken = onnx.load(path)
    epsilon(broken)
    result = check_edited(parity_session, model, broken, "forensics bundle")
    bundle = result.reproducer
    sub = onnx.load(os.path.join(bundle, "subgraph.onnx"))
    onnx.checker.check_model(sub)
    assert [n.op_type for n in sub.graph.node] == ["LayerNormalization"]
    names = json.load(open(os.path.join(bundle, "names.json")))["subgraph_inputs"]  # .npz key -> ONNX name
    feeds = {names[k]: v for k, v in np.load(os.path.join(bundle, "subgraph_inputs.npz")).items()}
    (expected,) = np.load(os.path.join(bundle, "subgraph_expected.npz")).values()
    (actual,) = ort.InferenceSession(sub.SerializeToString(), providers=["CPUExecutionProvider"]).run(
        None, feeds
    )
    assert np.abs(actual - expected).max() > 0.1  # the divergence, on its own
    readme = open(os.path.join(bundle, "README.txt")).read()
    assert "subgraph.onnx holds 'node_layer_norm'" in readme and 'np.load("subgraph_inputs.npz")' in readme


def test_a_failure_without_a_framework_mapping_says_so_in_one_line(parity_session, forensic):
    _, path = forensic
    broken = onnx.load(path)
    epsilon(broken)
    torch.manual_seed(0)
    reference = Forensic().eval()

    def numpy_reference(x):
        with torch.no_grad():
            return [reference(torch.from_numpy(x)).numpy()]

    result = op.check(
        onnx=broken,
        reference=numpy_reference,
        inputs=SPEC.inputs,
        dims=SPEC.dims,
        examples=6,
        session=parity_session,
        name="forensics no mapping",
    )["ort-cpu"]
    assert result.status == "failed" and result.divergence is None
    lines = [line.strip() for line in result.message.splitlines() if "first divergence" in line]
    assert lines == [
        "first divergence: not localized — the reference (a callable, or stored outputs) exposes no intermediate "
        "values; with the framework model itself as the reference (op.check(model, onnx=...)) the first diverging "
        "node is named"
    ]


def test_a_passing_check_is_not_localized(parity_session, forensic):
    model, path = forensic
    result = op.check(
        model,
        onnx=onnx.load(path),
        inputs=SPEC.inputs,
        dims=SPEC.dims,
        examples=3,
        session=parity_session,
        name="forensics pass",
    )["ort-cpu"]
    assert result.passed and result.divergence is None
    assert json.loads(json.dumps(result.to_dict()))["divergence"] is None


def test_a_torchscript_export_is_localized_by_module_scope(parity_session):
    """At opset 13 the dynamo exporter cannot serve and the TorchScript one names nodes by module
    scope (``/conv2/Conv``): module outputs, recorded by forward hooks, pair with the one value
    that leaves each module's nodes."""
    torch.manual_seed(0)
    model = Forensic().eval()
    first = op.check(
        model,
        inputs=SPEC.inputs,
        dims=SPEC.dims,
        opset=13,
        examples=2,
        session=parity_session,
        name="forensics torchscript",
    )
    assert first.exporter == "torch.onnx TorchScript exporter" and first["ort-cpu"].passed
    exported = parity_session.prepare(model, dataclasses.replace(SPEC, opset=13)).exported
    broken = onnx.load(exported.path)
    edited = dropped_bias(broken)
    result = check_edited(parity_session, model, broken, "forensics torchscript edited")
    assert result.divergence is not None and {result.divergence.node} == edited
    assert result.divergence.source.endswith("conv2")


def test_a_large_models_values_are_compared_a_slice_at_a_time(parity_session, forensic, monkeypatch):
    """With a budget smaller than any one value, every paired value gets an ONNX Runtime run of
    its own, in graph order, and the run stops at the first that diverges: the same node is
    named as with everything at once."""
    from onnxparity.forensics import export
    from onnxparity.variants import probe

    model, path = forensic
    broken = onnx.load(path)
    edited = epsilon(broken)
    runs = []
    real = probe.tensor_values
    monkeypatch.setattr(export, "CHUNK_BYTES", 1)
    monkeypatch.setattr(
        probe, "tensor_values", lambda m, feeds: runs.append(len(m.graph.output)) or real(m, feeds)
    )
    result = check_edited(parity_session, model, broken, "forensics slices")
    assert {result.divergence.node} == edited
    # conv2d, mul, hardtanh, upsample, conv2d_1, mean, mean_1, sub, layer_norm: one run each, then stop;
    # then the layer norm alone on the framework's inputs (its inputs agree only within the tolerance:
    # does it compute otherwise from them?), and its input read once more (a constant row there?)
    assert len(runs) == 11 and all(outputs <= 2 for outputs in runs)


def build_rewritten(context):
    """A user's graph tool as a variant (an offline optimizer, a simplifier), which gets one
    Clip's bound wrong while rewriting."""
    from onnxparity.variants.ort import OrtRunnable

    model = onnx.load(context.model_path)
    moved_clip(model)
    path = os.path.join(context.workdir, "rewritten.onnx")
    onnx.save(model, path)
    return OrtRunnable(path, ["CPUExecutionProvider"], threads=context.threads)


def test_a_variant_that_rewrites_the_graph_is_localized_against_the_export(parity_session, forensic):
    """The export is right (ort-cpu passes on the failing input), so the framework is not
    compared: the variant's own graph is, value by value against the export's."""
    op.register_variant("rewritten", build_rewritten, replace=True)
    model, path = forensic
    clip = _node(onnx.load(path), "Clip").name
    result = op.check(
        model,
        inputs=SPEC.inputs,
        dims=SPEC.dims,
        variants=["ort-cpu", "rewritten"],
        examples=6,
        session=parity_session,
        name="forensics rewritten",
    )
    assert result["ort-cpu"].passed
    failed = result["rewritten"]
    assert failed.status == "failed" and failed.divergence is not None and failed.divergence.node == clip
    assert (
        "rewritten runs a rewritten graph (rewritten.onnx); against the export on this input:"
        in failed.message
    )
    assert f"first divergence: Clip {clip!r} (module act)" in failed.message


@pytest.mark.filterwarnings("ignore::FutureWarning", "ignore::UserWarning")  # this test's own export
def test_the_exports_own_program_is_reused_and_exported_again_only_when_gone(
    parity_session, forensic, monkeypatch
):
    from onnxparity.exporters import torch as torch_source

    model, path = forensic
    calls = []
    real = torch.onnx.export
    monkeypatch.setattr(torch.onnx, "export", lambda *a, **k: calls.append(1) or real(*a, **k))

    def localized(name):
        broken = onnx.load(path)
        edited = epsilon(broken)
        result = check_edited(parity_session, model, broken, name)
        return result.divergence is not None and {result.divergence.node} == edited

    torch_source.keep_program(  # as the fixture's export left it, whatever ran in between
        torch_source.program_key(torch_source.fingerprint(model), torch_source.plan_call(model, SPEC), SPEC),
        real(
            model,
            dynamo=True,
            verbose=False,
            **torch_source.dynamo_arguments(
                torch, SPEC, torch_source.plan_call(model, SPEC), (torch.zeros(2, 3, 8, 8),)
            ),
        ).exported_program,
    )
    assert localized("forensics kept program") and calls == []
    monkeypatch.setattr(torch_source, "PROGRAMS", type(torch_source.PROGRAMS)())
    assert localized("forensics program gone") and calls == [1]


def test_a_float16_value_within_its_precision_is_not_named_as_a_divergence():
    """Each tensor is judged by the verdict's rule: under an undeclared tolerance a float16 value
    is compared at float16's precision (2^-9), as a float16 output is, not at the default
    atol=1e-5 — a value one rounding step away is not the first divergence, one 0.1 away is; a
    declared tolerance applies as declared, to tensors as to outputs."""
    from onnxparity.forensics.export import off, walk
    from onnxparity.spec import DEFAULT_TOLERANCE
    from onnxparity.verdict.compare import compare_output

    half = onnx.TensorProto.FLOAT16
    graph = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["h"], name="relu"), helper.make_node("Neg", ["h"], ["y"], name="neg")],
        "g",
        [helper.make_tensor_value_info("x", half, [4])],
        [helper.make_tensor_value_info("y", half, [4])],
    )
    h = np.array([0.5, 1.0, 2.0, 0.25], np.float16)
    step = np.nextafter(h, np.float16(np.inf))  # one float16 rounding step: 2^-10 at 1.0
    assert off(h, step, DEFAULT_TOLERANCE)[2] is False
    assert walk(graph, {"h": h, "y": -h}, {"h": step, "y": -step}, DEFAULT_TOLERANCE) is None
    far = h + np.float16(0.1)
    assert walk(graph, {"h": h, "y": -h}, {"h": far, "y": -far}, DEFAULT_TOLERANCE).node == "relu"
    for tolerance in (DEFAULT_TOLERANCE, op.Tolerance(), op.Tolerance(0.0, 0.0, 0.02)):
        for actual in (step, far, np.where(h == 1.0, np.float16(np.inf), h)):
            assert off(h, actual, tolerance)[2] is not compare_output("h", h, actual, tolerance).passed


def test_the_report_and_the_page_carry_the_span_and_the_evidence_behind_its_cause(parity_session, forensic):
    """A span's agreeing start, its nodes and the printed line travel with the divergence in the
    JSON report, with the lines that say what it means (here the spec's verdict); the HTML page
    shows them."""
    from onnxparity.report import document
    from onnxparity.report.html import payload

    model, path = forensic
    broken = onnx.load(path)
    decomposed_gelu(broken)
    result = check_edited(parity_session, model, broken, "forensics evidence")
    entry = result.to_dict()["divergence"]
    assert entry["inputs"] == ["layer_norm"] and len(entry["nodes"]) == 3
    assert entry["line"].startswith("first divergence: between 'layer_norm' (agree, max abs ")
    assert any(line.startswith("the ONNX reference evaluator (the spec) computes this value as ONNX Runtime does")
               for line in entry["evidence"])
    from onnxparity.planning import plan_items

    (planned,) = plan_items(("ort-cpu",))
    item = document.entry("t.py::t[ort-cpu]", "t.py::t", planned, "failed", result.to_dict())
    doc = document.check_document(document.build([item], planned=1))
    shown = next(i for i in payload(doc)["items"] if i["id"] == "t.py::t[ort-cpu]")
    assert shown["divergence"]["line"] == entry["line"] and shown["divergence"]["evidence"] == entry["evidence"]
    script = open(os.path.join(os.path.dirname(document.__file__), "assets", "report.js")).read()
    assert '["what it means", div && div.evidence' in script


def test_a_file_whose_names_tell_nothing_is_localized_by_value(parity_session, forensic):
    """A prebuilt file from elsewhere: the same graph, every value renamed, so no FX node's name
    pairs. The framework's values are paired by their values instead (same shape, within the
    tolerance, not constant), and the dropped bias is still named — as a node whose inputs were
    paired by value, never with 'inputs agree' about values nobody compared."""
    from onnxparity.graph.files import rename_values

    model, path = forensic
    broken = onnx.load(path)
    edited = dropped_bias(broken)
    outputs = {o.name for o in broken.graph.output}
    renamed = {
        out: f"t{i}" for i, out in enumerate(o for n in broken.graph.node for o in n.output) if out not in outputs
    }
    rename_values(broken, renamed)
    result = check_edited(parity_session, model, broken, "forensics renamed")
    assert result.status == "failed"
    found = result.divergence
    assert found is not None, result.message
    assert edited & set(found.nodes) and len(found.nodes) <= 10
    line = next(line for line in result.message.splitlines() if "first divergence:" in line).strip()
    assert "paired by value" in line
