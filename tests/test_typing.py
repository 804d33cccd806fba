"""The package is typed (issue 33): ``py.typed`` ships with it, mypy --strict passes on it, and a
user's type checker sees the real types of the public API — a user file type-checks, a mistake
in it is reported, and what ``op.check`` returns is known, not ``Any``."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

USER_FILE = '''
import numpy as np
import onnxparity as op


def reference(x: np.ndarray) -> list[np.ndarray]:
    return [x * 2]


def check_my_file(path: str) -> bool:
    result = op.check(
        onnx=path,
        reference=reference,
        inputs=[op.Input("x", ("batch", 4), dtype="float32", low=-1.0, high=1.0)],
        dims={"batch": op.Dim(1, 8)},
        variants=["ort-cpu", "fp16"],
        tolerance={"fp16": op.Agreement(cosine=0.999), "ort-*": op.Tolerance(atol=1e-5)},
        examples=10,
    )
    reveal_type(result)
    reveal_type(result["ort-cpu"])
    return result.passed


# the documented forms: lists where the docs show lists
SPLIT = op.Input("split", (2,), dtype="int64", choices=[[2, 4], [3, 3]])
BOXES = op.Output("boxes", sort_by=[4, 0])
'''


def _mypy(*args: str, cwd: str) -> subprocess.CompletedProcess[str]:
    pytest.importorskip("mypy", reason="mypy is a dev dependency (pip install -e '.[dev]')")
    return subprocess.run(
        [sys.executable, "-m", "mypy", "--no-incremental", "--cache-dir", os.devnull, *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_the_package_ships_its_types():
    assert os.path.exists(os.path.join(ROOT, "src", "onnxparity", "py.typed"))


def test_a_users_file_type_checks_against_the_real_types(tmp_path):
    (tmp_path / "user.py").write_text(USER_FILE)
    done = _mypy("--strict", "user.py", cwd=str(tmp_path))
    revealed = [line for line in done.stdout.splitlines() if "Revealed type" in line]
    assert done.returncode == 0, done.stdout
    assert 'Revealed type is "onnxparity.results.CheckResult"' in revealed[0], done.stdout
    assert 'Revealed type is "onnxparity.results.VariantResult"' in revealed[1], done.stdout


def test_a_mistake_in_a_users_file_is_reported(tmp_path):
    """A range given as text and a tolerance of the wrong kind: the checker says so before a run."""
    (tmp_path / "user.py").write_text(
        "import onnxparity as op\n"
        'op.Input("x", (4,), low="-1")\n'
        'op.check(onnx="m.onnx", reference=len, tolerance="tight")\n'
    )
    done = _mypy("--strict", "user.py", cwd=str(tmp_path))
    assert done.returncode == 1, done.stdout
    assert 'Argument "low" to "Input" has incompatible type "str"' in done.stdout
    assert 'Argument "tolerance" to "check" has incompatible type "str"' in done.stdout


@pytest.mark.slow
def test_the_package_passes_mypy_strict():
    """What CI runs (scripts/check-types.sh): the package, strict, with pyproject's settings."""
    done = _mypy(cwd=ROOT)
    assert done.returncode == 0, done.stdout[-4000:]
