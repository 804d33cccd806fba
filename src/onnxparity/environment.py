"""The process and the machine it runs on: what machine this is and which versions are
installed (for reports and latency results; no framework imported), and the context managers
that keep a third-party step quiet or in a folder of its own."""

from __future__ import annotations

import contextlib
import functools
import io
import os
import platform
import shutil
import subprocess
import sys
import warnings
from collections.abc import Iterator
from importlib import metadata
from typing import Any, cast

#: distributions whose versions a report records (read from metadata: nothing is imported).
VERSIONED = (
    "onnxparity",
    "onnx",
    "onnxruntime",
    "onnxruntime-gpu",
    "torch",
    "tensorflow",
    "tensorflow-cpu",
    "keras",
    "tf2onnx",
    "scikit-learn",
    "skl2onnx",
    "hypothesis",
    "pytest",
)

#: frameworks whose running version a latency result records, when imported.
IMPORTED_FRAMEWORKS = ("torch", "tensorflow", "sklearn")


def environment(
    threads: int | None = None, provider: str | None = None, *, flat: bool = False
) -> dict[str, Any]:
    """What makes two runs' numbers comparable: versions, execution providers, CPU/GPU, threads.

    The report's form (default): Python and platform, the installed versions of
    :data:`VERSIONED`, ONNX Runtime's available providers, CPU and GPU names, and the thread
    settings (``threads``: ONNX Runtime's intra-op threads). ``flat=True`` gives a latency
    result's one-level form, every value a scalar so it prints on one line: CPU, thread count,
    ONNX Runtime's version, the ``provider`` timed, Python, and the running version of each
    framework already imported. ``provider``, when given, is recorded in either form."""
    if flat:
        env: dict[str, Any] = {
            "cpu": cpu_name(),
            "cpu_count": os.cpu_count(),
            "threads": threads,
            "onnxruntime": _onnxruntime_version(),
            "provider": provider,
            "python": platform.python_version(),
        }
        for module in IMPORTED_FRAMEWORKS:
            if module in sys.modules:
                env[module] = str(getattr(sys.modules[module], "__version__", "?"))
        return env
    env = {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "versions": installed_versions(),
        "execution_providers": _available_providers(),
        "cpu": cpu_name(),
        "cpu_count": os.cpu_count(),
        "gpus": gpu_names(),
        "threads": {
            "onnxruntime_intra_op": threads,
            "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS"),
        },
    }
    if provider is not None:
        env["provider"] = provider
    return env


@functools.cache
def version(name: str) -> str | None:
    """The installed version of distribution ``name`` (None: not installed)."""
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def installed_versions() -> dict[str, str]:
    """Versions of the installed distributions among :data:`VERSIONED`."""
    return {name: found for name in VERSIONED if (found := version(name)) is not None}


def cpu_name() -> str:
    """The CPU's model name (``/proc/cpuinfo``), else what ``platform`` knows."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def gpu_names() -> list[str]:
    """NVIDIA GPUs by name (``nvidia-smi``); empty without one."""
    if shutil.which("nvidia-smi") is None:
        return []
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=10,
        )
    except (OSError, subprocess.TimeoutExpired):
        return []
    return [line.strip() for line in out.stdout.splitlines() if line.strip()]


def available_providers() -> list[str]:
    """ONNX Runtime's available execution providers (empty where it does not import)."""
    return _available_providers()


def _available_providers() -> list[str]:
    try:
        import onnxruntime

        return list(onnxruntime.get_available_providers())
    except Exception:
        return []


def _onnxruntime_version() -> str | None:
    try:
        import onnxruntime
    except ImportError:
        return None
    return cast(str, onnxruntime.__version__)


class Swallowed:
    """What a :func:`quiet` step printed (Python's ``sys.stdout``/``sys.stderr`` and, with
    ``native=True``, native code's writes to file descriptors 1 and 2), filled in when the step
    ends: at most :data:`SWALLOWED_BYTES`, the rest cut with a note. A place to keep it (a log
    beside the export) rather than the user's terminal or a failure message."""

    def __init__(self) -> None:
        self.text = ""

    def __bool__(self) -> bool:
        return bool(self.text.strip())


#: how much of what a quiet step printed :class:`Swallowed` keeps
SWALLOWED_BYTES = 4 << 20


@contextlib.contextmanager
def quiet(*logger_prefixes: str, native: bool = False) -> Iterator[Swallowed]:
    """Keep a third-party library's warnings, log records (loggers named by or under the
    prefixes) and prints out of the user's output while it works; its errors still arrive
    as exceptions. ``native=True`` also keeps out what native code writes straight to file
    descriptors 1 and 2 (C++ ``std::cout``: PyTorch's TorchScript exporter prints the whole
    graph there when it fails). Yields a :class:`Swallowed` holding what was printed."""
    import logging

    manager = logging.Logger.manager
    names = list(logger_prefixes) + [n for n in list(manager.loggerDict) if n.startswith(logger_prefixes)]
    loggers = [logging.getLogger(n) for n in dict.fromkeys(names)]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    swallowed = Swallowed()
    out, err = io.StringIO(), io.StringIO()
    written: list[str] = []
    try:
        with (
            warnings.catch_warnings(),
            contextlib.redirect_stdout(out),
            contextlib.redirect_stderr(err),
            _native_output(written) if native else contextlib.nullcontext(),
        ):
            warnings.simplefilter("ignore")
            yield swallowed
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)
        text = out.getvalue() + err.getvalue() + "".join(written)
        if len(text) > SWALLOWED_BYTES:
            text = text[:SWALLOWED_BYTES] + f"\n[... {len(text) - SWALLOWED_BYTES} more characters cut]\n"
        swallowed.text = text


@contextlib.contextmanager
def _native_output(written: list[str]) -> Iterator[None]:
    """File descriptors 1 and 2 pointed at a temporary file while the block runs; what was
    written there goes into ``written``. Where the descriptors cannot be redirected (closed,
    not a POSIX process), nothing is captured."""
    import tempfile

    for stream in (sys.__stdout__, sys.__stderr__):
        with contextlib.suppress(Exception):
            stream.flush()  # type: ignore[union-attr]  # a None stream is caught by suppress()
    _flush_c_stdio()  # what native code wrote before the step stays where it was going
    try:
        sink = tempfile.TemporaryFile()
    except OSError:
        yield
        return
    try:
        saved = [os.dup(1), os.dup(2)]
    except OSError:
        sink.close()
        yield
        return
    try:
        os.dup2(sink.fileno(), 1)
        os.dup2(sink.fileno(), 2)
        try:
            yield
        finally:
            _flush_c_stdio()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            sink.seek(0)
            written.append(sink.read().decode("utf-8", "replace"))
    finally:
        for fd in saved:
            os.close(fd)
        sink.close()


def _flush_c_stdio() -> None:
    """Flush C's stdio buffers (what ``std::cout`` wrote into a buffered ``stdout``): text left
    there would reach the real descriptor after it is restored."""
    with contextlib.suppress(Exception):
        import ctypes

        ctypes.CDLL(None).fflush(None)


@contextlib.contextmanager
def working_directory(path: str | os.PathLike[str]) -> Iterator[None]:
    """Run a third-party step with ``path`` as the current directory, then come back: tools
    that drop temporary files in the current directory (ONNX Runtime's ``quant_pre_process``
    leaves ``sym_shape_infer_temp.onnx`` and ``<uuid>.data`` there) drop them in ours.
    Give the step absolute paths."""
    previous = os.getcwd()
    os.makedirs(path, exist_ok=True)
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(previous)
