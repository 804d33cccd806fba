"""Docs that cannot rot (issue 33): what README.md and docs/ show is checked against the code.

- every ``python`` block parses, every ``op.<name>`` it uses exists, and every keyword it passes
  to ``op.check``, an ``op.*`` declaration, the ``onnx_parity`` marker or the fixture's
  ``check`` is one they take;
- every ``pytest`` command's ``--onnx-parity*`` flags exist, and every ``onnxparity`` command
  parses with the command's own parser;
- the README's failure output is the example's (``examples/test_failures.py``), as a fresh run
  prints it; the site's outputs are written by the build from such runs
  (``scripts/docs_hooks.py``), and ``mkdocs build --strict`` runs in CI (scripts/build-docs.sh).
"""

from __future__ import annotations

import ast
import glob
import inspect
import os
import re
import shlex
import subprocess
import sys

import pytest

import onnxparity as op

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PAGES = sorted([os.path.join(ROOT, "README.md"), *glob.glob(os.path.join(ROOT, "docs", "**", "*.md"), recursive=True)])
_BLOCK = re.compile(r"^```(\w*)\n(.*?)^```", re.MULTILINE | re.DOTALL)


def _blocks(language: str) -> list[tuple[str, str]]:
    found = []
    for page in PAGES:
        if page.endswith("benchmarks-history.md"):  # a dated record: its commands are as they were run then
            continue
        text = open(page, encoding="utf-8").read()
        found += [(os.path.relpath(page, ROOT), m.group(2)) for m in _BLOCK.finditer(text) if m.group(1) == language]
    return found


def _accepts(target) -> set[str] | None:
    """The keyword names a callable or a dataclass takes (None: it takes any)."""
    try:
        parameters = inspect.signature(target).parameters.values()
    except (TypeError, ValueError):
        return None
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters):
        return None
    return {p.name for p in parameters}


def test_the_pages_hold_code_to_check():
    assert len(_blocks("python")) >= 10 and len(_blocks("bash")) >= 10


@pytest.mark.parametrize(("page", "code"), _blocks("python"), ids=lambda v: v if v.endswith(".md") else "")
def test_python_blocks_use_only_what_the_api_has(page, code):
    from onnxparity.plugin import MARKER_ARGS, ParityFixture

    try:  # a block that does not parse is wrong as shown; a marker shown alone decorates a test
        tree = ast.parse(code)
    except SyntaxError:
        tree = ast.parse(code + "\ndef test_shown(onnx_parity): ...\n")
    marker = set(MARKER_ARGS)
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "op":
            assert hasattr(op, node.attr), f"{page}: op.{node.attr} does not exist"
        if not isinstance(node, ast.Call):
            continue
        given = {k.arg for k in node.keywords if k.arg}
        function = node.func
        if isinstance(function, ast.Attribute) and isinstance(function.value, ast.Name) and function.value.id == "op":
            accepted = _accepts(getattr(op, function.attr, None))
            if accepted is not None:
                assert given <= accepted, f"{page}: op.{function.attr}() takes no {sorted(given - accepted)}"
        elif isinstance(function, ast.Attribute) and function.attr == "onnx_parity":  # the marker
            assert given <= marker, f"{page}: the onnx_parity marker takes no {sorted(given - marker)}"
        elif isinstance(function, ast.Attribute) and function.attr == "check" and getattr(
            function.value, "id", ""
        ) == "onnx_parity":  # the fixture
            accepted = (_accepts(ParityFixture.check) or set()) | marker
            assert given <= accepted, f"{page}: onnx_parity.check() takes no {sorted(given - accepted)}"


def _commands(program: str) -> list[tuple[str, list[str]]]:
    """Each ``program ...`` command line of the bash blocks, as words (comments, pipes and
    redirections cut off; ``\\`` continuations joined)."""
    found = []
    for page, code in _blocks("bash"):
        for line in code.replace("\\\n", " ").splitlines():
            line = line.split(" #", 1)[0].strip()
            line = re.split(r"\s(?:\||&&|>|2>|;)\s", line)[0]
            words = shlex.split(line, comments=True) if line else []
            if words and os.path.basename(words[0]) == program:
                found.append((page, words[1:]))
            elif words[:3] == [".venv/bin/python", "-m", program] or words[:3] == ["python", "-m", program]:
                found.append((page, words[3:]))
    return found


@pytest.mark.parametrize(("page", "words"), _commands("pytest"), ids=lambda v: v if isinstance(v, str) else "")
def test_pytest_commands_use_flags_the_plugin_has(page, words):
    from onnxparity.config import SETTINGS

    known = {s.flag for s in SETTINGS}
    for word in words:
        flag = word.split("=", 1)[0]
        if flag.startswith("--onnx-parity"):
            assert flag in known, f"{page}: pytest has no {flag} (known: {', '.join(sorted(known))})"


