"""Variants in worker processes: a native crash while a variant runs or builds fails only the
item that hit it, names the signal, the variant and the input, and the session goes on.

The crashes are real (reading address 0: SIGSEGV). The inner sessions run in a subprocess, so
that if isolation ever breaks, the crash takes down that session and not this one."""

from __future__ import annotations

import io
import json
import os
import pickle
import struct
import sys

import ml_dtypes
import numpy as np
import pytest
import torch
from onnx import TensorProto, helper

import onnxparity as op
from onnxparity.config import ParityConfig
from onnxparity.forensics import Divergence
from onnxparity.forensics.subgraph import Subgraph
from onnxparity.runner import ParitySession
from onnxparity.spec.policy import DEFAULT_TOLERANCE
from onnxparity.variants import BuildContext, VariantRunError, frames
from onnxparity.variants import worker as worker_module
from onnxparity.variants.ort import build_ort_cpu
from onnxparity.variants.worker import FrameError, IsolatedVariant, VariantRunCrashed
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


def test_a_builder_that_cannot_be_imported_by_name_runs_in_a_fork_of_the_test_process(parity_session):
    def local_builder(context):  # defined inside a function: no worker can import it by name
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
    assert parity_session.counts["workers"] == before + 1


CLOSURE_CONFTEST = """
import ctypes

import numpy as np
import torch

import onnxparity as op
from onnxparity.variants.ort import OrtRunnable

torch.set_num_threads(2)  # the test process's thread pools run before any worker is forked
WEIGHTS = torch.randn(256, 256)
assert (WEIGHTS @ WEIGHTS).shape == (256, 256)


def pytest_configure(config):
    largest = 2  # the closure's own state: a batch above it crashes

    class Crashy:
        def __init__(self, context):
            self.inner = OrtRunnable(context.model_path, ["CPUExecutionProvider"])
            self.output_names = self.inner.output_names

        def run(self, feeds):
            x = feeds["x"]
            if x.shape[0] > largest:
                ctypes.string_at(0)
            product = WEIGHTS @ WEIGHTS  # on PyTorch's pool: a fork that kept 2 threads hung here (measured)
            assert torch.allclose(product @ torch.eye(256), product, atol=1e-3)
            return self.inner.run(feeds)

    def build(context):  # a closure: no worker can import it by name
        return Crashy(context)

    op.register_variant("crashy", build, crash_hint="run crashy on batches of at most 2")
"""


def test_a_closure_variant_that_crashes_while_running_fails_only_its_item(pytester):
    """A builder defined inside a conftest function is forked from the test process (which ran
    PyTorch on 2 threads): a SIGSEGV in its run() fails that item, the session goes on, the
    report has every item."""
    later = "import numpy as np\n\ndef test_later():\n    assert np.ones(2).sum() == 2\n"
    pytester.makepyfile(conftest=CLOSURE_CONFTEST, test_crash=TESTS, test_later=later)
    report = pytester.path / "report.json"
    result = pytester.runpytest_subprocess(
        "--onnx-parity", f"--onnx-parity-report={report}", "-p", "no:cacheprovider", timeout=300
    )
    result.assert_outcomes(passed=3, failed=1)
    result.stdout.fnmatch_lines(
        [
            "crashy crashed on an input the spec declares valid (model from prebuilt ONNX, opset 17):",
            "*the native runtime crashed with SIGSEGV while running crashy on one input; crashy ran in a "
            "worker process of its own, so only this item fails and the session goes on",
            "  where the worker was (innermost first):",
            '*File "*conftest.py", line 25 in run',
            "*hint: run crashy on batches of at most 2",
            "input (not shrunk: each try would crash again): dims batch=4; *",
        ]
    )
    document = json.loads(report.read_text())
    items = {i["nodeid"]: i["status"] for i in document["items"]}
    assert items == {"test_crash.py::test_a[crashy]": "failed", "test_crash.py::test_a[ort-cpu]": "passed"}
    assert document["items_planned"] == document["items_reported"] == 2 and not document["interrupted"]


