"""Peak memory of a check of a big model: a 2.25 GB embedding + Linear, checked at defaults.

    .venv/bin/python benchmarks/memory.py             # the 2.25 GB model (needs ~4 GB free)
    .venv/bin/python benchmarks/memory.py --gb 0.5    # a smaller one

Each measurement runs in a fresh process, in a temporary folder: ``op.check`` at defaults
(ort-cpu, 25 examples; a library check keeps no persistent cache; the resident memory before
the check — Python, torch and the weights — and every 20 ms during it), then a test file run
with ``pytest --onnx-parity`` (the persistent cache on). The figure is the process's peak
resident memory (``ru_maxrss``) over the weights' bytes; the framework's own copy of the
weights (1.0x) is unavoidable. Prints a Markdown table (copied into docs/benchmarks.md).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time

CHILD = r"""
import json, os, resource, sys, threading, time
import torch
import onnxparity as op

gb, classes, dim = float(sys.argv[1]), 16, 1024
vocab = int(gb * 2**30 / (4 * dim))
torch.manual_seed(0)

class EmbeddingHead(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.embed = torch.nn.Embedding(vocab, dim)
        self.head = torch.nn.Linear(dim, classes)

    def forward(self, tokens):
        return self.head(self.embed(tokens).mean(1))

def rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")

model = EmbeddingHead().eval()
weights = sum(p.numel() * p.element_size() for p in model.parameters())
before = rss()
samples, stop = [], threading.Event()

def sample():
    while not stop.is_set():
        samples.append((time.perf_counter(), rss()))
        time.sleep(0.02)

threading.Thread(target=sample, daemon=True).start()
started = time.perf_counter()
result = op.check(
    model,
    inputs=[op.Input("tokens", ("batch", "seq"), dtype="int64", low=0, high=vocab - 1)],
    dims={"batch": op.Dim(1, 4), "seq": op.Dim(1, 16)},
    variants=["ort-cpu"],
)["ort-cpu"]
took = time.perf_counter() - started
stop.set()
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
top = max(samples, key=lambda s: s[1])
print(json.dumps(dict(
    status=result.status, weights=weights, before=before, peak=peak, seconds=took,
    peak_at=top[0] - started, examples=result.examples,
    timeline=[(round(t - started, 2), round(r / 2**30, 2)) for t, r in samples[::10]],
)))
"""


PLUGIN_TEST = """
import pytest, torch
import onnxparity as op

VOCAB = int({gb} * 2**30 / 4096)


class EmbeddingHead(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.embed = torch.nn.Embedding(VOCAB, 1024)
        self.head = torch.nn.Linear(1024, 16)

    def forward(self, tokens):
        return self.head(self.embed(tokens).mean(1))


@pytest.mark.onnx_parity(
    inputs=[op.Input("tokens", ("batch", "seq"), dtype="int64", low=0, high=VOCAB - 1)],
    dims={{"batch": op.Dim(1, 4), "seq": op.Dim(1, 16)}},
)
def test_big(onnx_parity):
    torch.manual_seed(0)
    onnx_parity.check(EmbeddingHead().eval())
"""

PLUGIN_CHILD = r"""
import json, resource, sys, time
import pytest
started = time.perf_counter()
code = pytest.main(["-q", "--onnx-parity", "-p", "no:cacheprovider", "test_big.py"])
print(json.dumps(dict(
    status="passed" if code == 0 else f"pytest exit {code}", weights=int(float(sys.argv[1]) * 2**30 / 4096) * 1024 * 4
    + 1024 * 16 * 4 + 16 * 4, before=None, peak=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
    seconds=time.perf_counter() - started, peak_at=None, examples=None, timeline=[],
)))
"""


def measure(gb: float, plugin: bool = False) -> dict:
    with tempfile.TemporaryDirectory() as workdir:  # the run's .onnxparity/ lands here
        if plugin:
            with open(f"{workdir}/test_big.py", "w") as f:
                f.write(PLUGIN_TEST.format(gb=gb))
        child = PLUGIN_CHILD if plugin else CHILD
        out = subprocess.run([sys.executable, "-c", child, str(gb)], cwd=workdir, capture_output=True, text=True)
    if out.returncode:
        raise SystemExit(out.stdout[-3000:] + out.stderr[-3000:])
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gb", type=float, default=2.25, help="the embedding's size in GiB")
    parser.add_argument("--timeline", action="store_true", help="print resident memory every 0.2 s")
    args = parser.parse_args()
    started = time.perf_counter()
    gib = 2**30
    print("| how | weights | before the check | peak | peak / weights | check | verdict |")
    print("|---|---|---|---|---|---|---|")
    for how, plugin in (("`op.check`", False), ("`pytest --onnx-parity` (a test file, the persistent cache on)", True)):
        found = measure(args.gb, plugin)
        weights = found["weights"]
        before = f"{found['before'] / gib:.2f} GiB" if found["before"] else "-"
        at = f" (at {found['peak_at']:.0f} s)" if found["peak_at"] is not None else ""
        examples = f", {found['examples']} examples" if found["examples"] else ""
        print(
            f"| {how}, embedding {args.gb:g} GiB + Linear | {weights / gib:.2f} GiB | {before} "
            f"| {found['peak'] / gib:.2f} GiB{at} | **{found['peak'] / weights:.2f}x** "
            f"| {found['seconds']:.0f} s{examples} | {found['status']} |"
        )
        if args.timeline and found["timeline"]:
            print("resident GiB over the check's seconds:", found["timeline"])
    print(f"\n(measured in {time.perf_counter() - started:.0f} s)")


if __name__ == "__main__":
    main()
