"""Results of a parity check as plain data: what a verdict carries, with a text rendering.

``CheckResult`` (one model) holds a ``VariantResult`` per variant and a ``BudgetResult`` per
budget item. ``to_dict`` gives the JSON-able form reports are built from (:mod:`.report`
renders it). Knows nothing of frameworks.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, cast

from onnxparity.errors import ParityFailure
from onnxparity.spec import Policy
from onnxparity.verdict.compare import Verdict, json_float
from onnxparity.verdict.power import OutputPower, Power  # noqa: F401 (OutputPower: re-exported)


@dataclass(frozen=True)
class BudgetResult:
    """The verdict of one budget item (``opset`` or ``latency-<variant>``)."""

    item: str
    kind: str  # "opset" or "latency"
    status: str  # "passed", "failed", "error", "skipped"
    message: str = ""
    budget: dict[str, Any] = field(default_factory=dict)
    measured: dict[str, Any] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return self.status == "passed"

    def to_dict(self) -> dict[str, Any]:
        return {
            "item": self.item,
            "kind": self.kind,
            "status": self.status,
            "message": self.message,
            "budget": self.budget,
            "measured": self.measured,
        }


@dataclass(frozen=True)
class OutputSummary:
    """The worst errors one output showed over every example tried, and how many of all its
    values checked differed (for a label output: the flip rate)."""

    name: str
    max_abs_error: float = 0.0
    max_rel_error: float = 0.0
    max_mismatched_fraction: float = 0.0
    mismatched: int = 0
    values: int = 0
    #: agreement metrics, where the policy computed them (lossy variants)
    min_cosine: float | None = None
    min_sqnr_db: float | None = None
    top1_agree: int = 0
    top1_rows: int = 0
    #: ort-cpu's own max abs error vs the reference on the same inputs (other variants only):
    #: small here and large above means the variant, not the export, loses accuracy
    max_abs_error_vs_ort_cpu: float | None = None
    #: cosine and SQNR pooled over every example (what an Agreement judges)
    cosine: float | None = None
    sqnr_db: float | None = None
    #: values at padded positions of a mask or lengths input left out of the comparison
    #: (``values`` counts them; ``op.Input(..., compare_padded=True)`` compares them)
    padded_left_out: int = 0

    @property
    def mismatched_rate(self) -> float:
        return self.mismatched / self.values if self.values else 0.0

    @property
    def top1_rate(self) -> float | None:
        return self.top1_agree / self.top1_rows if self.top1_rows else None

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "max_abs_error": json_float(self.max_abs_error),
            "max_rel_error": json_float(self.max_rel_error),
            "max_mismatched_fraction": self.max_mismatched_fraction,
            "mismatched": self.mismatched,
            "values": self.values,
            "mismatched_rate": self.mismatched_rate,
            "min_cosine": json_float(self.min_cosine),
            "min_sqnr_db": json_float(self.min_sqnr_db),
            "top1_rate": self.top1_rate,
            "max_abs_error_vs_ort_cpu": json_float(self.max_abs_error_vs_ort_cpu),
            "cosine": json_float(self.cosine),
            "sqnr_db": json_float(self.sqnr_db),
            "padded_left_out": self.padded_left_out,
        }


@dataclass(frozen=True)
class VariantResult:
    """One variant's verdict over the drawn inputs."""

    variant: str
    status: str
    policy: Policy | None = None
    examples: int = 0
    outputs: tuple[OutputSummary, ...] = ()
    dims_covered: dict[str, tuple[int, int]] = field(default_factory=dict)
    failing_example: dict[str, Any] | None = None
    reproducer: str | None = None
    message: str = ""
    verdict: Verdict | None = None
    #: the opset of an opset-matrix item (None: the export's own)
    opset: int | None = None
    #: how much the check could have caught (None: not measured, e.g. nothing ran)
    power: Power | None = None
    #: boundaries the graph branches on: ``{"sides": n, "unreached": [lines]}`` (None: none)
    coverage: dict[str, Any] | None = None
    #: the first node that went wrong (:class:`onnxparity.forensics.Divergence`; None: passed,
    #: or nothing could be localized)
    divergence: Any = None
    #: each example's numbers in bounded size (:class:`onnxparity.verdict.distribution.Distribution`)
    distribution: dict[str, Any] | None = None
    #: examples not counted as failures because the framework disagrees with itself there
    #: (:mod:`onnxparity.search.conditioning`), and the line of the worst of them
    ill_conditioned: int = 0
    conditioning: str = ""
    #: drawn examples the reference and the variant both refused (outside the model's domain,
    #: inputs read from the graph only): not counted, and the line naming the first of them
    rejected: int = 0
    rejection: str = ""
    #: what building the variant did, where it says (a post-export step's nodes before and
    #: after, ops added and removed, fusions, dims fixed: :mod:`onnxparity.variants.rewrite`)
    build: dict[str, Any] | None = None

    @property
    def passed(self) -> bool:
        return self.status == "passed"

    def to_dict(self) -> dict[str, Any]:
        return {
            "variant": self.variant,
            "status": self.status,
            "opset": self.opset,
            "policy": None if self.policy is None else self.policy.to_dict(),
            "examples": self.examples,
            "outputs": [o.to_dict() for o in self.outputs],
            "dims_covered": {k: list(v) for k, v in self.dims_covered.items()},
            "failing_example": self.failing_example,
            "failing_outputs": None
            if self.verdict is None
            else [o.to_dict() for o in self.verdict.failed_outputs],
            "reproducer": self.reproducer,
            "message": self.message,
            "power": None if self.power is None else self.power.to_dict(),
            "coverage": self.coverage,
            "divergence": None if self.divergence is None else self.divergence.to_dict(),
            "distribution": self.distribution,
            **(
                {"ill_conditioned": {"examples": self.ill_conditioned, "line": self.conditioning}}
                if self.ill_conditioned
                else {}
            ),
            **({"rejected": {"examples": self.rejected, "line": self.rejection}} if self.rejected else {}),
            **({"build": self.build} if self.build else {}),
        }


