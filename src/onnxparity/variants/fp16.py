"""``fp16``: ONNX Runtime's ``convert_float_to_float16(keep_io_types=True)`` on the exported
model: float32 in and out, float16 inside (see :mod:`.lossy` for what it shares with int8:
default policy, worker preload, crash hint).

Its runnable keeps the float32 model, the op types kept in float32 and the policy, so that
forensics can name the first node whose float16 output diverges on a failing input and verify
the ``op_block_list`` that fixes it (:func:`onnxparity.forensics.precision.explain_half`).
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from onnxparity.environment import quiet, working_directory
from onnxparity.errors import VariantBuildError, VariantUnavailable
from onnxparity.graph.files import load_model, save_model
from onnxparity.variants.base import BuildContext, variant_info
from onnxparity.variants.lossy import FP16_POLICY, QUANT_LOGGERS, crash_hint, require_float
from onnxparity.variants.lossy import WORKER_PRELOAD as WORKER_PRELOAD  # the zygote reads it here
from onnxparity.variants.ort import OPTIMIZATION_LEVELS, OrtRunnable

if TYPE_CHECKING:
    from onnxparity.spec import Policy


def convert_fp16(model: Any, blocked: Iterable[str]) -> Any:
    """A copy of ``model`` in float16 inside, float32 in and out (ONNX Runtime's converter, which
    edits its argument), keeping in float32 its default block list, every op outside the
    standard domain, and ``blocked``."""
    import onnx
    from onnxruntime.transformers.float16 import DEFAULT_OP_BLOCK_LIST, convert_float_to_float16

    from onnxparity.graph.nodes import is_standard_domain

    copy = onnx.ModelProto()
    copy.CopyFrom(model)
    foreign = {n.op_type for n in model.graph.node if not is_standard_domain(n.domain)}
    return convert_float_to_float16(
        copy, keep_io_types=True, op_block_list=sorted(set(DEFAULT_OP_BLOCK_LIST) | foreign | set(blocked))
    )


class HalfRunnable(OrtRunnable):
    """An fp16 session, with what forensics needs to say where the conversion of
    ``float_path`` (with ``blocked`` kept in float32) first goes wrong on an input, judged by
    ``policy``."""

    def __init__(
        self, path: str, *, float_path: str, blocked: Iterable[str], policy: Policy, **options: Any
    ) -> None:
        super().__init__(path, ["CPUExecutionProvider"], **options)
        self.float_path, self.blocked, self.policy = float_path, list(blocked), policy


def build_fp16(context: BuildContext) -> OrtRunnable:
    """Options: ``op_block_list`` (op types kept in float32, added to ONNX Runtime's default
    list and to every op outside the standard domain — ai.onnx.ml ops have no float16
    kernels), ``optimization`` ("all")."""
    import onnx

    context.check_options({"op_block_list", "optimization"})
    blocked = context.option("op_block_list", (), (list, tuple))
    optimization = context.option("optimization", "all", OPTIMIZATION_LEVELS)
    model = load_model(context.model_path, external_data=True)
    require_float(model, "fp16")
    machine_learning = sorted({n.op_type for n in model.graph.node if n.domain == "ai.onnx.ml"})
    if machine_learning:
        raise VariantUnavailable(
            f"fp16 does not apply to models with ai.onnx.ml operators ({', '.join(machine_learning[:6])}): "
            "they have no float16 kernels, and converting the standard operators around them (as the "
            "converter does) tests nothing a float16 deployment runs; drop fp16 from this model's variants"
        )
    target = os.path.join(context.workdir, "fp16.onnx")

    def convert() -> None:
        try:
            with quiet(*QUANT_LOGGERS), working_directory(context.workdir):
                converted = convert_fp16(model, blocked)
        except Exception as exc:
            raise VariantBuildError(f"fp16 conversion failed: {type(exc).__name__}: {exc}") from exc
        halves = {t.name for t in converted.graph.initializer if t.data_type == onnx.TensorProto.FLOAT16} | {
            v.name
            for v in converted.graph.value_info
            if v.type.tensor_type.elem_type == onnx.TensorProto.FLOAT16
        }
        # Casts alone (around the inputs and outputs, kept float32) convert nothing.
        computing = [
            n for n in converted.graph.node if n.op_type != "Cast" and halves & {*n.input, *n.output}
        ]
        if not computing:
            raise VariantUnavailable(
                "nothing was converted to float16 (no float tensors outside the op block list; ops: "
                f"{', '.join(sorted({n.op_type for n in model.graph.node})[:12])}); drop fp16 from this "
                "model's variants"
            )
        save_model(converted, target)

    context.stored("convert_float_to_float16", {}, [target], convert)
    return HalfRunnable(
        target,
        float_path=context.model_path,
        blocked=blocked,
        policy=FP16_POLICY,
        threads=context.threads,
        optimization=optimization,
    )


FP16 = variant_info(
    "fp16",
    build_fp16,
    description=f"float16 inside, float32 inputs/outputs; default {FP16_POLICY.describe()}",
    default_policy=FP16_POLICY,
    crash_hint=crash_hint("fp16", "variant option op_block_list=['LSTM', ...]"),
    rounds_inputs="float16",
)
