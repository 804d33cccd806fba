"""Where a tiny model's per-example time goes: Hypothesis's engine alone (a test drawing one
integer, with and without ``target()``), the engine drawing onnxparity's examples without
evaluating them, and a whole onnxparity check (the examples' MLP, 25 examples, ort-cpu); then
what a check adds per example over a hand-written loop on the same inputs (MLP, transformer).

    .venv/bin/python benchmarks/engine.py

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
from hypothesis import HealthCheck, given, settings, target  # noqa: E402
from hypothesis import seed as hypothesis_seed  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from onnxparity.runner import ParitySession  # noqa: E402
from onnxparity.search.strategies import GROUP, example_groups, examples  # noqa: E402

N = 25
OPTIONS = dict(max_examples=N, deadline=None, database=None, suppress_health_check=list(HealthCheck))


def per_example(strategy, body) -> float:
    """Seconds per example of a Hypothesis test of ``strategy`` whose body is ``body``."""
    count = [0]

    @hypothesis_seed(1)
    @settings(**OPTIONS)
    @given(strategy)
    def test(value):
        count[0] += 1
        body(value)

    started = time.perf_counter()
    test()
    return (time.perf_counter() - started) / count[0]


def main() -> None:
    bench.fix_malloc_thresholds()
    model, spec = bench.models()["MLP (examples)"]
    with ParitySession() as session:
        prepared = session.prepare(model, spec)
        session.check_variant(prepared, spec, "ort-cpu", name="warm-up", examples=N)
        session.check_variant(prepared, spec, "ort-cpu-noopt", name="warm-up", examples=N)
        ours, replayed, runs = [], [], []
        for i in range(7):
            session.clear_example_caches()
            started = time.perf_counter()
            result = session.check_variant(prepared, spec, "ort-cpu", name=f"run{i}", examples=N)
            ours.append((time.perf_counter() - started) / result.examples)
            # the test's next variant replays the same examples: no engine, the reference kept
            started = time.perf_counter()
            result = session.check_variant(prepared, spec, "ort-cpu-noopt", name=f"run{i}", examples=N)
            replayed.append((time.perf_counter() - started) / result.examples)
            # what that replay cannot avoid: the variant's own runs on the same inputs
            runnable = session.variant(prepared, "ort-cpu-noopt", spec)
            feeds = list(session.examples.feeds._entries.values())
            started = time.perf_counter()
            for feed in feeds:
                runnable.run(feed)
            runs.append((time.perf_counter() - started) / max(1, len(feeds)))
    rows = [
        (
            "Hypothesis engine, one integer per example",
            lambda: per_example(st.integers(0, 10**6), lambda x: None),
        ),
        (
            "the same with target()",
            lambda: per_example(st.integers(0, 10**6), lambda x: target(float(x % 7), label="t")),
        ),
        (
            "the engine drawing onnxparity's examples one per engine example, not evaluated",
            lambda: per_example(examples(spec), lambda e: None),
        ),
        (
            f"the same, {GROUP} per engine example (as a search draws them), per example",
            lambda: per_example(example_groups(spec), lambda g: None) / GROUP,
        ),
    ]
    print("| per example (MLP, 25 examples, ort-cpu) | ms |")
    print("| --- | --- |")
    for name, measure in rows:
        print(f"| {name} | {statistics.median(measure() for _ in range(5)) * 1e3:.3f} |")
    print(f"| a whole onnxparity check | {statistics.median(ours) * 1e3:.3f} |")
    print(
        f"| the test's next variant (ort-cpu-noopt), replaying the examples | {statistics.median(replayed) * 1e3:.3f} |"
    )
    print(f"| its ONNX Runtime runs alone, on the same inputs | {statistics.median(runs) * 1e3:.3f} |")
    print()
    print("Added per example: a check of 25 examples against a hand-written loop over the same inputs")
    print("(framework forward, one ONNX Runtime run), both in this run; median of 7 repeats.")
    print()
    print("| model (ort-cpu, 25 examples) | onnxparity per example | the loop per input | ratio | added per example |")
    print("| --- | --- | --- | --- | --- |")
    for name in ("MLP (examples)", "transformer (examples)"):
        model, spec = bench.models()[name]
        found, floors, _, tried, inputs = bench.overhead(model, spec, N, ["ort-cpu"], 7)
        ours = [r / tried for r in found]
        floor = [f / inputs for f in floors]
        ratios = [o / f for o, f in zip(ours, floor)]
        added = [o - f for o, f in zip(ours, floor)]
        print(
            f"| {name} | {statistics.median(ours) * 1e3:.3f} ms | {statistics.median(floor) * 1e3:.3f} ms "
            f"| {statistics.median(ratios):.2f}x | **{statistics.median(added) * 1e3:.3f} ms** |"
        )


if __name__ == "__main__":
    main()