XDIST_TESTS = """
import ctypes

import numpy as np
import pytest
from onnx import TensorProto, helper

import onnxparity as op


def relu():
    graph = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["y"])], "relu",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 4])],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def segfaulting_reference(x):
    if x.shape[0] >= 3:
        ctypes.string_at(0)  # the framework side: it runs in the test process by design
    return np.maximum(x, 0)


SPEC = dict(inputs=[op.Input("x", ("batch", 4))], dims={"batch": op.Dim(1, 4)}, examples=5, variants=["ort-cpu"])


@pytest.mark.onnx_parity(**SPEC)
def test_a_first(onnx_parity):
    onnx_parity.check(onnx=relu(), reference=lambda x: np.maximum(x, 0))


@pytest.mark.onnx_parity(**SPEC)
def test_b_crash(onnx_parity):
    onnx_parity.check(onnx=relu(), reference=segfaulting_reference)


@pytest.mark.onnx_parity(**SPEC)
@pytest.mark.parametrize("scale", [1, 2, 3])
def test_c_later(onnx_parity, scale):
    onnx_parity.check(onnx=relu(), reference=lambda x: np.maximum(x, 0))
"""


@pytest.mark.slow
def test_a_reference_that_segfaults_under_xdist_is_an_error_item_and_the_run_goes_on(pytester):
    """The reference runs in the test process: under ``-n 2`` the crash takes one xdist worker,
    which xdist replaces; the report lists every planned item, the crashed one as an error."""
    pytester.makepyfile(test_ref=XDIST_TESTS)
    report = pytester.path / "report.json"
    result = pytester.runpytest_subprocess(
        "--onnx-parity", f"--onnx-parity-report={report}", "-p", "no:cacheprovider", "-n", "2"
    )
    result.assert_outcomes(passed=4, failed=1)
    result.stdout.fnmatch_lines(
        ["*worker 'gw*' crashed while running 'test_ref.py::test_b_crash[[]ort-cpu[]]'*"]
    )
    document = json.loads(report.read_text())
    items = {i["nodeid"]: i for i in document["items"]}
    assert {n: i["status"] for n, i in items.items()} == {
        "test_ref.py::test_a_first[ort-cpu]": "passed",
        "test_ref.py::test_b_crash[ort-cpu]": "error",
        **{f"test_ref.py::test_c_later[ort-cpu-{s}]": "passed" for s in (1, 2, 3)},
    }
    message = items["test_ref.py::test_b_crash[ort-cpu]"]["result"]["message"]
    assert (
        message.startswith("worker 'gw")
        and "crashed while running 'test_ref.py::test_b_crash[ort-cpu]'" in message
    )
    assert document["items_planned"] == document["items_reported"] == 5 and not document["interrupted"]


# -- frames: nothing crosses as a pickle -------------------------------------------------------
class Planted:
    """Unpickling this makes the directory ``path``: the proof that a payload was executed."""

    def __init__(self, path) -> None:
        self.path = str(path)

    def __reduce__(self):
        return os.mkdir, (self.path,)


def frame(header: dict, *blobs: bytes) -> bytes:
    body = json.dumps({**header, "b": [len(b) for b in blobs]}).encode()
    return struct.pack("<4sQ", b"OPF1", len(body)) + body + b"".join(blobs)


def test_a_pickle_or_an_object_array_in_a_frame_is_refused_not_executed(tmp_path):
    control = tmp_path / "control"
    pickle.loads(pickle.dumps(Planted(control)))
    assert control.is_dir()  # the payload is live: unpickled, it runs
    marker = tmp_path / "marker"
    with pytest.raises(FrameError, match=r"not an onnxparity frame \(it starts b'\\x80"):
        frames.receive(io.BytesIO(pickle.dumps({"kind": "run", "feeds": Planted(marker)})))
    hostile = np.empty(1, dtype=object)
    hostile[0] = Planted(marker)
    npy = io.BytesIO()
    np.save(npy, hostile, allow_pickle=True)
    for array, refused in (
        ({"$": "array", "i": 0, "dtype": "|O", "shape": [1]}, "an array of dtype '|O'"),  # pickle bytes
        (
            {"$": "array", "i": 0, "dtype": "<f4", "shape": [1]},
            r"an array of shape \(1,\) and dtype float32 in",
        ),
    ):
        with pytest.raises(FrameError, match=refused):
            frames.receive(
                io.BytesIO(frame({"m": {"kind": "run", "feeds": {"x": array}}}, npy.getvalue()))
            )
    finfo = {"$": "array", "i": 0, "dtype": "ml_dtypes:finfo", "shape": [1]}  # a class, not a dtype
    with pytest.raises(FrameError, match="not one of ml_dtypes' numeric types"):
        frames.receive(io.BytesIO(frame({"m": {"kind": "run", "feeds": {"x": finfo}}}, b"\0" * 8)))
    with pytest.raises(FrameError, match="an object tagged 'pickle'"):
        frames.receive(
            io.BytesIO(frame({"m": {"kind": "ok", "value": {"$": "pickle", "i": 0}}}, b""))
        )
    assert not marker.exists()


