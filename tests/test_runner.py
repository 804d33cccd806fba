"""The library path: onnxparity.check and the ParitySession caches, without pytest's plugin."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

import onnxparity as op
from onnxparity.config import ParityConfig
from onnxparity.runner import ParitySession
from parity_models import Activations, BakedBatch, Mlp, TwoInOut, move_clip_max

MLP_INPUTS = [op.Input("x", ("batch", 16), low=-2, high=2)]
MLP_DIMS = {"batch": op.Dim(1, 16)}


def mlp():
    torch.manual_seed(0)
    return Mlp().eval()


def test_check_returns_a_result_per_variant(tmp_path):
    result = op.check(mlp(), inputs=MLP_INPUTS, dims=MLP_DIMS, examples=5, reproducer_dir=tmp_path)
    assert result.passed
    variant = result["ort-cpu"]
    assert variant.status == "passed" and variant.examples >= 5
    # iterated and tested like the dict of variants it holds (before: KeyError: 0)
    assert list(result) == list(result.variants) and "ort-cpu" in result and "fp16" not in result
    assert variant.dims_covered["batch"] == (1, 16)  # both boundary shapes were tried
    assert variant.outputs[0].name == "output" and variant.outputs[0].max_abs_error < 1e-5
    assert result.exporter == "torch.onnx dynamo exporter" and result.opset >= 17
    assert json.dumps(result.to_dict())


def test_export_once_build_once_reference_once_per_example(tmp_path):
    spec = op.ParitySpec(inputs=MLP_INPUTS, dims=MLP_DIMS, examples=6)
    with ParitySession(ParityConfig(reproducer_dir=str(tmp_path))) as session:
        first = session.prepare(mlp(), spec)
        again = session.prepare(mlp(), spec)  # a new instance with the same weights
        assert again is first and session.counts["exports"] == 1
        one = session.check_variant(first, spec, "ort-cpu", name="t")
        runs = session.counts["reference_runs"]
        assert runs <= one.examples
        two = session.check_variant(first, spec, "ort-cpu", name="t")
        assert two.status == "passed"
        assert session.counts["sessions"] == 1
        assert session.counts["reference_runs"] == runs  # same examples: every reference cached
        other = Mlp().eval()  # different weights: a different model, exported anew
        session.prepare(other, spec)
        assert session.counts["exports"] == 2


def test_prebuilt_onnx_as_path_bytes_or_proto(parity_session, tmp_path):
    spec = op.ParitySpec(inputs=MLP_INPUTS, dims=MLP_DIMS, examples=3)
    model = mlp()
    path = parity_session.prepare(model, spec).exported.path
    proto = onnx.load(path)
    for given in (path, proto.SerializeToString(), proto):
        result = op.check(
            model, inputs=MLP_INPUTS, dims=MLP_DIMS, onnx=given, examples=3, reproducer_dir=tmp_path
        )
        assert result.passed and result.exporter == "prebuilt ONNX"


def test_prebuilt_onnx_with_other_input_names_is_a_clear_error(parity_session, tmp_path):
    spec = op.ParitySpec(inputs=MLP_INPUTS, dims=MLP_DIMS)
    path = parity_session.prepare(mlp(), spec).exported.path
    with pytest.raises(
        op.InvalidSpec, match=r"the ONNX model's inputs are \['x'\] but the spec declares \['features'\]"
    ):
        op.check(mlp(), inputs=[op.Input("features", ("batch", 16))], dims=MLP_DIMS, onnx=path)


def test_corrupt_onnx_file_is_a_clear_error(tmp_path):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not a model")
    with pytest.raises(op.InvalidSpec, match="is not a readable ONNX model"):
        op.check(mlp(), inputs=MLP_INPUTS, dims=MLP_DIMS, onnx=str(bad))


def test_reference_callable_checks_a_prebuilt_model(parity_session, tmp_path):
    spec = op.ParitySpec(inputs=MLP_INPUTS, dims=MLP_DIMS)
    model = mlp()
    path = parity_session.prepare(model, spec).exported.path

    def numpy_reference(x):
        with torch.no_grad():
            return model(torch.from_numpy(x)).numpy()

    result = op.check(
        inputs=MLP_INPUTS,
        dims=MLP_DIMS,
        onnx=path,
        reference=numpy_reference,
        examples=3,
        reproducer_dir=tmp_path,
    )
    assert result.passed
    wrong = op.check(
        inputs=MLP_INPUTS,
        dims=MLP_DIMS,
        onnx=path,
        reference=lambda x: numpy_reference(x) + 1,
        examples=3,
        reproducer_dir=tmp_path,
    )
    assert not wrong.passed


def test_opset_is_selectable_and_recorded(tmp_path):
    result = op.check(mlp(), inputs=MLP_INPUTS, dims=MLP_DIMS, opset=17, examples=2, reproducer_dir=tmp_path)
    assert result.passed and result.opset == 17


def test_exporter_failures_name_both_exporters_root_causes(tmp_path):
    class Unexportable(torch.nn.Module):
        def forward(self, x):
            return torch.linalg.eigh(x.T @ x)[0]  # no ONNX operator in either exporter

    with pytest.raises(op.ExportError) as info:
        op.check(Unexportable().eval(), inputs=[op.Input("x", (4, 4))], reproducer_dir=tmp_path)
    text = str(info.value)
    assert text.startswith("torch.onnx could not export Unexportable:")
    assert "\n  dynamo exporter: DispatchError: No ONNX function found for " in text
    assert "\n  TorchScript exporter: UnsupportedOperatorError: " in text
    assert "\x1b[" not in text


def test_reference_without_onnx_is_a_clear_error():
    with pytest.raises(
        op.InvalidSpec, match=r"reference= needs onnx= \(the ONNX model to check against it\)"
    ):
        op.check(mlp(), inputs=MLP_INPUTS, dims=MLP_DIMS, reference=lambda x: x)


def test_model_in_training_mode_is_an_error():
    model = Mlp()  # nn.Module starts in training mode
    with pytest.raises(
        op.ExportError,
        match=r"in training mode .*call model.eval\(\) first: dropout/batch-norm make outputs random",
    ):
        op.check(model, inputs=MLP_INPUTS, dims=MLP_DIMS)


def test_unknown_variant_is_an_error_naming_the_known_ones(tmp_path):
    result = op.check(mlp(), inputs=MLP_INPUTS, dims=MLP_DIMS, variants=["ort-cpy"], reproducer_dir=tmp_path)
    assert result["ort-cpy"].status == "error"
    assert result["ort-cpy"].message.startswith("unknown variant 'ort-cpy'; known variants: ")
    with pytest.raises(op.ParityFailure, match="unknown variant"):
        result.raise_for_failures()


def test_dict_outputs_are_named_by_their_keys(parity_session):
    spec = op.ParitySpec(
        inputs=(
            op.Input("x", ("batch", "seq", 8)),
            op.Input("ids", ("batch", "seq"), dtype="int64", low=0, high=49),
        ),
        dims={"batch": op.Dim(1, 4), "seq": op.Dim(1, 12)},
    )
    torch.manual_seed(0)
    prepared = parity_session.prepare(TwoInOut().eval(), spec)
    assert prepared.exported.output_names == ("scores", "label")


def test_reproducer_bundle_reproduces_the_failure(parity_session, tmp_path):
    spec = op.ParitySpec(
        inputs=(op.Input("x", ("batch", 8), low=-10, high=10),), dims={"batch": op.Dim(1, 8)}
    )
    model = Activations().eval()
    broken = move_clip_max(onnx.load(parity_session.prepare(model, spec).exported.path), 5.5)
    result = op.check(
        model, inputs=spec.inputs, dims=spec.dims, onnx=broken, reproducer_dir=tmp_path, name="clip"
    )
    failed = result["ort-cpu"]
    assert failed.status == "failed"
    bundle = failed.reproducer
    assert bundle == os.path.join(str(tmp_path), "clip", "ort-cpu")
    files = {"model.onnx", "inputs.npz", "expected.npz", "actual.npz", "names.json", "example.json"}
    assert files | {"README.txt"} <= set(os.listdir(bundle))
    info = json.load(open(os.path.join(bundle, "example.json")))
    assert info["variant"] == "ort-cpu" and info["example"] == {
        k: failed.failing_example[k] for k in ("dims", "patterns", "seed")
    }
    names = json.load(open(os.path.join(bundle, "names.json")))  # .npz key -> ONNX name
    feeds = {names["inputs"][k]: v for k, v in np.load(os.path.join(bundle, "inputs.npz")).items()}
    actual = ort.InferenceSession(os.path.join(bundle, "model.onnx")).run(None, feeds)
    expected = np.load(os.path.join(bundle, "expected.npz"))
    assert not np.allclose(actual[0], expected["output_0"], atol=1e-5)
    assert not [p for p in os.listdir(tmp_path / "clip") if ".tmp-" in p]  # written atomically


def test_runtime_native_error_lines_stay_out_of_the_output(parity_session, capfd):
    spec = op.ParitySpec(inputs=(op.Input("x", ("batch", 4, 5)),), dims={"batch": op.Dim(1, 8)})
    prepared = parity_session.prepare(BakedBatch().eval(), spec)
    capfd.readouterr()
    result = parity_session.check_variant(prepared, spec, "ort-cpu", name="quiet")
    assert result.status == "failed" and "Got invalid dimensions" in result.message
    out, err = capfd.readouterr()
    assert "onnxruntime" not in err and "onnxruntime" not in out


def test_user_registered_variant_runs_end_to_end(tmp_path):
    from onnxparity.variants.ort import OrtRunnable

    built = tmp_path / "built.txt"  # a closure builder runs in a fork of this process: count on disk

    def build(context):
        with open(built, "a") as f:
            f.write(context.model_path + "\n")
        return OrtRunnable(context.model_path, ["CPUExecutionProvider"], optimization="none")

    op.register_variant("test-ort-noopt", build, description="no graph optimizations", replace=True)
    result = op.check(
        mlp(),
        inputs=MLP_INPUTS,
        dims=MLP_DIMS,
        variants=["ort-cpu", "test-ort-noopt"],
        examples=3,
        reproducer_dir=tmp_path,
    )
    assert result["test-ort-noopt"].status == "passed" and len(built.read_text().splitlines()) == 1
    with pytest.raises(op.InvalidSpec, match="already registered"):
        op.register_variant("test-ort-noopt", build)


def test_failing_builder_is_isolated_to_its_variant(tmp_path):
    def explode(context):
        raise RuntimeError("quantizer does not support op Foo")

    op.register_variant("test-exploding", explode, replace=True)
    result = op.check(
        mlp(),
        inputs=MLP_INPUTS,
        dims=MLP_DIMS,
        variants=["test-exploding", "ort-cpu"],
        examples=3,
        reproducer_dir=tmp_path,
    )
    assert result["ort-cpu"].status == "passed"
    assert result["test-exploding"].status == "error"
    assert "RuntimeError: quantizer does not support op Foo" in result["test-exploding"].message


def test_importing_onnxparity_imports_no_framework_and_no_runtime():
    """ml_dtypes too: its extension takes 0.44 s to import (int4's limits imported it: 513 ms)."""
    code = (
        "import sys, onnxparity, onnxparity.plugin; "
        "heavy = [m for m in ('torch', 'tensorflow', 'sklearn', 'onnxruntime', 'onnx', 'ml_dtypes') "
        "if m in sys.modules]; "
        "print(heavy); sys.exit(1 if heavy else 0)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def test_reference_that_raises_on_a_declared_shape_is_reported_as_a_spec_problem(tmp_path):
    class SmallBatchOnly(torch.nn.Module):
        def forward(self, x):
            if x.shape[0] > 4:
                raise ValueError("batch larger than 4 is not supported")
            return x * 2

    model = SmallBatchOnly().eval()
    result = op.check(
        model,
        inputs=[op.Input("x", ("batch", 3))],
        dims={"batch": op.Dim(1, 8)},
        onnx=_doubling_onnx(),
        reproducer_dir=tmp_path,
    )
    message = result["ort-cpu"].message
    assert message.startswith(
        "the reference model raised on an input the spec declares valid (ort-cpu not compared):"
    )
    assert "ValueError: batch larger than 4 is not supported" in message
    assert "shrunk input: dims batch=5;" in message  # the smallest batch the model refuses
    assert "narrow dims= or the Input ranges" in message


def test_model_that_rejects_the_export_example_names_the_shapes(tmp_path):
    with pytest.raises(
        op.ExportError, match=r"Mlp raised on the export example \(x\[2, 7\] float32\).*match forward\(\)"
    ):
        op.check(
            mlp(), inputs=[op.Input("x", ("batch", 7))], dims={"batch": op.Dim(1, 4)}, reproducer_dir=tmp_path
        )


def _doubling_onnx() -> onnx.ModelProto:
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 3])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 3])
    two = helper.make_tensor("two", TensorProto.FLOAT, [], [2.0])
    graph = helper.make_graph([helper.make_node("Mul", ["x", "two"], ["y"])], "double", [x], [y], [two])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def test_ort_cpu_outputs_are_reused_for_other_variants_distances(tmp_path):
    spec = op.ParitySpec(inputs=MLP_INPUTS, dims=MLP_DIMS, examples=6)
    with ParitySession(ParityConfig(reproducer_dir=str(tmp_path))) as session:
        prepared = session.prepare(mlp(), spec)
        session.check_variant(prepared, spec, "ort-cpu", name="t")
        session.timings.clear()
        other = session.check_variant(prepared, spec, "ort-cpu-noopt", name="t")
        assert other.outputs[0].max_abs_error_vs_ort_cpu is not None
        assert session.timings["anchor"] == 0  # no extra ort-cpu run: its search kept them


