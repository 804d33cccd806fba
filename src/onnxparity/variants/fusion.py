"""ONNX Runtime's transformer fusion optimizer as variants:
``onnxruntime.transformers.optimizer.optimize_model`` on the export (:mod:`.rewrite`).

- ``ort-transformers``: the fused float32 graph, under the default tolerance.
- ``ort-transformers-fp16``: the fused graph converted to float16 as the optimizer offers it
  (``convert_float_to_float16(keep_io_types=True)``), under fp16's default agreement. A variant
  of its own rather than an option, since its default policy differs.

The model type comes from the source where it says it (a transformers config's
``model_type``, with its heads and hidden size), else from the ``model_type`` option; a model
type the optimizer does not know is an error naming the ones it does. The fusions applied
(fused op types and counts) are recorded in the report (``build.fusions``). Options: any
``FusionOptions`` flag by name (``enable_attention``, ``enable_skip_layer_norm``, ...),
``attention_mask_format`` ("index_end", "index_end_and_start", "raw", "none"), ``num_heads``,
``hidden_size``, ``opt_level``.

Known wrong results: a fused attention whose mask format is not the caller's (the default for
BERT, "index_end", turns the mask into each row's end: a left-padded mask is read wrongly), a
fusion whose epsilon differs, and a float16 fused graph that overflows. Forensics names the
fused node that parts from the export and confirms the fusion by running the optimizer again
with it off (:func:`fused_without`).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping
from typing import Any, cast

from onnxparity.environment import quiet, version, working_directory
from onnxparity.errors import VariantBuildError
from onnxparity.variants.base import BuildContext, variant_info
from onnxparity.variants.lossy import FP16_POLICY, QUANT_LOGGERS, crash_hint
from onnxparity.variants.lossy import WORKER_PRELOAD as WORKER_PRELOAD  # the zygote reads it here
from onnxparity.variants.ort import OPTIMIZATION_LEVELS
from onnxparity.variants.rewrite import STEP_LOGGERS, RewriteRunnable, run_step

#: a transformers config's ``model_type`` -> the optimizer's, where the names differ
MODEL_TYPES = {
    "roberta": "bert",
    "distilbert": "bert",
    "albert": "bert",
    "electra": "bert",
    "xlm-roberta": "bert",
    "camembert": "bert",
    "mpnet": "bert",
    "deit": "vit",
    "mt5": "t5",
    "mbart": "bart",
}

#: ``attention_mask_format`` option -> ``AttentionMaskFormat`` attribute
MASK_FORMATS = {
    "index_end": "MaskIndexEnd",
    "index_end_and_start": "MaskIndexEndAndStart",
    "raw": "AttentionMask",
    "none": "NoMask",
}

#: a fused op type -> the ``FusionOptions`` flags that make it (tried in order when confirming)
FUSION_FLAGS = {
    "Attention": ("enable_attention",),
    "MultiHeadAttention": ("enable_attention",),
    "GroupQueryAttention": ("enable_attention",),
    "PackedAttention": ("enable_attention",),
    "SkipLayerNormalization": ("enable_skip_layer_norm", "enable_bias_skip_layer_norm"),
    "SkipSimplifiedLayerNormalization": ("enable_skip_layer_norm",),
    "LayerNormalization": ("enable_layer_norm",),
    "SimplifiedLayerNormalization": ("enable_layer_norm",),
    "EmbedLayerNormalization": ("enable_embed_layer_norm",),
    "BiasGelu": ("enable_bias_gelu",),
    "Gelu": ("enable_gelu",),
    "FastGelu": ("enable_gelu_approximation", "enable_gelu", "enable_bias_gelu"),
    "GemmFastGelu": ("enable_gemm_fast_gelu",),
    "RotaryEmbedding": ("enable_rotary_embeddings",),
}

_SETTINGS = ("model_type", "num_heads", "hidden_size", "opt_level", "attention_mask_format")


def _optimizer() -> tuple[Any, Any, Any]:
    with quiet(*STEP_LOGGERS):
        from onnxruntime.transformers import optimizer
        from onnxruntime.transformers.fusion_options import AttentionMaskFormat, FusionOptions
    return optimizer, FusionOptions, AttentionMaskFormat


def settings(context: BuildContext) -> dict[str, Any]:
    """The optimizer's settings: the model type (declared, else the source's), heads, hidden
    size, level, mask format and fusion flags, checked (VariantBuildError naming the fix)."""
    optimizer, fusion_options, _ = _optimizer()
    if "fp16" in context.options:
        raise VariantBuildError(
            f"variant_options[{context.name!r}]['fp16']: the fused graph in float16 is the variant "
            "'ort-transformers-fp16' (it has float16's default policy); name it in variants=[...]"
        )
    flags = {k for k, v in vars(fusion_options("bert")).items() if isinstance(v, bool)}
    context.check_options({*_SETTINGS, *flags, "optimization"})
    source = dict(context.source)
    declared = context.options.get("model_type")
    model_type = declared or MODEL_TYPES.get(source.get("model_type", ""), source.get("model_type"))
    known = sorted(optimizer.MODEL_TYPES)
    if not model_type:
        raise VariantBuildError(
            f"{context.name} needs the model's type and the source does not say it (no transformers config): "
            f"declare variant_options={{{context.name!r}: {{'model_type': 'bert'}}}} (one of {', '.join(known)})"
        )
    if model_type not in optimizer.MODEL_TYPES:
        said = "declared" if declared else f"the transformers config's model_type {source.get('model_type')!r}"
        raise VariantBuildError(
            f"ONNX Runtime's fusion optimizer has no model type {model_type!r} ({said}); it knows "
            f"{', '.join(known)}: declare the nearest as variant_options={{{context.name!r}: {{'model_type': ...}}}}"
        )
    mask = context.option("attention_mask_format", None, (None, *MASK_FORMATS))
    chosen = {
        "model_type": model_type,
        "num_heads": int(context.option("num_heads", source.get("num_heads", 0), int)),
        "hidden_size": int(context.option("hidden_size", source.get("hidden_size", 0), int)),
        "opt_level": context.option("opt_level", None, (None, 0, 1, 2, 99)),
        "attention_mask_format": mask,
        "flags": {k: context.option(k, None, bool) for k in sorted(flags & set(context.options))},
    }
    return chosen


def fused(path: str, chosen: Mapping[str, Any], off: tuple[str, ...] = ()) -> tuple[Any, dict[str, int]]:
    """The model at ``path`` (the export, read by the optimizer itself with its external data)
    through the fusion optimizer with ``chosen`` settings (and the flags ``off`` turned off);
    (the fused ModelProto, fused op type -> count)."""
    optimizer, fusion_options, mask_formats = _optimizer()
    options = fusion_options(chosen["model_type"])
    for flag, value in {**chosen.get("flags", {}), **dict.fromkeys(off, False)}.items():
        setattr(options, flag, value)
    if chosen.get("attention_mask_format"):
        options.attention_mask_format = getattr(mask_formats, MASK_FORMATS[chosen["attention_mask_format"]])
    with quiet(*STEP_LOGGERS, *QUANT_LOGGERS, native=True):
        result = optimizer.optimize_model(
            path,
            model_type=chosen["model_type"],
            num_heads=chosen["num_heads"],
            hidden_size=chosen["hidden_size"],
            optimization_options=options,
            opt_level=chosen.get("opt_level"),
        )
        counts = {k: int(v) for k, v in result.get_fused_operator_statistics().items() if v}
    return result.model, counts


def halved(model: Any) -> Any:
    """``model`` in float16 as the fusion optimizer offers it
    (``OnnxModel.convert_float_to_float16(keep_io_types=True)``: its own op block list)."""
    with quiet(*STEP_LOGGERS, *QUANT_LOGGERS):
        from onnxruntime.transformers.onnx_model import OnnxModel

        wrapped = OnnxModel(model)
        wrapped.convert_float_to_float16(keep_io_types=True)
    return wrapped.model


def fused_without(
    runnable: RewriteRunnable,
    flags: tuple[str, ...],
    chosen_change: Mapping[str, Any] | Iterable[tuple[str, Any]] = (),
) -> Any:
    """The runnable's fused float32 graph made again with ``flags`` off (and settings changed by
    ``chosen_change``): what forensics runs to confirm which fusion made a difference."""
    settings_ = {**cast("dict[str, Any]", runnable.fusion), **dict(chosen_change)}  # (a fusion's runnable)
    with working_directory(os.path.dirname(runnable.model_path)):  # where the optimizer's files go
        return fused(runnable.export_path, settings_, flags)[0]


def _fusion_facts(counts_holder: dict[str, int]) -> Callable[[Any, Any], dict[str, Any]]:
    def extra(export: Any, rewritten: Any) -> dict[str, Any]:
        return {"fusions": dict(counts_holder)}

    return extra


def _build(context: BuildContext, fp16: bool) -> RewriteRunnable:
    chosen = settings(context)
    # ONNX Runtime 1.32's CPU session segfaulted at level "all" on a fused float16 BERT-like
    # graph (measured; "extended" and below load and run it): float16 runs at "extended"
    optimization = context.option("optimization", "extended" if fp16 else "all", OPTIMIZATION_LEVELS)
    parts = {"onnxruntime": version("onnxruntime"), **chosen}
    counts: dict[str, int] = {}

    def fuse(export: Any) -> Any:  # (the export as loaded for the interface check; the optimizer reads its file)
        fused_model, found = fused(context.model_path, chosen)
        counts.update(found)
        return fused_model

    what = f"onnxruntime {version('onnxruntime')} optimize_model, model_type {chosen['model_type']!r}"
    float_path, facts = run_step(
        context, "ort-transformers", fuse, parts=parts, what=what, extra=_fusion_facts(counts)
    )
    stages: list[tuple[str, str]] = []
    path = float_path
    if fp16:
        stages.append(("the fusions (float32)", float_path))
        path, half_facts = run_step(
            context,
            "ort-transformers-fp16",
            halved,
            parts=parts,
            what=what + ", then float16 (keep_io_types=True)",
            target=os.path.join(context.workdir, "fused-fp16.onnx"),
            source=float_path,
        )
        facts = {**facts, "step": "ort-transformers-fp16", "float16_nodes": half_facts["nodes"]}
    return RewriteRunnable(
        path,
        export_path=context.model_path,
        step="ort-transformers-fp16" if fp16 else "ort-transformers",
        facts=facts,
        stages=stages,
        fusion=chosen,
        policy=FP16_POLICY if fp16 else None,
        threads=context.threads,
        optimization=optimization,
    )


def build_ort_transformers(context: BuildContext) -> RewriteRunnable:
    return _build(context, fp16=False)


def build_ort_transformers_fp16(context: BuildContext) -> RewriteRunnable:
    return _build(context, fp16=True)


ORT_TRANSFORMERS = variant_info(
    "ort-transformers",
    build_ort_transformers,
    description="ONNX Runtime's transformer fusion optimizer (optimize_model; model type from the "
    "transformers config or variant_options), float32",
)
ORT_TRANSFORMERS_FP16 = variant_info(
    "ort-transformers-fp16",
    build_ort_transformers_fp16,
    description=f"the fused graph in float16 (keep_io_types=True); default {FP16_POLICY.describe()}",
    default_policy=FP16_POLICY,
    crash_hint=crash_hint("ort-transformers-fp16", "a fusion turned off: variant option enable_attention=False, ..."),
    rounds_inputs="float16",
)