@pytest.mark.parametrize(("page", "words"), _commands("onnxparity"), ids=lambda v: v if isinstance(v, str) else "")
def test_onnxparity_commands_parse(page, words):
    from onnxparity.cli import _parser

    try:
        _parser().parse_args(words)
    except SystemExit as exc:  # argparse's usage error
        pytest.fail(f"{page}: `onnxparity {' '.join(words)}` does not parse (exit {exc.code})")


def test_the_readmes_failure_output_is_the_examples(tmp_path):
    """The README's one pasted failure is examples/test_failures.py::test_baked_batch_size's own
    output, as a fresh run prints it (reproducer paths relative to the checkout)."""
    readme = open(os.path.join(ROOT, "README.md"), encoding="utf-8").read()
    section = readme.split("## What a failure looks like", 1)[1]
    shown = _BLOCK.search(section).group(2).strip().splitlines()
    report = tmp_path / "examples.json"
    subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--onnx-parity", "--runxfail",
         f"--onnx-parity-report={report}", "examples/test_failures.py::test_baked_batch_size"],
        cwd=ROOT, capture_output=True, check=False, timeout=600,
    )
    import json

    (item,) = json.loads(report.read_text())["items"]
    printed = item["result"]["message"].replace(ROOT + os.sep, "").strip().splitlines()
    assert shown == printed


# -- the blocks that are tests or programs run ------------------------------------------------
#: what a block leaves to the reader (the model it checks), defined before it runs
ENCODER = '''
import torch


class MyEncoder(torch.nn.Module):
    """A small stand-in for the reader's encoder: (batch, seq, 16) -> (batch, seq, 16)."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.proj, self.norm, self.out = torch.nn.Linear(16, 32), torch.nn.LayerNorm(32), torch.nn.Linear(32, 16)

    def forward(self, x):
        return self.out(torch.nn.functional.gelu(self.norm(self.proj(x))))
'''
AFFINE = '''
import numpy as np


class NumpyAffine:
    def __init__(self, weight, bias):
        self.weight, self.bias = weight, bias

    def __call__(self, x):
        return x @ self.weight + self.bias


w, b = np.random.default_rng(0).normal(size=(4, 3)).astype(np.float32), np.zeros(3, np.float32)
'''

#: a block is recognised by a line of it: (how it runs, what it needs defined first)
RUN = {
    "def test_encoder(onnx_parity):": ("pytest", ENCODER),
    'op.register_rewrite("shape-inferred", shape_inferred, replace=True)': ("python", ""),
    'op.register_variant("my-offline", build_offline_optimized, replace=True)': ("python", ""),
    "def build_openvino(context):": ("python", ""),
    "op.register_exporter(NumpyAffineExporter())": ("python", AFFINE),
}
#: blocks that are fragments of a test or of a reproducer's session, shown to be read, not run
#: as they stand (their names and arguments are still checked above)
FRAGMENTS = (
    "@pytest.mark.onnx_parity(\n    inputs=[op.Input(\"image\"",  # a marker alone (budgets)
    "@pytest.mark.onnx_parity(\n    inputs=[op.Input(\"images\"",  # a marker alone (detection outputs)
    "@pytest.mark.onnx_parity(..., variants=",  # the marker's variants, elided
    'names = json.load(open("names.json"',  # a reproducer folder's lines
    'op.Input("input_ids"',  # three declarations of a list
    "result = op.check(model, inputs=[...]",  # the result's fields, one per line
    'tolerance={"ort-*"',  # one argument
    '"my-variant",  # the name used',  # register_variant's arguments, annotated
    "run_isolated(",  # a call into the reader's own module
)


def _kind(code: str) -> str:
    ran = [how for line, how in RUN.items() if line in code]
    if ran:
        return "run"
    return "fragment" if any(f in code for f in FRAGMENTS) else "unknown"


def test_every_python_block_is_run_or_named_a_fragment():
    """A new test or program shown in the docs must run below (or be named a fragment here)."""
    unknown = [f"{page}: {code[:80]!r}" for page, code in _blocks("python") if _kind(code) == "unknown"]
    assert not unknown, "\n".join(unknown)


@pytest.mark.parametrize(
    ("page", "code"), [(p, c) for p, c in _blocks("python") if _kind(c) == "run"], ids=lambda v: v if v.endswith(".md") else ""
)
def test_the_blocks_that_are_tests_or_programs_run(page, code, tmp_path):
    how, prelude = next(v for line, v in RUN.items() if line in code)
    source = tmp_path / ("test_block.py" if how == "pytest" else "block.py")
    source.write_text(prelude + "\n" + code)
    if how == "pytest":  # as the page says to run it, with few examples
        command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--onnx-parity",
                   "--onnx-parity-examples", "4", str(source)]
    else:
        command = [sys.executable, str(source)]
    done = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, f"{page}: the block fails as shown\n{done.stdout[-3000:]}{done.stderr[-3000:]}"
    if how == "pytest":
        assert "failed" not in done.stdout.splitlines()[-1], done.stdout[-2000:]


