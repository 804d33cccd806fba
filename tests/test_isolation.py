"""Variants in worker processes: a native crash while a variant runs or builds fails only the
item that hit it, names the signal, the variant and the input, and the session goes on.

The crashes are real (reading address 0: SIGSEGV). The inner sessions run in a subprocess, so
that if isolation ever breaks, the crash takes down that session and not this one."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import torch
from onnx import TensorProto, helper

import onnxparity as op
from onnxparity.config import ParityConfig
from onnxparity.runner import ParitySession
from onnxparity.variants import BuildContext
from onnxparity.variants import worker as worker_module
from onnxparity.variants.ort import build_ort_cpu
from onnxparity.variants.worker import IsolatedVariant
from parity_models import Mlp

CRASHY = """
import ctypes
from onnxparity.variants.ort import OrtRunnable


class Crashy:
    '''ONNX Runtime, except that a batch of 3 or more crashes the process (SIGSEGV).'''

    def __init__(self, context):
        self.inner = OrtRunnable(context.model_path, ["CPUExecutionProvider"])
        self.output_names = self.inner.output_names

    def run(self, feeds):
        if feeds["x"].shape[0] >= 3:
            ctypes.string_at(0)
        return self.inner.run(feeds)


def build(context):
    return Crashy(context)
"""

CONFTEST = """
import crashy
import onnxparity as op

op.register_variant("crashy", crashy.build, crash_hint="run crashy on batches of at most 2")
"""

TESTS = """
import numpy as np, pytest
from onnx import TensorProto, helper


def relu():
    graph = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["y"])], "relu",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 4])],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


@pytest.mark.onnx_parity(inputs=[op.Input("x", ("batch", 4))], dims={"batch": op.Dim(1, 4)},
                         examples=5, variants=["crashy", "ort-cpu"])
def test_a(onnx_parity):
    onnx_parity.check(onnx=relu(), reference=lambda x: np.maximum(x, 0))


def test_z_the_session_goes_on():
    pass
""".replace("import numpy as np", "import numpy as np\nimport onnxparity as op")


def test_a_variant_that_crashes_while_running_fails_only_its_item(pytester):
    pytester.makepyfile(crashy=CRASHY, conftest=CONFTEST, test_crash=TESTS)
    report = pytester.path / "report.json"
    result = pytester.runpytest_subprocess(
        "--onnx-parity", f"--onnx-parity-report={report}", "-p", "no:cacheprovider"
    )
    result.assert_outcomes(passed=2, failed=1)
    result.stdout.fnmatch_lines(
        [
            "crashy crashed on an input the spec declares valid (model from prebuilt ONNX, opset 17):",
            "*the native runtime crashed with SIGSEGV while running crashy on one input; crashy ran in a "
            "worker process of its own, so only this item fails and the session goes on",
            "  where the worker was (innermost first):",
            '*File "*crashy.py", line 14 in run',
            "*hint: run crashy on batches of at most 2",
            "input (not shrunk: each try would crash again): dims batch=4; *",
            "*next: the runtime's native code crashes on this input*",
        ]
    )
    items = {i["nodeid"]: i for i in json.loads(report.read_text())["items"]}
    assert items["test_crash.py::test_a[crashy]"]["status"] == "failed"
    assert items["test_crash.py::test_a[ort-cpu]"]["status"] == "passed"
    assert items["test_crash.py::test_a[crashy]"]["result"]["failing_example"]["dims"] == {"batch": 4}


def segfaulting_builder(context):
    import ctypes

    ctypes.string_at(0)


def test_a_variant_that_crashes_while_building_is_only_that_variants_error(parity_session):
    op.register_variant("crash-test", segfaulting_builder, crash_hint="this is a planted crash")
    torch.manual_seed(0)
    result = op.check(
        Mlp().eval(),
        inputs=[op.Input("x", ("batch", 16))],
        dims={"batch": op.Dim(1, 4)},
        variants=["ort-cpu", "crash-test", "ort-cpu-noopt"],
        examples=4,
        session=parity_session,
    )
    assert result["ort-cpu"].passed and result["ort-cpu-noopt"].passed
    crashed = result["crash-test"]
    assert crashed.status == "error"
    lines = crashed.message.splitlines()
    assert lines[0] == (
        "crash-test could not be built: the native runtime crashed with SIGSEGV while building "
        "crash-test; crash-test ran in a worker process of its own, so only this variant fails"
    )
    assert lines[1] == "where the worker was (innermost first):"
    frames = [line for line in lines if line.startswith('  File "')]
    line = segfaulting_builder.__code__.co_firstlineno + 3
    assert any(f.endswith(f'test_isolation.py", line {line} in segfaulting_builder') for f in frames), frames
    assert lines[-1] == "hint: this is a planted crash"


def test_which_variants_run_in_workers(tmp_path):
    """auto: lossy and user-registered variants, not the built-in lossless ones; the isolate
    setting and a variant's own isolate option decide otherwise; latency is timed here."""
    torch.manual_seed(0)
    m = Mlp().eval()
    spec = dict(inputs=[op.Input("x", ("batch", 16))], dims={"batch": op.Dim(1, 4)}, examples=3)

    def workers(mode, variants, **options):
        with ParitySession(ParityConfig(isolate=mode, reproducer_dir=str(tmp_path))) as session:
            result = op.check(m, variants=variants, session=session, **spec, **options)
            assert all(r.passed for r in result.variants.values()), result
            return session.counts["workers"]

    assert workers("auto", ["ort-cpu", "int8-dynamic", "fp16"]) == 2
    assert workers("off", ["ort-cpu", "int8-dynamic", "fp16"]) == 0
    assert workers("all", ["ort-cpu", "int8-dynamic"]) == 2
    assert workers("auto", ["int8-dynamic", "fp16"], variant_options={"fp16": {"isolate": False}}) == 1
    assert workers("off", ["ort-cpu"], variant_options={"ort-cpu": {"isolate": True}}) == 1
    assert workers("auto", ["int8-dynamic"], latency=op.Latency(variant="int8-dynamic", p50_ms=1e6)) == 1


