"""Run a risky native step (creating an ONNX Runtime session for a converted model, its first
run) in a child process, so that a crash in native code is that variant's failure and never
takes down the user's test session.

Measured: an fp16-converted LSTM segfaulted ONNX Runtime at session creation with the default
optimization level (BASIC and EXTENDED worked). A builder calls :func:`run_isolated` with an
importable ``"module:function"`` and a JSON-able payload; the child imports and calls it and
prints the JSON result. A child killed by a signal raises :class:`VariantCrashed` naming the
signal; a child that raised returns its message as :class:`VariantBuildError`.
"""

from __future__ import annotations

import importlib
import json
import os
import signal
import subprocess
import sys
from typing import Any

from onnxparity.errors import VariantBuildError

#: seconds a probe may take before it counts as hung.
PROBE_TIMEOUT = 300

_RESULT = "onnxparity-probe-result:"


class VariantCrashed(VariantBuildError):
    """The native runtime crashed (a signal) in the isolated probe."""

    def __init__(self, message: str, signal_name: str) -> None:
        super().__init__(message)
        self.signal_name = signal_name


def run_isolated(target: str, payload: dict[str, Any], *, what: str, hint: str = "") -> Any:
    """Call ``target`` (``"package.module:function"``) with ``payload`` in a child process.

    ``what`` says what the child does, for messages ("creating an ONNX Runtime session for the
    fp16 model"); ``hint`` is appended to a crash report."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)
    env.setdefault("OMP_NUM_THREADS", "1")
    request = json.dumps({"target": target, "payload": payload})
    try:
        done = subprocess.run(
            [sys.executable, "-m", "onnxparity.variants.isolate"],
            input=request,
            capture_output=True,
            text=True,
            timeout=PROBE_TIMEOUT,
            env=env,
        )
    except subprocess.TimeoutExpired:
        raise VariantBuildError(
            f"{what} did not finish within {PROBE_TIMEOUT} s (in an isolated probe)"
        ) from None
    if done.returncode < 0:
        name = signal_name(-done.returncode)
        message = (
            f"the native runtime crashed with {name} while {what}; it ran in an isolated child "
            "process, so only this variant fails"
        )
        if hint:
            message += f"\nhint: {hint}"
        raise VariantCrashed(message, name)
    result = next(
        (line[len(_RESULT) :] for line in reversed(done.stdout.splitlines()) if line.startswith(_RESULT)),
        None,
    )
    if result is None:
        tail = (done.stderr or done.stdout).strip().splitlines()[-5:]
        raise VariantBuildError(f"{what} failed (exit status {done.returncode}): " + " | ".join(tail))
    answer = json.loads(result)
    if "error" in answer:
        raise VariantBuildError(answer["error"])
    return answer.get("value")


def signal_name(number: int) -> str:
    """The name of signal ``number`` ("SIGSEGV"), or "signal N" for one Python does not name."""
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def _child() -> int:
    request = json.loads(sys.stdin.read())
    module, _, function = request["target"].partition(":")
    try:
        value = getattr(importlib.import_module(module), function)(request["payload"])
        answer = {"value": value}
    except Exception as exc:
        answer = {"error": f"{type(exc).__name__}: {exc}".strip()}
    sys.stdout.write("\n" + _RESULT + json.dumps(answer) + "\n")
    sys.stdout.flush()
    return 0 if "value" in answer else 1


if __name__ == "__main__":
    sys.exit(_child())
