"""Opset and latency budgets: the checks beside numerical parity.

- :func:`check_opset`: the exported model's opset, operator domains and op types against an
  :class:`~onnxparity.spec.Opset` budget, plus ``onnx.checker`` conformance.
- :func:`measure_latency`: a variant and the framework timed **interleaved** in one process
  (run one, then the other, alternating which goes first), after warm-up, until a minimum
  count and a minimum time are reached; p50/p95/min/max and the spread between blocks of runs.
  Interleaving makes the ratio robust to a shared machine's load changing mid-measurement.

Knows nothing of pytest. Results are plain data with a readable message.
"""

from __future__ import annotations

import collections
import os
import platform
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ._machine import cpu_name
from .spec import STANDARD_DOMAIN, Latency, Opset

#: blocks the runs are split into to measure the spread (how much the median moves).
SPREAD_BLOCKS = 5

#: node names listed per offending op type.
NAMES_SHOWN = 5


@dataclass(frozen=True)
class BudgetResult:
    """The verdict of one budget item (``opset`` or ``latency-<variant>``)."""

    item: str
    kind: str  # "opset" or "latency"
    status: str  # "passed", "failed", "error", "skipped"
    message: str = ""
    budget: dict = field(default_factory=dict)
    measured: dict = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return self.status == "passed"

    def to_dict(self) -> dict:
        return {
            "item": self.item,
            "kind": self.kind,
            "status": self.status,
            "message": self.message,
            "budget": self.budget,
            "measured": self.measured,
        }


# -- opset ------------------------------------------------------------------------------------
def _nodes(graph, where: str = ""):
    """(node, where) for every node, subgraphs (If/Loop/Scan bodies) included."""
    for node in graph.node:
        yield node, where
        for attribute in node.attribute:
            subgraphs = ([attribute.g] if attribute.HasField("g") else []) + list(attribute.graphs)
            for sub in subgraphs:
                yield from _nodes(sub, f"{where}{node.name or node.op_type}/{attribute.name}/")


def _named(entries: list[str]) -> str:
    shown = ", ".join(repr(n) for n in entries[:NAMES_SHOWN])
    more = len(entries) - NAMES_SHOWN
    return shown + (f" and {more} more" if more > 0 else "")


def opset_problems(model_path: str, budget: Opset) -> tuple[list[str], dict]:
    """Every way the model at ``model_path`` breaks ``budget``, and what was measured."""
    import onnx

    model = onnx.load(model_path, load_external_data=False)
    versions = {
        ("ai.onnx" if o.domain in STANDARD_DOMAIN else o.domain): o.version for o in model.opset_import
    }
    standard = versions.get("ai.onnx")
    problems = []
    if standard is not None and not budget.admits(standard):
        bounds = " and ".join(
            f"{word} {v}" for word, v in (("at least", budget.min), ("at most", budget.max)) if v is not None
        )
        problems.append(f"opset {standard} of the standard domain is outside the budget (must be {bounds})")

    by_domain: dict[str, list[str]] = collections.defaultdict(list)
    by_type: dict[str, list[str]] = collections.defaultdict(list)
    for node, where in _nodes(model.graph):
        domain = "ai.onnx" if node.domain in STANDARD_DOMAIN else node.domain
        label = f"{where}{node.name or '(unnamed ' + node.op_type + ')'}"
        by_domain[domain].append(f"{label} ({node.op_type})")
        by_type[node.op_type if domain == "ai.onnx" else f"{domain}.{node.op_type}"].append(label)
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

    model = onnx.load(model_path)
    converted = version_converter.convert_version(model, opset)
    onnx.checker.check_model(converted)
    onnx.save(converted, target_path)
    return target_path


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

    def to_dict(self) -> dict:
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


def latency_verdict(
    latency: Latency, variant: Timing, framework: Timing
) -> tuple[list[str], list[str], bool]:
    """(broken budgets, kept budgets, reliable), the budgets as readable lines.

    A verdict is unreliable when a budget lies within the measurement's own spread of the
    measured value (the variant's spread; for the ratio, both sides' spreads added): a rerun
    on the same machine could then land on the other side of it."""
    ratio = variant.p50 / framework.p50 if framework.p50 > 0 else float("inf")
    measured = {"p50_ms": variant.p50, "p95_ms": variant.p95, "max_ratio": ratio}
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


def environment(provider: str | None, threads: int) -> dict:
    """What makes two latency numbers comparable: CPU, threads, runtime and framework versions."""
    import onnxruntime

    env = {
        "cpu": cpu_name(),
        "cpu_count": os.cpu_count(),
        "threads": threads,
        "onnxruntime": onnxruntime.__version__,
        "provider": provider,
        "python": platform.python_version(),
    }
    for module in ("torch", "tensorflow", "sklearn"):
        if module in sys.modules:
            env[module] = str(getattr(sys.modules[module], "__version__", "?"))
    return env
