"""What a run counts and times, handed down as one value: every stage adds to it, none reaches
back into the session that owns it (tests and benchmarks read it as ``session.counts`` and
``session.timings``)."""

from __future__ import annotations

import collections
import contextlib
import time
from collections.abc import Iterator
from dataclasses import dataclass, field


@dataclass(frozen=True)
class RunStats:
    """Events counted (exports, sessions, reference runs, searches...) and seconds spent per
    phase: export, build, draw, reference, variant, anchor, compare, coverage, search (whole
    searches, Hypothesis included), forensics: a benchmark's breakdown."""

    counts: collections.Counter[str] = field(default_factory=collections.Counter)
    timings: collections.defaultdict[str, float] = field(default_factory=lambda: collections.defaultdict(float))

    @contextlib.contextmanager
    def timed(self, phase: str) -> Iterator[None]:
        """Add the seconds the block takes to ``phase``, raised or not (per-example code adds its own)."""
        started = time.perf_counter()
        try:
            yield
        finally:
            self.timings[phase] += time.perf_counter() - started