@dataclass(frozen=True)
class CheckResult:
    """A model's parity check: how it was exported and each variant's result."""

    name: str
    exporter: str = ""
    opset: int | None = None
    notes: tuple[str, ...] = ()
    #: parity results by item id (the variant name, or ``<variant>-opset<N>`` in a matrix)
    variants: dict[str, VariantResult] = field(default_factory=dict)
    #: budget results by item id (``opset``, ``latency-<variant>``)
    budgets: dict[str, BudgetResult] = field(default_factory=dict)
    #: where the export came from across runs (``ExportedModel.cache``; empty: no cache)
    cache: str = ""
    #: the export's key (``ExportedModel.key``): one model's items share it
    export_key: str = ""

    @property
    def passed(self) -> bool:
        """True when no item failed or errored (skipped items do not fail a check)."""
        return all(
            v.status in ("passed", "skipped")
            for v in cast("Iterable[VariantResult | BudgetResult]", (*self.variants.values(), *self.budgets.values()))
        )

    def __getitem__(self, variant: str) -> VariantResult:
        return self.variants[variant]

    def __iter__(self) -> Iterator[str]:
        """The parity items' ids, as a dict of them iterates (before: Python fell back to
        ``result[0]``, ``result[1]``, ... and raised KeyError: 0)."""
        return iter(self.variants)

    def __contains__(self, variant: object) -> bool:
        return variant in self.variants

    def raise_for_failures(self) -> None:
        """Raise :class:`ParityFailure` with every failed variant's diagnosis."""
        __tracebackhide__ = True
        bad = [
            v
            for v in cast("Iterable[VariantResult | BudgetResult]", (*self.variants.values(), *self.budgets.values()))
            if v.status in ("failed", "error")
        ]
        if bad:
            raise ParityFailure("\n\n".join(v.message for v in bad))

    def summary(self) -> str:
        lines = [
            f"{self.name}: exported with {self.exporter}" + (f", opset {self.opset}" if self.opset else "")
        ]
        for v in self.variants.values():
            worst = worst_error(o.to_dict() for o in v.outputs)
            worst = 0.0 if worst is None else worst
            label = v.variant + (f"@opset{v.opset}" if v.opset is not None else "")
            lines.append(f"  {label:<16} {v.status:<8} {v.examples:>4} examples  max abs error {worst:.3g}")
        for b in self.budgets.values():
            lines.append(f"  {b.item:<16} {b.status:<8} {b.message.splitlines()[0] if b.message else ''}")
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "exporter": self.exporter,
            "opset": self.opset,
            "notes": list(self.notes),
            "cache": self.cache,
            "variants": {k: v.to_dict() for k, v in self.variants.items()},
            "budgets": {k: v.to_dict() for k, v in self.budgets.items()},
        }


def error_value(value: Any) -> float | None:
    """A stored error as a float: a number as it is, and the strings "nan", "inf" and "-inf"
    that strict JSON stores non-finite floats as (:func:`~onnxparity.verdict.compare.json_float`) as
    the floats they stand for; anything else (None, a missing error) is None."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if value in ("nan", "inf", "-inf"):
        return float(value)
    return None


def worst_error(outputs: Iterable[Mapping[str, Any]]) -> float | None:
    """The largest ``max_abs_error`` over output dicts (a report's, or ``to_dict()``'s); None when
    no output has one.

    One rule for non-finite errors, wherever a worst error is shown: infinity (a value NaN or
    infinite on one side only) ranks above every finite error, and NaN (an error that could not
    be measured) above everything — a non-finite error is never hidden, and the answer does not
    depend on the outputs' order as ``max()`` over NaN does."""
    errors = [e for e in (error_value(o.get("max_abs_error")) for o in outputs) if e is not None]
    if any(e != e for e in errors):
        return float("nan")
    return max(errors, default=None)
