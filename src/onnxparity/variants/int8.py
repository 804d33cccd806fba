"""int8 variants: ONNX Runtime's quantizers on the exported model (see :mod:`.lossy` for what
they share with fp16: default policy, worker preload, crash hint).

- ``int8-dynamic``: ``quantize_dynamic`` (int8 weights, activations quantized at run time).
  A model with nothing to quantize is reported as such, not as a meaningless pass.
- ``int8-static``: ``quant_pre_process`` then ``quantize_static`` in QDQ format, calibrated on
  inputs drawn from the same declared space the checker searches (or the user's
  ``calibration=`` feeds). Its runnable keeps the calibrated range of each quantized tensor, so
  that forensics can name the tensors a failing input saturated.

Each runnable keeps what forensics needs to explain a failing input
(:func:`onnxparity.forensics.precision.explain_quantized`): the float model, the nodes kept in
float, the policy, and ``rebuild(nodes)``, the quantization redone excluding more nodes.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from onnxparity.environment import quiet, working_directory
from onnxparity.errors import InvalidSpec, VariantBuildError, VariantUnavailable
from onnxparity.graph.files import load_model, save_model
from onnxparity.graph.nodes import is_standard_domain
from onnxparity.persist import options_digest
from onnxparity.variants.base import BuildContext, variant_info
from onnxparity.variants.lossy import INT8_POLICY, QUANT_LOGGERS, crash_hint, require_float
from onnxparity.variants.lossy import WORKER_PRELOAD as WORKER_PRELOAD  # the zygote reads it here
from onnxparity.variants.ort import OPTIMIZATION_LEVELS, OrtRunnable, clean_message

if TYPE_CHECKING:
    from onnxparity.spec import Policy

#: calibration inputs drawn by default for int8-static.
CALIBRATION_SAMPLES = 32

CALIBRATION_METHODS = ("minmax", "entropy", "percentile")

#: node types that show a model was actually quantized.
_QUANTIZED_OPS = {
    "DynamicQuantizeLinear",
    "MatMulInteger",
    "ConvInteger",
    "QuantizeLinear",
    "DequantizeLinear",
    "DynamicQuantizeMatMul",
    "MatMulIntegerToFloat",
    "QGemm",
    "QAttention",
    "DynamicQuantizeLSTM",
}


def self_contained(model_path: str, workdir: str) -> str:
    """A copy of the model with its weights inside the file (quantization tools mishandle
    external data), in ``workdir``."""
    target = os.path.join(os.path.abspath(workdir), "float.onnx")
    return save_model(load_model(model_path, external_data=True), target)


def quantized_ops(model_path: str) -> dict[str, int]:
    """Counts of the quantization node types in a model."""
    counts: dict[str, int] = {}
    for node in load_model(model_path).graph.node:
        if node.op_type in _QUANTIZED_OPS or node.op_type.startswith("QLinear"):
            counts[node.op_type] = counts.get(node.op_type, 0) + 1
    return counts


def infinite_scales(quantized_path: str, float_path: str) -> list[str]:
    """The tensors whose QDQ scale is not finite in a quantized model, each with the op that
    computes it in the float model (``'l' (Log '/log')``)."""
    from onnx import numpy_helper

    producers = {out: n for n in load_model(float_path).graph.node for out in n.output}
    found = []
    for tensor in load_model(quantized_path, external_data=True).graph.initializer:
        if not tensor.name.endswith("_scale"):
            continue
        values = numpy_helper.to_array(tensor)
        if values.dtype.kind == "f" and not np.all(np.isfinite(values)):
            name = tensor.name[: -len("_scale")]
            node = producers.get(name)
            where = (
                ""
                if node is None
                else f" ({node.op_type} {node.name!r})"
                if node.name
                else f" ({node.op_type})"
            )
            found.append(f"{name!r}{where}")
    return found


def require_standard_ops(model_path: str, variant: str) -> None:
    """VariantUnavailable when no node is in the standard ``ai.onnx`` domain: ONNX Runtime's
    quantizers only handle those (a tree ensemble is all ``ai.onnx.ml``)."""
    model = load_model(model_path)
    require_float(model, variant)
    nodes = model.graph.node
    if not any(is_standard_domain(n.domain) for n in nodes):
        raise VariantUnavailable(
            f"nothing to quantize: every op of this model is outside the standard ONNX domain (its ops: "
            f"{_op_types(model_path)}), and ONNX Runtime quantizes standard ops only; drop {variant} "
            "from this model's variants"
        )


def _op_types(model_path: str) -> str:
    ops = sorted({n.op_type for n in load_model(model_path).graph.node})
    return ", ".join(ops[:12]) + (", ..." if len(ops) > 12 else "")


class QuantRunnable(OrtRunnable):
    """An int8 session, with what forensics needs to say on an input which layer first falls
    below ``policy`` and which ``nodes_to_exclude`` fix it (``rebuild(nodes) -> model``: the
    quantization redone)."""

    def __init__(
        self,
        path: str,
        *,
        float_path: str,
        rebuild: Callable[[list[str]], Any],
        excluded: Iterable[str],
        policy: Policy,
        variant: str,
        **options: Any,
    ) -> None:
        super().__init__(path, ["CPUExecutionProvider"], **options)
        self.float_path, self.rebuild, self.excluded = float_path, rebuild, list(excluded)
        self.policy, self.variant = policy, variant


class StaticRunnable(QuantRunnable):
    """An int8-static session that also keeps each quantized tensor's calibrated range
    (``ranges``: tensor name -> (low, high), the float values QuantizeLinear holds without
    clipping) and where the calibration data came from (``origin``), so that forensics can
    name the tensors an input saturated."""

    def __init__(self, path: str, *, ranges: dict[str, tuple[float, float]], origin: str, **options: Any) -> None:
        super().__init__(path, **options)
        self.ranges, self.origin = ranges, origin


# -- int8-dynamic ----------------------------------------------------------------------------
def build_int8_dynamic(context: BuildContext) -> QuantRunnable:
    """Options: ``per_channel`` (False), ``reduce_range`` (False), ``op_types`` (all that
    quantize_dynamic supports), ``nodes_to_exclude`` (node names kept in float),
    ``optimization`` ("all")."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    context.check_options({"per_channel", "reduce_range", "op_types", "nodes_to_exclude", "optimization"})
    per_channel = context.option("per_channel", False, bool)
    reduce_range = context.option("reduce_range", False, bool)
    op_types = context.option("op_types", None)
    excluded = list(context.option("nodes_to_exclude", (), (list, tuple)))
    optimization = context.option("optimization", "all", OPTIMIZATION_LEVELS)
    source = self_contained(context.model_path, context.workdir)
    require_standard_ops(source, "int8-dynamic")

    def quantize(nodes: list[str], target: str) -> str:
        with quiet(*QUANT_LOGGERS), working_directory(context.workdir):
            quantize_dynamic(
                source,
                target,
                per_channel=per_channel,
                reduce_range=reduce_range,
                weight_type=QuantType.QInt8,
                op_types_to_quantize=list(op_types) if op_types else None,
                nodes_to_exclude=list(nodes),
            )
        return target

    target = os.path.join(context.workdir, "int8-dynamic.onnx")
    try:
        context.stored("quantize_dynamic", {}, [target], lambda: quantize(excluded, target))
    except Exception as exc:
        raise VariantBuildError(f"quantize_dynamic failed: {type(exc).__name__}: {exc}") from exc
    if not quantized_ops(target):
        raise VariantUnavailable(
            "nothing was quantized: quantize_dynamic found no weights it quantizes (MatMul, Gemm, "
            f"Conv, Gather, LSTM, Attention) in this model (its ops: {_op_types(source)}); the "
            "int8-dynamic model equals the float one, so checking it proves nothing — drop "
            "int8-dynamic from this model's variants"
        )
    retry = os.path.join(context.workdir, "int8-dynamic-excluding.onnx")
    return QuantRunnable(
        target,
        float_path=source,
        rebuild=lambda nodes: load_model(quantize(nodes, retry), external_data=True),
        excluded=excluded,
        policy=INT8_POLICY,
        variant="int8-dynamic",
        threads=context.threads,
        optimization=optimization,
    )