def test_a_passing_search_is_replayed_by_the_next_variant_without_hypothesis(tmp_path):
    spec = op.ParitySpec(inputs=MLP_INPUTS, dims=MLP_DIMS, examples=8)
    with ParitySession(ParityConfig(reproducer_dir=str(tmp_path))) as session:
        prepared = session.prepare(mlp(), spec)
        first = session.check_variant(prepared, spec, "ort-cpu", name="t")
        (recorded,) = session.passing_searches.values()
        second = session.check_variant(prepared, spec, "ort-cpu-noopt", name="t")
        assert session.counts["hypothesis_searches"] == 1 and session.counts["replayed_searches"] == 1
        assert second.examples == first.examples == len(recorded)
        assert second.dims_covered == first.dims_covered
    # The replay relies on Hypothesis drawing the same sequence for the same seed while every
    # example passes: a fresh session's search on the other variant draws exactly it.
    with ParitySession(ParityConfig(reproducer_dir=str(tmp_path))) as fresh:
        again = fresh.prepare(mlp(), spec)
        fresh.check_variant(again, spec, "ort-cpu-noopt", name="t")
        assert list(fresh.passing_searches.values()) == [recorded]


def test_a_failure_during_a_replay_is_searched_and_shrunk_by_hypothesis(tmp_path):
    class Rounded:
        def __init__(self, context):
            from onnxparity.variants.ort import OrtRunnable

            self.inner = OrtRunnable(context.model_path, ["CPUExecutionProvider"])
            self.output_names = self.inner.output_names

        def run(self, feeds):
            return [np.round(o, 1) for o in self.inner.run(feeds)]

    op.register_variant("rounded-replay-test", Rounded, replace=True)
    spec = op.ParitySpec(inputs=MLP_INPUTS, dims=MLP_DIMS, examples=8)
    with ParitySession(ParityConfig(reproducer_dir=str(tmp_path))) as session:
        prepared = session.prepare(mlp(), spec)
        assert session.check_variant(prepared, spec, "ort-cpu", name="t").passed
        failed = session.check_variant(prepared, spec, "rounded-replay-test", name="t")
        assert failed.status == "failed"
        assert failed.failing_example["dims"] == {"batch": 1}  # shrunk by the real search
        assert session.counts["replayed_searches"] == 0 and session.counts["hypothesis_searches"] >= 2


