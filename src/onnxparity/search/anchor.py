"""The anchor: every variant is also measured against one lossless variant (ort-cpu by
default) on the same inputs, so a reader sees whether an error comes from the export (the
anchor is off too) or from the variant (the anchor agrees with the reference)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from onnxparity.search.data import ExampleKey
from onnxparity.search.tally import Evidence
from onnxparity.spec import DEFAULT_TOLERANCE
from onnxparity.verdict.compare import Verdict, compare_outputs

if TYPE_CHECKING:
    from onnxparity.exporters import ModelPair
    from onnxparity.runner import ParitySession

#: the variant every other is measured against by default.
ANCHOR_VARIANT = "ort-cpu"


class Anchor:
    """The anchor variant's outputs on a search's examples, compared with the reference at
    the default tolerance."""

    def __init__(
        self,
        session: ParitySession,
        pair: ModelPair,
        output_names: tuple[str, ...],
        variant: str = ANCHOR_VARIANT,
    ) -> None:
        self.session = session
        self.pair = pair
        self.output_names = output_names
        self.variant = variant

    def compare(self, key: ExampleKey, feeds, expected: list) -> Verdict | None:
        """The anchor's outputs on this example against the reference, or None where the
        anchor cannot run."""
        outputs = self.session.anchor_outputs(self.pair, key, feeds, self.variant)
        if outputs is None or len(outputs) != len(expected):
            return None
        return compare_outputs(self.output_names, expected, outputs, DEFAULT_TOLERANCE, self.pair.labels)

    def verdict(self, evidence: Evidence, key: ExampleKey) -> Verdict | None:
        """The anchor against the reference on a failing example (compared during the search,
        or now where the variant raised first); None where it cannot be compared."""
        if evidence.expected is None:
            return None
        return evidence.anchor_verdict or self.compare(key, evidence.feeds, evidence.expected)

    def lines(self, evidence: Evidence, key: ExampleKey) -> list[str]:
        """Diagnosis lines: the anchor's own error on the failing example and what it means."""
        verdict = self.verdict(evidence, key)
        if verdict is not None and evidence.runtime_error:
            if verdict.passed:
                return [f"{self.variant} runs the same input and matches the reference: the export is right"]
            return [
                f"{self.variant} on the same input differs from the reference too: check {self.variant} first"
            ]
        parts = [
            f"{o.name!r} max abs error {o.max_abs_error:.3g}"
            for o in (verdict.outputs if verdict is not None else ())
            if not o.exact and o.problem not in ("shape", "dtype")
        ]
        if not parts:
            return []
        cause = (
            "within the default tolerance: the export is right and this variant loses the accuracy"
            if verdict.passed
            else f"beyond the default tolerance too: the export itself differs; check {self.variant} first"
        )
        return [f"{self.variant} on the same input: {'; '.join(parts)} ({cause})"]
