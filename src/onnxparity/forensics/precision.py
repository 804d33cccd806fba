"""Where a precision or a device first changes a failing input's values: float16 against float32
(:func:`explain_fp16`), int8 against float (:func:`explain_int8`, and the saturated calibrated
ranges of int8-static), CUDA against ONNX Runtime's CPU (:func:`explain_providers`). Each runs
both sides with their shared tensors as outputs (:mod:`onnxparity.variants.probe`; the
conversions keep node output names, so the two graphs' tensors pair up by name), names the first
node that goes wrong, and re-checks the fix it suggests (an ``op_block_list``, the
``nodes_to_exclude``) on that input before printing it as verified.

The ``explain_*`` functions taking a runnable are the built-in variants' explainers
(:mod:`.by_variant`), run where the runnable lives (in its worker, for an isolated variant):
``explainer(runnable, feeds, tolerance) -> list`` of lines and the
:class:`~onnxparity.forensics.Divergence` found. An explanation is a bonus: one that fails
returns nothing rather than mask the verdict.

A float16 tensor diverges by the verdict's rule (:func:`~onnxparity.forensics.export.off`) under
the explicit :data:`FP16_DIVERGENCE`: off by more than 2% of its largest float32 value, or NaN
or infinite where the float32 one is not (float16 overflows past 65504).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from onnxparity.forensics import Divergence
from onnxparity.forensics.export import off, walk
from onnxparity.graph.files import load_model
from onnxparity.graph.nodes import node_source, with_outputs
from onnxparity.spec import DEFAULT_TOLERANCE, Tolerance
from onnxparity.variants import probe

#: when a float16 tensor has diverged from its float32 one: an error beyond 2% of the tensor's
#: largest float32 value (``scaled``; float16 keeps ~3 significant digits, so 1e-3 of a value is
#: its rounding, and rounding builds up over the nodes before it), judged by the verdict's rule
FP16_DIVERGENCE = Tolerance(atol=0.0, rtol=0.0, scaled=0.02)


def explain_providers(
    model_path: str, feeds: Mapping[str, np.ndarray], providers: Sequence[Any], tolerance: Any, name: str
) -> list[str | Divergence]:
    """Where ``providers`` (e.g. CUDA) first part from ONNX Runtime's CPU on an input: the
    model with every value as an output runs on both, without graph optimization, and the first
    node whose output differs beyond ``tolerance`` while its inputs agree is named."""
    model = load_model(model_path, external_data=True)
    every = with_outputs(model, {out for node in model.graph.node for out in node.output if out})
    cpu, other = probe.tensor_values(every, feeds), probe.tensor_values(every, feeds, providers)
    found = walk(model.graph, cpu, other, tolerance)
    if found is None:
        return [
            f"{name} and ONNX Runtime's CPU agree on every value of this input (both without graph optimization)"
        ]
    return [
        f"{name} against ONNX Runtime's CPU on this input (both without graph optimization):",
        found.line(),
        found,
    ]


def first_divergence(
    float_model: Any, half_model: Any, feeds: Mapping[str, np.ndarray]
) -> tuple[Divergence | None, dict[str, np.ndarray]]:
    """The first node of ``float_model`` whose output ``half_model`` gets wrong while getting its
    float inputs right (None when no paired tensor diverges), and every value of the float run
    (its outputs included)."""
    produced = {out for node in float_model.graph.node for out in node.output if out}
    half_produced = {out for node in half_model.graph.node for out in node.output if out}
    shared = produced & half_produced
    floats = probe.tensor_values(with_outputs(float_model, shared), feeds)
    halves = probe.tensor_values(with_outputs(half_model, shared), feeds)
    for node in float_model.graph.node:
        outputs = [o for o in node.output if o in shared and o in floats and o in halves]
        if not outputs:
            continue
        if floats[outputs[0]].dtype.kind != "f":
            continue
        error, nonfinite, diverges = off(floats[outputs[0]], halves[outputs[0]], FP16_DIVERGENCE)
        if not diverges:
            continue
        inputs = [i for i in node.input if i in floats and i in halves and floats[i].dtype.kind == "f"]
        input_errors = [off(floats[i], halves[i], FP16_DIVERGENCE) for i in inputs]
        if any(e[2] for e in input_errors):
            continue  # an input already diverged: an earlier node is the first
        found = Divergence(
            node.name or node.op_type,
            node.op_type,
            outputs[0],
            error,
            max((e[0] for e in input_errors), default=0.0),
            nonfinite,
            source=node_source(node),
            detail=f"{nonfinite} values NaN or infinite in float16 (finite in float32: past float16's 65504)"
            if nonfinite
            else "",
        )
        return found, floats
    return None, floats


def explain_fp16(
    float_model: Any,
    half_model: Any,
    feeds: Mapping[str, np.ndarray],
    rebuild: Callable[[list[str]], object],
    blocked: list[str],
    policy: Any,
) -> list[str | Divergence]:
    """The divergence line, and the ``op_block_list`` that fixes it when the model rebuilt with
    it (``rebuild(block_list) -> fp16 model``) meets ``policy`` (an Agreement) on this input."""
    found, floats = first_divergence(float_model, half_model, feeds)
    if found is None:
        return ["first divergence: none found between the float32 and float16 graphs' shared tensors"]
    lines: list[str | Divergence] = [found.line(), found]
    proposal = sorted({*blocked, found.op_type})
    option = f"variant_options={{'fp16': {{'op_block_list': {proposal!r}}}}}"
    try:
        actual = probe.tensor_values(rebuild(proposal), feeds)
        names = [o.name for o in float_model.graph.output]
        verified = all(meets(policy, floats[n], actual[n]) for n in names)
    except Exception as exc:  # a suggestion that cannot be re-checked is not printed as verified
        lines.append(f"keep {found.op_type} in float32: {option} (not verified: {type(exc).__name__})")
        return lines
    if verified:
        lines.append(f"verified: with {option} fp16 meets its default policy on this input")
    else:
        lines.append(f"keeping {found.op_type} in float32 ({option}) is not enough on this input")
    return lines


def meets(policy: Any, expected: np.ndarray, actual: np.ndarray) -> bool:
    """One input's output within ``policy``'s cosine and SQNR, with no NaN or infinity of its own."""
    from onnxparity.verdict.agreement import agreement_metrics

    if np.asarray(expected).dtype.kind != "f":
        return bool(np.array_equal(expected, actual))
    cosine, sqnr, _, _, nonfinite = agreement_metrics(expected, actual)
    return not nonfinite and cosine >= (policy.cosine or -1.0) and sqnr >= (policy.sqnr_db or -np.inf)


def layer_agreement(
    float_model: Any, quant_model: Any, feeds: Mapping[str, np.ndarray]
) -> tuple[list[tuple[Any, str, float, float, float]], dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Per float node whose output the quantized graph also computes (paired by name): (node,
    tensor, cosine, SQNR dB, max abs error) in graph order, and the float and quantized runs'
    values."""
    from onnxparity.verdict.agreement import agreement_metrics

    produced = {out: node for node in float_model.graph.node for out in node.output if out}
    shared = set(produced) & {out for node in quant_model.graph.node for out in node.output if out}
    floats = probe.tensor_values(with_outputs(float_model, shared), feeds)
    quants = probe.tensor_values(with_outputs(quant_model, shared), feeds)
    rows: list[tuple[Any, str, float, float, float]] = []
    for node in float_model.graph.node:
        for out in node.output:
            if (
                out in floats
                and out in quants
                and floats[out].dtype.kind == "f"
                and floats[out].shape == quants[out].shape
            ):
                cosine, sqnr, _, _, nonfinite = agreement_metrics(floats[out], quants[out])
                error = (
                    float(np.abs(floats[out].astype(np.float64) - quants[out]).max())
                    if floats[out].size
                    else 0.0
                )
                # non-finite on one side: SQNR -inf, and no cosine (over the finite rest it read 1.0
                # for a tensor the quantized graph made all inf)
                rows.append((node, out, np.nan if nonfinite else cosine, -np.inf if nonfinite else sqnr, error))
    return rows, floats, quants


