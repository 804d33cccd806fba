"""What running a variant in a worker process of its own costs (``--onnx-parity-isolate``).

    .venv/bin/python benchmarks/isolation.py [--quick]

Measured in one run, as ratios (median of repeats):

1. per run: one ONNX Runtime run in this process against the same run in a worker (the feeds
   and outputs framed as JSON and raw array bytes over a pipe, a large input through shared
   memory), for a small MLP (batch 8) and a CNN with a 1.5 MB input;
2. per built variant: building fp16 and int8-static here against building them in a worker
   (a process start, imports, the build and the session there);
3. per check: a whole check (ort-cpu, int8-dynamic, int8-static, fp16; 25 examples) with
   ``isolate="off"`` against ``"auto"`` (the three lossy variants in workers) and ``"all"``.

Prints a Markdown table (copied into docs/benchmarks.md).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time

import numpy as np
import torch

import onnxparity as op
from onnxparity.config import ParityConfig
from onnxparity.runner import ParitySession
from onnxparity.variants import BuildContext, get_variant
from onnxparity.variants.ort import OrtRunnable, build_ort_cpu
from onnxparity.variants.worker import IsolatedVariant

torch.set_num_threads(1)


def mlp() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(8, 32), torch.nn.ReLU(), torch.nn.Linear(32, 4)).eval()


def cnn() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(
        torch.nn.Conv2d(3, 16, 3, stride=2, padding=1),
        torch.nn.ReLU(),
        torch.nn.Conv2d(16, 32, 3, stride=2, padding=1),
        torch.nn.ReLU(),
        torch.nn.AdaptiveAvgPool2d(1),
        torch.nn.Flatten(),
        torch.nn.Linear(32, 10),
    ).eval()


def export(model: torch.nn.Module, shape: tuple[int, ...], directory: str) -> str:
    path = os.path.join(directory, f"m{len(shape)}.onnx")
    torch.onnx.export(model, (torch.zeros(shape),), path, input_names=["x"], dynamo=False)
    return path


def per_run(path: str, shape: tuple[int, ...], runs: int, workdir: str) -> tuple[float, float]:
    feeds = {"x": np.random.default_rng(0).standard_normal(shape).astype(np.float32)}
    here = OrtRunnable(path, ["CPUExecutionProvider"])
    context = BuildContext(model_path=path, workdir=workdir, name="ort-cpu")
    worker = IsolatedVariant(build_ort_cpu, context)
    times = {}
    try:
        for name, runnable in (("here", here), ("worker", worker)):
            runnable.run(feeds)
            samples = []
            for _ in range(runs):
                started = time.perf_counter()
                runnable.run(feeds)
                samples.append(time.perf_counter() - started)
            times[name] = statistics.median(samples)
    finally:
        worker.close()
    return times["here"], times["worker"]


def per_build(path: str, variant: str, repeats: int, workdir: str) -> tuple[float, float]:
    info = get_variant(variant)

    def sample_feeds(count: int, same_shape: bool = False):
        rng = np.random.default_rng(1)
        return [{"x": rng.standard_normal((8, 8)).astype(np.float32)} for _ in range(count)]

    times: dict[str, list[float]] = {"here": [], "worker": []}
    warm = os.path.join(workdir, f"{variant}-warm")
    os.makedirs(warm)
    info.build(BuildContext(model_path=path, workdir=warm, sample_feeds=sample_feeds, name=variant))
    for i in range(repeats):
        for name in times:
            directory = os.path.join(workdir, f"{variant}-{name}-{i}")
            os.makedirs(directory)
            context = BuildContext(
                model_path=path, workdir=directory, sample_feeds=sample_feeds, name=variant
            )
            started = time.perf_counter()
            if name == "here":
                info.build(context).run(sample_feeds(1)[0])
            else:
                built = IsolatedVariant(info.build, context)
                built.run(sample_feeds(1)[0])
            times[name].append(time.perf_counter() - started)
            if name == "worker":
                built.close()
    return statistics.median(times["here"]), statistics.median(times["worker"])


def first_workers(path: str, workdir: str) -> list[str]:
    """Once per session: the first worker starts the fork server (its imports); the first
    worker of an int8/fp16 variant makes it import the conversion tools. A builder that cannot
    be imported by name (a closure) is forked from this process, PyTorch loaded: each time."""

    def closure(context: BuildContext):
        return build_ort_cpu(context)

    rows = []
    for variant, build, label in (
        ("ort-cpu", get_variant("ort-cpu").build, "first worker of a session (starts the fork server)"),
        (
            "int8-dynamic",
            get_variant("int8-dynamic").build,
            "first int8/fp16 worker (imports the conversion tools)",
        ),
        ("closure", closure, "a worker of a closure builder (forked from the test process) + first run"),
    ):
        directory = os.path.join(workdir, f"first-{variant}")
        os.makedirs(directory)
        context = BuildContext(model_path=path, workdir=directory, name=variant)
        started = time.perf_counter()
        built = IsolatedVariant(build, context)
        if variant == "closure":
            built.run({"x": np.zeros((8, 8), np.float32)})
        elapsed = time.perf_counter() - started
        built.close()
        rows.append(f"| {label} | | {elapsed:.3f} s | |")
    return rows


def per_check(mode: str, examples: int) -> float:
    model = mlp()
    with ParitySession(ParityConfig(isolate=mode)) as session:
        started = time.perf_counter()
        result = op.check(
            model,
            inputs=[op.Input("x", ("batch", 8))],
            dims={"batch": op.Dim(1, 8)},
            variants=["ort-cpu", "int8-dynamic", "int8-static", "fp16"],
            examples=examples,
            session=session,
        )
        elapsed = time.perf_counter() - started
    assert all(r.passed for r in result.variants.values()), result
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    quick = parser.parse_args().quick
    runs, repeats = (200, 1) if quick else (1000, 3)
    lines = ["| what | in the test process | in a worker | ratio |", "|---|---|---|---|"]
    with tempfile.TemporaryDirectory() as directory:
        small = export(mlp(), (8, 8), directory)
        lines.extend(first_workers(small, directory))
        conv = export(cnn(), (8, 3, 128, 128), directory)
        for label, path, shape in (
            ("one run, MLP, batch 8 (128 B in)", small, (8, 8)),
            ("one run, CNN, (8, 3, 128, 128) (1.5 MB in)", conv, (8, 3, 128, 128)),
        ):
            workdir = tempfile.mkdtemp(dir=directory)
            here, worker = per_run(path, shape, runs, workdir)
            lines.append(f"| {label} | {here * 1e3:.3f} ms | {worker * 1e3:.3f} ms | {worker / here:.2f}x |")
        for variant in ("fp16", "int8-static"):
            here, worker = per_build(small, variant, repeats, directory)
            lines.append(
                f"| build {variant} + first run (MLP) | {here:.3f} s | {worker:.3f} s | {worker / here:.2f}x |"
            )
    checks = {}
    per_check("off", 5)  # warm up: imports (quantization tools) are paid once, here
    for mode in ("off", "auto", "all"):
        checks[mode] = statistics.median(per_check(mode, 25) for _ in range(repeats))
    for mode in ("auto", "all"):
        lines.append(
            f"| whole check, MLP, 4 variants x 25 examples, isolate={mode} vs off | {checks['off']:.2f} s "
            f"| {checks[mode]:.2f} s | {checks[mode] / checks['off']:.2f}x |"
        )
    print(f"Python {sys.version.split()[0]}, torch {torch.__version__}, {os.cpu_count()} cores")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
