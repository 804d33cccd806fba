"""Detection power against the number of examples: which bugs of the corpus
(tests/test_detection.py) ``ort-cpu`` catches at 6, 12 and 25 examples, and what a passing
check costs. Run it on two checkouts to compare (the ``src`` on ``PYTHONPATH`` decides which
onnxparity is measured):

    .venv/bin/python benchmarks/detection.py
    PYTHONPATH=/path/to/old/src .venv/bin/python benchmarks/detection.py

Prints a Markdown table (copied into docs/benchmarks.md).
"""

from __future__ import annotations

import os
import statistics
import sys
import time
import warnings

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "tests"))
warnings.simplefilter("ignore")

import onnxparity  # noqa: E402
import test_detection as corpus  # noqa: E402
from onnxparity.runner import ParitySession  # noqa: E402

EXAMPLES = (6, 12, 25)


def cases(session):
    """(name, prepared pair, spec) of every planted and real export bug."""
    for bug, (cls, spec, edit, _) in corpus.PLANTED.items():
        model = corpus.MODELS[cls]
        broken = edit(corpus.exported_proto(session, model, spec))
        yield bug, session.prepare(model, spec, onnx=broken), spec
    yield "baked batch", session.prepare(corpus.MODELS[corpus.BakedBatch], corpus.BAKED), corpus.BAKED
    yield "adaptive pool", session.prepare(corpus.MODELS[corpus.AdaptivePool], corpus.POOL), corpus.POOL
    branch = corpus.op.ParitySpec(
        inputs=(corpus.op.Input("x", ("batch", 4)),), dims={"batch": corpus.op.Dim(1, 8)}
    )
    yield (
        "traced branch on the sum",
        session.prepare(corpus.MODELS[corpus.DataDependentBranch], branch),
        branch,
    )
    yield (
        "traced branch on the range (x / 255)",
        session.prepare(corpus.MODELS[corpus.PixelScaleBranch], corpus.PIXELS),
        corpus.PIXELS,
    )
    mean = corpus.op.ParitySpec(
        inputs=(corpus.op.Input("x", ("batch", 6)),), dims={"batch": corpus.op.Dim(1, 8)}
    )
    yield "traced branch on the mean", session.prepare(corpus.MODELS[corpus.MeanBranch], mean), mean
    two = corpus.MODELS[corpus.TwoInOut]
    short = corpus.truncate_embedding(corpus.exported_proto(session, two, corpus.TWO))
    yield "embedding one row short (last token id)", session.prepare(two, corpus.TWO, onnx=short), corpus.TWO
    tree = corpus.epoch_tree()
    rounded = corpus.round_thresholds_to_nearest(
        corpus.exported_proto(session, tree, corpus.EPOCHS), tree.tree_.threshold
    )
    yield (
        "tree thresholds rounded to nearest",
        session.prepare(tree, corpus.EPOCHS, onnx=rounded),
        corpus.EPOCHS,
    )


def passing_cost(session, repeats: int = 5) -> float:
    """Median seconds of passing checks (Activations and MLP, 25 examples, caches cleared)."""
    pairs = [
        (session.prepare(corpus.MODELS[corpus.Activations], corpus.ACT), corpus.ACT),
        (session.prepare(corpus.MODELS[corpus.Mlp], corpus.MLP), corpus.MLP),
    ]
    times = []
    for _ in range(repeats):
        session.clear_example_caches()
        started = time.perf_counter()
        for pair, spec in pairs:
            assert session.check_variant(pair, spec, "ort-cpu", name="passing", examples=25).passed
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main() -> None:
    print(f"onnxparity from {os.path.dirname(onnxparity.__file__)}")
    rows = [
        "| bug | " + " | ".join(f"{n} examples" for n in EXAMPLES) + " |",
        "|---" * (len(EXAMPLES) + 1) + "|",
    ]
    caught = dict.fromkeys(EXAMPLES, 0)
    total = 0
    with ParitySession() as session:
        for name, pair, spec in cases(session):
            total += 1
            cells = []
            for n in EXAMPLES:
                session.clear_example_caches()
                result = session.check_variant(pair, spec, "ort-cpu", name=f"corpus {name}", examples=n)
                hit = result.status == "failed"
                caught[n] += hit
                cells.append(f"caught ({result.examples})" if hit else f"**missed** ({result.examples})")
            rows.append(f"| {name} | " + " | ".join(cells) + " |")
        rows.append("| **caught** | " + " | ".join(f"{caught[n]} of {total}" for n in EXAMPLES) + " |")
        cost = passing_cost(session)
    print("\n".join(rows))
    print(f"\npassing checks (Activations + MLP, 25 examples each): {cost * 1e3:.0f} ms (median of 5)")


if __name__ == "__main__":
    main()
