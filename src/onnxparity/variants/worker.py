"""Build and run a variant in a worker process of its own, so that a native crash — ONNX
Runtime's kernels on a converted graph, a user's runtime — fails the item that hit it, with the
signal and the input named, and the test session goes on.

The worker imports the variant's builder by module and name, builds the variant (the builder's
``sample_feeds`` requests are answered by the parent, which owns the declared input space) and
then answers ``run`` and ``explain`` requests: pickled numpy arrays over a pipe. A worker that
dies is started again (and the variant built again) on the next request, so one crash costs one
item. At most :data:`MAX_LIVE` workers live at once; the least recently used is stopped, and
starts again when it is next needed.

Which variants run in a worker is the runner's choice (the ``isolate`` setting); a builder
that cannot be imported by name (a lambda, a function defined inside another, ``__main__``)
runs in the test process. What isolation costs is measured in ``benchmarks/isolation.py``.
"""

from __future__ import annotations

import collections
import faulthandler
import importlib
import mmap
import os
import pickle
import subprocess
import sys
import weakref
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from ..errors import InvalidSpec, OnnxParityError, VariantBuildError, VariantUnavailable
from . import BuildContext, VariantRunError, explain_with
from .isolate import VariantCrashed, _signal_name
from .zygote import ForkedWorker, zygote

#: workers alive at once (each holds a Python interpreter and a runtime session).
MAX_LIVE = 4

#: inputs of at least this many bytes go through shared memory, not the pipe (measured: a
#: 1.5 MB input took 1-2.6 ms through a pipe; see benchmarks/isolation.py).
SHARED_FROM = 64 * 1024

#: what reading from or writing to a worker that died raises
_BROKEN = (EOFError, OSError, pickle.UnpicklingError)

_ERRORS: dict[str, type[Exception]] = {
    "VariantUnavailable": VariantUnavailable,
    "InvalidSpec": InvalidSpec,
    "VariantBuildError": VariantBuildError,
}


class VariantRunCrashed(VariantRunError):
    """The worker running a variant died (a signal) while running one input."""

    def __init__(self, message: str, signal_name: str) -> None:
        super().__init__(message)
        self.signal_name = signal_name


class NotImportable(Exception):
    """The builder cannot be imported by name in a fresh process; it runs in the test process."""


def builder_reference(build: Callable) -> str:
    """``"module:qualname"`` of a builder a fresh process can import, or NotImportable."""
    module = getattr(build, "__module__", None)
    qualname = getattr(build, "__qualname__", "")
    if not module or module == "__main__" or "<" in qualname or not qualname:
        raise NotImportable(f"{qualname or build!r} is not importable by name")
    return f"{module}:{qualname}"


def isolates(info: Any, option: Any, mode: str, prebuilt: bool) -> bool:
    """Whether a variant runs in a worker: its ``isolate`` option, else the isolate setting
    (``auto``: lossy and user-registered variants, and any variant of a prebuilt ONNX file)."""
    if option is not None:
        if not isinstance(option, bool):
            raise InvalidSpec(f"variant_options[{info.name!r}]['isolate']={option!r}: expected True or False")
        return option
    if mode != "auto":
        return mode == "all"
    builtin = getattr(info.build, "__module__", "").startswith("onnxparity.")
    return info.family == "lossy" or not builtin or prebuilt


_LIVE: collections.OrderedDict[int, IsolatedVariant] = collections.OrderedDict()


class _Connection:
    """One started worker: its process handle, the two pipe ends and the shared file."""

    def __init__(self, process: Any, to_worker: Any, from_worker: Any, shared: _Shared | None) -> None:
        self.process = process
        self.to_worker = to_worker
        self.from_worker = from_worker
        self.shared = shared

    def close(self) -> None:
        for stream in (self.to_worker, self.from_worker):
            try:
                stream.close()  # a closed pipe ends the worker's loop
            except OSError:
                pass
        if self.process.poll() is None:
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.shared is not None:
            self.shared.close()


