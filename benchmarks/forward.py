"""Why the framework's forward is slower inside a check than in a tight loop.

On issue 31's two-conv CNN the forward takes ~0.1 ms longer per input set inside a check than in
the floor's loop over the same inputs. This times the forward alone (the check's reference, its
input copy included) over the input sets a check drew, with more of the check's work between
two forwards in each row: nothing; ONNX Runtime run on the set after the forward (the floor's
loop); then onnxparity drawing the set first too (a fresh array per set, kept alive as the
session keeps them for the next variant); then onnxparity's comparison; and, last, inside a
check, by the check's own timer. Rows are interleaved in each repeat; each is a ratio to the bare loop in
the same repeat.

    .venv/bin/python benchmarks/forward.py

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
from onnxparity.draw import materialize  # noqa: E402
from onnxparity.runner import ParitySession  # noqa: E402
from onnxparity.spec import Tolerance  # noqa: E402
from onnxparity.verdict.compare import compare_outputs  # noqa: E402

REPEATS = 9
ROWS = (
    ("the forward alone, over the drawn sets", ()),
    ("+ ONNX Runtime run after each forward (the floor's loop)", ("ort",)),
    ("+ each set drawn by onnxparity just before", ("ort", "draw")),
    ("+ onnxparity's comparison after ONNX Runtime", ("ort", "draw", "compare")),
)
#: the same forward timed by the check itself (``ParitySession.timings``), the same sets
INSIDE = "inside a check (its own timer), the same sets"


def main() -> None:
    from test_cnn import trained_like

    bench.fix_malloc_thresholds()
    torch.manual_seed(0)
    model = trained_like(bench.TwoConvCNN())
    spec = op.ParitySpec(inputs=[op.Input("image", (8, 3, 64, 64), low=-1, high=1)])
    clock = time.perf_counter
    with ParitySession() as session:
        prepared = session.prepare(model, spec)
        session.check_variant(prepared, spec, "ort-cpu", name="forward", examples=50)
        keys = list(session.examples.feeds._entries)
        drawn = [session.examples.feeds.get(k) for k in keys]
        runnable = session.variant(prepared, "ort-cpu", spec)
        reference, names = prepared.reference, runnable.output_names
        ratios: dict[str, list[float]] = {name: [] for name in (*(n for n, _ in ROWS), INSIDE)}
        per_set: dict[str, list[float]] = {name: [] for name in ratios}
        for _ in range(REPEATS + 1):  # the first is a warm-up, not counted
            times = {}
            for name, extra in ROWS:
                kept, spent = [], 0.0
                for key, feeds in zip(keys, drawn):
                    if "draw" in extra:
                        feeds = materialize(spec, key.example)
                        kept.append(feeds)
                    started = clock()
                    expected = reference(feeds)
                    spent += clock() - started
                    if "ort" in extra:
                        actual = runnable.run(feeds)
                        if "compare" in extra:
                            compare_outputs(names, expected, actual, Tolerance())
                times[name] = spent / len(keys)
            session.clear_example_caches()
            session.timings.clear()
            result = session.check_variant(prepared, spec, "ort-cpu", name="forward", examples=50)
            times[INSIDE] = session.timings["reference"] / result.examples
            for name in (*(n for n, _ in ROWS), INSIDE):
                ratios[name].append(times[name] / times[ROWS[0][0]])
                per_set[name].append(times[name])
        for values in (*ratios.values(), *per_set.values()):
            del values[0]
    print(f"Issue 31's CNN, the forward alone per input set ({len(keys)} sets, median of {REPEATS} repeats)")
    print()
    print("| between two forwards | forward per set | vs the bare loop |")
    print("| --- | --- | --- |")
    for name in ratios:
        print(f"| {name} | {statistics.median(per_set[name]) * 1e3:.3f} ms | {statistics.median(ratios[name]):.3f}x |")


if __name__ == "__main__":
    main()
