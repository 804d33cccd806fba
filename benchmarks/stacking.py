"""Would stacking same-shape input sets into one batch make a check cheaper per set?

Issue 31 proposed evaluating several same-shape input sets per Hypothesis example as one
framework call and one ONNX Runtime call on a stacked batch. This measures the lever before it
is built: for each model, K input sets stacked along the batch axis (K = 1, 2, 4, 8) against
one call per set, the framework's forward (the check's reference, its input copy included) and
ONNX Runtime (one thread, session prebuilt) timed apart, interleaved in each repeat.

    .venv/bin/python benchmarks/stacking.py

Prints a Markdown table (copied into docs/benchmarks.md): per-set time at each K as a ratio of
the per-set time at K = 1, median over repeats.
"""

from __future__ import annotations

import os
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "examples"))

import numpy as np  # noqa: E402
import run as bench  # noqa: E402
import torch  # noqa: E402

import onnxparity as op  # noqa: E402
from onnxparity.runner import ParitySession  # noqa: E402

STACKS = (1, 2, 4, 8)
REPEATS = 9


def cases():
    """(name, model, spec with a dynamic batch, one set's feeds)."""
    from test_cnn import trained_like
    from test_mlp import MLP
    from test_transformer import VOCAB, TinyEncoder

    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    batch = op.Dim(1, 64)
    yield (
        "issue 31's CNN, sets of 8x3x64x64",
        trained_like(bench.TwoConvCNN()),
        op.ParitySpec(inputs=[op.Input("image", ("batch", 3, 64, 64), low=-1, high=1)], dims={"batch": batch}),
        {"image": rng.uniform(-1, 1, (8, 3, 64, 64)).astype(np.float32)},
    )
    yield (
        "the examples' MLP, sets of 8x32",
        MLP().eval(),
        op.ParitySpec(inputs=[op.Input("x", ("batch", 32), low=-3, high=3)], dims={"batch": batch}),
        {"x": rng.uniform(-3, 3, (8, 32)).astype(np.float32)},
    )
    yield (
        "the examples' transformer, sets of 2x32 tokens",
        TinyEncoder().eval(),
        op.ParitySpec(
            inputs=[op.Input("tokens", ("batch", 32), dtype="int64", low=0, high=VOCAB - 1)], dims={"batch": batch}
        ),
        {"tokens": rng.integers(0, VOCAB, (2, 32), dtype=np.int64)},
    )


def per_call(fn, feeds, calls: int) -> float:
    started = time.perf_counter()
    for _ in range(calls):
        fn(feeds)
    return (time.perf_counter() - started) / calls


def main() -> None:
    bench.fix_malloc_thresholds()
    torch.set_num_threads(1)
    print("| model | K sets stacked | framework per set | vs one call per set | ONNX Runtime per set | vs one call per set |")
    print("| --- | --- | --- | --- | --- | --- |")
    for name, model, spec, one in cases():
        with ParitySession() as session:
            prepared = session.prepare(model, spec)
            runnable = session.variant(prepared, "ort-cpu", spec)
            stacked = {k: {n: np.concatenate([a] * k) for n, a in one.items()} for k in STACKS}
            times: dict[str, dict[int, list[float]]] = {"framework": {}, "ort": {}}
            for repeat in range(REPEATS + 1):  # the first is a warm-up, not counted
                for k in STACKS:
                    calls = max(4, 32 // k)
                    for side, fn in (("framework", prepared.reference), ("ort", runnable.run)):
                        spent = per_call(fn, stacked[k], calls) / k
                        if repeat:
                            times[side].setdefault(k, []).append(spent)
        for k in STACKS:
            cells = []
            for side in ("framework", "ort"):
                ratios = [t / base for t, base in zip(times[side][k], times[side][1])]
                cells += [f"{statistics.median(times[side][k]) * 1e3:.3g} ms", f"**{statistics.median(ratios):.2f}x**"]
            print(f"| {name if k == 1 else ''} | {k} | {' | '.join(cells)} |")


if __name__ == "__main__":
    main()