def _measures(sqnr: float, cosine: float) -> str:
    """A layer's SQNR and cosine as printed; a tensor non-finite on one side has no cosine."""
    if np.isnan(cosine):
        return f"SQNR {sqnr:.1f} dB (values non-finite on one side), cosine n/a"
    return f"SQNR {sqnr:.1f} dB, cosine {cosine:.4f}"


def _below(policy: Any, cosine: float, sqnr: float) -> bool:
    return cosine < (policy.cosine if policy.cosine is not None else -1.0) or sqnr < (
        policy.sqnr_db if policy.sqnr_db is not None else -np.inf
    )


def explain_int8(
    float_model: Any,
    quant_model: Any,
    feeds: Mapping[str, np.ndarray],
    rebuild: Callable[[list[str]], Any],
    excluded: Sequence[str],
    policy: Any,
    variant: str,
    tries: int = 3,
) -> list[str | Divergence]:
    """The per-layer agreement table (worst first), the first layer below ``policy`` (a
    :class:`~onnxparity.forensics.Divergence`), and the ``nodes_to_exclude`` that bring this
    input within ``policy`` when the model rebuilt with them (``rebuild(nodes) -> model``) was
    run: re-checked, greedily adding the next first layer below, at most ``tries`` rebuilds."""
    rows, floats, quants = layer_agreement(float_model, quant_model, feeds)
    if not rows:
        return ["per-layer agreement: no tensor of the float graph pairs with the quantized one by name"]
    lines: list[str | Divergence] = [
        f"per-layer agreement on this input ({variant} vs float32, worst first; policy {policy.describe()}):"
    ]
    for node, out, cosine, sqnr, _ in sorted(rows, key=lambda r: (r[3], np.nan_to_num(r[2], nan=-2.0)))[:5]:
        lines.append(f"  {node.op_type} {node.name or out!r}: {_measures(sqnr, cosine)}")
    first = next((r for r in rows if _below(policy, r[2], r[3])), None)
    if first is None:
        lines.append("no layer's output is below the policy on its own: the loss builds up across layers")
        return lines
    node, out, cosine, sqnr, error = first
    inputs = [i for i in node.input if i in floats and i in quants and floats[i].shape == quants[i].shape]
    worst_input = max(
        (float(np.abs(floats[i].astype(np.float64) - quants[i]).max()) for i in inputs if floats[i].size),
        default=0.0,
    )
    found = Divergence(
        node.name or out,
        node.op_type,
        out,
        error,
        worst_input,
        source=node_source(node),
        detail=f"{_measures(sqnr, cosine)}: the first layer below the policy",
    )
    source = f" ({found.source_kind} {found.source})" if found.source else ""
    lines += [
        f"first layer below the policy: {found.op_type} {found.node!r}{source} — output {out!r} "
        f"{_measures(sqnr, cosine)} (its inputs off by at most {worst_input:.2g})",
        found,
    ]
    if not node.name:  # nodes_to_exclude names nodes: there is nothing to propose
        lines.append(
            f"its node has no name, and nodes_to_exclude takes node names: name the graph's nodes to keep "
            f"{node.op_type} {out!r} in float"
        )
        return lines
    names = [o.name for o in float_model.graph.output]
    proposal = list(excluded)
    for _ in range(tries):
        candidate = node.name
        if not candidate or candidate in proposal:
            break
        proposal.append(candidate)
        if node.op_type == "Gemm" and variant == "int8-dynamic":
            proposal.append(f"{candidate}_MatMul")  # quantize_dynamic splits a Gemm, naming its MatMul so
        option = f"variant_options={{{variant!r}: {{'nodes_to_exclude': {proposal!r}}}}}"
        try:
            rebuilt = rebuild(proposal)
            actual = probe.tensor_values(rebuilt, feeds)
        except Exception as exc:  # a suggestion that cannot be re-checked is not printed as verified
            lines.append(f"keep {candidate!r} in float: {option} (not verified: {type(exc).__name__})")
            return lines
        if all(meets(policy, floats[n], actual[n]) for n in names if n in floats and n in actual):
            weighted = {n.name for n in float_model.graph.node if n.op_type in WEIGHTED}
            if weighted <= set(proposal):
                lines.append(
                    f"verified only with every weighted layer kept in float ({option}): no part of this model "
                    f"quantizes within {variant}'s default policy on this input — drop {variant} for it, or "
                    "rescale its outlier channels before quantizing"
                )
            else:
                lines.append(f"verified: with {option} {variant} meets its default policy on this input")
            return lines
        rows, _, _ = layer_agreement(float_model, rebuilt, feeds)
        nxt = next((r[0] for r in rows if _below(policy, r[2], r[3]) and r[0].name not in proposal), None)
        node = nxt or _upstream_weighted(float_model, proposal)
        if node is None:
            break
    lines.append(f"excluding {proposal!r} from quantization is not enough on this input")
    return lines


