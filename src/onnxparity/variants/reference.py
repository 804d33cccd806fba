"""``onnx-reference``: the ONNX specification's own semantics (``onnx.reference.ReferenceEvaluator``),
a conformance oracle independent of ONNX Runtime.

When ``ort-cpu`` and ``onnx-reference`` both differ from the framework, the export is wrong;
when only ``ort-cpu`` does, ONNX Runtime is. The evaluator is pure Python (slow on big graphs),
so this variant draws at most :data:`MAX_EXAMPLES` examples unless the test asks for a number.

Unsupported is a skip, never a parity failure: ops outside the ``ai.onnx``/``ai.onnx.ml``
domains (``com.microsoft`` contrib ops run only on ONNX Runtime), ops the evaluator does not
implement, and ops whose implementation is known to be wrong (measured: ``SVMClassifier``
probabilities 0.126 off while ONNX Runtime matched scikit-learn; ``ZipMap`` fails).
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from typing import Any

import numpy as np

from onnxparity.errors import VariantUnavailable
from onnxparity.graph.containers import EVALUATOR_CANNOT
from onnxparity.graph.files import load_model
from onnxparity.graph.nodes import is_standard_domain, walk_nodes
from onnxparity.variants.base import BuildContext, VariantRunError, variant_info

MAX_EXAMPLES = 10

#: ops the evaluator runs but gets wrong or cannot return in a comparable form.
UNRELIABLE_OPS = {("ai.onnx.ml", "SVMClassifier"), ("ai.onnx.ml", "ZipMap")}

#: the domains the evaluator implements besides the standard one.
_OTHER_DOMAINS = ("ai.onnx.ml",)

_NOT_SUPPORTED = "not supported by the reference evaluator"


def _fixed_ops() -> list[type]:
    """The evaluator's ops replaced where its own implementation is wrong: GatherElements took
    ``np.choose`` (32 choices at most: a 64-wide table, as in every dynamo-exported BERT's
    ``torch.gather``, raised; out-of-range indices wrapped around instead of failing)."""
    from onnx.reference.op_run import OpRun

    class GatherElements(OpRun):
        def _run(self, data: np.ndarray, indices: np.ndarray, axis: int | None = None) -> tuple[np.ndarray]:
            axis = (0 if axis is None else int(axis)) % max(1, data.ndim)
            size, index = data.shape[axis], indices.astype(np.int64)
            if index.size and (index.min() < -size or index.max() >= size):
                raise IndexError(f"GatherElements: an index outside [-{size}, {size - 1}] along axis {axis}")
            index = np.where(index < 0, index + size, index)
            cut = tuple(slice(None) if d == axis else slice(0, n) for d, n in enumerate(index.shape))
            return (np.take_along_axis(data[cut], index, axis=axis),)

    return [GatherElements]


class ReferenceRunnable:
    """``onnx.reference.ReferenceEvaluator`` over one model, outputs in graph order; ``model``:
    the model it evaluates (where it parts from ONNX Runtime on an input, forensics can say:
    :func:`onnxparity.forensics.runtime.explain_reference`)."""

    def __init__(self, model_path: str) -> None:
        from onnx.reference import ReferenceEvaluator

        model = load_model(model_path, external_data=True)
        nodes = [node for node, _ in walk_nodes(model.graph)]
        foreign = sorted(
            {
                f"{n.domain}.{n.op_type}"
                for n in nodes
                if not is_standard_domain(n.domain) and n.domain not in _OTHER_DOMAINS
            }
        )
        if foreign:
            raise VariantUnavailable(
                f"{_NOT_SUPPORTED}: ops outside the standard domains ({', '.join(foreign[:8])}); "
                "they run only on ONNX Runtime"
            )
        if any(p.key == EVALUATOR_CANNOT for p in model.metadata_props):
            raise VariantUnavailable(
                f"{_NOT_SUPPORTED}: the file's optional output, compared in its tensor form (an If "
                "over OptionalHasElement), which the evaluator's If returns wrapped in one more list"
            )
        unreliable = sorted(
            {f"{n.domain}.{n.op_type}" for n in nodes if (n.domain, n.op_type) in UNRELIABLE_OPS}
        )
        if unreliable:
            raise VariantUnavailable(
                f"{_NOT_SUPPORTED}: its {', '.join(unreliable)} implementation is known to disagree "
                "with ONNX Runtime and the framework"
            )
        try:
            self.evaluator = ReferenceEvaluator(model, new_ops=_fixed_ops())
        except Exception as exc:
            raise VariantUnavailable(f"{_NOT_SUPPORTED}: {type(exc).__name__}: {exc}") from exc
        self.output_names = tuple(o.name for o in model.graph.output)
        self.model = model

    def run(self, feeds: Mapping[str, np.ndarray]) -> list[Any]:  # (arrays; a list or None as said below)
        try:
            # NaN/inf are results to compare, not warnings for the user's output.
            with np.errstate(all="ignore"), warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                outputs = self.evaluator.run(None, dict(feeds))
        except NotImplementedError as exc:
            raise VariantRunError(f"{_NOT_SUPPORTED}: {exc}") from exc
        except Exception as exc:
            raise VariantRunError(f"{type(exc).__name__}: {exc}") from exc
        # (a sequence or an absent optional of a graph the check did not convert stays as it is:
        # the CLI's reference over the user's own file; see graph.containers)
        return [o if isinstance(o, list) or o is None else np.asarray(o) for o in outputs]


def build_onnx_reference(context: BuildContext) -> ReferenceRunnable:
    context.check_options(())
    runnable = ReferenceRunnable(context.model_path)
    for feeds in context.sample_feeds(1):  # an op that is only missing at run time: a skip
        try:
            runnable.run(feeds)
        except VariantRunError as exc:
            if _NOT_SUPPORTED in str(exc):
                raise VariantUnavailable(str(exc)) from None
    return runnable


ONNX_REFERENCE = variant_info(
    "onnx-reference",
    build_onnx_reference,
    description="onnx.reference.ReferenceEvaluator: the ONNX spec's semantics, independent of ONNX Runtime",
    max_examples=MAX_EXAMPLES,
)
