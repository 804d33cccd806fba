"""What inner branch coverage costs: the examples' models (and a ReLU6 CNN, whose upper clip is
the kind of branch random weights rarely reach) checked on every CPU variant, with
``coverage="inner"`` (the default) and ``"inputs"``, alternating, in one run. Reports, per
model, the whole check's time (export included) in each mode, the time the coverage code
itself took in the inner run (``ParitySession.timings["coverage"]``, its own clock) and its
share of that check, and the lines coverage reported.

    .venv/bin/python benchmarks/coverage.py

Prints a Markdown table (copied into docs/benchmarks.md).
"""

from __future__ import annotations

import os
import statistics
import sys
import time
import warnings

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "examples"))
warnings.simplefilter("ignore")

import torch  # noqa: E402
from test_cnn import SmallCNN, trained_like  # noqa: E402
from test_mlp import MLP  # noqa: E402
from test_transformer import MAX_SEQ, VOCAB, TinyEncoder  # noqa: E402

import onnxparity as op  # noqa: E402
from onnxparity.config import ParityConfig  # noqa: E402
from onnxparity.runner import ParitySession  # noqa: E402

VARIANTS = ["ort-cpu", "ort-cpu-noopt", "int8-dynamic", "int8-static", "fp16", "onnx-reference"]
REPEATS = 4


class Relu6CNN(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 16, 3, padding=1)
        self.act = torch.nn.ReLU6()
        self.conv2 = torch.nn.Conv2d(16, 16, 3, padding=1)
        self.relu = torch.nn.ReLU()
        self.head = torch.nn.Linear(16, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.relu(self.conv2(self.act(self.conv(x)))).mean((2, 3)))


def models():
    torch.manual_seed(0)
    image = [op.Input("image", ("batch", 3, "size", "size"), low=-1, high=1)]
    return {
        "example CNN": (
            trained_like(SmallCNN()),
            image,
            {"batch": op.Dim(1, 8), "size": op.Dim(16, 64, multiple_of=8)},
        ),
        "ReLU6 CNN": (Relu6CNN().eval(), image, {"batch": op.Dim(1, 8), "size": op.Dim(8, 32)}),
        "example MLP": (
            MLP().eval(),
            [op.Input("x", ("batch", 32), low=-3, high=3)],
            {"batch": op.Dim(1, 64)},
        ),
        "tiny encoder": (
            TinyEncoder().eval(),
            [op.Input("tokens", ("batch", "seq"), dtype="int64", low=0, high=VOCAB - 1)],
            {"batch": op.Dim(1, 4), "seq": op.Dim(1, MAX_SEQ)},
        ),
    }


def measure(model, inputs, dims, mode: str) -> tuple[float, float, dict | None]:
    with ParitySession(ParityConfig(coverage=mode)) as session:
        started = time.perf_counter()
        result = op.check(model, inputs=inputs, dims=dims, variants=VARIANTS, session=session, name="bench")
        wall = time.perf_counter() - started
        return wall, session.timings["coverage"], result.variants[VARIANTS[0]].coverage


def main() -> None:
    print(
        "| model | check, inner (s) | check, inputs (s) | coverage code (s) | its share | inner sides | never reached |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for name, (model, inputs, dims) in models().items():
        runs = {"inner": [], "inputs": []}
        spent, coverage = [], None
        for repeat in range(REPEATS):
            for mode in ("inner", "inputs") if repeat % 2 == 0 else ("inputs", "inner"):
                wall, seconds, found = measure(model, inputs, dims, mode)
                runs[mode].append(wall)
                if mode == "inner":
                    spent.append(seconds)
                    coverage = found
        inner, inputs_only = statistics.median(runs["inner"]), statistics.median(runs["inputs"])
        cost = statistics.median(spent)
        unreached = (coverage or {}).get("unreached") or []
        print(
            f"| {name} | {inner:.2f} | {inputs_only:.2f} | {cost:.3f} | {cost / inner:.1%} | "
            f"{(coverage or {}).get('sides', 0)} | {'; '.join(unreached) or '—'} |"
        )


if __name__ == "__main__":
    main()
