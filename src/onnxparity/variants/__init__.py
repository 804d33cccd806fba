"""ONNX model -> a runnable variant: ONNX Runtime sessions (CPU with and without graph
optimizations, CUDA), int8 dynamic/static quantization, fp16 conversion, and the ONNX
reference evaluator.

A variant is a name bound to a *builder*: ``build(context) -> Runnable``. Adding a variant is
registering a builder (:func:`register_variant`; :func:`unregister_variant` removes it); the
runner asks for variants by name only.
A builder raises :class:`~onnxparity.errors.VariantUnavailable` when the variant cannot run
here (reported as a skip with its message) and :class:`~onnxparity.errors.VariantBuildError`
when it cannot be built (that variant's error; other variants are unaffected). Variants whose
native code may crash are built and run in a worker process of their own (:mod:`.worker`).
Knows nothing of frameworks or pytest.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from ..errors import InvalidSpec


class VariantRunError(Exception):
    """The runtime raised while running a variant on one input; the message is the runtime's."""


class Runnable(Protocol):
    """A built variant: numpy feeds by input name -> outputs in the ONNX output order.

    Optionally also ``explain(feeds) -> list``: extra diagnosis lines for a failing input (the
    int8-static variant names the tensors whose calibrated range the input saturated), and the
    variant's own :class:`~onnxparity.forensics.Divergence` if it localized one; an ``explain``
    with a ``tolerance`` keyword also gets the item's tolerance (None under an agreement policy)."""

    output_names: tuple[str, ...]

    def run(self, feeds: Mapping[str, np.ndarray]) -> list[np.ndarray]: ...


def explain_with(runnable: Any, feeds: Mapping[str, np.ndarray], tolerance: Any = None) -> list:
    """``runnable.explain(feeds)``, passing the item's ``tolerance`` to an ``explain`` that takes
    one (a variant that compares two runs of its graph judges them by it)."""
    import inspect

    explain = runnable.explain
    try:
        takes = "tolerance" in inspect.signature(explain).parameters
    except (TypeError, ValueError):
        takes = False
    return list(explain(feeds, tolerance=tolerance) if takes else explain(feeds))


def _no_samples(count: int, same_shape: bool = False) -> list[dict[str, np.ndarray]]:
    return []


@dataclass(frozen=True)
class BuildContext:
    """What a builder receives: the ONNX file (with its external data, if any, next to it), a
    private directory for derived files, the options declared for this variant
    (``variant_options={name: {...}}``), and ``sample_feeds(n)``: n inputs drawn from the
    declared input space with a fixed seed (boundary shapes first, every data pattern) — for
    calibration and first runs; ``sample_feeds(n, same_shape=True)`` puts every dim at its
    largest value (for consumers that stack inputs)."""

    model_path: str
    workdir: str
    threads: int = 1
    options: Mapping[str, Any] = field(default_factory=dict)
    sample_feeds: Callable[..., list[dict[str, np.ndarray]]] = _no_samples
    name: str = ""

    def option(self, key: str, default: Any, allowed: Any = None) -> Any:
        """An option's value, checked against ``allowed`` (a collection of values, or a type)."""
        value = self.options.get(key, default)
        if allowed is None:
            return value
        types = allowed if isinstance(allowed, tuple) else (allowed,)
        if all(isinstance(t, type) for t in types):
            ok = isinstance(value, types) and (bool in types or not isinstance(value, bool))
            what = " or ".join(t.__name__ for t in types)
        else:
            ok = value in allowed
            what = "one of " + ", ".join(map(repr, allowed))
        if not ok:
            raise InvalidSpec(f"variant_options[{self.name!r}][{key!r}]={value!r}: expected {what}")
        return value

    def check_options(self, known: Any) -> None:
        """InvalidSpec naming an option this variant does not take."""
        unknown = sorted(set(self.options) - set(known))
        if unknown:  # isolate: every variant's, handled by the runner
            takes = ", ".join(sorted({*known, "isolate"}))
            raise InvalidSpec(
                f"variant_options[{self.name!r}]: unknown option {unknown[0]!r}; {self.name} takes {takes}"
            )