#: ops whose weights quantization rounds: what excluding a layer keeps in float
WEIGHTED = {"MatMul", "Gemm", "Conv", "ConvTranspose", "Gather", "LSTM", "GRU", "Attention"}


def _upstream_weighted(model: Any, excluded: list[str]) -> Any:
    """The nearest weighted node upstream of the excluded ones that is not excluded: where the
    loss that surfaced in them may come from (an activation outlier makes a layer's output
    lose its small channels while its SQNR, dominated by the outlier, stays high)."""
    producer = {out: node for node in model.graph.node for out in node.output}
    frontier = [node for node in model.graph.node if node.name in excluded]
    seen: set[int] = set()
    while frontier:
        nxt = []
        for node in frontier:
            for value in node.input:
                source = producer.get(value)
                if source is None or id(source) in seen:
                    continue
                seen.add(id(source))
                if source.op_type in WEIGHTED and source.name and source.name not in excluded:
                    return source
                nxt.append(source)
        frontier = nxt
    return None


def explain_gpu(runnable: Any, feeds: Mapping[str, np.ndarray], tolerance: Any = None) -> list[str | Divergence]:
    """``ort-gpu``'s explainer: where its CUDA providers (as asked, options included) first part
    from ONNX Runtime's CPU, under the default tolerance (as the GPU variant always judged it)."""
    try:
        return explain_providers(
            runnable.model_path, feeds, runnable.cuda_providers, DEFAULT_TOLERANCE, "ort-gpu"
        )
    except Exception:  # the explanation is a bonus: never let it mask the verdict
        return []