def test_anchor_outputs_are_keyed_by_the_declared_input_space(tmp_path):
    """One prebuilt file checked under two input ranges: the second range's distances to
    ort-cpu must come from ort-cpu on the second range's inputs (they once reused the first's)."""
    model = _doubling_onnx()

    def twice(x):
        return x * 2

    def spec(low, high):
        return op.ParitySpec(
            inputs=(op.Input("x", ("batch", 3), low=low, high=high),), dims={"batch": op.Dim(1, 4)}
        )

    narrow, wide = spec(-1, 1), spec(100, 200)
    with ParitySession(ParityConfig(reproducer_dir=str(tmp_path))) as session:
        first = session.prepare(onnx=model, reference=twice, spec=narrow)
        assert session.check_variant(first, narrow, "ort-cpu", name="t", examples=5).passed
        second = session.prepare(onnx=model, reference=twice, spec=wide)
        result = session.check_variant(second, wide, "ort-cpu-noopt", name="t", examples=5)
        assert result.passed
        assert result.outputs[0].max_abs_error_vs_ort_cpu == 0.0


def test_a_variant_that_cannot_run_a_right_export_is_not_blamed_on_the_export(tmp_path):
    """A variant raising where ort-cpu runs the same input and matches: the diagnosis says the
    export is right and this variant cannot run it (it once blamed a baked dim, and the
    anchor line said the variant "loses the accuracy")."""
    from onnxparity.variants import VariantRunError
    from onnxparity.variants.ort import OrtRunnable

    class BatchOfOneOnly:
        def __init__(self, context):
            self.inner = OrtRunnable(context.model_path, ["CPUExecutionProvider"])
            self.output_names = self.inner.output_names

        def run(self, feeds):
            if next(iter(feeds.values())).shape[0] > 1:
                raise VariantRunError("[ONNXRuntimeError] : 1 : FAIL : Non-zero status code (batch > 1)")
            return self.inner.run(feeds)

    op.register_variant("batch-one-test", BatchOfOneOnly, replace=True)
    result = op.check(
        mlp(),
        inputs=MLP_INPUTS,
        dims=MLP_DIMS,
        variants=["ort-cpu", "batch-one-test"],
        examples=4,
        reproducer_dir=tmp_path,
    )
    message = result["batch-one-test"].message
    assert result["ort-cpu"].passed and result["batch-one-test"].status == "failed"
    assert message.startswith("batch-one-test cannot run this model on an input the spec declares valid")
    assert "ort-cpu runs the same input and matches the reference: the export is right" in message
    assert "next: the export is right and batch-one-test cannot run it" in message
    assert "baked" not in message and "loses the accuracy" not in message


