"""Build and run a variant in a worker process of its own, so that a native crash — ONNX
Runtime's kernels on a converted graph, a user's runtime — fails the item that hit it, with the
signal and the input named, and the test session goes on.

This is the test process's side; the worker's is :mod:`.serve`. The worker imports the variant's
builder by module and name, builds the variant (the builder's ``sample_feeds`` requests are
answered by the parent, which owns the declared input space) and then answers ``run`` and
``call`` requests (:meth:`IsolatedVariant.call`: a function named ``"module:qualname"``, run
there with the runnable: how forensics explains a failing input next to it). A builder that
cannot be imported by name (a lambda, a closure, a function defined in a test or in
``__main__``) is built in a fork of the test process instead, which has it in memory
(:func:`.zygote.fork_here`). A worker that dies is started again (and the variant built again)
on the next request, so one crash costs one item. At most :data:`MAX_LIVE` workers live at
once; the least recently used is stopped, and starts again when it is next needed.

Nothing is pickled between the processes, either way (:mod:`.frames`): a frame that is not
onnxparity's (a pickle, an object array) is refused before anything in it is decoded: the worker
exits, the parent fails the item. Which variants run in a worker is the runner's choice (the ``isolate`` setting); what
isolation costs is measured in ``benchmarks/isolation.py``.
"""

from __future__ import annotations

import collections
import os
import subprocess
import sys
import weakref
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from onnxparity.errors import InvalidSpec, VariantBuildError, VariantUnavailable
from onnxparity.variants.base import EXPLAIN_WITH, BuildContext, Runnable, VariantRunError
from onnxparity.variants.frames import FrameError, SharedFeeds, encode_frame, receive, send, write_frame
from onnxparity.variants.isolate import VariantCrashed, signal_name
from onnxparity.variants.zygote import ForkedWorker, fork_here, zygote

#: workers alive at once (each holds a Python interpreter and a runtime session).
MAX_LIVE = 4

#: what reading from or writing to a worker that died raises
_BROKEN = (EOFError, OSError)

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
    """The builder cannot be imported by name in a fresh process, and this platform cannot fork
    the test process (not Linux): it runs in the test process."""


def builder_reference(build: Callable[..., Any]) -> str:
    """``"module:qualname"`` of a builder a fresh process can import, or NotImportable."""
    module = getattr(build, "__module__", None)
    qualname = getattr(build, "__qualname__", "")
    if not module or module == "__main__" or "<" in qualname or not qualname:
        raise NotImportable(f"{qualname or build!r} is not importable by name")
    return f"{module}:{qualname}"


def forks_here() -> bool:
    """Whether a worker can be forked from the test process (Linux, as for the zygote)."""
    return hasattr(os, "fork") and sys.platform.startswith("linux")


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

    def __init__(self, process: Any, to_worker: Any, from_worker: Any, shared: SharedFeeds | None) -> None:
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

    def forget(self) -> None:
        """(In a fork of the test process.) Close this process's copies of the parent's ends,
        so that the worker they lead to still sees the parent close them."""
        for stream in (self.to_worker, self.from_worker):
            try:
                stream.close()
            except OSError:
                pass
        if self.shared is not None:
            self.shared.close()


def _close_all(holder: dict[str, _Connection]) -> None:
    connection = holder.pop("connection", None)
    if connection is not None:
        connection.close()


