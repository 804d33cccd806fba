"""The tool's own faults a survey of real models found (issue 28), each with a test that failed
before its fix: Gaussian-process regression crashed in onnxparity; the export cache's code
identity crashed on a model module doing ``from torch import ops``; a failed TorchScript export
printed the whole graph; forensics paired the wrong call of a module called several times; an
output named like an input made an invalid file."""

from __future__ import annotations

import importlib
import json
import sys
import textwrap
import warnings

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

import onnxparity as op

torch = pytest.importorskip("torch")


# -- Gaussian-process regression ---------------------------------------------------------------


@pytest.fixture(scope="module")
def diabetes():
    pytest.importorskip("skl2onnx")
    from sklearn.datasets import load_diabetes

    X, y = load_diabetes(return_X_y=True)
    X = X[:150, :4]
    return (X - X.mean(0)) / X.std(0), y[:150]  # standardized: the kernels' length scales fit near 1


def gp_models():
    from sklearn.gaussian_process import GaussianProcessRegressor
    from sklearn.gaussian_process.kernels import RBF, WhiteKernel
    from sklearn.gaussian_process.kernels import ConstantKernel as C

    return {
        "default": GaussianProcessRegressor(),
        "rbf-white": GaussianProcessRegressor(C() * RBF(0.1) + WhiteKernel(), normalize_y=True),
    }


@pytest.mark.parametrize("kind", ["default", "rbf-white"])
def test_a_gaussian_process_regressor_passes_at_defaults(diabetes, kind, tmp_path):
    """Every GaussianProcessRegressor crashed: a kernel has get_params but no scikit-learn tags
    (is_classifier raised, blamed on skl2onnx), and the ONNX output ``GPmean`` matched no method."""
    X, y = diabetes
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the kernel's hyperparameters at their bounds
        model = gp_models()[kind].fit(X, y)
    with warnings.catch_warnings():
        warnings.simplefilter("error", op.WeakCheck)  # a pass that could have failed
        result = op.check(model, data=X, examples=20, reproducer_dir=tmp_path)
    assert result.passed, result["ort-cpu"].message
    assert [o.name for o in result["ort-cpu"].outputs] == ["GPmean"]