# -- int8-static -----------------------------------------------------------------------------
def _reader(feeds: list[dict[str, np.ndarray]]) -> Any:
    """A CalibrationDataReader over a list of feeds (ONNX Runtime is imported only here)."""
    from onnxruntime.quantization import CalibrationDataReader

    class Reader(CalibrationDataReader):  # type: ignore[misc]  # (onnxruntime is untyped)
        def __init__(self) -> None:
            self._feeds = iter(feeds)

        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(self._feeds, None)

    return Reader()


def _calibration_feeds(
    context: BuildContext, input_names: list[str], same_shape: bool = False
) -> tuple[list[dict[str, np.ndarray]], str]:
    """The calibration feeds and where they came from. ``same_shape``: ONNX Runtime's histogram
    calibrators (entropy, percentile) stack every feed's tensors, so the feeds must share one
    shape — drawn ones then take every dim at its largest value."""
    given = context.options.get("calibration")
    if given is None:
        samples = context.option("samples", CALIBRATION_SAMPLES, int)
        if samples < 1:
            raise InvalidSpec("variant_options['int8-static']['samples'] must be a positive integer")
        feeds = context.sample_feeds(samples, same_shape) if same_shape else context.sample_feeds(samples)
        where = " at the largest dims" if same_shape else ""
        return feeds, f"{len(feeds)} inputs drawn from the declared input space{where} (fixed seed)"
    if isinstance(given, Mapping) or not isinstance(given, Iterable):
        raise InvalidSpec(
            "calibration= must be an iterable of feeds: dicts of input name -> array, e.g. [{'x': batch}, ...]"
        )
    feeds = []
    for n, item in enumerate(given):
        if not isinstance(item, Mapping) or set(item) != set(input_names):
            keys = sorted(item) if isinstance(item, Mapping) else type(item).__name__
            raise InvalidSpec(
                f"calibration= item {n}: {keys} — every item must be a dict with exactly the model's "
                f"inputs {sorted(input_names)}"
            )
        feeds.append({k: np.asarray(v) for k, v in item.items()})
    if not feeds:
        raise InvalidSpec("calibration= is empty: give at least one feed dict")
    shapes = {tuple((k, v.shape) for k, v in sorted(f.items())) for f in feeds}
    if same_shape and len(shapes) > 1:
        raise InvalidSpec(
            "calibration= feeds have different shapes, which entropy and percentile calibration cannot "
            "stack: give feeds of one shape, or use variant_options={'int8-static': {'method': 'minmax'}}"
        )
    blank = [n for n in input_names if feeds[0][n].dtype.kind == "f" and not any(np.any(f[n]) for f in feeds)]
    named = ", ".join(map(repr, blank))
    note = f" (every feed's {named} is all zeros: each calibrated range is a bias's; calibrate on real data)"
    return feeds, f"{len(feeds)} feeds given by calibration=" + (note if blank else "")


