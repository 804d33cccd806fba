"""The worker's side of a variant run in a process of its own (:mod:`.worker` is the test
process's side): import or receive the builder, build the variant (its ``sample_feeds`` requests
answered by the parent), then answer ``run`` and ``call`` requests until the parent closes the
pipe. A ``call`` names a function ``"module:qualname"`` that the worker imports, as it imports
the builder, and calls with the runnable it holds, the request's feeds and tolerance: how an
explanation (:mod:`onnxparity.forensics.by_variant`) runs next to the runnable without this
package importing forensics. Every message crosses as a frame (:mod:`.frames`), never a pickle:
a request that is not onnxparity's ends the worker with :data:`REFUSED`.
"""

from __future__ import annotations

import faulthandler
import importlib
import os
import sys
from collections.abc import Callable, Mapping
from typing import Any, cast

import numpy as np

from onnxparity.errors import OnnxParityError
from onnxparity.variants.base import BuildContext, Runnable, VariantRunError, lineage
from onnxparity.variants.frames import FrameError, SharedFeeds, encode_frame, receive, send, write_frame

#: a worker's exit status when it refused a request frame (it decoded nothing of it)
REFUSED = 3


def serve_fds(requests_fd: int, replies_fd: int, shared_fd: int) -> int:
    """(In a worker started by the zygote or as a fresh interpreter.) Import and build the
    variant asked for, then answer requests until the parent closes the pipe."""
    faulthandler.enable()  # a crash prints the Python stack to worker.log
    requests = os.fdopen(requests_fd, "rb")
    replies = os.fdopen(replies_fd, "wb")
    shared = SharedFeeds(shared_fd) if shared_fd >= 0 else None
    try:
        request = receive(requests)
        if request.get("kind") != "build":
            raise FrameError(f"a first request of kind {request.get('kind')!r}, not 'build'")
        reference, fields, path = str(request["reference"]), dict(request["fields"]), list(request["path"])
    except EOFError:
        return 0
    except (FrameError, KeyError, TypeError, ValueError, AttributeError) as exc:
        print(f"onnxparity worker: refused the build request: {exc}", file=sys.stderr, flush=True)
        return REFUSED
    sys.path[:0] = [p for p in map(str, path) if p not in sys.path]  # the test session's, as it is now
    os.chdir(fields["workdir"])  # third-party steps drop files into the cwd: ours, not the user's
    try:
        build = imported(reference)
    except Exception as exc:
        send(replies, {"kind": "not-importable", "message": f"{reference}: {type(exc).__name__}: {exc}"})
        return 0

    def sample_feeds(count: int, same_shape: bool = False) -> list[dict[str, np.ndarray]]:
        send(replies, {"kind": "samples", "count": count, "same_shape": same_shape})
        reply = receive(requests)
        if reply.get("kind") != "samples" or not isinstance(reply.get("feeds"), list):
            raise FrameError("a reply to a samples request that holds no feeds")
        return cast("list[dict[str, np.ndarray]]", reply["feeds"])  # (frames decode arrays only as arrays)

    try:
        context = BuildContext(sample_feeds=sample_feeds, **fields)
    except TypeError as exc:
        print(f"onnxparity worker: refused the build request: {exc}", file=sys.stderr, flush=True)
        return REFUSED
    return serve(build, context, requests, replies, shared)


def imported(reference: str) -> Any:
    """The object a ``"module:qualname"`` names, its module imported."""
    module, _, qualname = reference.partition(":")
    found: Any = importlib.import_module(module)
    for part in qualname.split("."):
        found = getattr(found, part)
    return found


def serve(
    build: Callable[[BuildContext], Runnable],
    context: BuildContext,
    requests: Any,
    replies: Any,
    shared: SharedFeeds | None,
) -> int:
    """(In the worker.) Build the variant, say what was built, then answer ``run`` and
    ``call`` requests; exit status :data:`REFUSED` on a frame that is not onnxparity's."""
    try:
        runnable = build(context)
    except (EOFError, FrameError) as exc:  # the parent went away, or answered a samples request oddly
        print(f"onnxparity worker: refused a reply while building: {exc}", file=sys.stderr, flush=True)
        return REFUSED
    except OnnxParityError as exc:
        send(replies, {"kind": "error", "error": type(exc).__name__, "message": str(exc)})
        return 0
    except Exception as exc:  # a builder's own error is that variant's error
        send(
            replies,
            {"kind": "error", "error": "VariantBuildError", "message": f"{type(exc).__name__}: {exc}"},
        )
        return 0
    send(
        replies,
        {
            "kind": "built",
            "output_names": [str(n) for n in runnable.output_names],
            "providers": [str(p) for p in getattr(runnable, "providers", ()) or ()],
            "model_path": getattr(runnable, "model_path", None),
            "explains": callable(getattr(runnable, "explain", None)),
            "lineage": list(lineage(runnable)),
            "build_cache": [str(line) for line in context.cache_log],
            "build_facts": getattr(runnable, "build_facts", None),
        },
    )
    while True:
        try:
            request = receive(requests)
            kind = request.get("kind")
            if kind == "run-shared" and shared is not None:
                feeds = shared.view(int(request["size"]), request["layout"])
            else:
                feeds = request["feeds"]
                if not isinstance(feeds, dict):
                    raise FrameError("feeds that are not a dict")
            function = str(request["function"]) if kind == "call" else ""
        except EOFError:
            return 0
        except (FrameError, KeyError, TypeError, ValueError, AttributeError) as exc:
            print(f"onnxparity worker: refused a request: {exc}", file=sys.stderr, flush=True)
            return REFUSED
        if kind in ("run", "run-shared"):
            try:
                outputs = [np.asarray(o) for o in runnable.run(feeds)]
            except VariantRunError as exc:
                frame = encode_frame({"kind": "run-error", "message": str(exc)})
            except Exception as exc:
                frame = encode_frame({"kind": "run-error", "message": f"{type(exc).__name__}: {exc}"})
            else:
                try:
                    frame = encode_frame({"kind": "ok", "value": outputs})
                except TypeError as exc:
                    frame = encode_frame({"kind": "run-error", "message": _unsendable(outputs, exc)})
        else:
            explained = _called(function, runnable, feeds, request.get("tolerance"))
            frame = encode_frame({"kind": "ok", "value": explained})
        write_frame(replies, frame)


def _unsendable(outputs: list[np.ndarray], exc: TypeError) -> str:
    """Why a run's outputs cannot go back to the test process, and what to return instead."""
    for n, output in enumerate(outputs):
        try:
            encode_frame(output)
        except TypeError as error:
            return (
                f"output {n} of the variant's run() ({output.dtype} array of shape {output.shape}) cannot be "
                f"sent from its worker process: {error}; return numeric or string arrays (a list of "
                "dicts, as a ZipMap gives, crosses only with numbers and strings in it)"
            )
    return f"the outputs cannot be sent from the worker process: {exc}"


def _called(function: str, runnable: Any, feeds: Mapping[str, np.ndarray], tolerance: Any) -> list[Any]:
    """(In the worker.) What ``function(runnable, feeds, tolerance)`` returns (an explainer),
    without what cannot cross (what the parent reads of it is lines, a Divergence and a
    Subgraph); nothing when it cannot be imported or raises."""
    try:
        explained = list(imported(function)(runnable, feeds, tolerance))
    except Exception:  # an explanation must never mask the verdict
        return []
    kept = []
    for item in explained:
        try:
            encode_frame(item)
        except Exception:
            continue
        kept.append(item)
    return kept


if __name__ == "__main__":
    sys.exit(serve_fds(*map(int, sys.argv[1:4])))
