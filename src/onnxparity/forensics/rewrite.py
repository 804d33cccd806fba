"""Which post-export step made a failing input differ, and where (:mod:`onnxparity.variants.rewrite`).

On a failing input of a rewrite, the rewritten graph is compared with the export, not with
the framework: the export is what the step was given. In order:

1. **The step or the export?** The export run on the input (ONNX Runtime, no graph
   optimization) against the rewritten file as deployed: where they agree, the difference is the
   export's, and the export's own forensics follow.
2. **Which stage?** A step made of several (fusions, then float16) is checked stage by stage:
   where the fused float32 graph agrees with the export, the float16 conversion is named, with
   its first node whose float16 value parts from float32 (an overflow past 65504 said so).
3. **Which value?** Every value the two graphs share by name is compared (both run with no
   graph optimization); a constant the step folded is compared with what the export computes in
   its place on this input (a shape-dependent value folded at one shape). The first rewritten node
   whose value parts from the export's while what it reads agrees is named, or the span of
   rewritten nodes between agreeing values. A file whose values cannot be listed (the ``.ort``
   format) is read through its twin: the same optimization saved as ONNX, itself first checked
   against the ``.ort`` file on the input.
4. **Which fusion?** For ONNX Runtime's fusion optimizer, the fused ops in that span name the
   fusion options that make them; each is confirmed by fusing again with it off and running the
   input: "confirmed" is printed only when the graph then agrees with the export.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from onnxparity.forensics import FIX, Divergence
from onnxparity.forensics.export import off, walk
from onnxparity.graph.files import load_model
from onnxparity.spec import DEFAULT_TOLERANCE
from onnxparity.variants import probe
from onnxparity.variants.base import VariantRunError
from onnxparity.variants.rewrite import describe

#: how much of a folded constant a line shows
SHOWN = 6


def _agree(
    policy: Any, tolerance: Any, expected: Sequence[np.ndarray], actual: Sequence[np.ndarray]
) -> tuple[bool, float]:
    """(whether every output agrees, the largest error) under ``tolerance`` or, where None, the
    runnable's agreement ``policy``."""
    from onnxparity.forensics.precision import meets

    worst, ok = 0.0, True
    for e, a in zip(expected, actual):
        e, a = np.asarray(e), np.asarray(a)
        if e.shape != a.shape:
            return False, float("inf")
        if e.dtype.kind not in "fc":
            ok = ok and bool(np.array_equal(e, a))
            continue
        error, nonfinite, diverges = off(e, a, tolerance or DEFAULT_TOLERANCE)
        worst = max(worst, float("inf") if nonfinite or error != error else error)
        if tolerance is None and policy is not None:
            ok = ok and meets(policy, e.astype(np.float64), a.astype(np.float64))
        else:
            ok = ok and not diverges
    return ok, worst


def _distance(error: float) -> str:
    return "NaN or infinite values where the export's are finite" if error == float("inf") else f"max abs {error:.3g}"


def _run(
    path_or_model: Any,
    feeds: Mapping[str, np.ndarray],
    optimization: str = "none",
    names: Iterable[str] | None = None,
) -> dict[str, np.ndarray]:
    model = load_model(path_or_model, external_data=True) if isinstance(path_or_model, str) else path_or_model
    from onnxparity.graph.nodes import with_outputs

    if names is None:
        names = {out for node in model.graph.node for out in node.output if out}
    return probe.tensor_values(with_outputs(model, set(names)), feeds, optimization=optimization)


def _short(value: np.ndarray) -> str:
    flat = np.asarray(value).ravel()
    shown = ", ".join(f"{v:.4g}" if isinstance(v, float) else str(v) for v in flat[:SHOWN].tolist())
    return f"[{shown}{', ...' if flat.size > SHOWN else ''}] (shape {list(np.shape(value))})"


def folded(export: Any, rewritten: Any, export_values: Mapping[str, np.ndarray], tolerance: Any) -> list[str]:
    """Lines for each constant of ``rewritten`` (an initializer or a Constant node) named like a
    value the export computes, whose value differs from the export's on this input: a value the
    step folded that depends on the input (its shape, most often)."""
    from onnx import numpy_helper

    computed = {out: node for node in export.graph.node for out in node.output if out and node.op_type != "Constant"}
    constants = {t.name: numpy_helper.to_array(t) for t in rewritten.graph.initializer}
    for node in rewritten.graph.node:
        if node.op_type == "Constant" and node.output:
            for attribute in node.attribute:
                if attribute.name == "value":
                    constants[node.output[0]] = numpy_helper.to_array(attribute.t)
    producers = {out: node for node in export.graph.node for out in node.output if out}
    lines = []
    for name, value in constants.items():
        if name not in computed or name not in export_values:
            continue
        actual = export_values[name]
        same = value.shape == actual.shape and (
            np.array_equal(value, actual) if value.dtype.kind not in "fc" else not off(actual, value, tolerance)[2]
        )
        if same:
            continue
        shape_ops = _upstream_ops(producers, name) & {"Shape", "Size"}
        why = (
            f"it is computed from the input's {'/'.join(sorted(shape_ops))} in the export, so it depends on the "
            "input's dims, and the step folded it at one shape"
            if shape_ops
            else "it depends on the input in the export"
        )
        lines.append(
            f"{name!r} was folded into a constant {_short(value)}, but on this input the export computes "
            f"{_short(actual)}: {why}"
        )
    return lines