def _close_all(holder: dict) -> None:
    connection = holder.pop("connection", None)
    if connection is not None:
        connection.close()


class IsolatedVariant:
    """A variant built and run in a worker process; a Runnable (with ``explain`` when the
    variant has one)."""

    def __init__(self, build: Callable, context: BuildContext, *, what: str = "", hint: str = "") -> None:
        self.reference = builder_reference(build)
        self.context = context
        self.what = what or context.name or self.reference
        #: what to change so the crash does not happen (the variant's ``crash_hint``)
        self.hint = hint
        #: the live worker, if any (a dict, so the finalizer sees the current one)
        self._holder: dict[str, _Connection] = {}
        #: how often this variant's worker was started (counts for tests and benchmarks)
        self.starts = 0
        self.output_names: tuple[str, ...] = ()
        self.providers: tuple[str, ...] = ()
        self.model_path: str | None = None
        self._explains = False
        #: what the build took from or gave to the persistent cache (BuildContext.cache_log)
        self.build_cache: list[str] = []
        self._log_start = 0
        weakref.finalize(self, _close_all, self._holder)
        self._start()

    # -- the Runnable protocol ------------------------------------------------------------
    def run(self, feeds: Mapping[str, np.ndarray]) -> list[np.ndarray]:
        reply = self._request("run", feeds, f"running {self.what} on one input")
        if reply[0] == "run-error":
            raise VariantRunError(reply[1])
        return reply[1]

    def explain(self, feeds: Mapping[str, np.ndarray], tolerance: Any = None) -> list:
        if not self._explains:
            return []
        reply = self._request("explain", feeds, f"explaining {self.what}'s failure", tolerance)
        return list(reply[1]) if reply[0] == "ok" else []

    def close(self) -> None:
        """Stop the worker (it starts again, building the variant again, when next used)."""
        _LIVE.pop(id(self), None)
        _close_all(self._holder)

    # -- the worker ------------------------------------------------------------------------
    def _request(
        self, kind: str, feeds: Mapping[str, np.ndarray], doing: str, tolerance: Any = None
    ) -> tuple:
        if "connection" not in self._holder:
            self._start()
        connection = self._holder["connection"]
        _LIVE.move_to_end(id(self))
        if kind == "run" and connection.shared is not None:
            message = connection.shared.put(feeds)
        elif kind == "explain":
            message = (kind, tolerance, dict(feeds))
        else:
            message = (kind, dict(feeds))
        try:
            _send(connection.to_worker, message)
            return _receive(connection.from_worker)
        except _BROKEN:
            raise self._crashed(
                VariantRunCrashed, doing, "only this item fails and the session goes on"
            ) from None

    def _spawn(self) -> _Connection:
        """Start a worker: forked by the zygote where there is one, else a fresh interpreter."""
        parent_to_child = os.pipe()
        child_to_parent = os.pipe()
        shared = _Shared.create()
        shared_fd = shared.fd if shared is not None else -1
        log = os.open(
            os.path.join(self.context.workdir, "worker.log"), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644
        )
        self._log_start = os.fstat(log).st_size
        ends = [parent_to_child[0], child_to_parent[1], shared_fd, log]
        process: Any = None
        try:
            server = zygote()
            if server is not None:
                try:
                    process = ForkedWorker(server, server.fork(ends, self.reference.partition(":")[0]))
                except OSError:
                    process = None
            if process is None:
                env = dict(os.environ)
                env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)
                command = [sys.executable, "-m", "onnxparity.variants.worker", *map(str, ends[:3])]
                process = subprocess.Popen(
                    command,
                    pass_fds=tuple(fd for fd in ends[:3] if fd >= 0),
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=log,
                    env=env,
                )
        finally:
            for fd in (parent_to_child[0], child_to_parent[1], log):
                os.close(fd)
        return _Connection(
            process, os.fdopen(parent_to_child[1], "wb"), os.fdopen(child_to_parent[0], "rb"), shared
        )

    def _start(self) -> None:
        context = self.context
        while len(_LIVE) >= MAX_LIVE:
            _, oldest = _LIVE.popitem(last=False)
            oldest.close()
        connection = self._holder["connection"] = self._spawn()
        self.starts += 1
        _LIVE[id(self)] = self
        fields = {
            "model_path": context.model_path,
            "workdir": context.workdir,
            "threads": context.threads,
            "options": dict(context.options),
            "name": context.name,
            "cache_root": context.cache_root,
            "cache_mb": context.cache_mb,
            "cache_key": context.cache_key,
        }
        try:
            _send(connection.to_worker, ("build", self.reference, fields, list(sys.path)))
            while True:
                reply = _receive(connection.from_worker)
                if reply[0] != "samples":
                    break
                _send(connection.to_worker, ("samples", context.sample_feeds(reply[1], same_shape=reply[2])))
        except _BROKEN:
            raise self._crashed(VariantCrashed, f"building {self.what}", "only this variant fails") from None
        if reply[0] == "not-importable":
            self.close()
            raise NotImportable(reply[1])
        if reply[0] == "error":
            self.close()
            raise _ERRORS.get(reply[1], VariantBuildError)(reply[2])
        _, self.output_names, self.providers, self.model_path, self._explains, self.build_cache = reply

    def _crashed(self, error: type, doing: str, outcome: str) -> Exception:
        """The error of a worker whose pipe broke while ``doing``: the signal that ended it, the
        Python frames it was in, the hint."""
        name = self._reap()
        message = (
            f"the native runtime crashed with {name} while {doing}; {self.what} ran in a worker process "
            f"of its own, so {outcome}"
        )
        return error(message + self._details(), name)

    def _details(self) -> str:
        """The Python stack faulthandler wrote at the crash (innermost frames), and the hint."""
        text = ""
        try:
            with open(os.path.join(self.context.workdir, "worker.log"), "rb") as log:
                log.seek(self._log_start)
                written = log.read().decode("utf-8", "replace").splitlines()
        except OSError:
            written = []
        frames = [line.strip() for line in written if line.strip().startswith("File ")]
        if frames:
            text += "\nwhere the worker was (innermost first):\n" + "\n".join(f"  {f}" for f in frames[:4])
        return text + (f"\nhint: {self.hint}" if self.hint else "")

    def _reap(self) -> str:
        """Wait for a worker whose pipe broke; the signal (or exit status) that ended it."""
        _LIVE.pop(id(self), None)
        connection = self._holder.pop("connection", None)
        if connection is None:
            return "an unknown cause"
        process = connection.process
        try:
            code = process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            code = process.wait()
        connection.close()
        return _signal_name(-code) if code < 0 else f"exit status {code}"


