"""Reports: the JSON document of a run and its renderings (terminal, Markdown, HTML), the
baseline gate, the advisor and history. Everything here reads result data as dicts; the
result objects themselves live in :mod:`onnxparity.results` and are re-exported here.
"""

from __future__ import annotations

from onnxparity.results import (
    BudgetResult,
    CheckResult,
    OutputSummary,
    VariantResult,
    error_value,
    worst_error,
)
from onnxparity.verdict.power import OutputPower, Power

__all__ = [
    "STATUSES",
    "BudgetResult",
    "CheckResult",
    "OutputPower",
    "OutputSummary",
    "Power",
    "VariantResult",
    "error_value",
    "worst_error",
]

STATUSES = ("passed", "failed", "error", "skipped")


