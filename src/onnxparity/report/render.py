"""Renderings of a report document: the terminal table and the Markdown summary.

Both are plain lines from the same rows (model, item, verdict, worst error vs its policy,
examples, latency p50), so the terminal, ``$GITHUB_STEP_SUMMARY`` and ``onnxparity report show``
agree. Pure functions; no pytest.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, cast

from onnxparity.report import worst_error
from onnxparity.report.document import completeness
from onnxparity.report.gate import GateResult, dig, number

HEADER = ("model", "item", "verdict", "worst error", "headroom", "policy", "examples", "latency p50")


def rows(document: Mapping[str, Any]) -> list[tuple[str, ...]]:
    """One row of cells per item."""
    table: list[tuple[str, ...]] = []
    for item in document["items"]:
        result = item.get("result") or {}
        worst = policy = examples = latency = room = ""
        if item["kind"] == "parity":
            room = headroom_cell(result)
            error = worst_error(result.get("outputs") or [])
            if error is not None:
                worst = f"{error:.2g} abs"
            worst += _agreement(result.get("outputs") or [])
            policy = _policy(result.get("policy"))
            examples = str(result.get("examples", "")) if result.get("examples") else ""
        elif item["kind"] == "latency":
            p50, ratio = (
                number(dig(result, "measured", "variant", "p50")),
                number(dig(result, "measured", "ratio")),
            )
            latency = f"{p50:.3g} ms" if p50 is not None else ""
            worst = f"ratio {ratio:.3g}" if ratio is not None else ""
            policy = ", ".join(
                f"{k}={number(dig(result, 'budget', k)):g}"
                for k in ("p50_ms", "p95_ms", "max_ratio")
                if number(dig(result, "budget", k))
            )
        elif item["kind"] == "opset":
            opsets = sorted((result.get("measured") or {}).keys())
            worst = f"opset {', '.join(opsets)}" if opsets else ""
            policy = "Opset budget"
        path, _, test = item["test"].rpartition("::")
        name = f"{path.rsplit('/', 1)[-1]}::{test}" if path else item["test"]
        verdict = item["status"] + (" (weak)" if weak_reasons(item) else "")
        if item["kind"] == "latency" and dig(result, "measured", "broken") and item["status"] == "passed":
            verdict += " (over budget: reported, not enforced)"  # (--onnx-parity-latency=report)
        verdict += " (cached)" if isinstance(result.get("cached"), Mapping) else ""
        table.append((name, item["item"], verdict, worst, room, policy, examples, latency))
    return table


def headroom_cell(result: Mapping[str, Any]) -> str:
    """How close a parity item came to its policy: the share of the tolerance its worst value
    used (``95% used``: passes, barely), or an Agreement's SQNR margin; empty where the report
    does not record it."""
    policy = result.get("policy") or {}
    if policy.get("kind") == "agreement":
        required = number(policy.get("sqnr_db"))
        measured = [number(o.get("sqnr_db")) for o in result.get("outputs") or []]
        measured = [m for m in measured if m is not None]
        if required is None or not measured:
            return ""
        return f"SQNR {min(cast(list[float], measured)) - required:+.1f} dB"  # (the Nones filtered out)
    used = number(dig(result, "distribution", "worst_tolerance_used"))
    if used is None:
        return ""
    if used != used or used == float("inf"):
        return "non-finite"
    if used < 0:  # no run measures a negative share: a report written by hand
        return "invalid"
    if used > 1:
        if used >= 1e6:  # a report's number, not a run's: never a 300-digit cell
            return f"{used:.3g}x tolerance"
        return f"{used:.2g}x tolerance" if used < 10 else f"{used:,.0f}x tolerance"
    return "<1% used" if 0 < used < 0.01 else f"{used:.0%} used"


def weak_reasons(item: Mapping[str, Any]) -> list[str]:
    """Why a passing item could not have failed (empty: it could, or it did not pass)."""
    reasons = dig(item, "result", "power", "reasons")
    weak = item.get("status") == "passed" and dig(item, "result", "power", "weak")
    return [str(r) for r in reasons] if weak and isinstance(reasons, list) else []


def _weak_lines(document: Mapping[str, Any]) -> list[str]:
    weak = [(i["nodeid"], weak_reasons(i)) for i in document["items"] if weak_reasons(i)]
    if not weak:
        return []
    lines = [f"weak: {len(weak)} passing item(s) could not have failed (onnxparity.WeakCheck):"]
    for nodeid, reasons in weak:
        lines.append(f"  {nodeid}")
        lines += [f"    {r}" for r in reasons]
    return lines


def _coverage_lines(document: Mapping[str, Any], shown: int = 3) -> list[str]:
    """Items whose inputs never reached one side of a boundary the graph branches on."""
    found = []
    for item in document["items"]:
        coverage = (item.get("result") or {}).get("coverage")
        unreached = coverage.get("unreached") if isinstance(coverage, Mapping) else None
        if unreached:
            found.append((item["nodeid"], unreached, cast(Mapping[str, Any], coverage).get("sides")))
    if not found:
        return []
    lines = [f"coverage: {len(found)} item(s) never reached a side of a boundary the graph branches on:"]
    for nodeid, unreached, sides in found:
        lines.append(f"  {nodeid} ({len(unreached)} of {sides} sides unreached)")
        lines += [f"    {u}" for u in unreached[:shown]]
        if len(unreached) > shown:
            lines.append(f"    ... and {len(unreached) - shown} more (the JSON report has them all)")
    return lines


def _padding_lines(document: Mapping[str, Any]) -> list[str]:
    """One line where items compared outputs at real positions only: how many padded values
    they left out in all (each output's ``padded_left_out`` in the JSON report)."""
    counts = [
        sum(
            o["padded_left_out"]
            for o in (item.get("result") or {}).get("outputs") or []
            if isinstance(o, Mapping) and isinstance(o.get("padded_left_out"), int)
        )
        for item in document["items"]
    ]
    items, total = sum(1 for c in counts if c), sum(counts)
    if not total:
        return []
    return [
        f"padding: {items} item(s) compared outputs at real positions only, {total} padded values left out "
        "(padded_left_out per output in the JSON report; op.Input(..., compare_padded=True) compares them)"
    ]


def _conditioning_lines(document: Mapping[str, Any]) -> list[str]:
    """A line per item that passed with examples the framework computes unstably (each item's
    ``ill_conditioned`` in the JSON report): those were not counted as failures, and say why."""
    return _uncounted(
        document, "ill_conditioned", "ill-conditioned", "example(s) not counted as failures",
        lambda line: line.removeprefix("ill-conditioned: "),
    )


def _rejected_lines(document: Mapping[str, Any]) -> list[str]:
    """A line per item whose search dropped drawn examples both sides refused (each item's
    ``rejected`` in the JSON report): it passed on fewer examples than drawn, and says why."""
    return _uncounted(
        document, "rejected", "rejected",
        "drawn example(s) refused by both the reference and the variant, not counted", lambda line: line,
    )


def _uncounted(
    document: Mapping[str, Any], key: str, label: str, what: str, reason: Callable[[str], str]
) -> list[str]:
    """A line per item whose result's ``key`` (``{"examples": n, "line": why}``) counts examples
    it set aside: ``label: nodeid: n what — why``."""
    lines = []
    for item in document["items"]:
        found = (item.get("result") or {}).get(key)
        if isinstance(found, Mapping) and isinstance(found.get("examples"), int) and found["examples"]:
            lines.append(f"{label}: {item.get('nodeid')}: {found['examples']} {what} — {reason(str(found.get('line') or ''))}")
    return lines


def _agreement(outputs: list[Any]) -> str:
    """The pooled cosine and SQNR an Agreement judged (the worst output's); a report written
    before they were pooled has only each example's minimum cosine."""
    pooled = [o for o in outputs if isinstance(o.get("sqnr_db"), (int, float))]
    if pooled:
        worst = min(pooled, key=lambda o: o["sqnr_db"])
        cosine = worst.get("cosine")
        text = f", cos {cosine:.5g}" if isinstance(cosine, (int, float)) else ""
        return text + f", SQNR {worst['sqnr_db']:.3g} dB"
    cosines = [o.get("min_cosine") for o in outputs if isinstance(o.get("min_cosine"), (int, float))]
    return f", cos {min(cosines):.5g}" if cosines else ""


def _policy(policy: Mapping[str, Any] | None) -> str:
    if not policy:
        return ""
    values = {
        k: number(policy.get(k)) for k in ("atol", "rtol", "scaled", "labels", "top1", "cosine", "sqnr_db")
    }
    if policy.get("kind") == "tolerance":
        shown = [
            k for k in ("atol", "rtol", "scaled") if values[k] is not None and (k != "scaled" or values[k])
        ]
        return ", ".join(f"{k}={values[k]:g}" for k in shown)
    parts = [f"{k}={values[k]:g}" for k in ("top1", "cosine", "sqnr_db") if values[k] is not None]
    if values["labels"] is not None and values["labels"] < 1:
        parts.insert(0, f"labels={values['labels']:g}")
    return f"Agreement({', '.join(parts)})"


def terminal(document: Mapping[str, Any], gate: GateResult | None = None) -> list[str]:
    """An aligned table, the counts, and the gate's reasons."""
    table = [HEADER, *rows(document)]
    widths = [max(len(r[i]) for r in table) for i in range(len(HEADER))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in table]
    lines.insert(1, "  ".join("-" * w for w in widths))
    lines.append(_counts(document))
    lines += _incomplete_lines(document)
    lines += _weak_lines(document)
    lines += _coverage_lines(document)
    lines += _padding_lines(document)
    lines += _conditioning_lines(document)
    lines += _rejected_lines(document)
    lines += _gate_lines(gate)
    return lines


def markdown(
    document: Mapping[str, Any],
    gate: GateResult | None = None,
    title: str = "ONNX parity",
    html: str | None = None,
) -> str:
    """The table as GitHub Markdown, then each failure's diagnosis; ``html``: where the HTML
    report was written (named under the counts: CI uploads it as an artifact)."""
    out = [f"## {title}", "", _counts(document), ""]
    if html:
        out += [
            f"HTML report: `{html}` (plots, headroom, advised tolerances; in CI, the run's "
            "`onnxparity-report` artifact)",
            "",
        ]
    incomplete = _incomplete_lines(document)
    if incomplete:
        out += [f"**{line}**" for line in incomplete] + [""]
    out.append("| " + " | ".join(HEADER) + " |")
    out.append("|" + "---|" * len(HEADER))
    icon = {
        "passed": "✅ passed",
        "passed (weak)": "⚠️ passed (weak)",
        "failed": "❌ failed",
        "error": "💥 error",
        "skipped": "⏭ skipped",
    }
    for r in rows(document):
        cells = list(r)
        cached = cells[2].endswith(" (cached)")
        plain = cells[2].removesuffix(" (cached)")
        cells[2] = icon.get(plain, plain) + (" (cached)" if cached else "")
        out.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    weak = _weak_lines(document)
    if weak:
        out += ["", "### Weak checks", "", weak[0], ""] + [f"- {line.strip()}" for line in weak[1:]]
    gate_lines = _gate_lines(gate)
    if gate_lines:
        out += ["", "### Release gate", ""] + [f"- {line.strip()}" for line in gate_lines]
    bad = [i for i in document["items"] if i["status"] in ("failed", "error")]
    if bad:
        out += ["", "### Failures"]
        for item in bad:
            message = (item.get("result") or {}).get("message") or item["status"]
            out += [
                "",
                f"<details><summary><code>{item['nodeid']}</code></summary>",
                "",
                "```",
                message,
                "```",
                "</details>",
            ]
    return "\n".join(out) + "\n"


def _counts(document: Mapping[str, Any]) -> str:
    summary = document.get("summary", {})
    parts = [f"{summary[k]} {k}" for k in ("passed", "failed", "error", "skipped") if summary.get(k)]
    weak = sum(1 for i in document["items"] if weak_reasons(i))
    if weak:
        parts.insert(1, f"{weak} weak")
    return f"{len(document['items'])} parity items: " + (", ".join(parts) or "none")


def _incomplete_lines(document: Mapping[str, Any]) -> list[str]:
    incomplete = completeness(document)
    return [f"INCOMPLETE: {incomplete}; this is no release result"] if incomplete else []


def _gate_lines(gate: GateResult | None) -> list[str]:
    if gate is None:
        return []
    if gate.refused:
        return [f"release gate: REFUSED: {gate.refused}"]
    head = (
        f"release gate: passed ({gate.compared} baseline items compared)"
        if gate.passed
        else f"release gate: FAILED ({len(gate.reasons)} reason(s), {gate.compared} baseline items compared)"
    )
    return [head] + [f"  {r}" for r in gate.reasons] + [f"  warning: {w}" for w in gate.warnings]


def show(lines: Sequence[str]) -> str:
    return "\n".join(lines) + "\n"