class _Shared:
    """An anonymous shared file (Linux ``memfd``) both processes map: large numeric inputs
    are copied in once instead of pickled through the pipe."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.size = 0
        self.map: mmap.mmap | None = None

    @classmethod
    def create(cls) -> _Shared | None:
        if not hasattr(os, "memfd_create"):
            return None
        return cls(os.memfd_create("onnxparity-feeds", 0))

    def put(self, feeds: Mapping[str, np.ndarray]) -> tuple:
        """The run request for ``feeds``: large numeric arrays laid out in the shared file."""
        # np.require, not np.ascontiguousarray: that one turns a 0-d array into shape (1,)
        arrays = {name: np.require(value, requirements="C") for name, value in feeds.items()}
        total = sum(a.nbytes + 64 for a in arrays.values())
        if total < SHARED_FROM or any(a.dtype.kind not in "biufc" for a in arrays.values()):
            return ("run", arrays)
        if total > self.size:
            size = max(total, 2 * self.size)
            os.ftruncate(self.fd, size)
            if self.map is not None:
                self.map.close()
            self.map = mmap.mmap(self.fd, size)
            self.size = size
        layout, offset = [], 0
        for name, array in arrays.items():
            view = np.ndarray(array.shape, array.dtype, buffer=self.map, offset=offset)
            view[...] = array
            layout.append((name, array.dtype.str, array.shape, offset))
            offset += (array.nbytes + 63) // 64 * 64
        return ("run-shared", self.size, layout)

    def view(self, size: int, layout: list) -> dict[str, np.ndarray]:
        """(In the worker.) The feeds of a ``run-shared`` request, as views of the file."""
        if size > self.size:
            if self.map is not None:
                self.map.close()
            self.map = mmap.mmap(self.fd, size)
            self.size = size
        return {
            name: np.ndarray(shape, np.dtype(dtype), buffer=self.map, offset=offset)
            for name, dtype, shape, offset in layout
        }

    def close(self) -> None:
        if self.map is not None:
            self.map.close()
            self.map = None
        os.close(self.fd)


def _send(stream: Any, message: Any) -> None:
    pickle.dump(message, stream, protocol=pickle.HIGHEST_PROTOCOL)
    stream.flush()


def _receive(stream: Any) -> Any:
    return pickle.load(stream)


# -- the worker's side --------------------------------------------------------------------
def serve_fds(requests_fd: int, replies_fd: int, shared_fd: int) -> int:
    """(In the worker.) Build the variant asked for, then answer requests until the parent
    closes the pipe."""
    faulthandler.enable()  # a crash prints the Python stack to worker.log
    requests = os.fdopen(requests_fd, "rb")
    replies = os.fdopen(replies_fd, "wb")
    shared = _Shared(shared_fd) if shared_fd >= 0 else None
    kind, reference, fields, path = _receive(requests)
    assert kind == "build", kind
    sys.path[:0] = [p for p in path if p not in sys.path]  # the test session's, as it is now
    os.chdir(fields["workdir"])  # third-party steps drop files into the cwd: ours, not the user's
    module, _, qualname = reference.partition(":")
    try:
        build: Any = importlib.import_module(module)
        for part in qualname.split("."):
            build = getattr(build, part)
    except Exception as exc:
        _send(replies, ("not-importable", f"{reference}: {type(exc).__name__}: {exc}"))
        return 0

    def sample_feeds(count: int, same_shape: bool = False) -> list[dict[str, np.ndarray]]:
        _send(replies, ("samples", count, same_shape))
        return _receive(requests)[1]

    context = BuildContext(sample_feeds=sample_feeds, **fields)
    try:
        runnable = build(context)
    except OnnxParityError as exc:
        _send(replies, ("error", type(exc).__name__, str(exc)))
        return 0
    except Exception as exc:  # a builder's own error is that variant's error
        _send(replies, ("error", "VariantBuildError", f"{type(exc).__name__}: {exc}"))
        return 0
    _send(
        replies,
        (
            "built",
            tuple(runnable.output_names),
            tuple(getattr(runnable, "providers", ()) or ()),
            getattr(runnable, "model_path", None),
            callable(getattr(runnable, "explain", None)),
            list(context.cache_log),
        ),
    )
    while True:
        try:
            request = _receive(requests)
        except EOFError:
            return 0
        kind = request[0]
        feeds = shared.view(request[1], request[2]) if kind == "run-shared" and shared else request[-1]
        if kind in ("run", "run-shared"):
            try:
                reply: tuple = ("ok", [np.asarray(o) for o in runnable.run(feeds)])
            except VariantRunError as exc:
                reply = ("run-error", str(exc))
            except Exception as exc:
                reply = ("run-error", f"{type(exc).__name__}: {exc}")
        else:
            try:
                reply = ("ok", explain_with(runnable, feeds, request[1]))
            except Exception:  # an explanation must never mask the verdict
                reply = ("ok", [])
        _send(replies, reply)


if __name__ == "__main__":
    sys.exit(serve_fds(*map(int, sys.argv[1:4])))