# -- the commands, run as the pages show them (ONNXPARITY_DOCS=1: a CI step of its own) --------
def _walkthrough_project(root) -> None:
    """A project the pages' commands run in: the first test (in examples/), few examples, an
    ONNX file with its input declarations and stored pairs, and a last release's report whose
    errors were 1000x smaller (so a gate against it regresses, as ci.md says it does)."""
    import json

    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper
    from onnx.reference import ReferenceEvaluator

    readme = open(os.path.join(ROOT, "README.md"), encoding="utf-8").read()
    first = next(code for _, code in [("README.md", c) for c in [m.group(2) for m in _BLOCK.finditer(readme)]]
                 if "def test_encoder" in code)
    (root / "examples").mkdir()
    (root / "examples" / "test_encoder.py").write_text(ENCODER + "\n" + first)
    (root / "pytest.ini").write_text("[pytest]\nonnx_parity_examples = 4\naddopts = -p no:cacheprovider\n")
    weights = numpy_helper.from_array(np.linspace(-1, 1, 12, dtype=np.float32).reshape(4, 3), "w")
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["h"]), helper.make_node("Relu", ["h"], ["y"])], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 3])], [weights],
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(root / "model.onnx"))
    (root / "inputs.json").write_text(json.dumps({"inputs": [{"name": "x", "shape": ["batch", 4]}], "dims": {"batch": [1, 8]}}))
    x = np.linspace(-1, 1, 8, dtype=np.float32).reshape(2, 4)
    (y,) = ReferenceEvaluator(str(root / "model.onnx")).run(None, {"x": x})
    (root / "test_data").mkdir()
    np.savez(root / "test_data" / "pair.npz", x=x, y=y)
    subprocess.run([sys.executable, "-m", "pytest", "-q", "--onnx-parity", "--onnx-parity-report=last.json"],
                   cwd=root, capture_output=True, timeout=600, check=False)
    release = json.loads((root / "last.json").read_text())
    for item in release["items"]:
        for output in (item.get("result") or {}).get("outputs") or ():
            output["max_abs_error"] = (output.get("max_abs_error") or 0) / 1000
    (root / "last-release.json").write_text(json.dumps(release))


def _walkthrough() -> list[tuple[str, str, int | None]]:
    """(page, command, the exit status its comment promises, None: none promised) of the pages
    a user follows."""
    found = []
    for page in ("docs/getting-started.md", "docs/how-to/ci.md", "docs/how-to/prebuilt-onnx.md"):
        text = open(os.path.join(ROOT, page), encoding="utf-8").read()
        for m in _BLOCK.finditer(text):
            if m.group(1) != "bash":
                continue
            for line in m.group(2).replace("\\\n", " ").splitlines():
                command, _, comment = line.partition(" #")
                if command.split()[:1] in (["pytest"], ["onnxparity"]) and "pytest                      " not in line:
                    promise = re.search(r"\bexit (\d)\b", comment)
                    found.append((page, " ".join(command.split()), int(promise.group(1)) if promise else None))
    return found


def test_the_commands_the_pages_show_run_with_the_exit_status_they_promise(tmp_path):
    if os.environ.get("ONNXPARITY_DOCS") != "1":
        pytest.skip("the pages' commands run end to end with ONNXPARITY_DOCS=1 (a CI step: about a minute)")
    _walkthrough_project(tmp_path)
    env = {**os.environ, "PATH": os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", "")}
    commands = _walkthrough()
    assert len(commands) >= 10
    for page, command, promised in commands:
        done = subprocess.run(command, shell=True, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
        allowed = (0, 1) if promised is None else (promised,)  # (none promised: a verdict, never a usage error)
        assert done.returncode in allowed, (
            f"{page}: `{command}` exited {done.returncode}, the page says {promised}\n{done.stdout[-2000:]}{done.stderr[-2000:]}"
        )


def test_no_failure_output_is_pasted_into_the_site():
    """A failure shown in docs/ is an example's, written by the build (<!-- example-output: ... -->):
    a pasted one would drift from what onnxparity prints."""
    pasted = []
    for page in PAGES:
        if page.endswith(("README.md", "benchmarks-history.md")):  # (README's one block is compared above)
            continue
        for m in _BLOCK.finditer(open(page, encoding="utf-8").read()):
            if re.search(r"^(shrunk input|input \(not shrunk|examples tried|reproducer|next): ", m.group(2), re.MULTILINE):
                pasted.append(f"{os.path.relpath(page, ROOT)}: {m.group(2)[:80]!r}")
    assert not pasted, "\n".join(pasted)
