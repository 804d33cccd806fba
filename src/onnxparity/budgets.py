"""Opset and latency budgets: the checks beside numerical parity, and running them.

- :func:`check_opset`: the exported model's opset, operator domains and op types against an
  :class:`~onnxparity.spec.Opset` budget (at each opset of a matrix), plus ``onnx.checker``
  conformance.
- :func:`check_latency`: a variant and the framework timed **interleaved** in one process
  (run one, then the other, alternating which goes first), after warm-up, until a minimum
  count and a minimum time are reached; p50/p95/min/max and the spread between blocks of runs.
  Interleaving makes the ratio robust to a shared machine's load changing mid-measurement.

Knows nothing of pytest. Results are plain data with a readable message.
"""

from __future__ import annotations

import collections
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from onnxparity.environment import environment
from onnxparity.errors import ExportError
from onnxparity.graph.files import load_model, save_model
from onnxparity.graph.nodes import canonical_domain, is_standard_domain, walk_nodes
from onnxparity.results import BudgetResult
from onnxparity.spec import Latency, Opset, ParitySpec

#: blocks the runs are split into to measure the spread (how much the median moves).
SPREAD_BLOCKS = 5

#: node names listed per offending op type.
NAMES_SHOWN = 5


# -- opset ------------------------------------------------------------------------------------
def _named(entries: list[str]) -> str:
    shown = ", ".join(repr(n) for n in entries[:NAMES_SHOWN])
    more = len(entries) - NAMES_SHOWN
    return shown + (f" and {more} more" if more > 0 else "")


def opset_problems(model_path: str, budget: Opset) -> tuple[list[str], dict[str, Any]]:
    """Every way the model at ``model_path`` breaks ``budget``, and what was measured."""
    import onnx

    model = load_model(model_path)
    versions = {canonical_domain(o.domain): o.version for o in model.opset_import}
    standard = versions.get(canonical_domain(""))
    problems = []
    if standard is not None and not budget.admits(standard):
        bounds = " and ".join(
            f"{word} {v}" for word, v in (("at least", budget.min), ("at most", budget.max)) if v is not None
        )
        problems.append(f"opset {standard} of the standard domain is outside the budget (must be {bounds})")

    by_domain: dict[str, list[str]] = collections.defaultdict(list)
    by_type: dict[str, list[str]] = collections.defaultdict(list)
    for node, where in walk_nodes(model.graph):
        domain = canonical_domain(node.domain)
        label = f"{where}{node.name or '(unnamed ' + node.op_type + ')'}"
        by_domain[domain].append(f"{label} ({node.op_type})")
        by_type[node.op_type if is_standard_domain(domain) else f"{domain}.{node.op_type}"].append(label)
    for domain, nodes in sorted(by_domain.items()):
        if domain not in budget.domains:
            problems.append(
                f"domain {domain!r} is not allowed (allowed: {', '.join(budget.domains)}): "
                f"{len(nodes)} node(s): {_named(nodes)}"
                + (
                    "; com.microsoft contrib ops run only on ONNX Runtime"
                    if domain == "com.microsoft"
                    else ""
                )
            )
    for op_type in budget.forbidden_ops:
        if op_type in by_type:
            nodes = by_type[op_type]
            problems.append(f"forbidden op {op_type}: {len(nodes)} node(s): {_named(nodes)}")
    if budget.allowed_ops is not None:
        allowed = set(budget.allowed_ops)
        for op_type, nodes in sorted(by_type.items()):
            if op_type not in allowed:
                problems.append(f"op {op_type} is not in allowed_ops: {len(nodes)} node(s): {_named(nodes)}")
    if budget.check:
        try:
            onnx.checker.check_model(model_path, full_check=True)  # with strict shape inference
        except Exception as exc:
            problems.append(f"onnx.checker (full_check, strict shape inference): {str(exc).strip()}")
    measured = {
        "opset_import": dict(sorted(versions.items())),
        "op_types": {k: len(v) for k, v in sorted(by_type.items())},
    }
    return problems, measured


def opset_message(budget: Opset, problems_by_opset: Mapping[str, list[str]]) -> str:
    lines = []
    for label, problems in problems_by_opset.items():
        if problems:
            lines.append(f"{label} breaks {budget.describe()}:")
            lines += [f"  {p}" for p in problems]
    if not lines:
        return f"{', '.join(problems_by_opset)} within {budget.describe()}"
    lines.append(
        "next: export at an opset inside the budget (Opset(target=...)), or replace the offending ops "
        "in the model; widen the budget only if your deployment target supports them"
    )
    return "\n".join(lines)


