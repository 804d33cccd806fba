"""The anchor: every variant is also measured against one lossless variant (ort-cpu by
default) on the same inputs, so a reader sees whether an error comes from the export (the
anchor is off too) or from the variant (the anchor agrees with the reference)."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, cast

from onnxparity.errors import OnnxParityError
from onnxparity.search.data import ArrayCache, ExampleKey, OutputKey
from onnxparity.search.padding import NO_PADDING, PaddingPlan
from onnxparity.search.stats import RunStats
from onnxparity.search.tally import Evidence
from onnxparity.spec import DEFAULT_TOLERANCE
from onnxparity.variants import Runnable, VariantRunError
from onnxparity.verdict.compare import Verdict, compare_outputs

if TYPE_CHECKING:
    import numpy as np

    from onnxparity.exporters import ModelPair
    from onnxparity.spec import Output

#: the variant every other is measured against by default.
ANCHOR_VARIANT = "ort-cpu"


@dataclass(frozen=True)
class AnchorFinding:
    """The anchor on a failing example, for the diagnosis: its verdict against the reference
    (None where it could not be compared) and the lines that say what that means."""

    verdict: Verdict | None
    lines: tuple[str, ...]

    @property
    def export_right(self) -> bool:
        """The anchor matches the reference there: the export is right, the variant differs."""
        return self.verdict is not None and self.verdict.passed


class Anchor:
    """The anchor variant's outputs on a search's examples, compared with the reference at the
    default tolerance: kept in ``cache``, else run on the variant ``build()`` returns (the
    runner's thunk: None where the anchor cannot be built)."""

    def __init__(
        self,
        pair: ModelPair,
        output_names: tuple[str, ...],
        build: Callable[[], Runnable | None],
        cache: ArrayCache,
        stats: RunStats,
        variant: str = ANCHOR_VARIANT,
    ) -> None:
        self.pair = pair
        self.output_names = output_names
        self.build = build
        self.cache = cache
        self.stats = stats
        self.variant = variant
        self.producer = f"{variant}:{pair.exported.key}"
        #: outputs compared at real positions only, as the search compares them (its search sets it)
        self.padding: PaddingPlan = NO_PADDING
        #: declared outputs (op.Output), compared as the search compares them (its search sets it)
        self.declared: tuple[Output, ...] = ()

    def outputs_on(self, key: ExampleKey, feeds: Mapping[str, np.ndarray]) -> list[np.ndarray] | None:
        """The anchor's outputs on an example (cached like references), or None where it
        cannot build or run."""
        cache_key = OutputKey(self.producer, key)
        outputs: list[np.ndarray] | None = self.cache.get(cache_key)
        if outputs is None:
            started = time.perf_counter()
            try:
                runnable = self.build()
                if runnable is None:
                    return None
                outputs = runnable.run(feeds)
            except (OnnxParityError, VariantRunError):
                return None
            finally:
                self.stats.timings["anchor"] += time.perf_counter() - started
            self.cache.put(cache_key, outputs)
        return outputs

    def keep(self, key: ExampleKey, outputs: list[np.ndarray]) -> None:
        """The anchor's outputs from its own search: later variants' distances reuse them."""
        self.cache.put(OutputKey(self.producer, key), outputs)

    def compare(
        self, key: ExampleKey, feeds: Mapping[str, np.ndarray], expected: Sequence[np.ndarray]
    ) -> Verdict | None:
        """The anchor's outputs on this example against the reference, or None where the
        anchor cannot run."""
        outputs = self.outputs_on(key, feeds)
        if outputs is None or len(outputs) != len(expected):
            return None
        if self.padding:
            outputs, _ = self.padding.apply(
                self.output_names, expected, outputs, feeds, key.example.dim_values
            )
        return compare_outputs(
            self.output_names, expected, outputs, DEFAULT_TOLERANCE, self.pair.labels, self.declared
        )

    def verdict(self, evidence: Evidence, key: ExampleKey) -> Verdict | None:
        """The anchor against the reference on a failing example (compared during the search,
        or now where the variant raised first); None where it cannot be compared."""
        if evidence.expected is None:
            return None
        return evidence.anchor_verdict or self.compare(key, evidence.feeds, evidence.expected)

    def finding(self, evidence: Evidence, key: ExampleKey) -> AnchorFinding:
        """The anchor's verdict on a failing example and the diagnosis lines it gives."""
        verdict = self.verdict(evidence, key)
        if verdict is not None and not verdict.passed and self.excused(evidence, key):
            return AnchorFinding(verdict, (self._ill_line(verdict),))
        return AnchorFinding(verdict, tuple(self.lines(evidence, verdict)))

    def excused(self, evidence: Evidence, key: ExampleKey) -> bool:
        """Whether the anchor's miss on this example is within what the framework's own
        rounding allows there (an ill-conditioned input, :mod:`.conditioning`): its search
        passes it, so it shows nothing wrong with the export."""
        from onnxparity.search.conditioning import conditioning, rounded

        outputs = self.outputs_on(key, evidence.feeds)
        if self.pair.reference64 is None or outputs is None or evidence.expected is None:
            return False
        try:
            wide, moved = self.pair.reference64(evidence.feeds), self.pair.reference64(rounded(evidence.feeds))
            judged = conditioning(evidence.expected, wide, outputs, DEFAULT_TOLERANCE, moved)
        except Exception:  # a model that cannot run in float64: no excuse
            return False
        return judged is not None and judged.excused

    def _ill_line(self, verdict: Verdict) -> str:
        worst = max((o.max_abs_error for o in verdict.outputs if not o.exact), default=0.0)
        return (
            f"{self.variant} on the same input: max abs error {worst:.3g}, beyond the default tolerance but within what "
            f"the framework's own float32 rounding moves it on this ill-conditioned input ({self.variant}'s check "
            "passes such inputs): it shows nothing wrong with the export here"
        )

    def lines(self, evidence: Evidence, verdict: Verdict | None) -> list[str]:
        """Diagnosis lines: the anchor's own error on the failing example and what it means."""
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
            if cast(Verdict, verdict).passed  # (``parts`` come from it)
            else f"beyond the default tolerance too: {self.variant} shares what differs (the export, or ONNX Runtime "
            f"on it: {self.variant} alone cannot tell them apart); check {self.variant} first"
        )
        return [f"{self.variant} on the same input: {'; '.join(parts)} ({cause})"]
