"""Start variant workers fast: a clean process that has imported ONNX Runtime and its
conversion tools once forks each worker (the fork-server pattern).

A fresh interpreter per worker paid its imports again — measured 1.2 s more per int8-static
build than in the test process (symbolic shape inference imports sympy), 3.7x a small check's
time; a fork of this process starts with them loaded. The zygote is started from nothing but
this module: no framework, no thread pool (``OPENBLAS_NUM_THREADS=1``), so forking it is safe,
unlike forking the test process, which holds PyTorch's and TensorFlow's threads (only a builder
that cannot be imported by name is forked from there: :func:`fork_here`).

Protocol (a ``SOCK_SEQPACKET`` socket pair): ``fork`` with the worker's file descriptors
attached -> the pid; ``wait <pid> <seconds>`` -> its exit status (negative: the signal),
killing it when it has not ended in time. Linux only (``socket.send_fds``, ``os.fork``);
elsewhere :func:`zygote` returns None and workers start as fresh processes.
"""

from __future__ import annotations

import atexit
import faulthandler
import gc
import importlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import warnings
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, cast

from onnxparity.variants.frames import SharedFeeds

if TYPE_CHECKING:
    from onnxparity.variants.base import BuildContext, Runnable

#: imported when the zygote starts (0.3 s); a built-in variant module's own ``WORKER_PRELOAD``
#: (the quantization tools and sympy: 0.7 s more) is imported by the zygote before it forks the
#: first worker of that module, so a session that never builds an int8 variant never pays it.
PRELOAD = ("numpy", "onnx", "onnxruntime", "onnxparity.variants.serve")

_lock = threading.Lock()
_current: Zygote | None = None


class Zygote:
    """The parent's handle on the fork server."""

    def __init__(self) -> None:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)
        env["OPENBLAS_NUM_THREADS"] = env["OMP_NUM_THREADS"] = env["MKL_NUM_THREADS"] = "1"
        try:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "onnxparity.variants.zygote", str(theirs.fileno())],
                pass_fds=(theirs.fileno(),),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                env=env,
            )
        finally:
            theirs.close()
        self.socket = ours
        self.owner = os.getpid()

    def alive(self) -> bool:
        return self.owner == os.getpid() and self.process.poll() is None

    def _ask(self, message: bytes, fds: Sequence[int] = ()) -> str:
        if fds:
            socket.send_fds(self.socket, [message], list(fds))
        else:
            self.socket.send(message)
        answer = self.socket.recv(256)
        if not answer:
            raise OSError("the worker zygote ended")
        return answer.decode()

    def fork(self, fds: list[int], module: str = "") -> int:
        """A new worker serving ``fds`` (requests, replies, shared memory or -1, log). ``module``:
        the builder's module; one of onnxparity's is imported here first, with its
        ``WORKER_PRELOAD``."""
        preload = module if module.startswith("onnxparity.") else "-"
        flags = " ".join(str(int(f >= 0)) for f in fds)
        with _lock:
            return int(self._ask(f"fork {preload} {flags}".encode(), [f for f in fds if f >= 0]))

    def wait(self, pid: int, timeout: float) -> int:
        """Wait for worker ``pid`` (killing it after ``timeout`` s); its exit status."""
        with _lock:
            return int(self._ask(f"wait {pid} {timeout}".encode()))

    def close(self) -> None:
        if self.owner != os.getpid():  # a forked child's copy: the server is its parent's
            return
        self.socket.close()
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def zygote() -> Zygote | None:
    """The running fork server, started on first use; None where forking is not available
    (not Linux) or it cannot start."""
    global _current
    if not (hasattr(socket, "send_fds") and hasattr(os, "fork") and sys.platform.startswith("linux")):
        return None
    with _lock:
        if _current is None or not _current.alive():
            try:
                _current = Zygote()
            except OSError:
                return None
            atexit.register(_current.close)  # (else Python warns at exit: a socket and a process left open)
        return _current


