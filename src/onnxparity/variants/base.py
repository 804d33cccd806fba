"""What a variant is, for the registry and the built-in variant modules alike: the
:class:`BuildContext` a builder receives, the :class:`Runnable` it returns, the
:class:`VariantInfo` a name is bound to (:func:`variant_info` makes one, checked), and the
optional ``explain(feeds)`` of a user's runnable (:func:`explain_with`, :func:`lineage`).

The built-in variant modules import this module, never the registry package
(:mod:`onnxparity.variants`), which names them in a table and imports them when a name is first
looked up. Imports neither ONNX nor ONNX Runtime.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from onnxparity.errors import InvalidSpec

if TYPE_CHECKING:
    from onnxparity.spec import Policy


class VariantRunError(Exception):
    """The runtime raised while running a variant on one input; the message is the runtime's."""


class Runnable(Protocol):
    """A built variant: numpy feeds by input name -> outputs in the ONNX output order.

    Optionally also ``explain(feeds) -> list``: extra diagnosis lines for a failing input, and
    the variant's own :class:`~onnxparity.forensics.Divergence` if it localized one; an
    ``explain`` with a ``tolerance`` keyword also gets the item's tolerance (None under an
    agreement policy). The built-in variants' runnables have none: forensics explains them
    (:mod:`onnxparity.forensics.by_variant`)."""

    output_names: tuple[str, ...]

    def run(self, feeds: Mapping[str, np.ndarray]) -> list[np.ndarray]: ...


def explain_with(runnable: Any, feeds: Mapping[str, np.ndarray], tolerance: Any = None) -> list[Any]:
    """``runnable.explain(feeds)``, passing the item's ``tolerance`` to an ``explain`` that takes
    one (a variant that compares two runs of its graph judges them by it)."""
    import inspect

    explain = runnable.explain
    try:
        takes = "tolerance" in inspect.signature(explain).parameters
    except (TypeError, ValueError):
        takes = False
    return list(explain(feeds, tolerance=tolerance) if takes else explain(feeds))


#: :func:`explain_with` by name, as an explainer (``explainer(runnable, feeds, tolerance)``)
#: that a worker process imports and calls with the runnable it holds
EXPLAIN_WITH = f"{__name__}:explain_with"

#: how :func:`lineage` names the class (or the object) that defines an ``explain`` of its own
OWN_EXPLAIN = "explain"


def lineage(runnable: Any) -> tuple[str, ...]:
    """The runnable's class and its bases as ``"module:qualname"``, in method resolution order,
    up to the first that defines an ``explain`` of its own (given as :data:`OWN_EXPLAIN`, as is
    an ``explain`` set on the object itself): what forensics picks a built-in runnable's
    explainer by, in the process that holds the runnable or across a worker's pipe. The nearest
    definition wins, as it did when the built-in runnables had an ``explain`` method."""
    if "explain" in getattr(runnable, "__dict__", {}):
        return (OWN_EXPLAIN,)
    found: list[str] = []
    for klass in type(runnable).__mro__:
        if "explain" in vars(klass):
            return (*found, OWN_EXPLAIN)
        found.append(f"{klass.__module__}:{klass.__qualname__}")
    return tuple(found)


