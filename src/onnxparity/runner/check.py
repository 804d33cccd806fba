"""The one check path behind ``op.check`` and the ``onnx_parity`` fixture: resolve the model,
build its spec, run the session's check (:func:`run_check`), then warn of the passes that
could not have failed (:func:`warn_weak`). Each caller keeps what is its own: the facade its
default session and latency mode, the plugin its item, overrides and pytest outcomes."""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any

from onnxparity.errors import WeakCheck
from onnxparity.exporters import resolve
from onnxparity.planning import Item, build_spec
from onnxparity.results import CheckResult
from onnxparity.spec import ParitySpec
from onnxparity.verdict.power import weak_message

if TYPE_CHECKING:
    from onnxparity.runner.session import ParitySession


def run_check(
    model: Any = None,
    *,
    onnx: Any = None,
    reference: Callable[..., Any] | None = None,
    origin: Callable[..., Any] | None = None,
    arguments: Callable[[], Mapping[str, Any]],
    session: Callable[[], AbstractContextManager[ParitySession]],
    name: str | None = None,
    items: Callable[[ParitySpec], Sequence[Item]] | None = None,
    latency_mode: str | None = None,
) -> CheckResult:
    """Check ``model`` (or ``onnx`` against ``reference``), in this order: resolve it (with
    ``origin``, the function that built it), build its spec from ``arguments()`` (the
    declaration, ``data`` included: read once the model resolved), open ``session()``, then
    check every item of the spec, or ``items(spec)``."""
    subject = resolve(model, onnx=onnx, reference=reference, origin=origin)
    declared = dict(arguments())
    data = declared.pop("data", None)
    spec = build_spec(subject, data=data, **declared)
    with session() as opened:
        chosen = items(spec) if items is not None else None
        return opened.check(subject, spec=spec, name=name, data=data, items=chosen, latency_mode=latency_mode)


def warn_weak(result: CheckResult, label: Callable[[str], str] | None = None, stacklevel: int = 3) -> None:
    """A :class:`WeakCheck` warning for every passing variant that could not have failed, named
    ``label(item)`` (default: the check's name and the item); ``stacklevel`` 3 points at the
    code that called the caller (the user's ``op.check``, the test's ``onnx_parity.check``)."""
    for item, outcome in result.variants.items():
        if outcome.passed and outcome.power is not None and outcome.power.weak:
            named = label(item) if label is not None else f"{result.name} [{item}]"
            warnings.warn(WeakCheck(weak_message(named, outcome.power)), stacklevel=stacklevel)