def explain_half(runnable: Any, feeds: Mapping[str, np.ndarray], tolerance: Any = None) -> list[str | Divergence]:
    """``fp16``'s explainer: :func:`explain_fp16` of its conversion of ``runnable.float_path``."""
    from onnxparity.variants.fp16 import convert_fp16

    try:
        float_model = load_model(runnable.float_path, external_data=True)
        half_model = load_model(runnable.model_path, external_data=True)
        rebuild = lambda blocked: convert_fp16(float_model, blocked)  # noqa: E731
        return explain_fp16(float_model, half_model, feeds, rebuild, runnable.blocked, runnable.policy)
    except Exception:  # the explanation is a bonus: never let it mask the verdict
        return []


def explain_quantized(runnable: Any, feeds: Mapping[str, np.ndarray], tolerance: Any = None) -> list[str | Divergence]:
    """The int8 variants' explainer: :func:`explain_int8` of ``runnable``'s quantization."""
    try:
        float_model = load_model(runnable.float_path, external_data=True)
        quant_model = load_model(runnable.model_path, external_data=True)
        rebuild, excluded, policy = runnable.rebuild, runnable.excluded, runnable.policy
        return explain_int8(float_model, quant_model, feeds, rebuild, excluded, policy, runnable.variant)
    except Exception:  # the explanation is a bonus: never let it mask the verdict
        return []


def explain_static(runnable: Any, feeds: Mapping[str, np.ndarray], tolerance: Any = None) -> list[str | Divergence]:
    """``int8-static``'s explainer: the tensors this input drives beyond their calibrated range
    (``runnable.ranges``), then :func:`explain_quantized`."""
    try:
        model = load_model(runnable.float_path, external_data=True)
        produced = {out for node in model.graph.node for out in node.output}
        produced |= {i.name for i in model.graph.input}
        values = probe.tensor_values(with_outputs(model, set(runnable.ranges) & produced), feeds)
    except Exception:  # the explanation is a bonus: never let it mask the verdict
        return []
    over = []
    for name, (low, high) in runnable.ranges.items():
        if name not in values:
            continue
        seen = values[name]
        if not seen.size or not np.issubdtype(seen.dtype, np.floating):
            continue
        lo, hi = float(np.nanmin(seen)), float(np.nanmax(seen))
        span = max(high - low, 1e-12)
        excess = max(low - lo, hi - high, 0.0) / span
        if excess > 0.01:
            over.append((excess, name, lo, hi, low, high))
    lines = [f"calibration: {runnable.origin}"]
    if not over:
        lines.append("no quantized tensor left its calibrated range on this input (no saturation)")
        return lines + explain_quantized(runnable, feeds)
    over.sort(reverse=True)
    lines.append(
        f"saturation: this input drives {len(over)} quantized tensor(s) beyond their calibrated "
        "range, where int8 clips:"
    )
    for _, name, lo, hi, low, high in over[:5]:
        lines.append(f"  {name!r} reached [{lo:.4g}, {hi:.4g}]; calibrated range [{low:.4g}, {high:.4g}]")
    lines.append(
        "  calibrate on inputs that cover this range (calibration= feeds, or a wider "
        "declared range) or try variant_options={'int8-static': {'method': 'percentile'}}"
    )
    return lines + explain_quantized(runnable, feeds)
