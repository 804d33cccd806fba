"""Where a float16 model first goes wrong: the fp32 graph and its fp16 conversion run on the
failing input with every intermediate tensor as an output, and the first node (in the fp32
graph's order) whose output diverges while its inputs still agree is named — with the
``op_block_list`` that keeps it in float32, re-checked on that input before it is suggested.

A tensor diverges when it holds NaN or infinity where the fp32 one is finite (float16 overflows
past 65504), or when it is off by more than :data:`RELATIVE` of its largest fp32 value (float16
keeps ~3 significant digits: 1e-3 of a value is its rounding). The conversion keeps node output
names, so the two graphs' tensors pair up by name.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np

from onnxparity.forensics import Divergence
from onnxparity.graph.files import load_model
from onnxparity.graph.nodes import node_source, with_outputs
from onnxparity.variants.ort import OrtRunnable

#: a tensor is off when its error exceeds this fraction of its largest fp32 value
RELATIVE = 0.02


def tensor_values(
    model,
    feeds: Mapping[str, np.ndarray],
    providers=("CPUExecutionProvider",),
    *,
    optimization: str = "none",
    saved: str | None = None,
    disabled: tuple[str, ...] = (),
) -> dict[str, np.ndarray]:
    """Every output of ``model`` on ``feeds`` by name (ONNX Runtime, CPU unless ``providers``
    says otherwise; feeds the graph does not take are left out). ``optimization``: the graph
    optimization level ("none" keeps every value); ``saved``: where the optimized graph is
    written; ``disabled``: optimizers turned off by name."""
    import onnxruntime as ort

    from onnxparity.variants.ort import session_options

    options = session_options(1, optimization)
    if saved:
        options.optimized_model_filepath = saved
    session = ort.InferenceSession(
        model.SerializeToString(), options, providers=list(providers), disabled_optimizers=list(disabled)
    )
    names = [o.name for o in session.get_outputs()]
    used = {i.name for i in session.get_inputs()}
    return dict(zip(names, session.run(names, {k: v for k, v in feeds.items() if k in used})))


def explain_providers(
    model_path: str, feeds: Mapping[str, np.ndarray], providers, tolerance, name: str
) -> list:
    """Where ``providers`` (e.g. CUDA) first part from ONNX Runtime's CPU on an input: the
    model with every value as an output runs on both, without graph optimization, and the first
    node whose output differs beyond ``tolerance`` while its inputs agree is named."""
    from onnxparity.forensics.export import walk

    model = load_model(model_path, external_data=True)
    probe = with_outputs(model, {out for node in model.graph.node for out in node.output if out})
    found = walk(model.graph, tensor_values(probe, feeds), tensor_values(probe, feeds, providers), tolerance)
    if found is None:
        return [
            f"{name} and ONNX Runtime's CPU agree on every value of this input (both without graph optimization)"
        ]
    return [
        f"{name} against ONNX Runtime's CPU on this input (both without graph optimization):",
        found.line(),
        found,
    ]


def _off(reference: np.ndarray, value: np.ndarray) -> tuple[float, int, bool]:
    """(max abs error over finite pairs, values non-finite only in ``value``, diverges)."""
    reference = np.asarray(reference, dtype=np.float64)
    value = np.asarray(value, dtype=np.float64)
    if reference.shape != value.shape:
        return float("inf"), 0, True
    finite = np.isfinite(reference)
    nonfinite = int((finite & ~np.isfinite(value)).sum())
    both = finite & np.isfinite(value)
    error = float(np.abs(value[both] - reference[both]).max()) if both.any() else 0.0
    scale = float(np.abs(reference[finite]).max()) if finite.any() else 0.0
    return error, nonfinite, bool(nonfinite or error > RELATIVE * max(scale, 1e-30))


def first_divergence(
    float_model, half_model, feeds: Mapping[str, np.ndarray]
) -> tuple[Divergence | None, dict[str, np.ndarray]]:
    """The first node of ``float_model`` whose output ``half_model`` gets wrong while getting its
    float inputs right (None when no paired tensor diverges), and every value of the float run
    (its outputs included)."""
    produced = {out for node in float_model.graph.node for out in node.output if out}
    half_produced = {out for node in half_model.graph.node for out in node.output if out}
    shared = produced & half_produced
    floats = tensor_values(with_outputs(float_model, shared), feeds)
    halves = tensor_values(with_outputs(half_model, shared), feeds)
    for node in float_model.graph.node:
        outputs = [o for o in node.output if o in shared and o in floats and o in halves]
        if not outputs:
            continue
        if floats[outputs[0]].dtype.kind != "f":
            continue
        error, nonfinite, diverges = _off(floats[outputs[0]], halves[outputs[0]])
        if not diverges:
            continue
        inputs = [i for i in node.input if i in floats and i in halves and floats[i].dtype.kind == "f"]
        input_errors = [_off(floats[i], halves[i]) for i in inputs]
        if any(off[2] for off in input_errors):
            continue  # an input already diverged: an earlier node is the first
        found = Divergence(
            node.name or node.op_type,
            node.op_type,
            outputs[0],
            error,
            max((off[0] for off in input_errors), default=0.0),
            nonfinite,
            source=node_source(node),
            detail=f"{nonfinite} values NaN or infinite in float16 (finite in float32: past float16's 65504)"
            if nonfinite
            else "",
        )
        return found, floats
    return None, floats


def explain_fp16(
    float_model,
    half_model,
    feeds: Mapping[str, np.ndarray],
    rebuild: Callable[[list[str]], object],
    blocked: list[str],
    policy,
) -> list[str]:
    """The divergence line, and the ``op_block_list`` that fixes it when the model rebuilt with
    it (``rebuild(block_list) -> fp16 model``) meets ``policy`` (an Agreement) on this input."""
    found, floats = first_divergence(float_model, half_model, feeds)
    if found is None:
        return ["first divergence: none found between the float32 and float16 graphs' shared tensors"]
    lines: list = [found.line(), found]
    proposal = sorted({*blocked, found.op_type})
    option = f"variant_options={{'fp16': {{'op_block_list': {proposal!r}}}}}"
    try:
        actual = tensor_values(rebuild(proposal), feeds)
        names = [o.name for o in float_model.graph.output]
        verified = all(_meets(policy, floats[n], actual[n]) for n in names)
    except Exception as exc:  # a suggestion that cannot be re-checked is not printed as verified
        lines.append(f"keep {found.op_type} in float32: {option} (not verified: {type(exc).__name__})")
        return lines
    if verified:
        lines.append(f"verified: with {option} fp16 meets its default policy on this input")
    else:
        lines.append(f"keeping {found.op_type} in float32 ({option}) is not enough on this input")
    return lines


def _meets(policy, expected: np.ndarray, actual: np.ndarray) -> bool:
    """One input's output within ``policy``'s cosine and SQNR, with no NaN or infinity of its own."""
    from onnxparity.verdict.agreement import agreement_metrics

    if np.asarray(expected).dtype.kind != "f":
        return bool(np.array_equal(expected, actual))
    cosine, sqnr, _, _, nonfinite = agreement_metrics(expected, actual)
    return not nonfinite and cosine >= (policy.cosine or -1.0) and sqnr >= (policy.sqnr_db or -np.inf)


def convert_fp16(model, blocked):
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
    """An fp16 session that can say where the conversion of ``float_path`` (with ``blocked``
    kept in float32) first goes wrong on an input, judged by ``policy``."""

    def __init__(self, path: str, *, float_path: str, blocked, policy, **options) -> None:
        super().__init__(path, ["CPUExecutionProvider"], **options)
        self.float_path, self.blocked, self.policy = float_path, list(blocked), policy

    def explain(self, feeds: Mapping[str, np.ndarray]) -> list[str]:

        try:
            float_model = load_model(self.float_path, external_data=True)
            half_model = load_model(self.model_path, external_data=True)
            rebuild = lambda blocked: convert_fp16(float_model, blocked)  # noqa: E731
            return explain_fp16(float_model, half_model, feeds, rebuild, self.blocked, self.policy)
        except Exception:  # the explanation is a bonus: never let it mask the verdict
            return []


# -- int8 ----------------------------------------------------------------------------------------
def layer_agreement(float_model, quant_model, feeds: Mapping[str, np.ndarray]):
    """Per float node whose output the quantized graph also computes (paired by name): (node,
    tensor, cosine, SQNR dB, max abs error) in graph order, and the float and quantized runs'
    values."""
    from onnxparity.verdict.agreement import agreement_metrics

    produced = {out: node for node in float_model.graph.node for out in node.output if out}
    shared = set(produced) & {out for node in quant_model.graph.node for out in node.output if out}
    floats = tensor_values(with_outputs(float_model, shared), feeds)
    quants = tensor_values(with_outputs(quant_model, shared), feeds)
    rows = []
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
                rows.append((node, out, cosine, -np.inf if nonfinite else sqnr, error))
    return rows, floats, quants


def _below(policy, cosine: float, sqnr: float) -> bool:
    return cosine < (policy.cosine if policy.cosine is not None else -1.0) or sqnr < (
        policy.sqnr_db if policy.sqnr_db is not None else -np.inf
    )


def explain_int8(
    float_model, quant_model, feeds, rebuild, excluded, policy, variant: str, tries: int = 3
) -> list:
    """The per-layer agreement table (worst first), the first layer below ``policy`` (a
    :class:`~onnxparity.forensics.Divergence`), and the ``nodes_to_exclude`` that bring this
    input within ``policy`` when the model rebuilt with them (``rebuild(nodes) -> model``) was
    run: re-checked, greedily adding the next first layer below, at most ``tries`` rebuilds."""
    rows, floats, quants = layer_agreement(float_model, quant_model, feeds)
    if not rows:
        return ["per-layer agreement: no tensor of the float graph pairs with the quantized one by name"]
    lines: list = [
        f"per-layer agreement on this input ({variant} vs float32, worst first; policy {policy.describe()}):"
    ]
    for node, out, cosine, sqnr, _ in sorted(rows, key=lambda r: (r[3], r[2]))[:5]:
        lines.append(f"  {node.op_type} {node.name or out!r}: SQNR {sqnr:.1f} dB, cosine {cosine:.4f}")
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
        detail=f"SQNR {sqnr:.1f} dB, cosine {cosine:.4f}: the first layer below the policy",
    )
    source = f" ({found.source_kind} {found.source})" if found.source else ""
    lines += [
        f"first layer below the policy: {found.op_type} {found.node!r}{source} — output {out!r} SQNR "
        f"{sqnr:.1f} dB, cosine {cosine:.4f} (its inputs off by at most {worst_input:.2g})",
        found,
    ]
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
            actual = tensor_values(rebuilt, feeds)
        except Exception as exc:  # a suggestion that cannot be re-checked is not printed as verified
            lines.append(f"keep {candidate!r} in float: {option} (not verified: {type(exc).__name__})")
            return lines
        if all(_meets(policy, floats[n], actual[n]) for n in names if n in floats and n in actual):
            weighted = {n.name for n in float_model.graph.node if n.op_type in _WEIGHTED}
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
_WEIGHTED = {"MatMul", "Gemm", "Conv", "ConvTranspose", "Gather", "LSTM", "GRU", "Attention"}


def _upstream_weighted(model, excluded: list[str]):
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
                if source.op_type in _WEIGHTED and source.name and source.name not in excluded:
                    return source
                nxt.append(source)
        frontier = nxt
    return None


class QuantRunnable(OrtRunnable):
    """An int8 session that can say, on an input, which layer first falls below ``policy`` and
    which ``nodes_to_exclude`` fix it (``rebuild(nodes) -> model``: the quantization redone)."""

    def __init__(
        self, path: str, *, float_path: str, rebuild, excluded, policy, variant: str, **options
    ) -> None:
        super().__init__(path, ["CPUExecutionProvider"], **options)
        self.float_path, self.rebuild, self.excluded = float_path, rebuild, list(excluded)
        self.policy, self.variant = policy, variant

    def explain(self, feeds: Mapping[str, np.ndarray]) -> list:

        try:
            float_model = load_model(self.float_path, external_data=True)
            quant_model = load_model(self.model_path, external_data=True)
            return explain_int8(
                float_model, quant_model, feeds, self.rebuild, self.excluded, self.policy, self.variant
            )
        except Exception:  # the explanation is a bonus: never let it mask the verdict
            return []


class StaticRunnable(QuantRunnable):
    """An int8-static session that can say which calibrated ranges an input saturated, and
    which layer first falls below the policy."""

    def setup_saturation(self, float_path: str, ranges: dict[str, tuple[float, float]], origin: str) -> None:
        self._float_path = float_path
        self._ranges = ranges
        self._origin = origin
        self._probe = None  # the float model with the calibrated tensors as outputs

    def explain(self, feeds: Mapping[str, np.ndarray]) -> list[str]:
        """Lines naming tensors that this input drives beyond their calibrated range."""
        try:
            values = self._tensor_values(feeds)
        except Exception:  # the explanation is a bonus: never let it mask the verdict
            return []
        over = []
        for name, (low, high) in self._ranges.items():
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
        lines = [f"calibration: {self._origin}"]
        if not over:
            lines.append("no quantized tensor left its calibrated range on this input (no saturation)")
            return lines + super().explain(feeds)
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
        return lines + super().explain(feeds)

    def _tensor_values(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        if self._probe is None:
            model = load_model(self._float_path, external_data=True)
            produced = {out for node in model.graph.node for out in node.output}
            produced |= {i.name for i in model.graph.input}
            self._probe = with_outputs(model, set(self._ranges) & produced)
        return tensor_values(self._probe, feeds)