def _upstream_ops(producers: Mapping[str, Any], name: str, limit: int = 200) -> set[str]:
    seen: set[str]
    ops: set[str]
    seen, stack, ops = set(), [name], set()
    while stack and len(seen) < limit:
        value = stack.pop()
        node = producers.get(value)
        if node is None or value in seen:
            continue
        seen.add(value)
        ops.add(node.op_type)
        stack.extend(node.input)
    return ops


def localize(
    export: Any,
    rewritten: Any,
    feeds: Mapping[str, np.ndarray],
    tolerance: Any,
    export_values: dict[str, np.ndarray] | None = None,
) -> tuple[Divergence | None, list[str], dict[str, np.ndarray]]:
    """(the first rewritten node parting from the export, folded-constant lines, the export's
    values): both graphs run with no graph optimization, values paired by name."""
    export_values = export_values if export_values is not None else _run(export, feeds)
    names = {out for node in rewritten.graph.node for out in node.output if out}
    rewritten_values = _run(rewritten, feeds, names=names)
    found = walk(
        rewritten.graph,
        export_values,
        rewritten_values,
        tolerance,
        unobserved="the export has no value of that name in between",
    )
    return found, folded(export, rewritten, export_values, tolerance), export_values


def _confirm(
    runnable: Any, found: Divergence, feeds: Mapping[str, np.ndarray], expected: Sequence[np.ndarray], tolerance: Any
) -> list[str]:
    """Which fusion made ``found``'s nodes, confirmed by fusing again without it."""
    from onnxparity.variants.fusion import FUSION_FLAGS, fused_without

    model = load_model(runnable.stages[0][1] if runnable.stages else runnable.model_path, external_data=True)
    by_name = {n.name: n for n in model.graph.node}
    ops = list(dict.fromkeys(by_name[n].op_type for n in found.nodes if n in by_name))
    flags = list(dict.fromkeys(f for op in ops for f in FUSION_FLAGS.get(op, ())))
    if not flags:
        return [f"the nodes there ({', '.join(ops) or 'none named'}) are not ones a fusion option makes"]
    lines = []
    for flag in flags:
        try:
            graph = fused_without(runnable, (flag,))
            outputs = _run(graph, feeds, names=[o.name for o in graph.graph.output])
            ok, error = _agree(None, tolerance, expected, [outputs[o.name] for o in graph.graph.output])
        except Exception as exc:  # a confirmation that cannot run is said as such, never claimed
            lines.append(f"not confirmed: fusing again with {flag}=False failed ({type(exc).__name__}: {exc})")
            continue
        if not ok:
            lines.append(f"with {flag}=False the fused graph still differs from the export (max abs {error:.3g})")
            continue
        lines.append(
            f"confirmed: fused again with {flag}=False, the graph agrees with the export on this input (max abs "
            f"{error:.2g}): the {'/'.join(o for o in ops if flag in FUSION_FLAGS.get(o, ()))} fusion made the difference"
        )
        mask = runnable.fusion.get("attention_mask_format")
        raw = _raw_mask(runnable, feeds, expected, tolerance, mask) if flag == "enable_attention" and mask != "raw" else []
        lines += raw or [f"{FIX}variant_options={{{runnable.step!r}: {{{flag!r}: False}}}} (verified on this input)"]
        break
    return lines


def _raw_mask(
    runnable: Any, feeds: Mapping[str, np.ndarray], expected: Sequence[np.ndarray], tolerance: Any, mask: Any
) -> list[str]:
    from onnxparity.variants.fusion import fused_without

    try:
        graph = fused_without(runnable, (), {"attention_mask_format": "raw"})
        outputs = _run(graph, feeds, names=[o.name for o in graph.graph.output])
        ok, _ = _agree(None, tolerance, expected, [outputs[o.name] for o in graph.graph.output])
    except Exception:
        return []
    if not ok:
        return []
    said = repr(mask) if mask else "'index_end' (the optimizer's default for this model type)"
    return [
        f"the fused attention reads the mask as {said}: each row's real tokens as one run from its start, which a "
        "left-padded or holed mask is not; fused again with the raw mask, it agrees on this input",
        f"{FIX}variant_options={{{runnable.step!r}: {{'attention_mask_format': 'raw'}}}} (verified on this input)",
    ]


