"""ONNX Runtime variants: one InferenceSession per built variant.

ONNX Runtime writes its own coloured error lines to stderr when a node fails; sessions here log
at FATAL only, and the exception's message goes into the diagnosis instead.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from ..errors import VariantBuildError
from . import BuildContext, VariantRunError, register_variant

_QUIET = 4  # ORT severity: 0 verbose ... 3 error, 4 fatal


class OrtRunnable:
    """An ONNX Runtime session over one model file, with the given providers."""

    def __init__(
        self,
        model_path: str,
        providers: Sequence,
        *,
        threads: int = 1,
        optimization: str = "all",
    ) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.log_severity_level = _QUIET
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        # No busy-waiting threads next to a framework computing the reference.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        options.graph_optimization_level = {
            "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
            "none": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
        }[optimization]
        try:
            self.session = ort.InferenceSession(model_path, options, providers=list(providers))
        except Exception as exc:
            raise VariantBuildError(f"ONNX Runtime could not load the model: {clean_message(exc)}") from exc
        self.run_options = ort.RunOptions()
        self.run_options.log_severity_level = _QUIET
        self.output_names = tuple(o.name for o in self.session.get_outputs())
        self.providers = tuple(self.session.get_providers())

    def run(self, feeds: Mapping[str, np.ndarray]) -> list[np.ndarray]:
        try:
            return self.session.run(None, dict(feeds), self.run_options)
        except Exception as exc:
            raise VariantRunError(clean_message(exc)) from exc


def clean_message(exc: BaseException) -> str:
    """ONNX Runtime's message without its bracketed prefix noise, on one line per cause."""
    text = str(exc).strip()
    return text.replace("[ONNXRuntimeError] : ", "").strip()


def build_ort_cpu(context: BuildContext) -> OrtRunnable:
    return OrtRunnable(context.model_path, ["CPUExecutionProvider"], threads=context.threads)


# replace=True: this module may be imported again (importlib.reload, pytester's module
# snapshots) and must then re-register its builtins rather than fail.
register_variant(
    "ort-cpu",
    build_ort_cpu,
    description="ONNX Runtime, CPU execution provider, default graph optimizations",
    replace=True,
)