def convert_opset(model_path: str, opset: int, target_path: str) -> str:
    """``model_path`` converted to ``opset`` with ``onnx.version_converter``, saved at
    ``target_path``; raises with the converter's message when it cannot."""
    import onnx
    from onnx import version_converter

    model = load_model(model_path, external_data=True)
    converted = version_converter.convert_version(model, opset)
    onnx.checker.check_model(converted)
    return save_model(converted, target_path)


def at_opset(exported: Any, opset: int, workdir: str) -> Any:
    """``exported`` itself when it has ``opset``, else converted with onnx.version_converter
    (exporters cannot target every opset: torch's dynamo exporter emits 18 at least)."""
    if exported.opset == opset:
        return exported
    target_dir = os.path.join(workdir, "converted", f"{exported.key[:60]}-opset{opset}")
    os.makedirs(target_dir, exist_ok=True)
    try:
        path = convert_opset(exported.path, opset, os.path.join(target_dir, "model.onnx"))
    except Exception as exc:
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ExportError(
            f"{exported.exporter} produced opset {exported.opset} when asked for {opset}, and "
            f"onnx.version_converter could not convert it: {type(exc).__name__}: {message}"
        ) from None
    note = f"exported at opset {exported.opset} by {exported.exporter}, converted to {opset} with onnx.version_converter"
    return replace(
        exported, path=path, key=f"{exported.key}-to{opset}", opset=opset, notes=(*exported.notes, note)
    )


# -- latency ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Timing:
    """Statistics of one side's runs, in milliseconds."""

    samples: int
    p50: float
    p95: float
    min: float
    max: float
    spread: float  # (max - min) of the block medians / overall median

    @classmethod
    def of(cls, seconds: list[float]) -> Timing:
        ms = np.asarray(seconds) * 1e3
        blocks = [np.median(b) for b in np.array_split(ms, min(SPREAD_BLOCKS, len(ms))) if len(b)]
        p50 = float(np.median(ms))
        spread = float((max(blocks) - min(blocks)) / p50) if p50 > 0 else 0.0
        return cls(len(ms), p50, float(np.percentile(ms, 95)), float(ms.min()), float(ms.max()), spread)

    def to_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in ("samples", "p50", "p95", "min", "max", "spread")}

    def describe(self) -> str:
        return (
            f"p50 {self.p50:.3g} ms, p95 {self.p95:.3g} ms, min {self.min:.3g} ms, max {self.max:.3g} ms, "
            f"spread {100 * self.spread:.2g}%"
        )


def measure_interleaved(
    variant: Callable[[], Any], framework: Callable[[], Any], latency: Latency
) -> tuple[Timing, Timing, float]:
    """Time both callables alternately; (variant timing, framework timing, wall seconds)."""
    for _ in range(latency.warmup):
        variant()
        framework()
    times_v: list[float] = []
    times_f: list[float] = []
    clock = time.perf_counter
    start = clock()
    n = 0
    while True:
        pair = (variant, times_v), (framework, times_f)
        for fn, bucket in pair if n % 2 == 0 else pair[::-1]:
            t = clock()
            fn()
            bucket.append(clock() - t)
        n += 1
        elapsed = clock() - start
        if n >= latency.min_repeats and elapsed >= latency.min_time_s:
            break
        if elapsed >= latency.max_time_s and n >= 5:
            break
    return Timing.of(times_v), Timing.of(times_f), clock() - start


def latency_ratio(variant: Timing, framework: Timing) -> float:
    """Variant p50 over framework p50 (the ``max_ratio`` budget's measure)."""
    return variant.p50 / framework.p50 if framework.p50 > 0 else float("inf")


def latency_verdict(
    latency: Latency, variant: Timing, framework: Timing
) -> tuple[list[str], list[str], bool]:
    """(broken budgets, kept budgets, reliable), the budgets as readable lines.

    A verdict is unreliable when a budget lies within the measurement's own spread of the
    measured value (the variant's spread; for the ratio, both sides' spreads added): a rerun
    on the same machine could then land on the other side of it."""
    measured = {"p50_ms": variant.p50, "p95_ms": variant.p95, "max_ratio": latency_ratio(variant, framework)}
    broken: list[str]
    kept: list[str]
    broken, kept = [], []
    reliable = True
    for key, limit in latency.budgets.items():
        value = measured[key]
        unit = "" if key == "max_ratio" else " ms"
        what = {"p50_ms": "p50", "p95_ms": "p95", "max_ratio": "variant/framework p50 ratio"}[key]
        line = f"{what} {value:.3g}{unit} {'>' if value > limit else '<='} budget {limit:g}{unit} ({key})"
        (broken if value > limit else kept).append(line)
        spread = variant.spread + (framework.spread if key == "max_ratio" else 0.0)
        if abs(value - limit) <= spread * value:
            reliable = False
    return broken, kept, reliable


