"""Which parity items this pytest process runs, and with which of them together: the plugin's
``--onnx-parity-variants``, ``--onnx-parity-exclude-variants`` and ``--onnx-parity-shard=K/N``
selections (the balance itself is :mod:`onnxparity.report.shards`), and the xdist group that
keeps a model's items on one worker.

An item's *group* is its test's parameter set without the parity item (:func:`base_id`): the
items that build one model and share its export. Where pytest-xdist is installed every parity
item carries an ``xdist_group`` mark with its group, so ``-n N --dist loadgroup`` exports a model
once per run instead of once per worker that gets one of its items (:func:`keep_groups` makes that
so under pytest 9.2, where xdist 3.8.0's grouping does nothing). The plugin does not switch
``--dist`` itself: pytest-xdist 3.8.0's loadgroup scheduler hangs when a worker crashes and is
replaced (pytest-xdist issues #1323 and #1327, fixed after 3.8.0; measured here). xdist appends
``@group`` to grouped items' node ids under loadgroup; :func:`nodeid` strips it, so reports, seeds
and durations name items the same way under every distribution.
"""

from __future__ import annotations

import hashlib
from typing import Any, cast

import pytest

from onnxparity.planning import Item, test_name

#: what split this process's items off a larger run: ``{"run_plan": [...], "shard": {...}}``
RUN_KEY = pytest.StashKey[dict[str, Any]]()


def is_parity(item: pytest.Item) -> bool:
    return "onnx_parity" in getattr(item, "fixturenames", ())


def item_of(item: pytest.Item) -> Item | None:
    callspec = getattr(item, "callspec", None)
    return callspec.params.get("onnx_parity") if callspec is not None else None


def _group_suffix(item: pytest.Item) -> str:
    """The ``@group`` suffix xdist's loadgroup gives the item, as xdist writes it ("": none)."""
    names = sorted({str(m.args[0] if m.args else m.kwargs.get("name", "default")) for m in item.iter_markers("xdist_group")})
    return "@" + "_".join(names) if names else ""


def nodeid(item: pytest.Item) -> str:
    """The item's node id without the ``@group`` suffix xdist's loadgroup appends."""
    suffix = _group_suffix(item)
    return item.nodeid.removesuffix(suffix) if suffix else item.nodeid


def base_id(item: pytest.Item) -> str:
    """The item's node id without its parity item (its other parameters kept): one name for
    all the items of one parameter set — the group that shares one model's export."""
    planned = item_of(item)
    return test_name(nodeid(item), planned.id) if planned is not None else nodeid(item)


def selected(planned: Item | None, variants: tuple[str, ...]) -> bool:
    """--onnx-parity-variants keeps the items of those variants, and the opset budget."""
    return planned is not None and (planned.kind == "opset" or planned.variant in variants)


def group_name(item: pytest.Item) -> str:
    """The xdist group of a parity item: its model's (a digest of :func:`base_id`, so that the
    ``@group`` suffix holds no ``::`` or brackets)."""
    return "onnxparity-" + hashlib.blake2b(base_id(item).encode(), digest_size=6).hexdigest()


def group(config: pytest.Config, item: pytest.Item) -> None:
    """Mark a parity item with its model's xdist group (where xdist is installed)."""
    if is_parity(item) and config.pluginmanager.hasplugin("xdist"):
        item.add_marker(pytest.mark.xdist_group(name=group_name(item)))


def keep_groups(config: pytest.Config, items: list[pytest.Item]) -> None:
    """(In an xdist worker under ``--dist loadgroup``.) Give each parity item the ``@group``
    suffix loadgroup schedules by, where xdist could not: pytest 9.2 reads node ids from
    ``Node._id`` while xdist 3.8.0 writes ``Node._nodeid`` (pytest-xdist issue #1386), so
    loadgroup silently distributed a model's items over workers (measured: 6 exports of 4 models
    on 2 workers). A private attribute either way; where neither exists, items stay ungrouped."""
    if not getattr(config.option, "loadgroup", False):
        return
    for item in items:
        suffix = _group_suffix(item)
        if not is_parity(item) or not suffix or item.nodeid.endswith(suffix):
            continue
        if hasattr(item, "_id"):  # pytest >= 9.2: a structured id
            from _pytest.nodeid import coerce_node_id

            item._id = coerce_node_id(item.nodeid + suffix)
        elif hasattr(item, "_nodeid"):
            item._nodeid = item.nodeid + suffix


def choose(config: pytest.Config, parity: Any, items: list[pytest.Item]) -> list[pytest.Item]:
    """Deselect the parity items this process does not run (by variant, excluded variant and
    shard); record what the whole run planned where the run is split; the kept parity items."""
    parity_items = [i for i in items if is_parity(i)]
    dropped: list[pytest.Item] = []
    if parity.variants is not None:
        dropped += [i for i in parity_items if not selected(item_of(i), parity.variants)]
    kept = _without(parity_items, dropped)
    if parity.exclude_variants or parity.shard:
        run: dict[str, Any] = {"run_plan": sorted(nodeid(i) for i in kept)}
        if parity.exclude_variants:
            excluded = set(parity.exclude_variants)
            dropped += [
                i
                for i in kept
                if (
                    item_of(i) is not None
                    and cast(Item, item_of(i)).kind != "opset"
                    and cast(Item, item_of(i)).variant in excluded
                )
            ]
            kept = _without(kept, dropped)
        if parity.shard:
            groups: dict[str, list[str]] = {}
            for item in kept:
                groups.setdefault(base_id(item), []).append(nodeid(item))
            mine, run["shard"] = _shard(groups, parity)
            dropped += [i for i in kept if nodeid(i) not in mine]
            kept = _without(kept, dropped)
        config.stash[RUN_KEY] = run
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        gone = set(map(id, dropped))
        items[:] = [i for i in items if id(i) not in gone]
    keep_groups(config, kept)
    return kept


def _without(items: list[pytest.Item], dropped: list[pytest.Item]) -> list[pytest.Item]:
    gone = set(map(id, dropped))
    return [i for i in items if id(i) not in gone]


def _shard(groups: dict[str, list[str]], parity: Any) -> tuple[set[str], dict[str, Any]]:
    from onnxparity.report import document, shards

    recorded: dict[str, float] = {}
    if parity.durations_path:
        try:
            recorded = shards.durations(document.load(parity.durations_path))
        except document.ReportError as exc:
            raise pytest.UsageError(
                f"--onnx-parity-durations: {exc}; give the JSON report of an earlier run "
                "(--onnx-parity-report=PATH), or leave the option out to balance by item count"
            ) from None
    return shards.select(groups, parity.shard, recorded)