def test_a_gaussian_process_file_with_its_std_checks_both_outputs(diabetes, tmp_path):
    """skl2onnx's ``return_std`` option adds ``GPcovstd``: it is checked against
    ``predict(X, return_std=True)``."""
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import DoubleTensorType
    from sklearn.gaussian_process import GaussianProcessRegressor
    from sklearn.gaussian_process.kernels import RBF, WhiteKernel
    from sklearn.gaussian_process.kernels import ConstantKernel as C

    X, y = diabetes
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # skl2onnx's return_std does not take normalize_y: scaled here
        model = GaussianProcessRegressor(C() * RBF(1.0) + WhiteKernel()).fit(X, (y - y.mean()) / y.std())
    proto = convert_sklearn(
        model, initial_types=[("X", DoubleTensorType([None, 4]))], options={id(model): {"return_std": True}}
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error", op.WeakCheck)
        result = op.check(model, onnx=proto, data=X, examples=10, reproducer_dir=tmp_path)
    assert result.passed, result["ort-cpu"].message
    assert [o.name for o in result["ort-cpu"].outputs] == ["GPmean", "GPcovstd"]


# -- the code identity of modules without a real file ------------------------------------------


@pytest.fixture
def project(tmp_path, monkeypatch):
    """Write user modules into a folder on sys.path; import them by name."""
    monkeypatch.syspath_prepend(str(tmp_path))
    written: list[str] = []

    def write(name: str, text: str):
        (tmp_path / f"{name}.py").write_text(textwrap.dedent(text))
        written.append(name)
        sys.modules.pop(name, None)
        importlib.invalidate_caches()
        return importlib.import_module(name)

    yield write
    for module in written:
        sys.modules.pop(module, None)


OPS_MODEL = """
    import torch
    from torch import ops

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            torch.manual_seed(0)
            self.fc = torch.nn.Linear(4, 3)

        def forward(self, x):
            return ops.aten.relu(self.fc(x))
"""


def test_a_model_module_doing_from_torch_import_ops_is_keyed_by_torchs_version(
    project, tmp_path, monkeypatch
):
    """``torch.ops`` is a module whose ``__file__`` is ``"_ops.py"`` (its namespaces say
    ``"torch.ops"``): resolved against the working directory it was no library (the export never
    reused) and, with that directory gone, FileNotFoundError. It is torch's: keyed by torch's
    version, whatever the working directory."""
    from onnxparity.exporters import resolve

    models = project("ops_models", OPS_MODEL)
    gone = tmp_path / "gone"
    gone.mkdir()
    monkeypatch.chdir(gone)
    gone.rmdir()  # a working directory that no longer exists
    subject = resolve(models.Net().eval())
    assert subject.identity.why is None
    assert resolve(models.Net().eval()).identity.digest == subject.identity.digest
    monkeypatch.undo()
    result = op.check(
        models.Net().eval(),
        inputs=[op.Input("x", ("batch", 4))],
        dims={"batch": op.Dim(1, 4)},
        examples=4,
        reproducer_dir=tmp_path,
    )
    assert result.passed, result["ort-cpu"].message


def test_a_user_module_without_a_readable_file_is_not_reused_and_says_why(project):
    """A module the model's code reaches with no file to read (made at run time, or a relative
    ``__file__``) is not library code: the export is never reused, and the reason names it."""
    import types

    from onnxparity.exporters import resolve

    made = types.ModuleType("made_at_run_time")
    made.__file__ = "made_at_run_time.py"  # relative: no real file
    made.SCALE = 2.0
    sys.modules["made_at_run_time"] = made
    try:
        models = project(
            "made_models",
            """
            import torch
            import made_at_run_time

            class Net(torch.nn.Module):
                def __init__(self):
                    super().__init__()
                    self.fc = torch.nn.Linear(4, 3)

                def forward(self, x):
                    return self.fc(x) * made_at_run_time.SCALE
            """,
        )
        why = resolve(models.Net().eval()).identity.why
    finally:
        sys.modules.pop("made_at_run_time", None)
    assert why is not None and "made_at_run_time has no readable source file" in why, why
    assert "'made_at_run_time.py'" in why


# -- third-party output kept out of failures ---------------------------------------------------


class DataDependent(torch.nn.Module):
    """The dynamo exporter refuses the branch on a value; the TorchScript exporter bakes the
    branch it traced, so the export fails parity on inputs that take the other one."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.fc = torch.nn.Linear(8, 8)

    def forward(self, x):
        y = self.fc(x)
        if y.sum() > 0:
            return y * 2
        return y * 3


class Unexportable(DataDependent):
    """Neither exporter can: the TorchScript one fails after tracing, and prints the graph."""

    def forward(self, x):
        return super().forward(x) + torch.special.i0e(x) * 0


BRANCH = dict(inputs=[op.Input("x", ("batch", 8), low=-1, high=1)], dims={"batch": op.Dim(1, 4)}, examples=20)


def _onnx_log(enabled: bool | None = None) -> bool:
    if enabled is not None:
        torch._C._jit_set_onnx_log_enabled(enabled)
    return bool(torch._C._jit_is_onnx_log_enabled())


def test_a_failed_torchscript_export_prints_nothing_and_keeps_its_message_short(capfd, tmp_path):
    """The TorchScript exporter prints its whole graph to std::cout when it fails (200 KB for
    a detection model), past Python's redirects, into the terminal and pytest's captured output."""
    capfd.readouterr()
    with pytest.raises(op.ExportError) as raised:
        op.check(Unexportable().eval(), **BRANCH, reproducer_dir=tmp_path)
    out, err = capfd.readouterr()
    assert "Torch IR graph" not in out + err and "graph(" not in out + err, (out + err)[:2000]
    message = str(raised.value)
    assert len(message) < 2000 and "Torch IR graph" not in message and "DEBUG" not in message
    assert "TorchScript exporter: UnsupportedOperatorError" in message
    assert "lines while exporting: left out here" in message
    assert "Torch IR graph at exception" in raised.value.printed  # kept, not shown


def test_a_torchscript_fallback_that_fails_parity_says_so_briefly_and_leaves_torch_as_it_was(capfd, tmp_path):
    """A TorchScript-fallback model failing parity: the message is short and has none of torch's
    debug output; nothing reaches the terminal; and torch's ONNX log, which its TorchScript
    exporter turns on for the rest of the process, is off again."""
    _onnx_log(False)
    capfd.readouterr()
    result = op.check(DataDependent().eval(), **BRANCH, reproducer_dir=tmp_path)
    out, err = capfd.readouterr()
    assert result.exporter == "torch.onnx TorchScript exporter"
    checked = result["ort-cpu"]
    assert checked.status == "failed"
    assert len(checked.message) < 4000
    assert not any(word in checked.message for word in ("torch.__trace", "DEBUG", "Torch IR graph", "graph("))
    assert "torch.__trace" not in out + err and "DEBUG" not in out + err
    assert _onnx_log() is False


# -- forensics of a module called several times ------------------------------------------------


class Head(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(8, 8, 3, padding=1)
        self.act = torch.nn.ReLU6()
        self.out = torch.nn.Conv2d(8, 4, 1)

    def forward(self, x):
        return self.out(self.act(self.conv(x) * 4))


class SharedHead(torch.nn.Module):
    """A detection head shared across two feature levels."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = torch.nn.Conv2d(3, 8, 3, padding=1)
        self.down = torch.nn.Conv2d(8, 8, 3, padding=1, stride=2)
        self.head = Head()

    def forward(self, x):
        a = self.stem(x)
        levels = (a, self.down(a))
        outs = []
        for level in levels:
            outs.append(self.head(level).flatten(2))
        return torch.cat(outs, dim=2)


HEAD = op.ParitySpec(
    inputs=(op.Input("x", ("batch", 3, 8, 8), low=-1, high=1),), dims={"batch": op.Dim(1, 3)}
)


def _torchscript_file(model, path) -> str:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model,
            (torch.zeros(2, 3, 8, 8),),
            path,
            dynamo=False,
            input_names=["x"],
            output_names=["output"],
            dynamic_axes={"x": {0: "batch"}},
        )
    return path