def _calibrated_ranges(qdq_path: str) -> dict[str, tuple[float, float]]:
    """Float range each QuantizeLinear's input can take without clipping, by tensor name."""
    from onnx import numpy_helper

    model = load_model(qdq_path, external_data=True)
    constants = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    for node in model.graph.node:
        if node.op_type == "Constant" and node.attribute:
            constants[node.output[0]] = numpy_helper.to_array(node.attribute[0].t)
    ranges = {}
    for node in model.graph.node:
        if node.op_type != "QuantizeLinear" or len(node.input) < 2 or node.input[0] in constants:
            continue
        scale = constants.get(node.input[1])
        zero = constants.get(node.input[2]) if len(node.input) > 2 else np.zeros((), np.uint8)
        if scale is None or zero is None or scale.size != 1:
            continue
        info = np.iinfo(zero.dtype)
        s, z = float(scale.reshape(())), int(zero.reshape(()))
        ranges[node.input[0]] = ((info.min - z) * s, (info.max - z) * s)
    return ranges


def build_int8_static(context: BuildContext) -> StaticRunnable:
    """Options: ``calibration`` (feeds; default: drawn), ``samples`` (32), ``method``
    ("minmax", "entropy", "percentile"), ``per_channel`` (False), ``op_types``,
    ``optimization`` ("all")."""
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    context.check_options(
        {"calibration", "samples", "method", "per_channel", "op_types", "nodes_to_exclude", "optimization"}
    )
    method = context.option("method", "minmax", CALIBRATION_METHODS)
    per_channel = context.option("per_channel", False, bool)
    op_types = context.option("op_types", None)
    excluded = list(context.option("nodes_to_exclude", (), (list, tuple)))
    optimization = context.option("optimization", "all", OPTIMIZATION_LEVELS)
    source = self_contained(context.model_path, context.workdir)
    require_standard_ops(source, "int8-static")
    input_names = [i.name for i in load_model(source).graph.input]
    feeds, origin = _calibration_feeds(context, input_names, same_shape=method != "minmax")
    if not feeds:
        raise VariantBuildError("no calibration inputs: declare inputs= so that they can be drawn")
    preprocessed = os.path.join(context.workdir, "preprocessed.onnx")
    target = os.path.join(context.workdir, "int8-static.onnx")

    def prepared() -> str:  # preprocessing is an optimization, not a requirement
        return preprocessed if os.path.isfile(preprocessed) else source

    def preprocess() -> None:
        with quiet(*QUANT_LOGGERS), working_directory(context.workdir):
            for symbolic in (True, False):  # symbolic shape inference fails on some exports
                try:
                    quant_pre_process(source, preprocessed, skip_symbolic_shape=not symbolic)
                    return
                except Exception:
                    continue

    def quantize(nodes: list[str], path: str) -> str:
        with quiet(*QUANT_LOGGERS), working_directory(context.workdir):
            quantize_static(
                prepared(),
                path,
                _reader(feeds),
                quant_format=QuantFormat.QDQ,
                per_channel=per_channel,
                activation_type=QuantType.QInt8,
                weight_type=QuantType.QInt8,
                op_types_to_quantize=list(op_types) if op_types else None,
                nodes_to_exclude=list(nodes),
                calibrate_method={
                    "minmax": CalibrationMethod.MinMax,
                    "entropy": CalibrationMethod.Entropy,
                    "percentile": CalibrationMethod.Percentile,
                }[method],
            )
        return path

    def build() -> None:
        preprocess()
        quantize(excluded, target)

    try:  # (drawn calibration feeds are not among the options: their digest keys the step)
        context.stored(
            "quantize_static",
            {"calibration": options_digest({"feeds": feeds})},
            [preprocessed, target],
            build,
        )
    except Exception as exc:
        raise VariantBuildError(
            f"quantize_static failed ({method} calibration on {origin}): {type(exc).__name__}: "
            f"{clean_message(exc)}"
        ) from exc
    if not quantized_ops(target):
        raise VariantUnavailable(
            f"nothing was quantized: quantize_static found no op it quantizes in this model (its ops: "
            f"{_op_types(source)}); drop int8-static from this model's variants"
        )
    float_path = prepared()
    infinite = infinite_scales(target, float_path)
    if infinite:
        raise VariantBuildError(
            f"quantize_static calibrated an infinite range for {', '.join(infinite[:5])}"
            f"{' and more' if len(infinite) > 5 else ''} ({method} on {origin}): the float model computes "
            "±inf there on real inputs (a Log of 0, a division by 0) that a later op discards, and an "
            "int8 scale cannot hold it — ONNX Runtime's quantizer, not the export or the calibration data "
            "(T5's relative-position Log does this); quantize fewer op types, e.g. "
            "variant_options={'int8-static': {'op_types': ['MatMul', 'Conv', 'Gather']}}"
        )
    retry = os.path.join(context.workdir, "int8-static-excluding.onnx")
    return StaticRunnable(
        target,
        float_path=float_path,
        rebuild=lambda nodes: load_model(quantize(nodes, retry), external_data=True),
        excluded=excluded,
        policy=INT8_POLICY,
        variant="int8-static",
        threads=context.threads,
        optimization=optimization,
        ranges=_calibrated_ranges(target),
        origin=f"{method} on {origin}",
    )


INT8_DYNAMIC = variant_info(
    "int8-dynamic",
    build_int8_dynamic,
    description=f"quantize_dynamic (int8 weights); default {INT8_POLICY.describe()}",
    default_policy=INT8_POLICY,
    crash_hint=crash_hint("int8-dynamic", "variant option op_types=[...] limits what is quantized"),
    rounds_inputs="uint8",
)
INT8_STATIC = variant_info(
    "int8-static",
    build_int8_static,
    description=f"quantize_static, QDQ, calibrated on drawn inputs; default {INT8_POLICY.describe()}",
    default_policy=INT8_POLICY,
    crash_hint=crash_hint("int8-static", "variant option op_types=[...] limits what is quantized"),
    rounds_inputs="uint8",
)
