"""History across releases: per item, the worst error and the latency in each of several
reports (oldest first), as a table for the terminal; the HTML report draws the same numbers.
Pure."""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from typing import Any

from onnxparity.report import worst_error
from onnxparity.report.gate import dig, latency_of, number


def labelled(
    paths: Sequence[str], documents: Sequence[Mapping[str, Any]]
) -> list[tuple[str, Mapping[str, Any]]]:
    """(label, report) pairs: each report's file name (without .json)."""
    return [(os.path.basename(p).removesuffix(".json"), d) for p, d in zip(paths, documents)]


def _cell(item: Mapping[str, Any] | None, measure: str) -> str:
    if item is None:
        return "—"
    if measure == "error":
        value = number(worst_error(dig(item, "result", "outputs") or []))
    else:
        found = latency_of(item)
        value = None if found is None else found[1]
    if value is None:
        return "—" if item["status"] != "failed" else "failed"
    text = f"{value:.3g}" if math.isfinite(value) else str(value)
    return text + ("!" if item["status"] in ("failed", "error") else "")


def _trend(cells: list[str]) -> str:
    """The newest finite number against the oldest (a NaN or an infinity has no trend)."""
    values = []
    for cell in cells:
        try:
            values.append(float(cell.rstrip("!")))
        except ValueError:
            continue
    values = [v for v in values if math.isfinite(v)]
    if len(values) < 2 or values[0] <= 0:
        return ""
    ratio = values[-1] / values[0]
    return "↑" if ratio > 1.5 else "↓" if ratio < 1 / 1.5 else "="


def lines(reports: Sequence[tuple[str, Mapping[str, Any]]]) -> list[str]:
    """One row per item and measure (max abs error, latency) that any report has a number for;
    ``!`` marks a failed or errored item, ``—`` an item missing from that report; the last
    column compares the newest number with the oldest (↑ more than 1.5×, ↓ less than 1/1.5)."""
    labels = [label for label, _ in reports]
    ids = list(dict.fromkeys(i["nodeid"] for _, d in reports for i in d["items"]))
    by_report = [{i["nodeid"]: i for i in d["items"]} for _, d in reports]
    table = [("item", "measure", *labels, "trend")]
    for nodeid in ids:
        for measure, title in (("error", "max abs error"), ("latency", "latency")):
            cells = [_cell(found.get(nodeid), measure) for found in by_report]
            if all(c in ("—",) for c in cells):
                continue
            if measure == "latency" and all(c == "—" for c in cells):
                continue
            table.append((nodeid, title, *cells, _trend(cells)))
    widths = [max(len(row[i]) for row in table) for i in range(len(table[0]))]
    out = ["  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in table]
    out.insert(1, "  ".join("-" * w for w in widths))
    return out