def test_a_worker_refuses_a_pickled_request_and_the_item_says_so(tmp_path):
    marker = tmp_path / "marker"
    variant = IsolatedVariant(
        build_ort_cpu, BuildContext(model_path=relu_file(tmp_path), workdir=str(tmp_path), name="relu-test")
    )
    feeds = {"x": np.array([[-1.0, 0.5, 2.0, -3.0]], np.float32)}
    try:
        np.testing.assert_array_equal(variant.run(feeds)[0], np.maximum(feeds["x"], 0))
        to_worker = variant._holder["connection"].to_worker  # as a confused or hostile parent would
        to_worker.write(pickle.dumps({"kind": "run", "feeds": Planted(marker)}))
        to_worker.flush()
        with pytest.raises(VariantRunCrashed) as refused:
            variant.run(feeds)
        assert str(refused.value).startswith(
            "relu-test's worker process ended (exit status 3) while running relu-test on one input: "
            "onnxparity worker: refused a request: not an onnxparity frame (it starts b'\\x80"
        )
        assert not marker.exists()
        np.testing.assert_array_equal(variant.run(feeds)[0], np.maximum(feeds["x"], 0))  # started again
    finally:
        variant.close()


def test_the_parent_refuses_a_pickled_reply_and_stops_the_worker(tmp_path):
    marker = tmp_path / "marker"

    class Hostile:
        """Writes a pickle to the reply pipe it finds in its caller, as a compromised worker could."""

        def __init__(self, context):
            self.output_names = ("y",)

        def run(self, feeds):
            frame = sys._getframe(1)
            while "replies" not in frame.f_locals:
                frame = frame.f_back
            frame.f_locals["replies"].write(pickle.dumps([Planted(marker)]))
            return [feeds["x"]]

    variant = IsolatedVariant(
        Hostile, BuildContext(model_path=relu_file(tmp_path), workdir=str(tmp_path), name="hostile")
    )
    try:
        with pytest.raises(VariantRunError) as refused:
            variant.run({"x": np.zeros((1, 4), np.float32)})
        assert str(refused.value).startswith(
            "hostile's worker process sent a reply onnxparity refuses while running hostile on one input "
            "(not an onnxparity frame (it starts b'\\x80"
        )
        assert str(refused.value).endswith("nothing in it was decoded and the worker was stopped")
        assert not marker.exists() and "connection" not in variant._holder
    finally:
        variant.close()


def crossed(value):
    """``value`` after a frame's round trip."""
    stream = io.BytesIO()
    frames.send(stream, {"value": value})
    stream.seek(0)
    return frames.receive(stream)["value"]


