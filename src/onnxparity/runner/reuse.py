"""Passing results reused across runs: a second CI run skips the searches that did not change.

A parity item's search is deterministic: the same export, variant, options, policy, examples,
seed, declared inputs (with the graph's boundaries), real rows, thread count and coverage mode,
under the same versions of ONNX Runtime, onnx, numpy, Hypothesis, the framework and onnxparity,
draw the same examples and compute the same numbers. Where all of that is the same as in a run
that passed, the stored result is reused and says so (``result.cached``, ``passed (cached)`` in
the table). Only passing results of built-in variants on cacheable exports are stored: a
failure runs again (its diagnosis and reproducer are written fresh), a skip depends on the
machine, a user-registered variant's builder is code the key cannot see, and latency is a
measurement of this run. ``--onnx-parity-cache=off`` runs everything. Each function takes the
store and the values it reads, never the session.
"""

from __future__ import annotations

import datetime
import platform
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, cast

from onnxparity.environment import available_providers, version
from onnxparity.exporters.identity import onnxparity_digest
from onnxparity.persist import Store, digest, options_digest
from onnxparity.results import BudgetResult, OutputSummary, VariantResult
from onnxparity.search.stats import RunStats
from onnxparity.spec import ParitySpec, Policy
from onnxparity.verdict.power import Power

if TYPE_CHECKING:
    from collections.abc import Mapping

    import numpy as np

    from onnxparity.exporters import ExportedModel, ModelPair
    from onnxparity.spec import Latency
    from onnxparity.variants import VariantInfo

KIND = "results"
#: the packages every search runs through (the model source adds its own)
PACKAGES = ("onnxruntime", "onnx", "numpy", "hypothesis")
#: the verdicts kept across runs: a pass, and a skip (a variant that cannot run this model here,
#: keyed like a pass and by the runtime's providers; never a GPU variant's)
KEPT = ("passed", "skipped")


@dataclass(frozen=True)
class CachedResult(VariantResult):
    """A passing result from an earlier run: its report entry as stored, marked as reused."""

    stored: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {**self.stored, "opset": self.opset, "cached": self.stored.get("cached") or {}}


def result_key(
    store: Store | None,
    pair: ModelPair,
    spec: ParitySpec,
    variant: str,
    info: VariantInfo,
    policy: Policy,
    n: int,
    seed: int,
    rows: Mapping[str, np.ndarray] | None,
    *,
    threads: int,
    coverage: str,
) -> str | None:
    """The key of this item's search (``threads``, ``coverage``: the run's settings), or None
    where its result is not kept across runs."""
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
        **({"outputs": [o.to_dict() for o in spec.outputs]} if spec.outputs else {}),
        "rows": options_digest({"rows": dict(rows)}) if rows else "",
        "threads": threads,
        "coverage": coverage,
        "versions": {p: version(p) for p in (*PACKAGES, *packages)},
        "onnxparity": onnxparity_digest(),
        "python": platform.python_version_tuple()[:2],
    }
    if info.requires_gpu:
        # a GPU variant's verdict (a skip above all) hangs on the machine's CUDA libraries too,
        # which no version here names: searched afresh on every run
        return None
    parts["providers"] = available_providers()  # a skip says what this runtime can run
    step = getattr(info.build, "key_parts", None)  # what a post-export step is (versions, code)
    if step is not None:
        known = step()
        if known is None:
            return None  # a step whose code has no stable digest: never reused
        parts["step"] = known
    return digest(parts)


def load(
    store: Store | None, key: str | None, variant: str, policy: Policy, *, workdir: str, stats: RunStats
) -> CachedResult | None:
    """The passing result stored under ``key`` (counted in ``stats``), or None (nothing there,
    or an entry whose fields are not a report entry's: a miss, searched again)."""
    if store is None or key is None:
        return None
    stored = store.get(KIND, key, workdir)
    if not stored or stored.get("status") not in KEPT:
        return None
    try:
        found = _result(stored, variant, policy)
    except (TypeError, ValueError, KeyError, AttributeError, OverflowError):
        found = None
    if found is None:
        store.discard(KIND, key)
        store.counts["corrupt"] += 1
        return None
    stats.counts["cached_results"] += 1
    return found


def _result(stored: dict[str, Any], variant: str, policy: Policy) -> CachedResult | None:
    power, dims = stored.get("power") or {}, stored.get("dims_covered") or {}
    examples = stored.get("examples")
    if not isinstance(examples, int) or isinstance(examples, bool) or examples < 0:
        return None
    if not isinstance(power, dict) or not isinstance(dims, dict):
        return None
    outputs = stored.get("outputs") or []
    if not isinstance(outputs, list) or not all(
        isinstance(o, dict) and isinstance(o.get("name"), str) for o in outputs
    ):
        return None
    for field_ in ("message", "cached"):
        if field_ in stored and not isinstance(stored[field_], (str, dict, type(None))):
            return None
    ill = stored.get("ill_conditioned") or {}
    rejected = stored.get("rejected") or {}
    for counted in (ill, rejected):
        if not isinstance(counted, dict) or not isinstance(counted.get("examples", 0), int):
            return None
    skipped = stored["status"] == "skipped"
    return CachedResult(
        variant,
        stored["status"],
        policy,
        examples,
        tuple(output_summary(o) for o in outputs),
        {str(k): (int(v[0]), int(v[1])) for k, v in dims.items()},
        message=str(stored.get("message") or ""),
        power=None if skipped else Power(bool(power.get("weak")), tuple(str(r) for r in power.get("reasons") or ())),
        coverage=stored.get("coverage") if isinstance(stored.get("coverage"), dict) else None,
        distribution=stored.get("distribution") if isinstance(stored.get("distribution"), dict) else None,
        ill_conditioned=int(ill.get("examples", 0)),
        conditioning=str(ill.get("line") or ""),
        rejected=int(rejected.get("examples", 0)),
        rejection=str(rejected.get("line") or ""),
        build=stored.get("build") if isinstance(stored.get("build"), dict) else None,
        stored=stored,
    )