def test_a_time_budget_ends_a_long_item_with_what_it_reached(tmp_path):
    """A model taking 10 s per call once ran 51 s behind one dot; with a budget the item fails
    naming how far it got, and a long search reports progress."""
    import time

    def slow(x):
        time.sleep(0.15)
        return x * 2

    reports = []
    with ParitySession(ParityConfig(reproducer_dir=str(tmp_path), item_timeout_s=0.5)) as session:
        session.progress = lambda *report: reports.append(report)
        result = op.check(
            onnx=_doubling_onnx(),
            reference=slow,
            inputs=[op.Input("x", ("batch", 3))],
            dims={"batch": op.Dim(1, 64)},
            examples=40,
            session=session,
        )
    outcome = result["ort-cpu"]
    assert outcome.status == "failed" and 1 <= outcome.examples < 40
    lines = outcome.message.splitlines()
    assert lines[0] == (
        f"ort-cpu: the time budget of 0.5 s ran out after {outcome.examples} of 40 examples "
        "(every example checked so far passed)"
    )
    assert lines[1].startswith("largest input reached: dims batch=64")
    assert lines[2] == "next: raise the budget (item_timeout_s=2.0), or lower examples= or narrow dims="


def test_progress_is_reported_during_a_long_search(tmp_path, monkeypatch):
    from onnxparity.search import engine as search

    monkeypatch.setattr(search, "PROGRESS_EVERY", 0.0)
    reports = []
    with ParitySession(ParityConfig(reproducer_dir=str(tmp_path))) as session:
        session.progress = lambda *report: reports.append(report)
        op.check(
            onnx=_doubling_onnx(),
            reference=lambda x: x * 2,
            inputs=[op.Input("x", ("batch", 3))],
            dims={"batch": op.Dim(1, 4)},
            examples=3,
            session=session,
            name="slow",
        )
    assert reports and reports[0][:2] == ("slow", "ort-cpu") and reports[-1][3] == 3
    assert reports[-1][4].startswith("dims batch=")