def test_a_bad_isolate_option_names_the_variant(parity_session):
    torch.manual_seed(0)
    result = op.check(
        Mlp().eval(),
        inputs=[op.Input("x", ("batch", 16))],
        dims={"batch": op.Dim(1, 4)},
        variants=["fp16"],
        variant_options={"fp16": {"isolate": "yes"}},
        examples=2,
        session=parity_session,
    )
    assert result["fp16"].status == "error"
    assert result["fp16"].message.endswith("variant_options['fp16']['isolate']='yes': expected True or False")


def relu_file(directory) -> str:
    graph = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["y"])],
        "relu",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 4])],
    )
    path = os.path.join(directory, "relu.onnx")
    with open(path, "wb") as f:
        f.write(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString())
    return path


@pytest.mark.parametrize("started", ["forked", "fresh interpreter"])
def test_workers_beyond_the_limit_stop_and_start_again_when_needed(tmp_path, monkeypatch, started):
    """Also where no fork server can run (not Linux): each worker is then a fresh interpreter."""
    monkeypatch.setattr(worker_module, "MAX_LIVE", 1)
    if started == "fresh interpreter":
        monkeypatch.setattr(worker_module, "zygote", lambda: None)
    path = relu_file(tmp_path)
    made = []
    for name in ("a", "b"):
        os.makedirs(tmp_path / name)
        made.append(
            IsolatedVariant(build_ort_cpu, BuildContext(model_path=path, workdir=str(tmp_path / name)))
        )
    a, b = made
    small = {"x": np.array([[-1.0, 0.5, 2.0, -3.0]], np.float32)}
    large = {"x": np.linspace(-1, 1, 4 * 40000, dtype=np.float32).reshape(40000, 4)}  # through shared memory
    try:
        for runnable in (a, b, a):  # with one worker alive at a time
            np.testing.assert_array_equal(runnable.run(small)[0], np.maximum(small["x"], 0))
            np.testing.assert_array_equal(runnable.run(large)[0], np.maximum(large["x"], 0))
        # a, b (a stopped), then a (b stopped), b (a stopped), a
        assert (a.starts, b.starts) == (3, 2)
    finally:
        a.close()
        b.close()


def test_a_builder_that_cannot_be_imported_by_name_runs_here(parity_session):
    def local_builder(context):  # defined inside a function: a worker cannot import it
        return build_ort_cpu(context)

    op.register_variant("local-test", local_builder)
    torch.manual_seed(0)
    before = parity_session.counts["workers"]
    result = op.check(
        Mlp().eval(),
        inputs=[op.Input("x", ("batch", 16))],
        dims={"batch": op.Dim(1, 4)},
        variants=["local-test"],
        examples=2,
        session=parity_session,
    )
    assert result["local-test"].passed
    assert parity_session.counts["workers"] == before