#: the persistent cache's kind for built variants' files
BUILDS = "variants"


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
    #: what the model's source says of it (``model_type``, ``num_heads``, ``hidden_size`` of a
    #: transformers config; empty where it says nothing): JSON values
    source: Mapping[str, Any] = field(default_factory=dict)
    #: the persistent cache (:mod:`onnxparity.persist`): its folder and size, and the key of
    #: the model this build converts ("" when the model is not cached: every step is built)
    cache_root: str = ""
    cache_mb: int = 0
    cache_key: str = ""
    #: what :meth:`stored` did, one line per step (the runnable reports it as ``build_cache``)
    cache_log: list[str] = field(default_factory=list)

    def stored(
        self, step: str, parts: Mapping[str, Any], outputs: Sequence[str], build: Callable[[], Any]
    ) -> bool:
        """Files ``outputs`` (paths in :attr:`workdir`) of a conversion ``step`` whose result
        depends only on the model, the variant's options (both in :attr:`cache_key`), ``parts``
        (anything else, such as a digest of drawn calibration data) and the versions of
        onnxruntime, onnx and numpy: copied from the persistent cache when an earlier run stored
        them, else made by ``build()`` and stored once it returns (a step that raises stores
        nothing). True when reused. A cache that cannot be read or written never fails a build."""
        from onnxparity.environment import version
        from onnxparity.persist import Store, digest

        if not (self.cache_root and self.cache_key):
            build()
            return False
        store = Store(self.cache_root, self.cache_mb << 20)
        tools = {p: version(p) for p in ("onnxruntime", "onnx", "numpy")}  # what converted the file
        key = digest(
            {
                "model": self.cache_key,
                "variant": self.name,
                "step": step,
                "parts": dict(parts),
                "tools": tools,
            }
        )
        meta = store.get(BUILDS, key, self.workdir)
        kept_files = meta.get("files") if meta is not None else None
        if isinstance(kept_files, list) and {os.path.basename(p) for p in outputs} <= set(map(str, kept_files)):
            self.cache_log.append(f"{step}: reused from the persistent cache")
            return True
        build()
        # a model past protobuf's limit keeps its weights beside it (onnxutils.save_model)
        files = [f for p in outputs for f in (p, p + ".data") if os.path.isfile(f)]
        kept = store.put(BUILDS, key, files, {"files": [os.path.basename(f) for f in files], "step": step})
        self.cache_log.append(
            f"{step}: "
            + ("stored in the persistent cache" if kept else "not stored (the cache cannot be written)")
        )
        return False

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
    #: how it rounds its float inputs ("float16", "uint8"), to measure how far rounding alone
    #: moves the framework on an example it agrees poorly on (:mod:`onnxparity.search.conditioning`)
    rounds_inputs: str | None = None


def variant_info(
    name: str,
    build: Callable[[BuildContext], Runnable],
    *,
    description: str = "",
    default_policy: Policy | None = None,
    max_examples: int | None = None,
    requires_gpu: bool = False,
    crash_hint: str = "",
    rounds_inputs: str | None = None,
) -> VariantInfo:
    """The :class:`VariantInfo` of a variant ``name`` built by ``build``, its arguments checked
    (InvalidSpec naming the bad one); its family is "lossy" under an Agreement with metrics.
    What :func:`~onnxparity.variants.register_variant` registers, and what each built-in
    variant module defines for the registry's table."""
    from onnxparity.spec import Agreement, Tolerance

    if not isinstance(name, str) or not name or any(c in name for c in "[], "):
        raise InvalidSpec(f"register_variant({name!r}): a variant name is a non-empty word like 'ort-cpu'")
    if not callable(build):
        raise InvalidSpec(f"register_variant({name!r}): build must be a callable taking a BuildContext")
    if default_policy is not None and not isinstance(default_policy, (Tolerance, Agreement)):
        raise InvalidSpec(f"register_variant({name!r}): default_policy must be op.Tolerance or op.Agreement")
    if max_examples is not None and (not isinstance(max_examples, int) or max_examples < 1):
        raise InvalidSpec(f"register_variant({name!r}): max_examples must be a positive integer")
    if rounds_inputs not in (None, "float16", "uint8"):
        raise InvalidSpec(f"register_variant({name!r}): rounds_inputs must be 'float16', 'uint8' or None")
    family = "lossy" if isinstance(default_policy, Agreement) and default_policy.has_metrics else "lossless"
    return VariantInfo(
        name, build, description, default_policy, max_examples, requires_gpu, family, crash_hint, rounds_inputs
    )
