"""What each post-export step costs beside the export (issue 29).

    .venv/bin/python benchmarks/rewrites.py [--quick]

Measured in one run, for the examples' transformer encoder (``examples/test_transformer.py``)
and a tiny BERT from a config object:

- the export: ``torch.onnx.export(dynamo=True)`` with dynamic batch and sequence, once;
- each step's build: the variant's builder on that file, nothing cached (a fresh folder each
  time; median of repeats), as a ratio to the export;
- one run of the built file on one input (batch 2, sequence 16; median of 50), as a ratio to
  ``ort-cpu`` on the export.

Prints a Markdown table (copied into docs/benchmarks.md).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time

import torch

from onnxparity.variants import REWRITE_VARIANTS, BuildContext, get_variant

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "examples"))
torch.set_num_threads(1)

STEPS = ("ort-cpu", *REWRITE_VARIANTS)  # the export as is, then every built-in step


def encoder():
    from test_transformer import TinyEncoder

    torch.manual_seed(0)
    ids = torch.randint(0, 1000, (2, 16))
    return TinyEncoder().eval(), (ids,), ["tokens"], {"model_type": "bert", "num_heads": 4, "hidden_size": 32}


def bert():
    import transformers

    config = transformers.BertConfig(
        vocab_size=100, hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=37
    )
    torch.manual_seed(0)
    model = transformers.BertModel(config).eval()
    ids = torch.randint(3, 100, (2, 16))
    return model, (ids, torch.ones(2, 16, dtype=torch.int64)), ["input_ids", "attention_mask"], {
        "model_type": "bert",
        "num_heads": 2,
        "hidden_size": 32,
    }


def export(model, args, names, folder: str) -> tuple[str, float]:
    path = os.path.join(folder, "model.onnx")
    batch, seq = torch.export.Dim("batch", min=1, max=8), torch.export.Dim("seq", min=1, max=64)
    started = time.perf_counter()
    torch.onnx.export(
        model,
        args,
        path,
        dynamo=True,
        input_names=names,
        dynamic_shapes=tuple({0: batch, 1: seq} for _ in args),
        verbose=False,
    )
    return path, time.perf_counter() - started


def build(name: str, path: str, facts: dict, repeats: int):
    times, runnable = [], None
    for _ in range(repeats):
        folder = tempfile.mkdtemp(prefix=f"bench-{name}-")
        context = BuildContext(model_path=path, workdir=folder, name=name, source=facts)
        started = time.perf_counter()
        runnable = get_variant(name).build(context)
        times.append(time.perf_counter() - started)
    return runnable, statistics.median(times)


def run_ms(runnable, feeds, runs: int) -> float:
    runnable.run(feeds)
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        runnable.run(feeds)
        times.append(time.perf_counter() - started)
    return 1000 * statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    quick = parser.parse_args().quick
    repeats, runs = (1, 10) if quick else (3, 50)
    print("| model | step | build (s) | build / export | run (ms) | run / ort-cpu |")
    print("|---|---|---|---|---|---|")
    for label, make in (("transformer encoder (examples)", encoder), ("tiny BERT (config)", bert)):
        model, args, names, facts = make()
        folder = tempfile.mkdtemp(prefix="bench-export-")
        path, exported = export(model, args, names, folder)
        feeds = {n: a.numpy() for n, a in zip(names, args)}
        print(f"| {label} | export (torch.onnx dynamo) | {exported:.2f} | 1 | | |")
        base = None
        for name in STEPS:
            try:
                runnable, took = build(name, path, facts, repeats)
            except Exception as exc:  # a step that cannot run here is a row saying why
                print(f"| {label} | {name} | — | — | — | {type(exc).__name__}: {str(exc)[:80]} |")
                continue
            ms = run_ms(runnable, feeds, runs)
            base = ms if name == "ort-cpu" else base
            ratio = f"{ms / base:.2f}" if base else ""
            print(f"| {label} | {name} | {took:.2f} | {took / exported:.2f} | {ms:.3f} | {ratio} |")


if __name__ == "__main__":
    main()
