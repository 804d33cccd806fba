"""ONNX Runtime variants: one InferenceSession per built variant.

- ``ort-cpu``: CPU execution provider, all graph optimizations (what users ship).
- ``ort-cpu-noopt``: CPU, ``ORT_DISABLE_ALL`` — when ``ort-cpu`` fails and this passes, the
  bug is in ONNX Runtime's graph optimizer, not in the exporter.
- ``ort-gpu``: CUDA execution provider. ``use_tf32`` defaults to 0: with TF32 (the CUDA EP's
  own default) matmuls and convolutions round inputs to 10 mantissa bits, and on an H100 a
  small CNN then differed from the CPU by ~1e-4 — beyond the default tolerance, hiding real
  bugs of that size. With ``use_tf32=0`` it measured 2e-8–7e-7, like the CPU. ONNX Runtime
  silently falls back to the CPU when the CUDA libraries do not load: the session's providers
  are checked, and a fallback is "unavailable" like a missing EP. So is a CUDA session whose
  first run fails because a library (cuDNN) did not load: one sample input runs at build.

ONNX Runtime writes its own coloured error lines to stderr when a node fails; sessions here log
at FATAL only, and the exception's message goes into the diagnosis instead.

Each variant is a :class:`~onnxparity.variants.base.VariantInfo` here (:data:`ORT_CPU`,
:data:`ORT_CPU_NOOPT`, :data:`ORT_GPU`) that the registry's table names; what a failing input
of ``ort-cpu`` or ``ort-gpu`` means, forensics says from the runnable
(:mod:`onnxparity.forensics.by_variant`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, cast

import numpy as np

from onnxparity.errors import VariantBuildError, VariantUnavailable
from onnxparity.variants.base import BuildContext, VariantRunError, variant_info
from onnxparity.variants.narrow import NARROW, narrow_values, run_typed

_QUIET = 4  # ORT severity: 0 verbose ... 3 error, 4 fatal

#: graph optimization levels by the name variant options use.
OPTIMIZATION_LEVELS = ("all", "extended", "basic", "none")

GPU_FIX = (
    "install ONNX Runtime with CUDA in place of the CPU build "
    "(pip uninstall -y onnxruntime && pip install 'onnxparity[gpu]') on a machine with an NVIDIA GPU "
    "and CUDA libraries"
)


def session_options(threads: int = 1, optimization: str = "all") -> Any:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = _QUIET
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    # No busy-waiting threads next to a framework computing the reference.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.graph_optimization_level = {
        "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
        "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
        "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
        "none": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
    }[optimization]
    return options


class OrtRunnable:
    """An ONNX Runtime session over one model file, with the given providers."""

    def __init__(
        self,
        model_path: str,
        providers: Sequence[str | tuple[str, Mapping[str, str]]],
        *,
        threads: int = 1,
        optimization: str = "all",
        binding: str | None = None,
    ) -> None:
        """``binding``: run through IO binding with outputs left on this device ("cuda",
        "cpu"): inputs are copied to it once per run, outputs allocated there and copied back
        once (None: plain ``run``)."""
        import onnxruntime as ort

        try:
            self.session = ort.InferenceSession(
                model_path, session_options(threads, optimization), providers=list(providers)
            )
        except Exception as exc:
            raise VariantBuildError(f"ONNX Runtime could not load the model: {clean_message(exc)}") from exc
        self.narrow_inputs = narrow_values(self.session.get_inputs())
        self.narrow_outputs = narrow_values(self.session.get_outputs())
        # narrow types (bfloat16, float8, float4, int4, int2) cross as typed OrtValues (:mod:`.narrow`):
        # onnxruntime 1.32's plain API says "Numpy_type 256 can't be converted to MLDataType" for
        # them; IO binding takes numpy arrays only
        unfeedable = frozenset(NARROW) if binding is not None else frozenset()
        unfed = [
            f"{kind} {v.name!r} is a {v.type}"
            for kind, values in (("input", self.session.get_inputs()), ("output", self.session.get_outputs()))
            for v in values
            if v.type in unfeedable
        ]
        if unfed:
            raise VariantUnavailable(
                f"ONNX Runtime's Python API exchanges no {', '.join(sorted({u.rsplit(' ', 1)[1] for u in unfed}))} "
                f"arrays with numpy ({'; '.join(unfed[:3])}), so this variant cannot run the model here; the "
                "onnx-reference variant checks the file against the ONNX specification"
            )
        self.model_path = model_path
        self.run_options = ort.RunOptions()
        self.run_options.log_severity_level = _QUIET
        self.output_names = tuple(o.name for o in self.session.get_outputs())
        self.providers = tuple(self.session.get_providers())
        self.binding = binding

    def run(self, feeds: Mapping[str, np.ndarray]) -> list[np.ndarray]:
        try:
            if self.binding is not None:
                return self._run_bound(feeds)
            if self.narrow_inputs or self.narrow_outputs:
                return run_typed(
                    self.session, feeds, self.output_names, self.narrow_inputs, self.narrow_outputs, self.run_options
                )
            return cast("list[np.ndarray]", self.session.run(None, dict(feeds), self.run_options))
        except Exception as exc:
            raise VariantRunError(clean_message(exc)) from exc

    def _run_bound(self, feeds: Mapping[str, np.ndarray]) -> list[np.ndarray]:
        """One run through IO binding: each input bound from host memory (copied to the
        device once), each output allocated on the device, all copied back at the end."""
        bound = self.session.io_binding()
        for name, value in feeds.items():
            bound.bind_cpu_input(name, np.require(value, requirements="C"))  # 0-d stays 0-d
        for name in self.output_names:
            bound.bind_output(name, self.binding)
        self.session.run_with_iobinding(bound, self.run_options)
        return list(bound.copy_outputs_to_cpu())


def clean_message(exc: BaseException) -> str:
    """ONNX Runtime's message without its bracketed prefix noise, on one line per cause."""
    text = str(exc).strip()
    return text.replace("[ONNXRuntimeError] : ", "").strip()


