"""A group's phases run back to back against its examples run one at a time (issue 31).

A check of N examples on ONNX Runtime CPU (one thread, torch on one thread), twice: as it runs
(each group's inputs drawn, then the reference on each, then the variant on each, then each
example compared in order: :mod:`onnxparity.search.ahead`), and with nothing held ahead
(``AHEAD_BYTES = 0``: draw, reference, variant, compare, one example after the other). Each
beside the floor: a plain loop over the same inputs (the framework's forward, one ONNX Runtime
run). The two sides alternate in each repeat; medians over the repeats.

    .venv/bin/python benchmarks/ahead.py

Prints a Markdown table (copied into docs/benchmarks.md).
"""

from __future__ import annotations

import os
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "examples"))

import run as bench  # noqa: E402
import torch  # noqa: E402

import onnxparity as op  # noqa: E402
from onnxparity.runner import ParitySession  # noqa: E402
from onnxparity.search import ahead  # noqa: E402

REPEATS = 12
SIDES = {"ahead (as it runs)": ahead.AHEAD_BYTES, "one example at a time": 0}


def cases() -> dict[str, tuple[object, op.ParitySpec, int]]:
    from test_cnn import trained_like

    models = bench.models()
    torch.manual_seed(0)
    two_conv = trained_like(bench.TwoConvCNN())
    return {
        "the examples' MLP": (*models["MLP (examples)"], 25),
        "the examples' transformer": (*models["transformer (examples)"], 25),
        "issue 31's two-conv CNN": (
            two_conv,
            op.ParitySpec(inputs=[op.Input("image", (8, 3, 64, 64), low=-1, high=1)]),
            50,
        ),
    }


def measure(model: object, spec: op.ParitySpec, examples: int) -> dict[str, list[tuple[float, float]]]:
    """Per side, each repeat's (seconds per example in the check, seconds per input in the floor)."""
    clock = time.perf_counter
    found: dict[str, list[tuple[float, float]]] = {side: [] for side in SIDES}
    with ParitySession() as session:
        prepared = session.prepare(model, spec)
        reference = prepared.reference
        runnable = session.variant(prepared, "ort-cpu", spec)
        for held in SIDES.values():  # warm-up, both sides
            ahead.AHEAD_BYTES = held
            session.check_variant(prepared, spec, "ort-cpu", name="warm-up", examples=examples)
        for repeat in range(REPEATS):
            for side in list(SIDES) if repeat % 2 else list(SIDES)[::-1]:
                ahead.AHEAD_BYTES = SIDES[side]
                seen: list = []

                def recording(feeds, seen=seen):
                    seen.append(feeds)
                    return reference(feeds)

                object.__setattr__(prepared, "reference", recording)
                session.clear_example_caches()
                started = clock()
                result = session.check_variant(prepared, spec, "ort-cpu", name="bench", examples=examples)
                check = (clock() - started) / result.examples
                object.__setattr__(prepared, "reference", reference)
                started = clock()
                for feeds in seen:
                    reference(feeds)
                    runnable.run(feeds)
                found[side].append((check, (clock() - started) / len(seen)))
    ahead.AHEAD_BYTES = SIDES["ahead (as it runs)"]
    return found


def main() -> None:
    bench.fix_malloc_thresholds()
    torch.set_num_threads(1)
    print("| model (ort-cpu) | side | per example | the floor per input | added per example | vs the floor |")
    print("| --- | --- | --- | --- | --- | --- |")
    for name, (model, spec, examples) in cases().items():
        for side, runs in measure(model, spec, examples).items():
            check = statistics.median(c for c, _ in runs)
            floor = statistics.median(f for _, f in runs)
            added = statistics.median(c - f for c, f in runs)
            ratio = statistics.median(c / f for c, f in runs)
            print(
                f"| {name}, {examples} examples | {side} | {check * 1e3:.3f} ms | {floor * 1e3:.3f} ms "
                f"| **{added * 1e3:.3f} ms** | **{ratio:.2f}x** |"
            )


if __name__ == "__main__":
    main()