def _clip_the_second_call(proto) -> str:
    """The second call's clamp moved from 6 to 0.5; the first call's stays."""
    second = [n for n in proto.graph.node if n.op_type == "Clip"][1]
    proto.graph.initializer.append(numpy_helper.from_array(np.array(0.5, np.float32), "planted_max"))
    second.input[2] = "planted_max"
    return second.name


@pytest.mark.parametrize("exporter", ["torchscript", "dynamo"])
def test_forensics_names_the_second_call_of_a_shared_head(parity_session, exporter, tmp_path):
    """The TorchScript exporter names the k-th call's nodes ``head/act_k``: each module's
    output was paired with its first call's nodes (the last call's value against them), and the
    first call's Conv was blamed for a shape it never had."""
    torch.manual_seed(0)
    model = SharedHead().eval()
    if exporter == "torchscript":
        proto = onnx.load(_torchscript_file(model, str(tmp_path / "head.onnx")))
    else:
        proto = onnx.load(parity_session.prepare(model, HEAD).exported.path)
    edited = _clip_the_second_call(proto)
    first = [n.name for n in proto.graph.node if n.op_type == "Clip"][0]
    result = op.check(
        model,
        onnx=proto,
        inputs=HEAD.inputs,
        dims=HEAD.dims,
        examples=6,
        session=parity_session,
        name=f"shared head {exporter}",
    )["ort-cpu"]
    assert result.status == "failed"
    found = result.divergence
    assert found is not None, result.message
    assert found.node == edited or edited in found.nodes, result.message
    assert first not in found.nodes and found.input_max_abs_error < 1e-5
    if exporter == "torchscript":
        assert found.node == edited and found.source == "head.act_1"


# -- an output named like an input -------------------------------------------------------------


class SampleToSample(torch.nn.Module):
    """A diffusers UNet's shape: ``forward(sample) -> {"sample": ...}``."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.conv = torch.nn.Conv2d(4, 4, 3, padding=1)

    def forward(self, sample):
        return {"sample": self.conv(sample)}


def test_an_output_named_like_its_input_exports_checks_and_passes(tmp_path):
    """The export named the output like the input: an invalid file ("Duplicate definition of
    name (sample)"). It is renamed in the file, and the report says both names."""
    from onnxparity.planning import plan_items
    from onnxparity.report import document

    result = op.check(
        SampleToSample().eval(),
        inputs=[op.Input("sample", ("batch", 4, 8, 8))],
        dims={"batch": op.Dim(1, 3)},
        examples=6,
        reproducer_dir=tmp_path,
    )
    checked = result["ort-cpu"]
    assert checked.passed, checked.message
    assert [o.name for o in checked.outputs] == ["sample_output"]
    assert "output 'sample' is named 'sample_output' in the ONNX file" in " ".join(result.notes)
    (planned,) = plan_items(("ort-cpu",))
    entry = document.entry("t.py::t[ort-cpu]", "t.py::t", planned, "passed", checked.to_dict(), result)
    written = json.loads(document.dumps(document.build([entry], planned=1)))
    (item,) = written["items"]
    assert [o["name"] for o in item["result"]["outputs"]] == ["sample_output"]
    assert any("output 'sample'" in note for note in item["model"]["notes"])


def test_output_names_apart_from_the_inputs():
    from onnxparity.exporters.base import outputs_apart

    names, renamed, notes = outputs_apart(["sample", "sample_output", "y"], ["sample", "x"])
    assert names == ["sample_output_2", "sample_output", "y"]
    assert renamed == {"sample_output_2": "sample"} and len(notes) == 1
    assert outputs_apart(["y"], ["x"]) == (["y"], {}, [])


def test_a_declared_output_named_like_an_input_finds_its_renamed_output(tmp_path):
    """op.Output('sample') of a model whose output the export renamed ('sample_output', as an
    input is named 'sample'): the declaration follows the rename."""
    torch.manual_seed(0)
    result = op.check(
        SampleToSample().eval(),
        inputs=[op.Input("sample", ("batch", 4, 8, 8))],
        dims={"batch": op.Dim(1, 2)},
        outputs=[op.Output("sample", unordered=True, axis=1)],
        examples=4,
        reproducer_dir=tmp_path,
    )
    assert result.passed, result["ort-cpu"].message