def explain_rewrite(
    runnable: Any, feeds: Mapping[str, np.ndarray], tolerance: Any = None
) -> list[str | Divergence]:
    """A rewrite variant's explainer (:mod:`onnxparity.forensics.by_variant`): the lines and the
    :class:`Divergence` of the module's steps 1–4."""
    try:
        return _explain(runnable, feeds, tolerance)
    except Exception as exc:  # the explanation is a bonus: never let it mask the verdict
        return [f"rewrite step {runnable.step}: not localized — {type(exc).__name__}: {exc}"]


def _explain(runnable: Any, feeds: Mapping[str, np.ndarray], tolerance: Any) -> list[str | Divergence]:
    export = load_model(runnable.export_path, external_data=True)
    outputs = [o.name for o in export.graph.output]
    lines: list[str | Divergence] = [f"rewrite step: {describe(runnable.build_facts)}"]
    fixed = runnable.build_facts.get("fixed_dims") or []
    if fixed:
        lines.append(
            f"{runnable.step} fixed dims the export leaves dynamic ({'; '.join(fixed[:4])}): any other size is "
            "refused or computed wrongly"
        )
    export_values = _run(export, feeds)
    expected = [export_values[o] for o in outputs]
    try:
        deployed = runnable.run(feeds)
    except VariantRunError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        lines.append(f"the export runs this input and {runnable.step}'s file refuses it ({first})")
        if fixed:
            lines.append(
                f"{FIX}drop input_shapes from variant_options[{runnable.step!r}] (the shipped file must take the "
                "sizes the export takes), or declare those dims fixed in dims="
            )
        return lines
    ok, error = _agree(runnable.policy, tolerance, expected, deployed)
    if ok:
        return [
            *lines,
            f"{runnable.step} computes what the export computes on this input (max abs {error:.2g} from the export "
            "with no graph optimization): the difference is the export's, not the step's",
        ]
    lines.append(
        f"the rewritten file parts from the export on this input ({_distance(error)}): {runnable.step} made the "
        "difference"
    )
    target = runnable.model_path
    for label, path in runnable.stages:  # a step of several stages: the first that parts
        stage = load_model(path, external_data=True)
        values = _run(stage, feeds, names=outputs)
        stage_ok, stage_error = _agree(None, tolerance, expected, [values[o] for o in outputs])
        if stage_ok:
            return [*lines, *_half(runnable, stage, feeds, label, stage_error)]
        lines.append(f"{label} already part from the export (max abs {stage_error:.3g})")
        target = path
        break
    if runnable.twin is not None and target == runnable.model_path:
        twin = load_model(runnable.twin, external_data=True)
        values = _run(twin, feeds, names=outputs)
        twin_ok, twin_error = _agree(None, tolerance, deployed, [values[o] for o in outputs])
        if not twin_ok:
            return [
                *lines,
                f"the .ort file differs from the same optimization saved as ONNX (max abs {twin_error:.3g}): the "
                "conversion to the ORT format itself is what differs",
            ]
        lines.append(
            f"the .ort file computes what the same optimization saved as ONNX computes (max abs {twin_error:.2g}); "
            "that graph against the export:"
        )
        target = runnable.twin
    rewritten = load_model(target, external_data=True)
    found, folds, _ = localize(export, rewritten, feeds, tolerance or DEFAULT_TOLERANCE, export_values)
    lines += folds
    if found is None and not folds:
        lines.append(
            "with no graph optimization the two graphs share no value that differs: ONNX Runtime's optimizer on "
            "the rewritten graph makes the difference"
        )
        return lines
    if found is not None:
        lines.append(found.line())
        if runnable.fusion is not None:
            lines += _confirm(runnable, found, feeds, expected, tolerance)
        lines.append(dataclasses.replace(found))
    return lines


def _half(
    runnable: Any, stage: Any, feeds: Mapping[str, np.ndarray], label: str, error: float
) -> list[str | Divergence]:
    """Lines naming the float16 conversion, and its first node to part from float32."""
    from onnxparity.forensics.precision import first_divergence

    half = load_model(runnable.model_path, external_data=True)
    found, _ = first_divergence(stage, half, feeds)
    lines: list[str | Divergence] = [
        f"{label} agree with the export on this input (max abs {error:.2g}): the float16 conversion made the difference"
    ]
    if found is not None:
        lines += [found.line(), found]
    return lines
