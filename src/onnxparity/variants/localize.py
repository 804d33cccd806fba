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
from dataclasses import dataclass

import numpy as np

from ..onnxutils import with_outputs
from .ort import OrtRunnable

#: a tensor is off when its error exceeds this fraction of its largest fp32 value
RELATIVE = 0.02


@dataclass(frozen=True)
class Divergence:
    """The first node whose output diverges while its inputs agree."""

    node: str
    op_type: str
    tensor: str
    max_abs_error: float
    input_max_abs_error: float
    nonfinite: int

    def line(self) -> str:
        what = (
            f"{self.nonfinite} values NaN or infinite in float16 (finite in float32: past float16's 65504)"
            if self.nonfinite
            else f"max abs error {self.max_abs_error:.3g}"
        )
        return (
            f"first divergence: {self.op_type} {self.node!r} — inputs agree (max abs "
            f"{self.input_max_abs_error:.2g}), output {self.tensor!r} {what}"
        )


def tensor_values(model, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Every output of ``model`` on ``feeds`` by name (ONNX Runtime, CPU, no graph optimization)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 4
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    return dict(zip(names, session.run(names, dict(feeds))))


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
    lines = [found.line()]
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
    from ..agreement import agreement_metrics

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

    from ..onnxutils import is_standard_domain

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
        from ..onnxutils import load_model

        try:
            float_model = load_model(self.float_path, external_data=True)
            half_model = load_model(self.model_path, external_data=True)
            rebuild = lambda blocked: convert_fp16(float_model, blocked)  # noqa: E731
            return explain_fp16(float_model, half_model, feeds, rebuild, self.blocked, self.policy)
        except Exception:  # the explanation is a bonus: never let it mask the verdict
            return []
