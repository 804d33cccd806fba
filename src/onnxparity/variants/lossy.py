"""What the lossy variants share: int8 quantization (dynamic and static QDQ, :mod:`.int8`) and
fp16 conversion (:mod:`.fp16`).

Each converts the exported model with ONNX Runtime's own tools. Converted graphs are where
native crashes live: by default the runner builds and runs these variants in a worker process
of their own (:mod:`.worker`), and a crash names the fix in ``crash_hint`` (:func:`crash_hint`).
Their default policy is an :class:`~onnxparity.spec.Agreement` on cosine and SQNR, not an
elementwise tolerance (see the README's variant table for the numbers and why).
"""

from __future__ import annotations

from typing import Any

from onnxparity.errors import VariantUnavailable
from onnxparity.spec import Agreement

#: what a worker process of these variants imports before it is forked (variants/zygote.py):
#: ONNX Runtime's conversion tools, and sympy through symbolic shape inference (0.44 s alone).
#: :mod:`.int8` and :mod:`.fp16` name it, since the zygote reads it from the builder's module.
WORKER_PRELOAD = (
    "onnxruntime.quantization",
    "onnxruntime.quantization.shape_inference",
    "onnxruntime.tools.symbolic_shape_infer",
    "onnxruntime.transformers.float16",
)

#: default policies (measured on the examples; README "Variants" explains the margins).
INT8_POLICY = Agreement(cosine=0.99, sqnr_db=20.0)
FP16_POLICY = Agreement(cosine=0.9999, sqnr_db=40.0)

#: the loggers the conversion tools write to, kept quiet while they run
QUANT_LOGGERS = ("root", "onnxruntime", "onnx")

_CRASH_HINT = (
    "variant_options={{{name!r}: {{'optimization': 'basic'}}}} uses a lower graph optimization "
    "level; or keep the crashing op in float32 ({extra})"
)


def crash_hint(name: str, extra: str) -> str:
    """The ``crash_hint`` of lossy variant ``name``: a lower optimization level, or ``extra``."""
    return _CRASH_HINT.format(name=name, extra=extra)


#: ops only a quantized graph holds (ONNX Runtime's quantizers write them)
QUANTIZED_OPS = frozenset(
    ("QuantizeLinear", "DequantizeLinear", "DynamicQuantizeLinear", "QLinearConv", "QLinearMatMul",
     "MatMulInteger", "ConvInteger", "QGemm", "QAttention", "DynamicQuantizeMatMul", "MatMulIntegerToFloat")
)


def require_float(model: Any, variant: str) -> None:
    """VariantUnavailable where ``model`` is already quantized: fp16 and int8 convert a float
    model (before: fp16 could not load its float16 DynamicQuantizeLinear, int8-static raised
    KeyError from the quantizer, int8-dynamic 'passed' having quantized nothing new)."""
    found = sorted({n.op_type for n in model.graph.node if n.op_type in QUANTIZED_OPS})
    if found:
        raise VariantUnavailable(
            f"{variant} does not apply: the file is already quantized ({', '.join(found[:6])}), and {variant} "
            "converts a float model; check this file against its float original instead "
            "(op.check(onnx=quantized, reference=...) or the float file's own int8 variants)"
        )