def _relu_file():
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["y"])],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 4])],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def test_a_failure_is_called_shrunk_only_when_it_was(tmp_path):
    """Only at the largest batch (a corner, tried first): the search from the simplest inputs
    finds nothing smaller, so the input is shown as found, saying why; elsewhere "shrunk"."""

    def at_40(x):
        return np.maximum(x, 0) + (1.0 if x.shape[0] == 40 else 0.0)

    def at_3(x):
        return np.maximum(x, 0) + (1.0 if x.shape[0] == 3 else 0.0)

    corner = op.check(onnx=_relu_file(), reference=at_40, dims={"batch": op.Dim(1, 40)}, examples=3,
                      reproducer_dir=tmp_path)["ort-cpu"]
    assert corner.status == "failed"
    assert "input (not shrunk: a corner or dim value tried first; a search from the simplest inputs " \
           "found no failure): dims batch=40;" in corner.message
    drawn = op.check(onnx=_relu_file(), reference=at_3, dims={"batch": op.Dim(1, 4)}, examples=3,
                     reproducer_dir=tmp_path)["ort-cpu"]
    assert "shrunk input: dims batch=3; x[3, 4] zeros; seed 0" in drawn.message


def test_a_failure_that_passes_when_run_again_says_so(tmp_path):
    """A variant that differs only the first time it sees an input: its failure cannot be
    replayed for shrinking, and the input is shown as found, not as shrunk."""

    class FirstTimeOff:
        def __init__(self, path: str) -> None:
            self.session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
            self.output_names = ("y",)
            self.seen: set[bytes] = set()

        def run(self, feeds):
            out = self.session.run(None, dict(feeds))
            key = feeds["x"].tobytes()
            if feeds["x"].shape[0] >= 2 and key not in self.seen:
                self.seen.add(key)
                return [out[0] + 1]
            return out

    op.register_variant("first-time-off", lambda context: FirstTimeOff(context.model_path), replace=True)
    result = op.check(onnx=_relu_file(), reference=lambda x: np.maximum(x, 0), dims={"batch": op.Dim(1, 40)},
                      variants=["first-time-off"], examples=25, reproducer_dir=tmp_path)["first-time-off"]
    assert result.status == "failed"
    assert "input (not shrunk: it passed when run again to be shrunk)" in result.message
