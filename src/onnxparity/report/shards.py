"""Shards that keep a model together: which parity items one of N CI machines runs, and what a
merge of the shards' reports is missing.

Items are grouped by the test parameter set that builds their model (every variant and opset
of one test's model: one export), and the groups are spread over the shards by longest
processing time first — the heaviest group to the least loaded shard, ties to the lower shard —
weighted by the durations a previous JSON report recorded for their items, or by item count
where there is none. The assignment depends only on the groups, their weights and N, so every
machine (and every xdist worker on it) computes the same one from the same collection.

pytest-split balances *items* by recorded durations, and so sends a model's variants to
different machines, each exporting the model again; the group is what costs here (the export,
the graph facts, the built variants), so the unit of balance is the group. Knows nothing of
pytest.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Mapping, Sequence
from typing import Any


def durations(document: Mapping[str, Any]) -> dict[str, float]:
    """Each item's recorded duration in seconds, by node id (items without one left out)."""
    found = {}
    for item in document.get("items", ()):
        duration = item.get("duration_s")
        if isinstance(duration, (int, float)) and duration >= 0:
            found[str(item["nodeid"])] = float(duration)
    return found


def weights(groups: Mapping[str, Sequence[str]], recorded: Mapping[str, float]) -> dict[str, float]:
    """Each group's weight: the sum of its items' recorded durations, an item the record lacks
    counting as the mean recorded item; every item counts 1 where nothing is recorded."""
    if not recorded:
        return {group: float(len(items)) for group, items in groups.items()}
    mean = sum(recorded.values()) / len(recorded)
    return {group: sum(recorded.get(item, mean) for item in items) for group, items in groups.items()}


def assign(weighted: Mapping[str, float], count: int) -> dict[str, int]:
    """Group -> shard (1..count): longest processing time first, deterministic."""
    loads = [(0.0, shard) for shard in range(1, count + 1)]
    heapq.heapify(loads)
    placed = {}
    for group, weight in sorted(weighted.items(), key=lambda kv: (-kv[1], kv[0])):
        load, shard = heapq.heappop(loads)
        placed[group] = shard
        heapq.heappush(loads, (load + weight, shard))
    return placed


def select(
    groups: Mapping[str, Sequence[str]], shard: tuple[int, int], recorded: Mapping[str, float] | None = None
) -> tuple[set[str], dict[str, Any]]:
    """(the node ids of shard K of N, what the report records of it: the shard, how it was
    balanced, its groups' weight and the heaviest shard's)."""
    index, count = shard
    weighted = weights(groups, recorded or {})
    placed = assign(weighted, count)
    loads = [0.0] * count
    for group, at in placed.items():
        loads[at - 1] += weighted[group]
    mine = {item for group, at in placed.items() if at == index for item in groups[group]}
    return mine, {
        "index": index,
        "count": count,
        "balanced_by": "durations" if recorded else "item count",
        "groups": sum(1 for at in placed.values() if at == index),
        "weight": round(loads[index - 1], 4),
        "heaviest": round(max(loads), 4),
    }


def unreported(documents: Iterable[Mapping[str, Any]]) -> tuple[list[str], int | None]:
    """(the node ids some part's run planned that no part reported, how many the whole run
    planned) — (``[]``, None) where no part recorded its run's plan (an unsharded report)."""
    documents = list(documents)
    plans = [d.get("run_plan") for d in documents]
    if all(plan is None for plan in plans):
        return [], None
    planned = {str(n) for plan in plans if plan for n in plan}
    reported = {str(item["nodeid"]) for d in documents for item in d.get("items", ())}
    return sorted(planned - reported), len(planned | reported)