class ForkedWorker:
    """A worker forked by the zygote, with the part of ``subprocess.Popen``'s interface the
    worker handle uses."""

    def __init__(self, server: Zygote, pid: int) -> None:
        self.server = server
        self.pid = pid
        self.returncode: int | None = None

    def wait(self, timeout: float | None = None) -> int:
        if self.returncode is None:
            try:
                self.returncode = self.server.wait(self.pid, 30.0 if timeout is None else timeout)
            except OSError:  # the zygote is gone, and with it the way to learn the status
                self.returncode = -signal.SIGKILL
        return self.returncode

    def poll(self) -> int | None:
        return self.returncode

    def kill(self) -> None:
        try:
            os.kill(self.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


class ForkedChild:
    """A worker forked from the test process itself (a builder not importable by name), with
    the part of ``subprocess.Popen``'s interface the worker handle uses."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.returncode: int | None = None

    def poll(self) -> int | None:
        if self.returncode is None:
            try:
                done, status = os.waitpid(self.pid, os.WNOHANG)
            except ChildProcessError:  # reaped elsewhere (SIGCHLD ignored): the status is lost
                done, status = self.pid, -1
            if done:
                self.returncode = _code(status) if status >= 0 else -signal.SIGKILL
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        if timeout is None and self.returncode is None:
            try:
                self.returncode = _code(os.waitpid(self.pid, 0)[1])
            except ChildProcessError:
                self.returncode = -signal.SIGKILL
        deadline = time.monotonic() + (timeout or 0.0)
        while self.poll() is None:
            if time.monotonic() > deadline:
                raise subprocess.TimeoutExpired(f"worker {self.pid}", cast(float, timeout))  # (None waited above)
            time.sleep(0.002)
        return cast(int, self.returncode)  # (set: the loop ends when poll() has it)

    def kill(self) -> None:
        if self.returncode is None:
            try:
                os.kill(self.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


def fork_here(
    build: Callable[[BuildContext], Runnable],
    context: BuildContext,
    ends: list[int],
    parents: tuple[int, int],
    forget_others: Callable[[], None],
) -> ForkedChild:
    """A worker forked from the test process, which has the builder in memory: the way a lambda,
    a closure or a function of ``__main__`` runs isolated. The child keeps only the forking
    thread: the parent's thread pools are not there, so it sets PyTorch to one thread, as a
    DataLoader worker does (measured: a fork whose PyTorch had run a matmul on 2 threads hung in
    its next one; with 1 it ran). It freezes the garbage collector (no finalizer of the parent's
    objects runs there) and closes its copies of the parent's other ends (``parents``, the
    other workers' by ``forget_others()``, the zygote's socket). Measured with PyTorch loaded
    (0.8 GB virtual): the fork takes 5-14 ms; worker, ONNX Runtime session and first run
    0.04-0.06 s (benchmarks/isolation.py)."""
    requests, replies, shared_fd, log = ends
    with warnings.catch_warnings():  # Python 3.12 warns of forking a threaded process: see above
        warnings.simplefilter("ignore", DeprecationWarning)
        pid = os.fork()
    if pid:
        return ForkedChild(pid)
    code = 1
    try:
        gc.freeze()
        for fd in parents:
            os.close(fd)
        forget_others()
        forget()
        os.dup2(log, 1)
        os.dup2(log, 2)
        os.close(log)
        sys.stdout = sys.stderr = open(2, "w", buffering=1, closefd=False)
        faulthandler.enable(sys.stderr)  # a crash prints the Python stack to worker.log
        if "torch" in sys.modules:
            sys.modules["torch"].set_num_threads(1)
        os.chdir(context.workdir)
        from onnxparity.variants.serve import serve

        code = serve(
            build,
            context,
            os.fdopen(requests, "rb"),
            os.fdopen(replies, "wb"),
            SharedFeeds(shared_fd) if shared_fd >= 0 else None,
        )
    except BaseException as exc:  # nothing may return into the test session
        try:
            os.write(2, f"onnxparity worker: {type(exc).__name__}: {exc}\n".encode())
        except OSError:
            pass
    finally:
        os._exit(code)


def forget() -> None:
    """(In a fork of the test process.) Close this copy of the parent's zygote socket: the
    zygote ends when the parent closes it, and a fork holding a copy would keep it alive."""
    global _current
    if _current is not None:
        _current.socket.close()
        _current = None


def _code(status: int) -> int:
    """A ``waitpid`` status as ``Popen.returncode`` gives it (negative: the signal)."""
    return -os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)


# -- the zygote's side ----------------------------------------------------------------------
def _status(pid: int, timeout: float) -> int:
    deadline = time.monotonic() + timeout
    while True:
        try:
            done, status = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            return -signal.SIGKILL
        if done:
            return _code(status)
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            _, status = os.waitpid(pid, 0)
            return _code(status)
        time.sleep(0.01)


def _preload(names: Iterable[str]) -> None:
    for name in names:
        try:
            module = importlib.import_module(name)
        except Exception:  # an optional tool missing: its variant reports that itself
            continue
        _preload(getattr(module, "WORKER_PRELOAD", ()))


def main(fd: int) -> int:
    _preload(PRELOAD)
    from onnxparity.variants.serve import serve_fds

    server = socket.socket(fileno=fd)
    while True:
        try:
            message, fds, _, _ = socket.recv_fds(server, 256, 8)
        except OSError:
            return 0
        if not message:
            return 0
        words = message.decode().split()
        if words[0] == "wait":
            server.send(str(_status(int(words[1]), float(words[2]))).encode())
            continue
        if words[1] != "-":
            _preload([words[1]])
        given = iter(fds)
        slots = [next(given) if flag == "1" else -1 for flag in words[2:]]
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                server.close()
                os.dup2(slots[3], 1)
                os.dup2(slots[3], 2)
                code = serve_fds(slots[0], slots[1], slots[2])
            finally:
                os._exit(code)
        for f in fds:
            os.close(f)
        server.send(str(pid).encode())


if __name__ == "__main__":
    sys.exit(main(int(sys.argv[1])))