def reused_or(
    store: Store | None,
    key: str | None,
    cached: CachedResult | None,
    exported: ExportedModel,
    search: Callable[[str | None], VariantResult],
    *,
    verify: bool,
) -> VariantResult:
    """``cached``, else ``search(key)`` (storing its pass under ``key``); under the cache's
    verify mode (``verify``) always a search, compared with what the cache held
    (:func:`verified`)."""
    if not verify:
        return cached if cached is not None else search(key)
    fresh = search(None)
    if cached is not None and fresh.status != cached.status:
        # a verdict a fresh run does not give: never again (store and key are set where cached is)
        cast(Store, store).discard(KIND, cast(str, key))
    elif cached is None:
        save(store, key, fresh)
    return verified(cached, fresh, exported)


def verified(stored: CachedResult | None, fresh: VariantResult, exported: ExportedModel) -> VariantResult:
    """Under the cache's verify mode: ``fresh``, or an error naming how what the cache would
    have returned (``stored``, the export's digest) differs from what a fresh run gives."""
    problems = []
    if exported.cache_error:
        problems.append(exported.cache_error)
    if stored is not None and fresh.status != stored.status:
        when = (stored.stored.get("cached") or {}).get("from", "an earlier run")
        held = "a pass" if stored.status == "passed" else f"a {stored.status} result"
        problems.append(
            f"cache error: the cache held {held} for this item (stored {when}, on export graph "
            f"{exported.graph or 'unknown'}), a fresh run gives {fresh.status}: its key misses "
            "something the result depends on"
        )
    if not problems:
        return fresh
    fresh_verdict = f"the fresh verdict, {fresh.status}" + (f":\n{fresh.message}" if fresh.message else "")
    return replace(fresh, status="error", message="\n".join([*problems, fresh_verdict]))


def _number(value: Any) -> float | None:
    return None if value is None else float(value)  # "inf" and "nan" as the report writes them


def output_summary(entry: dict[str, Any]) -> OutputSummary:
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
        padded_left_out=int(entry.get("padded_left_out") or 0),
    )


def save(store: Store | None, key: str | None, result: VariantResult) -> None:
    """Keep a passing (or skipped) result under ``key`` (nothing where there is no key: not kept)."""
    if store is None or key is None or result.status not in KEPT:
        return
    entry = result.to_dict()
    entry["cached"] = {"from": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")}
    store.put(KIND, key, [], entry)


# -- latency measured in report mode -----------------------------------------------------------
def latency_key(
    store: Store | None,
    pair: ModelPair,
    spec: ParitySpec,
    latency: Latency,
    rows: Mapping[str, np.ndarray] | None,
    threads: int,
) -> str | None:
    """The key of a latency item measured in report mode (numbers recorded, never a verdict):
    the model as a pass's key has it, the budget, the variant and its options, and the machine
    the numbers come from (CPU, threads, providers). None where it is not kept: no cache, a
    model that is not cached, an unknown variant (its error comes from the build), a user's
    variant, a GPU variant, a post-export step."""
    from onnxparity.environment import cpu_name
    from onnxparity.errors import InvalidSpec
    from onnxparity.variants import get_variant

    try:
        info = get_variant(latency.variant)
    except InvalidSpec:
        return None
    if store is None or not pair.exported.cache or not pair.exported.cache_key or info.requires_gpu:
        return None
    if not getattr(info.build, "__module__", "").startswith("onnxparity.") or getattr(info.build, "key_parts", None):
        return None
    return digest(
        {
            "latency": latency.to_dict(),
            "export": pair.exported.cache_key,
            "file": pair.exported.key,
            "options": options_digest(spec.options_for(latency.variant)),
            "inputs": spec.input_digest,
            "rows": options_digest({"rows": dict(rows)}) if rows else "",
            "machine": [cpu_name(), threads, available_providers()],
            "versions": {p: version(p) for p in PACKAGES},
            "onnxparity": onnxparity_digest(),
        }
    )


def load_latency(store: Store | None, key: str | None, workdir: str) -> BudgetResult | None:
    """The report-mode latency result kept under ``key``, marked as measured in an earlier run;
    None (a miss) for anything but a whole passed entry."""
    if store is None or key is None:
        return None
    stored = store.get(KIND, key, workdir)
    if not stored or stored.get("status") != "passed" or stored.get("kind") != "latency":
        return None
    measured, budget = stored.get("measured"), stored.get("budget")
    if not isinstance(measured, dict) or not isinstance(budget, dict) or not isinstance(stored.get("item"), str):
        return None
    when = str(stored.get("cached_from") or "an earlier run")
    message = str(stored.get("message") or "")
    note = f"measured in an earlier run ({when}) on this CPU; --onnx-parity-latency=enforce measures again"
    return BudgetResult(
        stored["item"], "latency", "passed", f"{message}\n{note}".strip(), budget, {**measured, "cached_from": when}
    )


def save_latency(store: Store | None, key: str | None, result: BudgetResult) -> None:
    if store is None or key is None or result.status != "passed":
        return
    entry = result.to_dict()
    entry["cached_from"] = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    store.put(KIND, key, [], entry)