class IsolatedVariant:
    """A variant built and run in a worker process; a Runnable (with ``explain`` when the
    variant's runnable has one), whose :attr:`lineage` is the worker's runnable's
    (:func:`~onnxparity.variants.base.lineage`) and whose :meth:`call` runs a function next to it."""

    def __init__(
        self, build: Callable[[BuildContext], Runnable], context: BuildContext, *, what: str = "", hint: str = ""
    ) -> None:
        try:
            #: the builder as the worker imports it; "" when it is forked from this process
            self.reference = builder_reference(build)
        except NotImportable:
            if not forks_here():
                raise
            self.reference = ""
        self.build = build
        self.context = context
        self.what = what or context.name or self.reference or getattr(build, "__qualname__", "variant")
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
        #: the worker's runnable's class and bases (:func:`~onnxparity.variants.base.lineage`)
        self.lineage: tuple[str, ...] = ()
        #: what the build took from or gave to the persistent cache (BuildContext.cache_log)
        self.build_cache: list[str] = []
        #: what the build says it did (a rewrite's nodes and fusions), JSON values
        self.build_facts: dict[str, Any] | None = None
        self._log_start = 0
        weakref.finalize(self, _close_all, self._holder)
        self._start()

    # -- the Runnable protocol ------------------------------------------------------------
    def run(self, feeds: Mapping[str, np.ndarray]) -> list[np.ndarray]:
        reply = self._request("run", feeds, f"running {self.what} on one input")
        if reply.get("kind") == "run-error":
            raise VariantRunError(str(reply.get("message")))
        outputs = reply.get("value")
        if reply.get("kind") != "ok" or not isinstance(outputs, list):
            raise self._refused(VariantRunError, f"running {self.what}", "a reply that is not a run's")
        if not all(isinstance(o, np.ndarray) for o in outputs):
            raise self._refused(VariantRunError, f"running {self.what}", "outputs that are not arrays")
        return outputs

    def explain(self, feeds: Mapping[str, np.ndarray], tolerance: Any = None) -> list[Any]:
        return self.call(EXPLAIN_WITH, feeds, tolerance) if self._explains else []

    def call(self, function: str, feeds: Mapping[str, np.ndarray], tolerance: Any = None) -> list[Any]:
        """What ``function`` (``"module:qualname"``, an explainer) returns when the worker
        imports it and calls it with its runnable, ``feeds`` and ``tolerance``; nothing where
        the worker cannot (an explanation must never mask the verdict)."""
        try:
            reply = self._request("call", feeds, f"explaining {self.what}'s failure", (function, tolerance))
        except VariantRunError:
            return []
        value = reply.get("value")
        return list(value) if reply.get("kind") == "ok" and isinstance(value, list) else []

    def close(self) -> None:
        """Stop the worker (it starts again, building the variant again, when next used)."""
        _LIVE.pop(id(self), None)
        _close_all(self._holder)

    # -- the worker ------------------------------------------------------------------------
    def _request(
        self, kind: str, feeds: Mapping[str, np.ndarray], doing: str, call: tuple[Any, ...] = ()
    ) -> dict[str, Any]:
        if "connection" not in self._holder:
            self._start()
        connection = self._holder["connection"]
        _LIVE.move_to_end(id(self))
        if kind == "run" and connection.shared is not None:
            message = connection.shared.put(feeds)
        else:
            message = {"kind": kind, "feeds": dict(feeds)}
            if call:
                message["function"], message["tolerance"] = call
        try:
            frame = encode_frame(message)
        except TypeError as exc:
            raise VariantRunError(
                f"an input cannot be sent to {self.what}'s worker process: {exc}; inputs cross as "
                "numeric or string arrays"
            ) from None
        try:
            write_frame(connection.to_worker, frame)
            return receive(connection.from_worker)
        except _BROKEN:
            raise self._crashed(
                VariantRunCrashed, doing, "only this item fails and the session goes on"
            ) from None
        except FrameError as exc:
            raise self._refused(VariantRunError, doing, str(exc)) from None

    def _spawn(self) -> _Connection:
        """Start a worker: forked by the zygote where there is one, else a fresh interpreter;
        a builder that cannot be imported by name is forked from this process."""
        parent_to_child = os.pipe()
        child_to_parent = os.pipe()
        shared = SharedFeeds.create()
        shared_fd = shared.fd if shared is not None else -1
        log = os.open(
            os.path.join(self.context.workdir, "worker.log"), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644
        )
        self._log_start = os.fstat(log).st_size
        ends = [parent_to_child[0], child_to_parent[1], shared_fd, log]
        process: Any = None
        try:
            if not self.reference:
                parents = (parent_to_child[1], child_to_parent[0])
                process = fork_here(self.build, self.context, ends, parents, _forget_live)
            else:
                server = zygote()
                if server is not None:
                    try:
                        process = ForkedWorker(server, server.fork(ends, self.reference.partition(":")[0]))
                    except OSError:
                        process = None
            if process is None:
                env = dict(os.environ)
                env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)
                command = [sys.executable, "-m", "onnxparity.variants.serve", *map(str, ends[:3])]
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

    def _fields(self) -> dict[str, Any]:
        """The build request's fields; VariantBuildError naming an option that cannot cross."""
        context = self.context
        for key, value in context.options.items():
            try:
                encode_frame(value)
            except TypeError as exc:
                raise VariantBuildError(
                    f"variant_options[{context.name!r}][{key!r}]={_short(value)}: {exc}, and a variant's "
                    "options are sent to its worker process as JSON and numpy arrays; give numbers, strings, "
                    f"lists, dicts or arrays, or build it in the test process with "
                    f"variant_options={{{context.name!r}: {{'isolate': False}}}}"
                ) from None
        return {
            "model_path": context.model_path,
            "workdir": context.workdir,
            "threads": context.threads,
            "options": dict(context.options),
            "name": context.name,
            "source": dict(context.source),
            "cache_root": context.cache_root,
            "cache_mb": context.cache_mb,
            "cache_key": context.cache_key,
        }

    def _start(self) -> None:
        context = self.context
        fields = self._fields() if self.reference else {}
        while len(_LIVE) >= MAX_LIVE:
            _, oldest = _LIVE.popitem(last=False)
            oldest.close()
        connection = self._holder["connection"] = self._spawn()
        self.starts += 1
        _LIVE[id(self)] = self
        try:
            if self.reference:
                send(
                    connection.to_worker,
                    {"kind": "build", "reference": self.reference, "fields": fields, "path": list(sys.path)},
                )
            while True:
                reply = receive(connection.from_worker)
                if reply.get("kind") != "samples":
                    break
                count, same_shape = reply.get("count"), reply.get("same_shape")
                if not isinstance(count, int) or not isinstance(same_shape, bool):
                    raise FrameError(f"a samples request for {count!r} feeds")
                feeds = context.sample_feeds(count, same_shape=same_shape)
                send(connection.to_worker, {"kind": "samples", "feeds": feeds})
        except _BROKEN:
            raise self._crashed(VariantCrashed, f"building {self.what}", "only this variant fails") from None
        except FrameError as exc:
            raise self._refused(VariantBuildError, f"building {self.what}", str(exc)) from None
        except BaseException:  # drawing the samples failed: the worker waits for them in vain
            self.close()
            raise
        kind = reply.get("kind")
        if kind == "not-importable":
            self.close()
            if not forks_here():
                raise NotImportable(str(reply.get("message")))
            self.reference = ""  # importable here but not there (a test module's own path): fork
            self._start()
            return
        if kind == "error":
            self.close()
            raise _ERRORS.get(str(reply.get("error")), VariantBuildError)(str(reply.get("message")))
        try:
            self.output_names = tuple(map(str, reply["output_names"]))
            self.providers = tuple(map(str, reply["providers"]))
            self.model_path = None if reply["model_path"] is None else str(reply["model_path"])
            self._explains = bool(reply["explains"])
            self.lineage = tuple(map(str, reply["lineage"]))
            self.build_cache = list(map(str, reply["build_cache"]))
            self.build_facts = reply.get("build_facts") or None
        except (KeyError, TypeError) as exc:
            raise self._refused(
                VariantBuildError, f"building {self.what}", f"a build reply without {exc}"
            ) from None

    def _refused(self, error: type[Exception], doing: str, why: str) -> Exception:
        """The error of a worker that sent a frame onnxparity refuses; the worker is stopped."""
        connection = self._holder.pop("connection", None)
        _LIVE.pop(id(self), None)
        if connection is not None:
            connection.process.kill()
            connection.close()
        return error(
            f"{self.what}'s worker process sent a reply onnxparity refuses while {doing} ({why}); nothing "
            "in it was decoded and the worker was stopped"
        )

    def _crashed(self, error: type[Exception], doing: str, outcome: str) -> Exception:
        """The error of a worker whose pipe broke while ``doing``: the signal that ended it, the
        Python frames it was in, the hint."""
        name = self._reap()
        if name.startswith("exit status"):
            said = self._log_lines()[-1:]
            message = (
                f"{self.what}'s worker process ended ({name}) while {doing}"
                + (f": {said[0].strip()}" if said else "")
                + f"; it ran in a worker process of its own, so {outcome}"
            )
        else:
            message = (
                f"the native runtime crashed with {name} while {doing}; {self.what} ran in a worker "
                f"process of its own, so {outcome}"
            )
        return error(message + self._details(), name)

    def _log_lines(self) -> list[str]:
        """What the worker wrote to its log since it started."""
        try:
            with open(os.path.join(self.context.workdir, "worker.log"), "rb") as log:
                log.seek(self._log_start)
                return [line for line in log.read().decode("utf-8", "replace").splitlines() if line.strip()]
        except OSError:
            return []

    def _details(self) -> str:
        """The Python stack faulthandler wrote at the crash (innermost frames), and the hint."""
        text = ""
        frames = [line.strip() for line in self._log_lines() if line.strip().startswith("File ")]
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
        return signal_name(-code) if code < 0 else f"exit status {code}"


def _forget_live() -> None:
    """(In a fork of the test process.) Close this process's copies of every live worker's
    ends, so that the workers they lead to still see the parent close them."""
    for other in list(_LIVE.values()):
        connection = other._holder.get("connection")
        if connection is not None:
            connection.forget()
    _LIVE.clear()


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."
