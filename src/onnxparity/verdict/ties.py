"""Label outputs on tied rows: where the reference's own top probabilities are equal within
the tolerance, two runtimes may pick different labels, and neither is wrong."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import numpy as np

from onnxparity.spec import Tolerance

if TYPE_CHECKING:
    from onnxparity.verdict.compare import OutputComparison


def excuse_ties(
    result: OutputComparison,
    expected_labels: np.ndarray,
    actual_labels: np.ndarray,
    expected_probabilities: np.ndarray,
    classes: Sequence[Any],
    tolerance: Tolerance,
) -> OutputComparison:
    """Label differences where the reference's own probabilities tie are not failures.

    A row is a tie when the reference gives the ONNX model's label a probability within
    ``tolerance`` of its top probability: the two runtimes may break such a tie differently.
    """
    if result.passed or result.problem != "values":
        return result
    column_of = {c: i for i, c in enumerate(np.asarray(classes).tolist())}
    rows = len(expected_labels)
    probs = np.asarray(expected_probabilities, dtype=np.float64).reshape(rows, -1)
    labels_e = np.asarray(expected_labels).reshape(rows).tolist()
    labels_a = np.asarray(actual_labels).reshape(rows).tolist()
    tie_rows = set()
    for row in range(rows):
        if labels_e[row] == labels_a[row]:
            continue
        column = column_of.get(labels_a[row])
        top = probs[row].max()
        if column is not None and top - probs[row, column] <= tolerance.atol + tolerance.rtol * abs(top):
            tie_rows.add((row,))
    if not tie_rows:
        return result
    remaining = result.mismatched - len(tie_rows)
    return replace(
        result,
        passed=remaining == 0,
        problem=None if remaining == 0 else "values",
        mismatched=remaining,
        ties=len(tie_rows),
        worst=tuple(m for m in result.worst if m.index not in tie_rows),
    )
