"""Model sources: a framework model (or a prebuilt ONNX file) -> an ONNX file + a reference.

Every model source is one :class:`Exporter` (:mod:`.base`) in one module, registered by name, as
variants are: torch, tensorflow (Keras, ``tf.function``, SavedModel), sklearn, and prebuilt ONNX
with a callable reference. An exporter owns everything its framework knows — detecting its
models, the inputs they declare, a fingerprint of their weights, whether they are fit to export,
the export itself, the reference callable, seeding, thread pinning, label outputs — and nothing
else does. This package owns the registry: the built-in sources are a table of dotted names
(:data:`BUILTINS`), imported on the registry's first use, and a built-in module never imports the
registry. :func:`resolve` detects a model's source once per check and returns a
:class:`Subject`; the runner only talks to that.

Each framework is imported only when a model of that framework is checked: ``import
onnxparity`` imports no framework. Detection reads the model's class without importing.
"""

from __future__ import annotations

import importlib
import random
from collections.abc import Callable, Collection, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from onnxparity.errors import ExportError, InvalidSpec
from onnxparity.exporters.base import (
    ExportedModel,
    Exporter,
    ModelPair,
    Reference,
    Subject,
    axis_name,
    check_no_extra_inputs,
    class_root,
    export_folder,
    exported_model,
    flatten_outputs,
    require,
    root_cause,
    specialised_dims,
)

if TYPE_CHECKING:
    from onnxparity.spec import Dim, Input

__all__ = [
    "BUILTINS",
    "ExportedModel",
    "Exporter",
    "ModelPair",
    "Reference",
    "Subject",
    "axis_name",
    "check_no_extra_inputs",
    "class_root",
    "export_folder",
    "exported_model",
    "exporter_for",
    "exporter_names",
    "flatten_outputs",
    "get_exporter",
    "register_exporter",
    "require",
    "resolve",
    "root_cause",
    "seed_frameworks",
    "specialised_dims",
    "unregister_exporter",
]

#: the built-in model sources: name -> ``"module:attribute"`` of the instance, registered in this
#: order on the registry's first use (detection asks the latest first: transformers before torch)
BUILTINS: dict[str, str] = {
    "torch": "onnxparity.exporters.torch:EXPORTER",
    "transformers": "onnxparity.exporters.transformers:EXPORTER",
    "tensorflow": "onnxparity.exporters.tensorflow:EXPORTER",
    "sklearn": "onnxparity.exporters.sklearn:EXPORTER",
    "xgboost": "onnxparity.exporters.gbdt:XGBOOST_EXPORTER",
    "lightgbm": "onnxparity.exporters.gbdt:LIGHTGBM_EXPORTER",
    "catboost": "onnxparity.exporters.gbdt:CATBOOST_EXPORTER",
    "callable": "onnxparity.exporters.prebuilt:EXPORTER",
}

_REGISTRY: dict[str, Exporter] = {}


def register_exporter(exporter: Exporter, *, replace: bool = False) -> Exporter:
    """Make ``exporter`` a model source: models it :meth:`~Exporter.detects` are checked
    through it. Later registrations are asked first, so a user's exporter can take over a
    model type a built-in one also detects."""
    _ensure_builtins()
    name = getattr(exporter, "name", None)
    if not isinstance(name, str) or not name:
        raise InvalidSpec(f"register_exporter({exporter!r}): give the exporter a name, e.g. name = 'numpy'")
    missing = [
        m
        for m in ("detects", "fingerprint", "export", "reference")
        if not callable(getattr(exporter, m, None))
    ]
    if missing:
        raise InvalidSpec(f"register_exporter({name!r}): the exporter has no {', '.join(missing)}()")
    if name in _REGISTRY and not replace:
        raise InvalidSpec(f"register_exporter({name!r}): already registered; pass replace=True to override")
    _REGISTRY.pop(name, None)
    _REGISTRY[name] = exporter
    return exporter


def unregister_exporter(name: str) -> None:
    """Remove a registered model source (built-ins included); unknown names are ignored."""
    _ensure_builtins()
    _REGISTRY.pop(name, None)


def exporter_names() -> list[str]:
    _ensure_builtins()
    return list(_REGISTRY)


def get_exporter(name: str) -> Exporter:
    _ensure_builtins()
    try:
        return _REGISTRY[name]
    except KeyError:
        raise InvalidSpec(f"unknown model source {name!r}; known: {', '.join(_REGISTRY)}") from None


def exporter_for(model: Any) -> Exporter:
    """The source that detects ``model`` (the latest registered first)."""
    _ensure_builtins()
    for exporter in reversed(list(_REGISTRY.values())):
        if exporter.detects(model):
            return exporter
    supported = ", ".join(n for n in _REGISTRY if n != "callable")
    raise ExportError(
        f"no exporter for {type(model).__module__}.{type(model).__qualname__} (model sources: {supported}); "
        "pass onnx= and reference= to check it anyway, or register one with op.register_exporter"
    )


def resolve(
    model: Any = None, *, onnx: Any = None, reference: Callable[..., Any] | None = None, origin: Any = None
) -> Subject:
    """Detect what a check is about, once: the model's source (or the user's callable
    reference for a prebuilt ONNX file), its fingerprint and identity, and the identity of
    ``origin``, the function that built it (the test)."""
    if model is None and reference is None:
        if onnx is not None:
            raise InvalidSpec(
                "nothing to compare against: pass the framework model, or reference= (a callable "
                "taking and returning numpy arrays) with onnx="
            )
        raise InvalidSpec("nothing to check: pass the model (or onnx= with reference=)")
    if reference is not None:
        if onnx is None:
            raise InvalidSpec("reference= needs onnx= (the ONNX model to check against it)")
        if not callable(reference):
            raise InvalidSpec(f"reference={reference!r}: give a callable taking and returning numpy arrays")
        source, model = get_exporter("callable"), reference
    else:
        source = exporter_for(model)
    from onnxparity.exporters.identity import once, origin_digest

    with once():  # the fingerprint holds the identity's digest: one walk for both
        fingerprint, identity = source.fingerprint(model), source.identity(model)
    origin_identity = origin_digest(origin) if origin is not None else None
    read_graph_inputs: Callable[[Any], tuple[Input, ...]] | None = None
    read_least_dims: Callable[[Any, Sequence[Input], Mapping[str, Dim], Collection[str]], dict[str, Dim]] | None = None
    if onnx is not None:  # the file's own inputs come first (Subject.declared_inputs)
        from onnxparity.exporters.prebuilt import graph_inputs as read_graph_inputs
        from onnxparity.exporters.prebuilt import least_graph_dims as read_least_dims
    return Subject(
        source, model, onnx, f"{source.name}-{fingerprint}", identity, origin_identity, read_graph_inputs,
        read_least_dims,
    )


def seed_frameworks(seed: int) -> None:
    """Seed Python's and numpy's global RNGs and every imported framework's."""
    random.seed(seed)
    np.random.seed(seed)
    for exporter in exporter_names():
        _REGISTRY[exporter].seed(seed)


_builtins_loaded = False


def _ensure_builtins() -> None:
    # Every built-in is registered once, before anything else touches the registry; one a user
    # unregisters stays removed.
    global _builtins_loaded
    if _builtins_loaded:
        return
    _builtins_loaded = True
    for name, target in BUILTINS.items():
        module, _, attribute = target.partition(":")
        _REGISTRY[name] = getattr(importlib.import_module(module), attribute)