@dataclass(frozen=True)
class VariantInfo:
    """A registered variant: its builder and how the runner treats it."""

    name: str
    build: Callable[[BuildContext], Runnable]
    description: str = ""
    #: the policy when the declaration names none for this variant (lossy variants: an Agreement)
    default_policy: Any = None
    #: examples per search unless the test or run asks for a number (for slow variants)
    max_examples: int | None = None
    #: needs a GPU: "unavailable" fails instead of skipping under --onnx-parity-require-gpu
    requires_gpu: bool = False
    #: what it checks, for the docs and `pytest --help`
    family: str = "lossless"
    #: appended to the message of a native crash while building or running it
    crash_hint: str = ""


_REGISTRY: dict[str, VariantInfo] = {}


def register_variant(
    name: str,
    build: Callable[[BuildContext], Runnable],
    *,
    description: str = "",
    default_policy: Any = None,
    max_examples: int | None = None,
    requires_gpu: bool = False,
    crash_hint: str = "",
    replace: bool = False,
) -> VariantInfo:
    """Make ``name`` usable in ``variants=[...]``: ``build(context)`` returns a Runnable.

    ``default_policy`` (an ``op.Tolerance`` or ``op.Agreement``) applies when a test names
    none for this variant; ``max_examples`` caps the default number of examples (slow
    variants); ``requires_gpu`` makes it fail rather than skip under
    ``--onnx-parity-require-gpu`` when unavailable; ``crash_hint`` is added to the message
    when its native code crashes (what to change so it does not).
    """
    from ..spec import Agreement, Tolerance

    if not isinstance(name, str) or not name or any(c in name for c in "[], "):
        raise InvalidSpec(f"register_variant({name!r}): a variant name is a non-empty word like 'ort-cpu'")
    if not callable(build):
        raise InvalidSpec(f"register_variant({name!r}): build must be a callable taking a BuildContext")
    if default_policy is not None and not isinstance(default_policy, (Tolerance, Agreement)):
        raise InvalidSpec(f"register_variant({name!r}): default_policy must be op.Tolerance or op.Agreement")
    if max_examples is not None and (not isinstance(max_examples, int) or max_examples < 1):
        raise InvalidSpec(f"register_variant({name!r}): max_examples must be a positive integer")
    if name in _REGISTRY and not replace:
        raise InvalidSpec(f"register_variant({name!r}): already registered; pass replace=True to override")
    family = "lossy" if isinstance(default_policy, Agreement) and default_policy.has_metrics else "lossless"
    info = VariantInfo(
        name, build, description, default_policy, max_examples, requires_gpu, family, crash_hint
    )
    _REGISTRY[name] = info
    return info


def unregister_variant(name: str) -> VariantInfo:
    """Forget the variant ``name`` (a test's own, once the test is done); return what was
    registered. A removed built-in stays removed for the process: remove only your own."""
    _ensure_builtins()
    try:
        return _REGISTRY.pop(name)
    except KeyError:
        known = ", ".join(sorted(_REGISTRY))
        raise InvalidSpec(
            f"unregister_variant({name!r}): not registered; registered variants: {known}"
        ) from None


def get_variant(name: str) -> VariantInfo:
    _ensure_builtins()
    try:
        return _REGISTRY[name]
    except KeyError:
        known = ", ".join(sorted(_REGISTRY))
        raise InvalidSpec(f"unknown variant {name!r}; known variants: {known}") from None


def variant_names() -> list[str]:
    _ensure_builtins()
    return sorted(_REGISTRY)


def _ensure_builtins() -> None:
    # Each module registers its variants (with replace=True: pytester may import them again).
    from . import lossy, ort, reference  # noqa: F401
