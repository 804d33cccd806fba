"""The item loop: a :class:`ParitySession` exports once, builds each variant once, and hands
each stage the values it needs (:mod:`.session`); passing results reused across runs
(:mod:`.reuse`)."""

from __future__ import annotations

from onnxparity.runner.session import SAMPLE_SEED, ParitySession

__all__ = ["SAMPLE_SEED", "ParitySession"]
