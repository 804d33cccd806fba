"""Failure forensics: where a failing check first goes wrong, and the smallest model that shows it.

On a failing example, two sets of values of the same tensors are compared in the graph's
topological order — the framework's intermediates against the ONNX model's (:mod:`.export`),
or one runtime or precision against another (the fp16 variant's own localization) — and the
first ONNX node whose output diverges while its inputs agree is named, with the module or
layer it came from where the exporter recorded it. The nodes that compute that value from
agreeing ones are cut out into a model of their own (:mod:`.subgraph`). Runs on failure only,
once per failing item; one example's values at a time.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

#: how a forensics line states a fix it verified on the failing input (or one that follows from
#: what it found): the diagnosis makes it the failure's ``next:`` line
FIX = "fix: "


@dataclass(frozen=True)
class Divergence:
    """Where a failing input first goes wrong, as far as what was observed shows.

    ``nodes``: the ONNX nodes that compute ``tensor`` from values known to agree (``inputs``:
    paired values that agreed, graph inputs, constants); ``node`` is the last of them. One node:
    its inputs were observed to agree, so that node is named. Several: the framework exposed no
    value in between (an op lowered to several nodes, a functional call inside a module, a
    module whose output pairs with no single value), so the line names the span — never one of
    its nodes as the culprit."""

    node: str
    op_type: str
    tensor: str
    max_abs_error: float
    input_max_abs_error: float
    nonfinite: int = 0
    #: the framework's module path, Keras layer or pipeline step (None: not recorded)
    source: str | None = None
    #: how ``line`` names the source: "module", "layer", "step"
    source_kind: str = "module"
    nodes: tuple[str, ...] = field(default_factory=tuple)
    #: overrides how ``line`` states the output's error (e.g. float16's overflow)
    detail: str = ""
    #: the values the span starts from, each known to agree (observed, a graph input or a constant)
    inputs: tuple[str, ...] = field(default_factory=tuple)
    #: the span reached its size limit before values known to agree: it may start earlier
    truncated: bool = False
    #: within the span, the first node whose output is NaN or infinite from finite inputs (the
    #: ONNX values were computed for it), where the framework's value is finite
    first_nonfinite: str = ""
    #: why a span has no value in between (what the two sides were)
    unobserved: str = "the framework exposes no value in between"
    #: of ``inputs``, those paired with a framework value by its values, not by a name
    by_value: tuple[str, ...] = field(default_factory=tuple)
    #: the lines that say what the divergence means, each printed with what proves it (the
    #: spec's verdict, a likely cause in the input, the anchor's distance, the optimizer's fix)
    evidence: tuple[str, ...] = field(default_factory=tuple)

    @property
    def span(self) -> bool:
        return len(self.nodes) > 1

    def line(self) -> str:
        if self.detail:
            what = self.detail
        elif self.nonfinite:
            what = f"{self.nonfinite} values NaN or infinite where the reference is finite"
        else:
            what = f"max abs error {self.max_abs_error:.3g}"
        paired = f"; {', '.join(repr(v) for v in self.by_value)} paired by value" if self.by_value else ""
        if not self.span:
            source = f" ({self.source_kind} {self.source})" if self.source else ""
            return (
                f"first divergence: {self.op_type} {self.node!r}{source} — inputs agree (max abs "
                f"{self.input_max_abs_error:.2g}{paired}), output {self.tensor!r} {what}"
            )
        shown = ", ".join(self.nodes[:6]) + (f", ... {len(self.nodes) - 6} more" if len(self.nodes) > 6 else "")
        start = ", ".join(repr(v) for v in self.inputs[:3]) + (
            f" and {len(self.inputs) - 3} more" if len(self.inputs) > 3 else ""
        )
        agree = f" (agree, max abs {self.input_max_abs_error:.2g}{paired})" if self.inputs else ""
        source = f" ({self.source_kind} {self.source})" if self.source else ""
        count = f"at least {len(self.nodes)}" if self.truncated else str(len(self.nodes))
        nonfinite = (
            f"; the first NaN or infinity is made by {self.first_nonfinite!r} from finite inputs"
            if self.first_nonfinite
            else ""
        )
        return (
            f"first divergence: between {start or 'the graph inputs'}{agree} and {self.tensor!r} "
            f"({what}): {count} nodes{source} — {shown}; {self.unobserved}"
            f"{nonfinite}"
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "node": self.node,
            "op_type": self.op_type,
            "tensor": self.tensor,
            "source": self.source,
            "max_abs_error": _finite(self.max_abs_error),
            "input_max_abs_error": _finite(self.input_max_abs_error),
            "nonfinite": self.nonfinite,
            "nodes": list(self.nodes),
            "inputs": list(self.inputs),
            "first_nonfinite": self.first_nonfinite or None,
            "by_value": list(self.by_value),
            "line": self.line(),
            "evidence": list(self.evidence),
        }


def _finite(value: float) -> float | None:
    return value if value == value and abs(value) != float("inf") else None
