"""Scaling out (issue 30): shards as processes on this machine, and xdist within it.

    .venv/bin/python benchmarks/sharding.py [--quick]

Measured in one run:

1. **Shards.** A zoo of M small models (MLPs of different widths) x V variants, split into N
   shards (``--onnx-parity-shard=K/N``) for N = 1, 2, 4 and M = 4, 8, 16 (quick: M = 4, N = 1,
   2). The shards run one after another, each on the whole machine, as N CI machines would run
   them side by side: the run's wall time on N machines is the slowest shard's, its cost the sum
   of all shards' (each shard's pytest start and imports included); plus the exports all shards
   made together (from the merged report) and whether the merge is complete. The persistent
   cache is off.
2. **xdist on the examples.** ``pytest --onnx-parity examples/ -n 2`` under ``--dist load`` and
   ``--dist loadgroup``: exports and wall time.

Prints Markdown tables (copied into docs/benchmarks.md).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(ROOT, "src"))

from onnxparity.report import document  # noqa: E402

VARIANTS = ["ort-cpu", "ort-cpu-noopt", "onnx-reference"]

ZOO = '''
import pytest, torch
import onnxparity as op

@pytest.mark.onnx_parity(inputs=[op.Input("x", ("batch", 16))], dims={{"batch": op.Dim(1, 8)}}, variants={variants}, examples=10)
@pytest.mark.parametrize("width", {widths})
def test_model(onnx_parity, width):
    torch.manual_seed(width)
    onnx_parity.check(torch.nn.Sequential(
        torch.nn.Linear(16, width), torch.nn.GELU(), torch.nn.Linear(width, width), torch.nn.ReLU(), torch.nn.Linear(width, 4)
    ).eval())
'''


def pytest_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "--onnx-parity", "--onnx-parity-cache=off", *args]


def sharded(folder: str, count: int) -> tuple[list[float], dict]:
    """Each shard's wall time (run one after another), and the merge of their reports."""
    walls = []
    for k in range(1, count + 1):
        started = time.perf_counter()
        subprocess.run(
            pytest_command(f"--onnx-parity-shard={k}/{count}", f"--onnx-parity-report=shard-{k}.json", "test_zoo.py"),
            cwd=folder,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        walls.append(time.perf_counter() - started)
    merged = document.merge(document.load(os.path.join(folder, f"shard-{k}.json")) for k in range(1, count + 1))
    return walls, merged


def examples(dist: str) -> tuple[float, dict]:
    out = tempfile.mkdtemp(prefix="bench-xdist-")
    report = os.path.join(out, "examples.json")
    started = time.perf_counter()
    subprocess.run(
        pytest_command("-n", "2", "--dist", dist, f"--onnx-parity-report={report}", "examples/"),
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    return time.perf_counter() - started, json.loads(open(report).read())


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    quick = parser.parse_args().quick
    sizes, counts = ((4,), (1, 2)) if quick else ((4, 8, 16), (1, 2, 4))
    print("| models (M) | variants (V) | items | shards (N) | wall on N machines (s) | wall / N=1 | cost, all shards (s) | exports | complete |")
    print("|---|---|---|---|---|---|---|---|---|")
    for models in sizes:
        folder = tempfile.mkdtemp(prefix=f"bench-zoo-{models}-")
        widths = [8 * (i + 1) for i in range(models)]
        with open(os.path.join(folder, "test_zoo.py"), "w") as out:
            out.write(ZOO.format(variants=VARIANTS, widths=widths))
        first = None
        for count in counts:
            walls, merged = sharded(folder, count)
            wall = max(walls)
            first = first or wall
            print(
                f"| {models} | {len(VARIANTS)} | {len(merged['items'])} | {count} | {wall:.1f} | {wall / first:.2f} | "
                f"{sum(walls):.1f} | {document.exports(merged)} | {'yes' if not merged['interrupted'] else 'NO'} |"
            )
    if quick:
        return
    print()
    print("| examples, -n 2 | wall (s) | exports | items |")
    print("|---|---|---|---|")
    for dist in ("load", "loadgroup"):
        wall, report = examples(dist)
        print(f"| --dist {dist} | {wall:.1f} | {document.exports(report)} | {len(report['items'])} |")


if __name__ == "__main__":
    main()
