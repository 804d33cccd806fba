"""ONNX model -> a runnable variant (an ONNX Runtime session with its providers, and later
quantized, fp16 and reference-evaluator variants).

A variant is a name bound to a *builder*: ``build(context) -> Runnable``. Adding a variant is
registering a builder (:func:`register_variant`); the runner asks for variants by name only.
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
    """A built variant: numpy feeds by input name -> outputs in the ONNX output order."""

    output_names: tuple[str, ...]

    def run(self, feeds: Mapping[str, np.ndarray]) -> list[np.ndarray]: ...


@dataclass(frozen=True)
class BuildContext:
    """What a builder receives: the ONNX file, a private directory for derived files, options."""

    model_path: str
    workdir: str
    threads: int = 1
    options: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class VariantInfo:
    name: str
    build: Callable[[BuildContext], Runnable]
    description: str = ""


_REGISTRY: dict[str, VariantInfo] = {}


def register_variant(
    name: str, build: Callable[[BuildContext], Runnable], *, description: str = "", replace: bool = False
) -> VariantInfo:
    """Make ``name`` usable in ``variants=[...]``; ``build(context)`` returns a Runnable."""
    if not isinstance(name, str) or not name or any(c in name for c in "[], "):
        raise InvalidSpec(f"register_variant({name!r}): a variant name is a non-empty word like 'ort-cpu'")
    if name in _REGISTRY and not replace:
        raise InvalidSpec(f"register_variant({name!r}): already registered; pass replace=True to override")
    info = VariantInfo(name, build, description)
    _REGISTRY[name] = info
    return info


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
    from . import ort  # noqa: F401  (registers the ONNX Runtime variants)