def test_what_crosses_between_processes_comes_back_as_it_was():
    zipmap = np.empty(2, dtype=object)
    zipmap[0], zipmap[1] = {0: 0.25, 1: 0.75}, {0: 1.0, 1: 0.0}
    arrays = [
        np.float32(1.5) * np.ones((2, 3), np.float32),
        np.array(2.5, np.float64),  # 0-d
        np.zeros((0, 4), np.int64),
        np.array([True, False]),
        np.array([1 + 2j], np.complex64),
        np.array([1.0, np.inf, np.nan], np.float16),
        np.array(["a", "bc"]),
        np.array(["a", "bc"], dtype=object),  # sklearn's string inputs
        zipmap,  # ONNX Runtime's ZipMap output: a list of {class: probability} per row
        np.arange(12, dtype=np.int32).reshape(3, 4)[:, 1],  # not contiguous
        np.array([1.5, -2.0], ml_dtypes.bfloat16),  # ml_dtypes' narrow kinds (their dtype.str is "<V2")
        np.array([3, -8], ml_dtypes.int4),
        np.array([0.5, -57344.0], ml_dtypes.float8_e5m2),  # kind "f", str "<f1": numpy cannot read that back
        np.array([0.5, 448.0], ml_dtypes.float8_e4m3fn),
    ]
    for array in arrays:
        back = crossed(array)
        assert back.dtype == array.dtype and back.shape == array.shape, (array, back)
        assert np.asarray(back == array).all() or np.isnan(array.astype(float)).any(), (array, back)
    assert crossed(arrays[6].astype(object))[0].__class__ is str
    divergence = Divergence("n", "Add", "t", float("inf"), 0.5, 2, "fc1", "module", ("a", "n"), "overflow")
    assert crossed([divergence, "line"]) == [divergence, "line"]
    assert crossed(DEFAULT_TOLERANCE) is DEFAULT_TOLERANCE  # the dtype's precision still applies there
    assert crossed(op.Tolerance(1e-3, 0.0, 0.5)) == op.Tolerance(1e-3, 0.0, 0.5)
    assert crossed(op.Agreement(cosine=0.99, tolerance=op.Tolerance(0.1))) == op.Agreement(
        cosine=0.99, tolerance=op.Tolerance(0.1)
    )
    model = helper.make_model(
        helper.make_graph(
            [helper.make_node("Relu", ["x"], ["y"], name="r")],
            "cut",
            [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])],
            [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])],
        )
    )
    x, y = np.array([-1.0, 2.0], np.float32), np.array([0.0, 2.0], np.float32)
    cut = crossed(Subgraph(model, {"x": x}, {"y": y}, {"y": y + 1}, ("r",), "ONNX Runtime's"))
    assert cut.model == model and cut.nodes == ("r",) and cut.inputs_by == "ONNX Runtime's"
    assert (
        (cut.inputs["x"] == x).all() and (cut.expected["y"] == y).all() and (cut.actual["y"] == y + 1).all()
    )
    mixed = {"ids": (1, 2), 3: [b"raw"], "$": None, "s": np.float32(0.5)}
    back = crossed(mixed)
    assert back == mixed and type(back["s"]) is np.float32


def test_an_option_that_cannot_cross_to_the_worker_names_itself(parity_session):
    op.register_variant("options-test", segfaulting_builder)
    torch.manual_seed(0)
    result = op.check(
        Mlp().eval(),
        inputs=[op.Input("x", ("batch", 16))],
        dims={"batch": op.Dim(1, 4)},
        variants=["options-test"],
        variant_options={"options-test": {"on_done": print}},
        examples=2,
        session=parity_session,
    )
    assert result["options-test"].status == "error"
    assert result["options-test"].message == (
        "options-test could not be built: variant_options['options-test']['on_done']=<built-in function print>: "
        "a builtins.builtin_function_or_method cannot be sent between processes, and a variant's options are "
        "sent to its worker process as JSON and numpy arrays; give numbers, strings, lists, dicts or arrays, "
        "or build it in the test process with variant_options={'options-test': {'isolate': False}}"
    )


def test_the_fork_server_is_closed_when_python_exits(tmp_path):
    """Before: a check with a worker left the zygote's socket and process open at exit (Python,
    in development mode, warned of both: 'unclosed socket', 'subprocess ... is still running')."""
    import subprocess

    script = tmp_path / "check.py"
    script.write_text(
        "import numpy as np, onnxparity as op\n"
        "from onnx import TensorProto, helper\n"
        "g = helper.make_graph([helper.make_node('Relu', ['x'], ['y'])], 'g',\n"
        "    [helper.make_tensor_value_info('x', TensorProto.FLOAT, ['n', 3])],\n"
        "    [helper.make_tensor_value_info('y', TensorProto.FLOAT, ['n', 3])])\n"
        "m = helper.make_model(g, opset_imports=[helper.make_opsetid('', 17)])\n"
        f"r = op.check(onnx=m, reference=lambda x: np.maximum(x, 0), variants=['fp16'], examples=3, reproducer_dir={str(tmp_path)!r})\n"
        "assert r['fp16'].status == 'passed', r['fp16'].message\n"
    )
    done = subprocess.run([sys.executable, "-X", "dev", str(script)], capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "ResourceWarning" not in done.stderr and "still running" not in done.stderr, done.stderr[-2000:]