# -- running the budget items -----------------------------------------------------------------
def check_opset(
    spec: ParitySpec, exported_at: Callable[[int | None], Any], item: str = "opset"
) -> BudgetResult:
    """The opset budget against the export at the target opset (or at each of a matrix).
    ``exported_at(opset)`` is the :class:`~onnxparity.exporters.ExportedModel` at that opset
    (raising ExportError when it cannot be made)."""
    budget = spec.opset_budget
    assert budget is not None
    problems: dict[str, list[str]] = {}
    measured: dict[str, Any] = {}
    for opset in budget.matrix or (spec.opset,):
        label = "the model" if opset is None else f"the model at opset {opset}"
        try:
            exported = exported_at(opset)
        except ExportError as exc:
            problems[label] = [f"export failed: {exc}"]
            continue
        label += f" (from {exported.describe()})"
        problems[label], measured[str(opset or exported.opset)] = opset_problems(exported.path, budget)
    failed = any(problems.values())
    return BudgetResult(
        item,
        "opset",
        "failed" if failed else "passed",
        opset_message(budget, problems),
        budget.to_dict(),
        measured,
    )


def check_latency(
    latency: Latency,
    item: str,
    *,
    variant: Callable[[], Any],
    framework: Callable[[], Any],
    limit_threads: Callable[[int], Any],
    dims: Mapping[str, int],
    mode: str,
    provider: str | None,
    spell: Callable[..., str],
) -> BudgetResult:
    """Time ``variant`` and ``framework`` (one input each, at ``dims``) interleaved, with
    ``latency.threads`` threads, and judge the budgets; ``mode`` "enforce" fails a broken
    budget, "report" records it. ``spell(setting, value)`` names a setting in messages."""
    with limit_threads(latency.threads):
        timed_v, timed_f, wall = measure_interleaved(variant, framework, latency)
    broken, kept, reliable = latency_verdict(latency, timed_v, timed_f)
    env = environment(latency.threads, provider, flat=True)
    ratio = latency_ratio(timed_v, timed_f)
    at = ", ".join(f"{k}={v}" for k, v in dims.items()) or "fixed shapes"
    threads = f"{latency.threads} thread{'s' if latency.threads > 1 else ''}"
    lines = [
        f"latency of {latency.variant} at {at} ({threads}; {timed_v.samples} runs of each side "
        f"interleaved with the framework over {wall:.2f} s):",
        f"  {latency.variant}: {timed_v.describe()}",
        f"  framework: {timed_f.describe()}",
        f"  ratio {latency.variant}/framework (p50): {ratio:.3g}",
    ]
    lines += [f"  broken: {b}" for b in broken] + [f"  kept: {k}" for k in kept]
    if not latency.budgets:
        lines.append("  no budget declared: numbers recorded only")
    if not reliable:
        lines.append(
            f"  unreliable: the runs spread by {100 * timed_v.spread:.2g}% ({latency.variant}) and "
            f"{100 * timed_f.spread:.2g}% (framework) between blocks, more than the margin to a budget, "
            "so this verdict can flip on a rerun; keep threads=1, raise min_time_s, or prefer max_ratio "
            "(interleaved) to absolute milliseconds"
        )
    status = "passed"
    if broken:
        if mode == "enforce":
            status = "failed"
        else:
            lines.append(
                f"  mode report: a broken budget is recorded, not enforced ({spell('latency', 'enforce')})"
            )
    lines.append("  environment: " + ", ".join(f"{k} {v}" for k, v in env.items() if v is not None))
    measured = {
        "at": dict(dims),
        "variant": timed_v.to_dict(),
        "framework": timed_f.to_dict(),
        "ratio": ratio,
        "wall_s": wall,
        "reliable": reliable,
        "broken": broken,
        "mode": mode,
        "environment": env,
    }
    return BudgetResult(item, "latency", status, "\n".join(lines), latency.to_dict(), measured)