class OptimizedRunnable(OrtRunnable):
    """A CPU session with all graph optimizations: where the optimizer changed a failing
    input's result, forensics can say (:func:`onnxparity.forensics.runtime.explain_optimized`)."""


def build_ort_cpu(context: BuildContext) -> OrtRunnable:
    context.check_options(())
    return OptimizedRunnable(context.model_path, ["CPUExecutionProvider"], threads=context.threads)


def build_ort_cpu_noopt(context: BuildContext) -> OrtRunnable:
    context.check_options(())
    return OrtRunnable(
        context.model_path, ["CPUExecutionProvider"], threads=context.threads, optimization="none"
    )


#: run errors that mean the CUDA libraries did not load, not that the model is wrong. ONNX
#: Runtime creates a CUDA session without cuDNN and fails only at the first node that needs it
#: (seen on an H200 with onnxruntime-gpu 1.31.1 and libcudnn.so hidden: "cuDNN is unavailable or
#: disabled for CUDA Execution Provider: dlopen failed for libcudnn.so ...").
CUDA_LIBRARY_ERRORS = (
    "is unavailable or disabled for CUDA Execution Provider",
    "dlopen failed for",
    "cannot open shared object file",
    "CUDNN_STATUS_NOT_INITIALIZED",
    "CUBLAS_STATUS_NOT_INITIALIZED",
    "no kernel image is available for execution on the device",
)


def cuda_library_error(message: str) -> str | None:
    """The line of an ONNX Runtime run error that says a CUDA library did not load, or None."""
    for line in message.splitlines():
        if any(signature in line for signature in CUDA_LIBRARY_ERRORS):
            return line.rsplit(" : ", 1)[-1].strip()[:300]  # after ONNX Runtime's "9 : NOT_IMPLEMENTED : "
    return None


class GpuRunnable(OrtRunnable):
    """A CUDA session; forensics can say where it first parts from ONNX Runtime's CPU on an
    input (:func:`onnxparity.forensics.precision.explain_gpu`)."""

    def __init__(
        self, model_path: str, providers: Sequence[str | tuple[str, Mapping[str, str]]], **options: Any
    ) -> None:
        super().__init__(model_path, providers, **options)
        self.cuda_providers = list(providers)  # as asked, options included (``providers``: as run)


def build_ort_gpu(context: BuildContext) -> OrtRunnable:
    """CUDA EP. Options: ``device_id`` (0), ``use_tf32`` (0), ``optimization`` ("all"),
    ``io_binding`` (False: inputs copied to the GPU once per run and outputs bound there; an
    H100 ran a batch-8 CNN in 0.088 ms with it against 0.152 ms without), and any other CUDA
    provider option by its ONNX Runtime name (e.g. ``cudnn_conv_algo_search``)."""
    import onnxruntime as ort

    available = ort.get_available_providers()
    if "CUDAExecutionProvider" not in available:
        raise VariantUnavailable(
            f"ONNX Runtime {ort.__version__} here has no CUDA execution provider "
            f"(available: {', '.join(available)}); to run ort-gpu, {GPU_FIX}"
        )
    options = dict(context.options)
    optimization = context.option("optimization", "all", OPTIMIZATION_LEVELS)
    io_binding = context.option("io_binding", False, bool)
    options.pop("optimization", None)
    options.pop("io_binding", None)
    cuda = {"device_id": 0, "use_tf32": 0, **options}
    cuda = {k: str(int(v)) if isinstance(v, bool) else str(v) for k, v in cuda.items()}

    providers: list[str | tuple[str, Mapping[str, str]]] = [("CUDAExecutionProvider", cuda), "CPUExecutionProvider"]
    runnable = GpuRunnable(
        context.model_path,
        providers,
        threads=context.threads,
        optimization=optimization,
        binding="cuda" if io_binding else None,
    )
    if not runnable.providers or runnable.providers[0] != "CUDAExecutionProvider":
        raise VariantUnavailable(
            "ONNX Runtime fell back to the CPU: the CUDA execution provider did not load (no GPU "
            f"visible, or CUDA/cuDNN libraries missing; session providers: {', '.join(runnable.providers)}); "
            f"to run ort-gpu, {GPU_FIX}"
        )
    for feeds in context.sample_feeds(1):  # a library that loads only at the first run
        try:
            runnable.run(feeds)
        except VariantRunError as exc:
            missing = cuda_library_error(str(exc))
            if missing:
                raise VariantUnavailable(
                    f"ONNX Runtime {ort.__version__} runs on CUDA here, but a CUDA library it needs did not "
                    f"load ({missing}); to run ort-gpu, install the CUDA and cuDNN versions this ONNX Runtime "
                    "was built for where the loader finds them (the system's CUDA, or the nvidia-* pip "
                    "packages with their lib folders on LD_LIBRARY_PATH)"
                ) from None
    return runnable


ORT_CPU = variant_info(
    "ort-cpu",
    build_ort_cpu,
    description="ONNX Runtime, CPU execution provider, all graph optimizations",
)
ORT_CPU_NOOPT = variant_info(
    "ort-cpu-noopt",
    build_ort_cpu_noopt,
    description="ONNX Runtime, CPU, graph optimizations disabled: separates exporter bugs from optimizer bugs",
)
ORT_GPU = variant_info(
    "ort-gpu",
    build_ort_gpu,
    description="ONNX Runtime, CUDA execution provider (use_tf32=0 unless set); skipped without a GPU",
    requires_gpu=True,
)
