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


@dataclass(frozen=True)
class Divergence:
    """The first node whose output diverges while its inputs agree.

    ``nodes``: the ONNX nodes that compute ``tensor`` from agreeing values (usually one; more
    where an op was lowered to several, e.g. a decomposed op); ``node`` is the last of them."""

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

    def line(self) -> str:
        source = f" ({self.source_kind} {self.source})" if self.source else ""
        if self.detail:
            what = self.detail
        elif self.nonfinite:
            what = f"{self.nonfinite} values NaN or infinite where the reference is finite"
        else:
            what = f"max abs error {self.max_abs_error:.3g}"
        shown = ", ".join(self.nodes[:6]) + (
            f", ... {len(self.nodes) - 6} more" if len(self.nodes) > 6 else ""
        )
        span = f" (one of {len(self.nodes)} nodes computing it: {shown})" if len(self.nodes) > 1 else ""
        return (
            f"first divergence: {self.op_type} {self.node!r}{source} — inputs agree (max abs "
            f"{self.input_max_abs_error:.2g}), output {self.tensor!r} {what}{span}"
        )

    def to_dict(self) -> dict:
        return {
            "node": self.node,
            "op_type": self.op_type,
            "tensor": self.tensor,
            "source": self.source,
            "max_abs_error": _finite(self.max_abs_error),
            "input_max_abs_error": _finite(self.input_max_abs_error),
            "nonfinite": self.nonfinite,
            "nodes": list(self.nodes),
        }


def _finite(value: float) -> float | None:
    return value if value == value and abs(value) != float("inf") else None
