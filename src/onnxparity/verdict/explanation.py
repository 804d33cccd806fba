"""A failed output comparison in words: what differs, by how much under which rule, and the
table of its worst mismatches."""

from __future__ import annotations

from typing import TYPE_CHECKING

from onnxparity.spec import DEFAULT_TOLERANCE, Agreement, Policy, Tolerance
from onnxparity.spec.policy import tolerance_for

if TYPE_CHECKING:
    from onnxparity.verdict.compare import OutputComparison


def explain_output(result: OutputComparison, policy: Policy) -> str:
    """The diagnosis of one failed output."""
    head = f"output {result.name!r}"
    if result.problem == "shape":
        return (
            f"{head}: shape {list(result.actual_shape)} but the reference has "
            f"{list(result.expected_shape)} (a baked or wrongly computed dimension)"
        )
    if result.problem == "dtype":
        return f"{head}: dtype {result.actual_dtype} but the reference has {result.expected_dtype}"
    if result.passed:
        return f"{head}: matches"
    if result.problem == "agreement" and isinstance(policy, Agreement):
        parts = []
        if "non-finite" in result.broken:
            parts.append(f"{result.nonfinite} values are NaN or infinite on one side only")
        if "cosine" in result.broken:
            parts.append(f"cosine similarity {result.cosine:.6g} < {policy.cosine:g}")
        if "sqnr_db" in result.broken:
            parts.append(f"SQNR {result.sqnr_db:.3g} dB < {policy.sqnr_db:g} dB")
        lines = [f"{head}: {'; '.join(parts)} ({policy.describe()})"]
        metrics = f"cosine {result.cosine:.6g} · SQNR {result.sqnr_db:.3g} dB"
    else:
        applied = tolerance_for(float_tolerance(policy), result.expected_dtype, result.actual_dtype)
        rule = "exactly" if result.exact else f"beyond {applied.describe()}"
        pct = 100.0 * result.mismatched_fraction
        lines = [f"{head}: {result.mismatched} of {result.size} values differ ({pct:.3g}%) {rule}"]
        if result.rows is not None:
            lines.extend(result.rows.lines())
        if result.reordered_axis is not None:
            axis = f", axis={result.reordered_axis}" if result.reordered_axis else ""
            lines.append(
                f"  its rows along axis {result.reordered_axis} are the reference's in another order: "
                "where their order means nothing (detections, a set), declare "
                f"outputs=[op.Output({result.name!r}, unordered=True{axis})]; else the export reorders them"
            )
        if result.ties:
            lines.append(
                f"  {result.ties} more differ on ties (the reference's top probabilities are equal "
                "within tolerance) and are not counted"
            )
        metrics = f"max rel error {result.max_rel_error:.6g}"
    # strings have no error to measure (numpy names a unicode dtype "str160", which np.dtype
    # does not read back: the name is checked, not parsed)
    if not result.expected_dtype.startswith(("str", "bytes", "object")):
        lines.append(
            f"  max abs error {result.max_abs_error:.6g} · mean abs error {result.mean_abs_error:.6g} · {metrics}"
        )
    return "\n".join(lines + mismatch_table(result))


def float_tolerance(policy: Policy) -> Tolerance:
    """The elementwise tolerance float outputs are compared under (an Agreement's own, else the default)."""
    return policy if isinstance(policy, Tolerance) else (policy.float_tolerance or DEFAULT_TOLERANCE)


def _cell(value: float | str | None, spec: str) -> str:
    return "≠" if value is None else repr(value) if isinstance(value, str) else format(value, spec)


def mismatch_table(result: OutputComparison) -> list[str]:
    """The worst-mismatches table of a failed output (no lines when it has none). Where rows
    were paired (a declared output), ``index`` is the reference's and ``ONNX index`` where the
    value paired with it lies."""
    rows = result.worst
    if not rows:
        return []
    capped = len(rows) < result.mismatched
    moved = any(m.actual_index is not None for m in rows)
    header = ("index", "expected", "actual", "difference") + (("ONNX index",) if moved else ())
    cells = [header] + [
        (str(m.index), _cell(m.expected, ".7g"), _cell(m.actual, ".7g"), _cell(m.difference, ".4g"))
        + ((str(m.actual_index or m.index),) if moved else ())
        for m in rows
    ]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    out = ["  worst mismatches:" if not capped else f"  worst {len(rows)} mismatches:"]
    for r in cells:
        out.append(
            "    "
            + "  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths))).rstrip()
        )
    return out
