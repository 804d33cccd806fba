"""A failing item's diagnosis: what differs, by how much, on which shrunk input, what the
anchor says about it, where the reproducer is, and a ``next:`` line saying what to do."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any, cast

from onnxparity.forensics import FIX
from onnxparity.forensics.by_variant import explain
from onnxparity.forensics.inputs import declared_fix
from onnxparity.search.tally import Evidence, Shortfall
from onnxparity.spec import Agreement, ParitySpec, Policy
from onnxparity.variants import Runnable
from onnxparity.verdict.explanation import mismatch_table

if TYPE_CHECKING:
    from onnxparity.draw import Example
    from onnxparity.exporters import ModelPair
    from onnxparity.verdict.compare import Verdict


def diagnosis(
    variant: str,
    pair: ModelPair,
    spec: ParitySpec,
    policy: Policy,
    failure: Evidence,
    tried: int,
    reproducer: str,
    extra: Sequence[str] = (),
    export_right: bool = False,
) -> str:
    """``export_right``: the anchor variant ran the failing input and matched the reference."""
    exported = pair.exported
    source = exported.describe()
    verified = next((e for e in extra if isinstance(e, str) and e.startswith(FIX)), "")
    extra = [e for e in extra if e is not verified]  # a verified fix is the next: line, said once
    if failure.reference_error:
        lines = [
            f"the reference model raised on an input the spec declares valid ({variant} not compared):",
            indent(failure.reference_error),
        ]
        advice = (
            "the spec declares shapes or values the model does not accept: narrow dims= or the Input ranges"
        )
    elif failure.crashed:
        lines = [
            f"{variant} crashed on an input the spec declares valid (model from {source}):",
            indent(failure.runtime_error or ""),
        ]
        advice = (
            f"the runtime's native code crashes on this input (its feeds are in the reproducer; replaying "
            f"them crashes the process that runs them): report it to the runtime's authors, and drop "
            f"{variant} from this model's variants or narrow the declared inputs until it is fixed"
        )
    elif failure.runtime_error and export_right:
        lines = [
            f"{variant} cannot run this model on an input the spec declares valid (model from {source}):",
            indent(failure.runtime_error),
        ]
        advice = verified.removeprefix(FIX) or (
            f"the export is right and {variant} cannot run it: drop {variant} from this model's variants, "
            "or report the error to the runtime's authors with the reproducer"
        )
    elif failure.runtime_error:
        lines = [
            f"{variant} raised on an input the spec declares valid (model from {source}):",
            indent(failure.runtime_error),
        ]
        notes = " (see the notes)" if exported.notes else ""  # (it pointed at notes that were not there)
        advice = (
            f"the ONNX model rejects an input the framework model accepts: look for a dim the exporter baked "
            f"in{notes}, or narrow the declared dims (dims=; onnxparity check: --inputs) if these shapes are unsupported"
        )
        if _OUT_OF_BOUNDS.search(failure.runtime_error):
            advice = (
                "an index input reached a value outside the graph's table (an embedding or gather "
                "table shorter than the model's): compare the table's rows with the declared id range "
                "(high=), e.g. the vocabulary's last id"
            )
    else:
        lines = [
            f"{variant} differs from the reference (model from {source}):",
            cast("Verdict", failure.verdict).explain(),  # neither raised nor crashed: compared
        ]
        kind = "op.Agreement(...)" if isinstance(policy, Agreement) else "op.Tolerance(...)"
        advice = verified.removeprefix(FIX) or declared_fix([e for e in extra if isinstance(e, str)]) or (
            f"inspect the reproducer; if this difference is acceptable, loosen "
            f"tolerance={{{variant!r}: {kind}}} (now {policy.describe()})"
        )
    lines.extend(extra)
    lines.extend(pattern_hints(failure.example.patterns) if failure.verdict is not None else [])
    if failure.crashed:
        shrunk = "input (not shrunk: each try would crash again)"
    else:
        shrunk = f"input ({failure.unshrunk})" if failure.unshrunk else "shrunk input"
    lines.append(f"{shrunk}: {failure.example.describe(spec)}")
    lines.append(f"examples tried: {tried}")
    lines.extend(f"note: {n}" for n in exported.notes)
    lines.append(f"reproducer: {reproducer}")
    lines.append(f"next: {advice}")
    return "\n".join(lines)


_OUT_OF_BOUNDS = re.compile(r"out of (data )?bounds|out of range|index \d+ is out of bounds", re.IGNORECASE)

#: what a failing example's data pattern says about the bug
_PATTERN_HINTS = {
    "boundary": "this input holds values at (or one float32/float64 step from) the boundaries the "
    "graph branches on — split thresholds, clip bounds, comparison constants: a converter that stored "
    "one rounded the other way than the framework decides differently exactly there",
    "unit": "this input's values all lie in [0, 1] (or [-1, 1]) inside a wider declared range: look for "
    "a branch on the values' range that the export baked in (a traced `if x.max() > 1`)",
    "band": "this input's values all lie in one narrow part of the declared range: look for a branch "
    "on the values' range that the export baked in (a traced `if x.max() > 1`)",
}


def pattern_hints(patterns: Iterable[str]) -> list[str]:
    """A line for each data pattern of a failing example that points at a kind of bug."""
    return [f"hint: {_PATTERN_HINTS[p]}" for p in dict.fromkeys(patterns) if p in _PATTERN_HINTS]


def variant_explanation(runnable: Runnable, failure: Evidence, tolerance: Any = None) -> list[Any]:
    """The forensics' explanation of a variant's failing input (e.g. int8 saturation), or a
    user runnable's own ``explain``; ``tolerance``: the item's, for a variant that judges two
    runs of its graph by it."""
    if failure.reference_error or failure.crashed:
        return []
    try:
        return explain(runnable, failure.feeds, tolerance)
    except Exception:  # an explanation must never mask the verdict
        return []


def indent(text: str) -> str:
    return "\n".join("  " + line.strip() for line in text.strip().splitlines() if line.strip())


#: how a shortfall's rule is named: what it counts, and the worst example's title
_RULES = {
    "labels": ("labels", "most flips"),
    "top1": ("top-1 predictions", "most top-1 disagreements"),
    "cosine": ("outputs", "lowest SQNR"),
    "sqnr_db": ("outputs", "lowest SQNR"),
}


def agreement_diagnosis(
    variant: str,
    pair: ModelPair,
    spec: ParitySpec,
    policy: Policy,
    shortfall: list[Shortfall],
    worst: Evidence,
    tried: int,
    reproducer: str,
    extra: Sequence[str] = (),
) -> str:
    rules = dict.fromkeys(f"{s.rule}={s.required:g}" for s in shortfall)
    what = " and ".join(dict.fromkeys(_RULES[s.rule][0] for s in shortfall))
    rates = all(s.rule in ("labels", "top1") for s in shortfall)
    over = "" if rates else f" over {tried} examples"
    lines = [
        f"{variant} {what} agree less {'often ' if rates else ''}than Agreement({', '.join(rules)}) "
        f"asks{over} (model from {pair.exported.describe()}):"
    ]
    for item in shortfall:
        if item.rule == "cosine":
            lines.append(f"output {item.output!r}: cosine similarity {item.value:.6g} < {item.required:g}")
        elif item.rule == "sqnr_db":
            lines.append(f"output {item.output!r}: SQNR {item.value:.3g} dB < {item.required:g} dB")
        else:
            what = "values differ" if item.rule == "labels" else "rows have a different top-1 (argmax)"
            lines.append(
                f"output {item.output!r}: {item.differ} of {item.total} {what} over {tried} examples "
                f"({100.0 * item.differ / item.total:.3g}%; at most {100.0 * (1.0 - item.required):.3g}% allowed)"
            )
    lines.append(f"the example with the {_RULES[shortfall[0].rule][1]}: {worst.example.describe(spec)}")
    explained = cast("Verdict", worst.verdict).explain()  # the worst example was compared
    if explained:
        lines.append(explained)
    if not rates:
        for o in cast("Verdict", worst.verdict).outputs:
            if o.cosine is not None and o.sqnr_db is not None and any(s.output == o.name for s in shortfall):
                lines.append(
                    f"on that example, output {o.name!r}: cosine {o.cosine:.6g} · SQNR {o.sqnr_db:.3g} dB · "
                    f"max abs error {o.max_abs_error:.6g} · mean abs error {o.mean_abs_error:.6g}"
                )
                lines.extend(mismatch_table(o))
    lines.extend(extra)
    lines.extend(f"note: {n}" for n in pair.exported.notes)
    lines.append(f"reproducer: {reproducer}")
    loosen = ", ".join(dict.fromkeys(f"{s.rule}=..." for s in shortfall))
    lines.append(
        f"next: inspect the reproducer; if this {'rate' if rates else 'loss'} is acceptable, lower "
        f"Agreement({loosen}) for {variant!r}"
    )
    return "\n".join(lines)


def all_rejected(variant: str, count: int, first: tuple[str, str, str] | None = None) -> str:
    """The message of a search whose every example the reference and the variant both
    refused: the inputs read from the model claim more than it accepts; ``first``: the first
    such input and what each side said of it."""
    lines = [
        f"every one of the {count} drawn inputs was rejected by both the reference and {variant}: the inputs "
        "read from the model allow values it does not accept (an index, a size or a count it does not bound "
        "in a way onnxparity reads); declare inputs= with the ranges the model takes"
    ]
    if first is not None:
        described, reference, runtime = first
        lines += [
            f"the first: {described}",
            f"  the reference: {_first_line(reference)}",
            f"  {variant}: {_first_line(runtime)}",
        ]
    return "\n".join(lines)


def rejected_line(first: tuple[str, str, str] | None) -> str:
    """What a passing search says of the drawn examples both sides refused (before: nothing,
    and a check asked for 20 examples passed on 11 without saying why)."""
    if first is None:
        return ""
    described, reference, runtime = first
    return (
        f"the first: {described} (the reference: {_first_line(reference, 160)}); the inputs read from the "
        "model allow values it does not accept: declare inputs= with the ranges the model takes"
    )


def _first_line(text: str, limit: int = 300) -> str:
    line = text.strip().splitlines()[0] if text.strip() else "(no message)"
    return line if len(line) <= limit else line[: limit - 3] + "..."


def timeout_diagnosis(
    variant: str,
    spec: ParitySpec,
    tried: int,
    largest: Example | None,
    total: int,
    budget: float,
    spell: Callable[[str, Any], str],
) -> str:
    """An item whose time budget ran out: how far it got (``tried`` examples), the largest input
    it reached."""
    reached = largest.describe(spec) if largest is not None else "none"
    return "\n".join(
        [
            f"{variant}: the time budget of {budget:g} s ran out after {tried} of {total} examples "
            "(every example checked so far passed)",
            f"largest input reached: {reached}",
            f"next: raise the budget ({spell('item_timeout_s', budget * 4)}), or lower examples= or narrow dims=",
        ]
    )
