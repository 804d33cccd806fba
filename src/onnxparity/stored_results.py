"""Passing results reused across runs: a second CI run skips the searches that did not change.

A parity item's search is deterministic: the same export, variant, options, policy, examples,
seed, declared inputs (with the graph's boundaries), real rows, thread count and coverage mode,
under the same versions of ONNX Runtime, onnx, numpy, Hypothesis, the framework and onnxparity,
draw the same examples and compute the same numbers. Where all of that is the same as in a run
that passed, the stored result is reused and says so (``result.cached``, ``passed (cached)`` in
the table). Only passing results of built-in variants on cacheable exports are stored: a
failure runs again (its diagnosis and reproducer are written fresh), a skip depends on the
machine, a user-registered variant's builder is code the key cannot see, and latency is a
measurement of this run. ``--onnx-parity-cache=off`` runs everything.
"""

from __future__ import annotations

import datetime
import platform
from dataclasses import dataclass, field
from typing import Any

from ._machine import version
from .cache import options_digest
from .exporters.identity import onnxparity_digest
from .persist import digest
from .report import OutputSummary, Power, VariantResult

KIND = "results"
#: the packages every search runs through (the model source adds its own)
PACKAGES = ("onnxruntime", "onnx", "numpy", "hypothesis")


@dataclass(frozen=True)
class CachedResult(VariantResult):
    """A passing result from an earlier run: its report entry as stored, marked as reused."""

    stored: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {**self.stored, "opset": self.opset, "cached": self.stored.get("cached") or {}}


def result_key(
    session: Any, pair: Any, spec: Any, variant: str, info: Any, policy: Any, n: int, seed: int, rows
) -> str | None:
    """The key of this item's search, or None where its result is not kept across runs."""
    store = getattr(session, "store", None)
    if store is None or not pair.exported.cache or not pair.exported.cache_key:
        return None
    if not getattr(info.build, "__module__", "").startswith("onnxparity."):
        return None  # a user's builder: code the key cannot see
    packages = getattr(pair.subject.exporter, "packages", ()) if pair.subject is not None else ()
    parts = {
        "export": pair.exported.cache_key,
        "file": pair.exported.key,
        "variant": variant,
        "options": options_digest(spec.options_for(variant)),
        "policy": policy.to_dict(),
        "examples": n,
        "seed": seed,
        "inputs": spec.input_digest,
        "rows": options_digest({"rows": dict(rows)}) if rows else "",
        "threads": session.config.threads,
        "coverage": session.config.coverage,
        "versions": {p: version(p) for p in (*PACKAGES, *packages)},
        "onnxparity": onnxparity_digest(),
        "python": platform.python_version_tuple()[:2],
    }
    return digest(parts)


def load(session: Any, key: str | None, variant: str, policy: Any) -> CachedResult | None:
    if key is None:
        return None
    stored = session.store.get(KIND, key, session.workdir)
    if not stored or stored.get("status") != "passed":
        return None
    session.counts["cached_results"] += 1
    power = stored.get("power") or {}
    return CachedResult(
        variant,
        "passed",
        policy,
        int(stored.get("examples") or 0),
        tuple(_summary(o) for o in stored.get("outputs") or ()),
        {k: (int(v[0]), int(v[1])) for k, v in (stored.get("dims_covered") or {}).items()},
        message=stored.get("message") or "",
        power=Power(bool(power.get("weak")), tuple(power.get("reasons") or ())),
        coverage=stored.get("coverage"),
        distribution=stored.get("distribution"),
        stored=stored,
    )


def _number(value: Any) -> float | None:
    return None if value is None else float(value)  # "inf" and "nan" as the report writes them


def _summary(entry: dict) -> OutputSummary:
    """An output's summary from its report entry (top-1 counts as a rate over 1 row each)."""
    rate = entry.get("top1_rate")
    return OutputSummary(
        entry["name"],
        _number(entry.get("max_abs_error")) or 0.0,
        _number(entry.get("max_rel_error")) or 0.0,
        float(entry.get("max_mismatched_fraction") or 0.0),
        int(entry.get("mismatched") or 0),
        int(entry.get("values") or 0),
        _number(entry.get("min_cosine")),
        _number(entry.get("min_sqnr_db")),
        round(rate * 10**6) if rate is not None else 0,
        10**6 if rate is not None else 0,
        _number(entry.get("max_abs_error_vs_ort_cpu")),
        _number(entry.get("cosine")),
        _number(entry.get("sqnr_db")),
    )


def save(session: Any, key: str | None, result: VariantResult) -> None:
    if key is None or result.status != "passed":
        return
    entry = result.to_dict()
    entry["cached"] = {"from": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")}
    session.store.put(KIND, key, [], entry)
