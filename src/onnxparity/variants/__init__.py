"""ONNX model -> a runnable variant: ONNX Runtime sessions (CPU with and without graph
optimizations, CUDA), int8 dynamic/static quantization, fp16 conversion, and the ONNX
reference evaluator; and the post-export steps teams ship (:mod:`.rewrite`: simplifiers, ONNX
Runtime's fusion optimizer, its offline-optimized graph, the ORT format, a user's own rewrite).

A variant is a name bound to a *builder*: ``build(context) -> Runnable`` (:mod:`.base`).
Adding a variant is registering a builder (:func:`register_variant`; :func:`unregister_variant`
removes it); the runner asks for variants by name only. The built-in variants are a table of
dotted names (:data:`BUILTINS`), each resolved to the :class:`VariantInfo` its module defines
when the name is first looked up, as pytest's ``default_plugins`` and Hypothesis's
``AVAILABLE_PROVIDERS`` are: no built-in module imports this package or registers itself, and
importing it imports neither ONNX nor ONNX Runtime.
A builder raises :class:`~onnxparity.errors.VariantUnavailable` when the variant cannot run
here (reported as a skip with its message) and :class:`~onnxparity.errors.VariantBuildError`
when it cannot be built (that variant's error; other variants are unaffected). Variants whose
native code may crash are built and run in a worker process of their own (:mod:`.worker`).
Knows nothing of frameworks or pytest.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import TYPE_CHECKING, cast

from onnxparity.errors import InvalidSpec
from onnxparity.variants.base import (
    BUILDS,
    BuildContext,
    Runnable,
    VariantInfo,
    VariantRunError,
    explain_with,
    variant_info,
)

if TYPE_CHECKING:
    from onnxparity.spec import Policy

__all__ = [
    "ALL_VARIANTS",
    "BUILDS",
    "BUILTINS",
    "BuildContext",
    "REWRITE_VARIANTS",
    "Runnable",
    "VariantInfo",
    "VariantRunError",
    "explain_with",
    "get_variant",
    "register_variant",
    "unregister_variant",
    "variant_names",
]

#: the built-in variants: name -> ``"module:attribute"`` of its :class:`VariantInfo`, imported
#: when the name is first looked up
BUILTINS = {
    "ort-cpu": "onnxparity.variants.ort:ORT_CPU",
    "ort-cpu-noopt": "onnxparity.variants.ort:ORT_CPU_NOOPT",
    "ort-gpu": "onnxparity.variants.ort:ORT_GPU",
    "int8-dynamic": "onnxparity.variants.int8:INT8_DYNAMIC",
    "int8-static": "onnxparity.variants.int8:INT8_STATIC",
    "fp16": "onnxparity.variants.fp16:FP16",
    "onnx-reference": "onnxparity.variants.reference:ONNX_REFERENCE",
    "onnxslim": "onnxparity.variants.simplify:ONNXSLIM",
    "onnxsim": "onnxparity.variants.simplify:ONNXSIM",
    "onnxoptimizer": "onnxparity.variants.simplify:ONNXOPTIMIZER",
    "onnxscript-optimizer": "onnxparity.variants.simplify:ONNXSCRIPT_OPTIMIZER",
    "ort-transformers": "onnxparity.variants.fusion:ORT_TRANSFORMERS",
    "ort-transformers-fp16": "onnxparity.variants.fusion:ORT_TRANSFORMERS_FP16",
    "ort-offline": "onnxparity.variants.rewrite:ORT_OFFLINE",
    "ort-format": "onnxparity.variants.rewrite:ORT_FORMAT",
}

#: the built-in post-export steps (:mod:`.rewrite`): simplifiers, ONNX Runtime's transformer
#: fusion optimizer (float32 and float16), its offline-optimized graph and the ORT format. Not in
#: :data:`ALL_VARIANTS`: a model ships through some of them, named in its ``variants=``.
REWRITE_VARIANTS = (
    "onnxslim",
    "onnxsim",
    "onnxoptimizer",
    "onnxscript-optimizer",
    "ort-transformers",
    "ort-transformers-fp16",
    "ort-offline",
    "ort-format",
)

#: every built-in runtime and precision variant, for a marker's ``variants=``: lossless ONNX
#: Runtime CPU (with and without graph optimizations), CUDA (skipped without a GPU), int8
#: dynamic and static, fp16, and the ONNX reference evaluator.
ALL_VARIANTS = tuple(name for name in BUILTINS if name not in REWRITE_VARIANTS)

#: name -> the registered variant, or the dotted name of a built-in not looked up yet. A name
#: removed here stays removed for the process, built-in or not.
_REGISTRY: dict[str, VariantInfo | str] = dict(BUILTINS)


def register_variant(
    name: str,
    build: Callable[[BuildContext], Runnable],
    *,
    description: str = "",
    default_policy: Policy | None = None,
    max_examples: int | None = None,
    requires_gpu: bool = False,
    crash_hint: str = "",
    rounds_inputs: str | None = None,
    replace: bool = False,
) -> VariantInfo:
    """Make ``name`` usable in ``variants=[...]``: ``build(context)`` returns a Runnable.

    ``default_policy`` (an ``op.Tolerance`` or ``op.Agreement``) applies when a test names
    none for this variant; ``max_examples`` caps the default number of examples (slow
    variants); ``requires_gpu`` makes it fail rather than skip under
    ``--onnx-parity-require-gpu`` when unavailable; ``crash_hint`` is added to the message
    when its native code crashes (what to change so it does not); ``rounds_inputs``
    (``"float16"`` or ``"uint8"``), how it rounds its float inputs, lets an Agreement set aside
    the examples that rounding alone leaves below it (ill-conditioned ones; else all are pooled).
    """
    info = variant_info(
        name,
        build,
        description=description,
        default_policy=default_policy,
        max_examples=max_examples,
        requires_gpu=requires_gpu,
        crash_hint=crash_hint,
        rounds_inputs=rounds_inputs,
    )
    if name in _REGISTRY and not replace:
        raise InvalidSpec(f"register_variant({name!r}): already registered; pass replace=True to override")
    _REGISTRY[name] = info
    return info


def unregister_variant(name: str) -> VariantInfo:
    """Forget the variant ``name`` (a test's own, once the test is done); return what was
    registered. A removed built-in stays removed for the process: remove only your own."""
    try:
        entry = _REGISTRY.pop(name)
    except KeyError:
        known = ", ".join(sorted(_REGISTRY))
        raise InvalidSpec(
            f"unregister_variant({name!r}): not registered; registered variants: {known}"
        ) from None
    return _resolve(entry)


def get_variant(name: str) -> VariantInfo:
    try:
        entry = _REGISTRY[name]
    except KeyError:
        known = ", ".join(sorted(_REGISTRY))
        raise InvalidSpec(f"unknown variant {name!r}; known variants: {known}") from None
    if isinstance(entry, str):
        entry = _REGISTRY[name] = _resolve(entry)
    return entry


def variant_names() -> list[str]:
    return sorted(_REGISTRY)


def _resolve(entry: VariantInfo | str) -> VariantInfo:
    """A built-in's :class:`VariantInfo` from its ``"module:attribute"`` (a registered one as is)."""
    if not isinstance(entry, str):
        return entry
    module, _, attribute = entry.partition(":")
    return cast(VariantInfo, getattr(importlib.import_module(module), attribute))
