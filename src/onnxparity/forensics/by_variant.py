"""Which explanation a failing input of a variant gets: forensics takes the built runnable and
the input, as Polygraphy's comparator takes runners' results, and the runnables explain nothing
themselves.

A built-in runnable's explainer is found by its class (:data:`EXPLAINERS`: ``"module:qualname"``
of the class -> ``"module:function"`` of the explainer, both resolved only when used), walking
the runnable's :func:`~onnxparity.variants.base.lineage`: the nearest class that has an
explainer, or that defines an ``explain`` of its own (a user's runnable, documented in
docs/variants.md, which :func:`~onnxparity.variants.base.explain_with` calls), decides. Keyed by
class rather than by the builder's reference or the variant's name because an explainer reads
the fields that class keeps (``float_path``, ``policy``, ``ranges``, ``cuda_providers``...), the
diagnosis holds the runnable and not its builder, and the class is what chose the explanation
when it was the runnable's method: a user's builder that returns a built-in runnable, a lambda
around a built-in builder, or a built-in name re-registered with ``replace=True`` explain as
they did.

A variant isolated in a worker process (:class:`~onnxparity.variants.worker.IsolatedVariant`)
reports its runnable's lineage when built; the explainer's dotted name is sent to the worker,
which imports it and calls it with the runnable it holds, so the explanation runs next to the
runnable as the build did. An explainer is ``explainer(runnable, feeds, tolerance) -> list``:
lines, and the :class:`~onnxparity.forensics.Divergence` (and
:class:`~onnxparity.forensics.subgraph.Subgraph`) it found.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import Any, cast

import numpy as np

from onnxparity.variants.base import EXPLAIN_WITH, OWN_EXPLAIN, lineage
from onnxparity.variants.worker import IsolatedVariant

#: a built-in runnable's class -> its explainer (``explainer(runnable, feeds, tolerance)``)
EXPLAINERS = {
    "onnxparity.variants.ort:OptimizedRunnable": "onnxparity.forensics.runtime:explain_optimized",
    "onnxparity.variants.ort:GpuRunnable": "onnxparity.forensics.precision:explain_gpu",
    "onnxparity.variants.int8:StaticRunnable": "onnxparity.forensics.precision:explain_static",
    "onnxparity.variants.int8:QuantRunnable": "onnxparity.forensics.precision:explain_quantized",
    "onnxparity.variants.fp16:HalfRunnable": "onnxparity.forensics.precision:explain_half",
    "onnxparity.variants.reference:ReferenceRunnable": "onnxparity.forensics.runtime:explain_reference",
    "onnxparity.variants.rewrite:RewriteRunnable": "onnxparity.forensics.rewrite:explain_rewrite",
}


def explainer(classes: tuple[str, ...]) -> str | None:
    """The ``"module:function"`` that explains a runnable of this lineage, or None."""
    for name in classes:
        if name == OWN_EXPLAIN:
            return EXPLAIN_WITH
        if name in EXPLAINERS:
            return EXPLAINERS[name]
    return None


def explain(runnable: Any, feeds: Mapping[str, np.ndarray], tolerance: Any = None) -> list[Any]:
    """What explains ``runnable``'s result on the failing ``feeds`` (``tolerance``: the item's,
    None under an agreement policy): its explainer's lines and findings, run where the runnable
    lives; nothing when it has none, or when explaining raises (an explanation must never mask
    the verdict). What the diagnosis appends to a failed item's message (its Divergence and
    Subgraph go to the result and the reproducer)."""
    isolated = isinstance(runnable, IsolatedVariant)
    function = explainer(runnable.lineage if isolated else lineage(runnable))
    if function is None:
        return []
    if isolated:
        return cast("list[Any]", runnable.call(function, feeds, tolerance))
    module, _, name = function.partition(":")
    try:
        return list(getattr(importlib.import_module(module), name)(runnable, feeds, tolerance))
    except Exception:
        return []
