"""onnxparity benchmarks: one command, ratios measured in one run on one machine.

    .venv/bin/python benchmarks/run.py            # all five benchmarks (~5 minutes on 2 cores)
    .venv/bin/python benchmarks/run.py --quick    # fewer repeats and examples (~1.5 minutes)

Needs the ``bench`` extra (Polygraphy): ``pip install -e '.[dev,bench]'``. Prints a Markdown
report (copied into docs/benchmarks.md) and writes it to benchmarks/results.md. Every figure
is a ratio of two times measured in this run (median over repeats, spread = (max - min) /
median); absolute times are context only.

1. overhead vs the floor: a check of N examples x V variants with the export done and the
   variants built, against a plain loop doing the same inference by hand (framework forward
   once per input, one ONNX Runtime run per variant, sessions prebuilt); with the time split into
   export, build, drawing, reference, variant, anchor (ort-cpu distance), comparison and
   Hypothesis bookkeeping.
2. input drawing: one (8, 3, 224, 224) float32 and one (16, 512) int64 example, against
   ``hypothesis.extra.numpy.arrays``.
3. against Polygraphy: the same ONNX model, the same input sets, ORT CPU against stored
   reference outputs at the same tolerance; 3b. end to end, the framework's forward included,
   against Polygraphy (a CPU torch runner) and a hand-written loop.
4. start-up: ``import onnxparity`` and the plugin (``-X importtime``), and what
   ``--onnx-parity`` adds to a suite whose parity items are deselected.
5. scaling: time vs examples (10, 50, 200) and vs variants (1, 3, 6).
6. the thread trap: PyTorch's first inference after 10 ONNX Runtime sessions exist.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import re
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(ROOT, "examples"))

import numpy as np  # noqa: E402
import torch  # noqa: E402

import onnxparity as op  # noqa: E402
from onnxparity.runner import ParitySession  # noqa: E402

torch.set_num_threads(1)


class LargerCNN(torch.nn.Module):
    """A VGG-ish stack at 224x224: one inference at batch 8 takes tens of ms on one thread."""

    def __init__(self) -> None:
        super().__init__()
        layers, channels = [], 3
        for width in (16, 32, 64, 128):
            layers += [torch.nn.Conv2d(channels, width, 3, stride=2, padding=1), torch.nn.ReLU()]
            channels = width
        self.features = torch.nn.Sequential(*layers, torch.nn.AdaptiveAvgPool2d(1))
        self.head = torch.nn.Linear(channels, 10)

    def forward(self, image):
        return self.head(self.features(image).flatten(1))


class TwoConvCNN(torch.nn.Module):
    """Issue 31's CNN: Conv 3->16 + BatchNorm + ReLU, Conv 16->32 stride 2 + ReLU, global average
    pool, Linear 32->10 (about 1.6 ms per batch-8 64x64 input set for a hand-written loop)."""

    def __init__(self) -> None:
        super().__init__()
        self.features = torch.nn.Sequential(
            torch.nn.Conv2d(3, 16, 3, padding=1),
            torch.nn.BatchNorm2d(16),
            torch.nn.ReLU(),
            torch.nn.Conv2d(16, 32, 3, stride=2, padding=1),
            torch.nn.ReLU(),
            torch.nn.AdaptiveAvgPool2d(1),
        )
        self.head = torch.nn.Linear(32, 10)

    def forward(self, image):
        return self.head(self.features(image).flatten(1))


def models():
    from test_cnn import SmallCNN, trained_like
    from test_mlp import MLP
    from test_transformer import VOCAB, TinyEncoder

    torch.manual_seed(0)
    return {
        "MLP (examples)": (
            MLP().eval(),
            op.ParitySpec(
                inputs=[op.Input("x", ("batch", 32), low=-3, high=3)], dims={"batch": op.Dim(1, 64)}
            ),
        ),
        "CNN (examples)": (
            trained_like(SmallCNN()),
            op.ParitySpec(
                inputs=[op.Input("image", ("batch", 3, "size", "size"), low=-1, high=1)],
                dims={"batch": op.Dim(1, 8), "size": op.Dim(16, 64, multiple_of=8)},
            ),
        ),
        "transformer (examples)": (
            TinyEncoder().eval(),
            op.ParitySpec(
                inputs=[op.Input("tokens", ("batch", "seq"), dtype="int64", low=0, high=VOCAB - 1)],
                dims={"batch": op.Dim(1, 4), "seq": op.Dim(1, 64)},
            ),
        ),
        "larger CNN, batch 8, 3x224x224": (
            LargerCNN().eval(),
            op.ParitySpec(inputs=[op.Input("image", (8, 3, 224, 224), low=-1, high=1)]),
        ),
    }


def spread(values):
    med = statistics.median(values)
    return (max(values) - min(values)) / med if med else 0.0


def fmt(values, unit="ms", scale=1e3):
    return f"{statistics.median(values) * scale:.3g} {unit} (±{100 * spread(values):.0f}%)"


# -- 1. overhead vs the floor -----------------------------------------------------------------
def overhead(model, spec, examples: int, variants, repeats: int):
    """(onnxparity s, floor s, per-phase seconds of the last repeat, examples tried)."""
    with ParitySession() as session:
        prepared = session.prepare(model, spec)
        for v in variants:
            session.variant(prepared, v, spec)
        reference = prepared.reference
        seen: list = []

        def recording(feeds):
            seen.append(feeds)
            return reference(feeds)

        object.__setattr__(prepared, "reference", recording)
        runs, floors = [], []
        for repeat in range(repeats + 1):  # the first is a warm-up, not counted
            session.clear_example_caches()
            seen.clear()
            session.timings.clear()
            started = time.perf_counter()
            tried = 0
            for v in variants:
                tried += session.check_variant(prepared, spec, v, name="bench", examples=examples).examples
            runs.append(time.perf_counter() - started)
            phases = dict(session.timings)
            runnables = [session.variant(prepared, v, spec) for v in variants]
            feeds_list = list(seen)
            started = time.perf_counter()
            for feeds in feeds_list:
                reference(feeds)
                for r in runnables:
                    r.run(feeds)
            floors.append(time.perf_counter() - started)
            if repeat == 0:
                runs.clear()
                floors.clear()
        object.__setattr__(prepared, "reference", reference)
    return runs, floors, phases, tried, len(feeds_list)


def bench_overhead(quick: bool) -> list[str]:
    lines = [
        "### 1. Overhead vs the floor",
        "",
        "A check of N examples on V variants (export done, variants built) against a plain loop "
        "doing the same inference on the same inputs (framework forward once per input, one ONNX "
        "Runtime run per variant per input).",
        "",
        "| model | one inference (framework) | N x V | onnxparity | floor | ratio | draw | reference | variants | ort-cpu distance | compare | Hypothesis + rest |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    repeats = 3 if quick else 5
    for name, (model, spec) in models().items():
        for variants in (["ort-cpu"], ["ort-cpu", "ort-cpu-noopt", "fp16"]):
            n = 10 if quick else 25
            runs, floors, phases, tried, inputs = overhead(model, spec, n, variants, repeats)
            one = statistics.median(floors) / max(inputs, 1)
            ratio = [r / f for r, f in zip(runs, floors)]
            total = phases.get("search", 0.0)
            known = sum(phases.get(k, 0.0) for k in ("draw", "reference", "variant", "anchor", "compare"))
            share = lambda k, phases=phases, total=total: f"{100 * phases.get(k, 0.0) / total:.0f}%"  # noqa: E731
            lines.append(
                f"| {name} | {one * 1e3:.3g} ms (floor per input) | {tried // len(variants)} x {len(variants)} | "
                f"{fmt(runs)} | {fmt(floors)} | **{statistics.median(ratio):.2f}x** (±{100 * spread(ratio):.0f}%) | "
                f"{share('draw')} | {share('reference')} | {share('variant')} | {share('anchor')} | "
                f"{share('compare')} | {100 * (total - known) / total:.0f}% |"
            )
    # export and build, once
    with ParitySession() as session:
        model, spec = models()["CNN (examples)"]
        prepared = session.prepare(model, spec)
        for v in ("ort-cpu", "ort-cpu-noopt", "int8-dynamic", "int8-static", "fp16", "onnx-reference"):
            started = time.perf_counter()
            session.variant(prepared, v, spec)
            session.timings[f"build {v}"] = time.perf_counter() - started
        lines += [
            "",
            "One-off costs for the example CNN (not in the ratios above): export "
            f"{session.timings['export']:.2f} s; building "
            + ", ".join(
                f"{k[6:]} {1e3 * session.timings[k]:.0f} ms"
                for k in session.timings
                if k.startswith("build ")
            ),
            "",
        ]
    return lines


# -- 2. input drawing -------------------------------------------------------------------------
def _drawing_test(strategy, body, options):
    """A Hypothesis test drawing from ``strategy`` and handing each value to ``body``."""
    from hypothesis import given, settings

    @settings(**options)
    @given(strategy)
    def draw(value):
        body(value)

    return draw


def bench_drawing(quick: bool) -> list[str]:
    from hypothesis import HealthCheck, Phase
    from hypothesis import strategies as st
    from hypothesis.extra.numpy import arrays

    from onnxparity.draw import materialize
    from onnxparity.search.strategies import examples

    n = 20 if quick else 50
    cases = {
        "(8, 3, 224, 224) float32": (
            op.ParitySpec(inputs=[op.Input("x", (8, 3, 224, 224))]),
            arrays(np.float32, (8, 3, 224, 224), elements=st.floats(-1, 1, width=32)),
        ),
        "(16, 512) int64": (
            op.ParitySpec(inputs=[op.Input("t", (16, 512), dtype="int64", low=0, high=30000)]),
            arrays(np.int64, (16, 512), elements=st.integers(0, 30000)),
        ),
    }
    options = dict(
        max_examples=n,
        database=None,
        deadline=None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    lines = [
        "### 2. Input drawing",
        "",
        "Time per example: a Hypothesis draw plus filling the arrays, inside `@given` (what a search pays).",
        "",
        "| input | onnxparity | `hypothesis.extra.numpy.arrays` | ratio |",
        "|---|---|---|---|",
    ]
    for name, (spec, reference_strategy) in cases.items():
        times = {}
        for label, strategy, body in (
            ("onnxparity", examples(spec), lambda ex, spec=spec: materialize(spec, ex, {})),
            ("arrays", reference_strategy, lambda a: a),
        ):
            samples = []
            for _ in range(3):
                draw = _drawing_test(strategy, body, options)
                started = time.perf_counter()
                draw()
                samples.append((time.perf_counter() - started) / n)
            times[label] = samples
        ratio = statistics.median(times["onnxparity"]) / statistics.median(times["arrays"])
        lines.append(f"| {name} | {fmt(times['onnxparity'])} | {fmt(times['arrays'])} | {ratio:.2f}x |")
    lines += [
        "",
        "Note: `arrays()` fills a large array with one drawn value plus a few drawn elements, so its "
        "arrays are mostly constant; onnxparity's patterns (uniform, normal, extremes, sparse, ...) fill "
        "every value from a seed.",
        "",
    ]
    return lines


# -- 3. against Polygraphy -------------------------------------------------------------------
def bench_polygraphy(quick: bool) -> list[str]:
    import onnxruntime as ort
    from polygraphy.backend.onnxrt import OnnxrtRunner
    from polygraphy.comparator import Comparator, CompareFunc
    from polygraphy.logger import G_LOGGER

    from onnxparity.variants.ort import session_options

    G_LOGGER.module_severity = G_LOGGER.CRITICAL
    model, spec = models()["CNN (examples)"]
    n = 20 if quick else 50
    tolerance = op.Tolerance(atol=1e-5, rtol=1e-4)
    lines = [
        "### 3. Against Polygraphy",
        "",
        f"The example CNN's ONNX file, the same {n}+ input sets, ONNX Runtime CPU (one thread, "
        "session prebuilt for both) against stored reference outputs, atol=1e-5, rtol=1e-4. "
        "onnxparity: `check_variant` with a reference that looks the stored outputs up; Polygraphy: "
        "`Comparator.run` + `Comparator.compare_accuracy(CompareFunc.simple(...))`.",
        "",
        "| tool | per input set | note |",
        "|---|---|---|",
    ]
    with ParitySession() as session:
        prepared = session.prepare(model, spec)
        path = prepared.exported.path
        stored: dict = {}
        feeds_in_order: list = []

        def key(feeds):  # shapes too: all-zero inputs of (8, 3, 16, 16) and (2, 3, 32, 32) are the same bytes
            return hashlib.blake2b(
                b"".join(f"{v.shape}{v.dtype}".encode() + np.ascontiguousarray(v).tobytes() for v in feeds.values())
            ).hexdigest()

        truth = prepared.reference

        def record(feeds):
            out = truth(feeds)
            stored[key(feeds)] = out
            feeds_in_order.append(feeds)
            return out

        object.__setattr__(prepared, "reference", record)
        session.check_variant(prepared, spec, "ort-cpu", name="poly", examples=n, rows=None)
        object.__setattr__(prepared, "reference", lambda feeds: stored[key(feeds)])
        ours, theirs = [], []
        names = session.variant(prepared, "ort-cpu").output_names
        for _ in range(3 if quick else 5):
            session.clear_example_caches()
            started = time.perf_counter()
            result = session.check_variant(prepared, spec, "ort-cpu", name="poly", examples=n)
            ours.append((time.perf_counter() - started) / result.examples)
            sess = ort.InferenceSession(path, session_options(1), providers=["CPUExecutionProvider"])
            runner = OnnxrtRunner(sess)
            started = time.perf_counter()
            results = Comparator.run([runner], data_loader=feeds_in_order)
            results.add([dict(zip(names, stored[key(f)])) for f in feeds_in_order], runner_name="reference")
            accuracy = Comparator.compare_accuracy(
                results, compare_func=CompareFunc.simple(atol=tolerance.atol, rtol=tolerance.rtol)
            )
            theirs.append((time.perf_counter() - started) / len(feeds_in_order))
            assert bool(accuracy)
    ratio = statistics.median(theirs) / statistics.median(ours)
    lines += [
        f"| onnxparity | {fmt(ours)} | (includes drawing each input) |",
        f"| Polygraphy {__import__('polygraphy').__version__} | {fmt(theirs)} | |",
        "",
        f"**onnxparity is {ratio:.2f}x as fast per compared input set** (Polygraphy time / onnxparity time).",
        "",
    ]
    return lines


def bench_end_to_end(quick: bool) -> list[str]:
    """The framework's reference included on every side: what a user waits for."""
    from test_cnn import SmallCNN, trained_like

    n = 20 if quick else 50
    lines = [
        "### 3b. End to end, against Polygraphy and a hand-written loop",
        "",
        f"Input sets of 8x3x64x64, {n} examples, ONNX Runtime CPU (one thread, sessions prebuilt), "
        "torch on one thread, the framework's forward computed on every side: onnxparity's "
        "`check_variant` (drawing included); Polygraphy's `Comparator.run` with a CPU torch runner "
        "and an `OnnxrtRunner`, then `compare_accuracy`; the floor is a plain loop over the same "
        "input sets (forward, ONNX Runtime run, the tolerance test). The three sides run in turn in "
        "each repeat; each ratio is the median over repeats of that repeat's ratio.",
        "",
        "| model | side | per input set | vs the floor |",
        "|---|---|---|---|",
    ]
    torch.manual_seed(0)
    cases = {
        "issue 31's CNN (two convs)": trained_like(TwoConvCNN()),
        "the example CNN": trained_like(SmallCNN()),
    }
    breakdowns = []
    for name, model in cases.items():
        rows, breakdown = _end_to_end(name, model, n, 5 if quick else 9)
        lines += rows
        breakdowns.append(f"- {name}: {breakdown}")
    lines += [
        "",
        "onnxparity's time per input set by its own timers (`ParitySession.timings`, median over the "
        "repeats); the rest is Hypothesis, the tally and the keys:",
        "",
        *breakdowns,
        "",
    ]
    return lines


def _end_to_end(name: str, model, n: int, repeats: int) -> tuple[list[str], str]:
    from collections import OrderedDict

    import onnxruntime as ort
    from polygraphy.backend.base import BaseRunner
    from polygraphy.backend.onnxrt import OnnxrtRunner
    from polygraphy.common import TensorMetadata
    from polygraphy.comparator import Comparator, CompareFunc
    from polygraphy.logger import G_LOGGER

    from onnxparity.variants.ort import session_options

    class CpuTorchRunner(BaseRunner):
        """Polygraphy's PytRunner moves inputs to CUDA; this is the same runner on the CPU."""

        def __init__(self, model, metadata, output_names):
            super().__init__(name="torch-cpu")
            self.model, self.metadata, self.names = model, metadata, output_names

        def activate_impl(self):
            pass

        def get_input_metadata_impl(self):
            return self.metadata

        def infer_impl(self, feed_dict):
            started = time.perf_counter()
            with torch.no_grad():
                out = self.model(*[torch.from_numpy(v) for v in feed_dict.values()])
            self.inference_time = time.perf_counter() - started
            return OrderedDict(zip(self.names, [out.numpy()]))

        def deactivate_impl(self):
            pass

    G_LOGGER.module_severity = G_LOGGER.CRITICAL
    spec = op.ParitySpec(inputs=[op.Input("image", (8, 3, 64, 64), low=-1, high=1)])
    with ParitySession() as session:
        prepared = session.prepare(model, spec)
        truth, seen = prepared.reference, []

        def record(feeds):
            seen.append(feeds)
            return truth(feeds)

        object.__setattr__(prepared, "reference", record)
        session.check_variant(prepared, spec, "ort-cpu", name="e2e", examples=n)
        object.__setattr__(prepared, "reference", truth)
        feeds_list = list(seen)
        names = session.variant(prepared, "ort-cpu").output_names
        sess = ort.InferenceSession(
            prepared.exported.path, session_options(1), providers=["CPUExecutionProvider"]
        )
        metadata = TensorMetadata().add("image", np.float32, (8, 3, 64, 64))
        ours, floor, drawing, theirs, phases = [], [], [], [], []
        for _ in range(repeats + 1):  # the first is a warm-up, not counted
            session.clear_example_caches()
            session.timings.clear()
            started = time.perf_counter()
            result = session.check_variant(prepared, spec, "ort-cpu", name="e2e", examples=n)
            ours.append((time.perf_counter() - started) / result.examples)
            phases.append({k: v / result.examples for k, v in session.timings.items()})
            started = time.perf_counter()
            for feeds in feeds_list:
                expected = truth(feeds)[0]
                actual = sess.run(None, feeds)[0]
                assert np.all(np.abs(actual - expected) <= 1e-5 + 1e-4 * np.abs(expected))
            floor.append((time.perf_counter() - started) / len(feeds_list))
            started = time.perf_counter()
            rng = np.random.default_rng(0)
            for _ in feeds_list:  # what a hand-written test does: draw each input, then compare
                feeds = {"image": -1 + 2 * rng.random((8, 3, 64, 64), dtype=np.float32)}
                expected = truth(feeds)[0]
                actual = sess.run(None, feeds)[0]
                assert np.all(np.abs(actual - expected) <= 1e-5 + 1e-4 * np.abs(expected))
            drawing.append((time.perf_counter() - started) / len(feeds_list))
            started = time.perf_counter()
            runners = [CpuTorchRunner(model, metadata, list(names)), OnnxrtRunner(sess)]
            results = Comparator.run(runners, data_loader=feeds_list)
            accuracy = Comparator.compare_accuracy(
                results, compare_func=CompareFunc.simple(atol=1e-5, rtol=1e-4)
            )
            theirs.append((time.perf_counter() - started) / len(feeds_list))
            assert bool(accuracy)
    ours, floor, drawing, theirs, phases = ours[1:], floor[1:], drawing[1:], theirs[1:], phases[1:]
    version = __import__("polygraphy").__version__
    named = {"draw": "drawing", "reference": "the framework", "variant": "ONNX Runtime", "compare": "comparing"}
    parts = {label: statistics.median(p.get(key, 0.0) for p in phases) for key, label in named.items()}
    parts["the rest"] = statistics.median(t - sum(p.get(k, 0.0) for k in named) for t, p in zip(ours, phases))
    breakdown = ", ".join(f"{label} {value * 1e3:.3f} ms" for label, value in parts.items())

    def ratio(side):
        values = [t / f for t, f in zip(side, floor)]
        return f"**{statistics.median(values):.2f}x** (±{100 * spread(values):.0f}%)"

    return [
        f"| {name} | hand-written loop on the same inputs, made beforehand (the floor) | {fmt(floor)} | 1.00x |",
        f"| | hand-written loop drawing each input (numpy's float32 uniform) | {fmt(drawing)} | {ratio(drawing)} |",
        f"| | onnxparity | {fmt(ours)} | {ratio(ours)} |",
        f"| | Polygraphy {version} | {fmt(theirs)} | {ratio(theirs)} |",
    ], breakdown


# -- 4. start-up ------------------------------------------------------------------------------
def import_ms(module: str) -> float:
    out = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", f"import {module}"], capture_output=True, text=True
    ).stderr
    total = 0
    for line in out.splitlines():
        match = re.match(r"import time:\s+\d+ \|\s+(\d+) \| (\s*)(\S+)", line)
        if match and match.group(2) == " " and match.group(3) == module.split(".")[0]:
            total = int(match.group(1))
        if match and match.group(3) == module:
            total = max(total, int(match.group(1)))
    return total / 1e3


def bench_startup(quick: bool) -> list[str]:
    repeats = 3 if quick else 7
    imports = {m: [import_ms(m) for _ in range(repeats)] for m in ("onnxparity", "onnxparity.plugin")}
    heavy = subprocess.run(
        [
            sys.executable,
            "-c",
            "import onnxparity.plugin, sys; print(sorted(m for m in ('torch','tensorflow','sklearn','onnxruntime','onnx') if m in sys.modules))",
        ],
        capture_output=True,
        text=True,
    ).stdout.strip()
    suite = tempfile.mkdtemp(prefix="onnxparity-startup-")
    with open(os.path.join(suite, "test_plain.py"), "w") as f:
        f.write("\n".join(f"def test_{i}():\n    assert {i} == {i}\n" for i in range(200)))
    with open(os.path.join(suite, "test_parity.py"), "w") as f:
        f.write(
            textwrap.dedent(
                """
                import pytest, onnxparity as op
                @pytest.mark.onnx_parity(inputs=[op.Input("x", ("batch", 4))], dims={"batch": op.Dim(1, 4)},
                                         variants=op.ALL_VARIANTS)
                def test_parity(onnx_parity):
                    raise AssertionError("deselected: never runs")
                """
            )
        )

    def wall(*args):
        samples = []
        for _ in range(repeats):
            started = time.perf_counter()
            subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "pytest",
                    "-q",
                    "-p",
                    "no:cacheprovider",
                    suite,
                    "-k",
                    "not parity",
                    *args,
                ],
                capture_output=True,
                cwd=suite,
            )
            samples.append(time.perf_counter() - started)
        return samples

    without = wall("-p", "no:onnxparity")
    with_flag = wall("--onnx-parity")
    return [
        "### 4. Start-up",
        "",
        "| what | time | target |",
        "|---|---|---|",
        f"| `import onnxparity` (cumulative, `-X importtime`) | {statistics.median(imports['onnxparity']):.0f} ms (±{100 * spread(imports['onnxparity']):.0f}%) | <= 100 ms |",
        f"| `import onnxparity.plugin` | {statistics.median(imports['onnxparity.plugin']):.0f} ms | |",
        f"| heavy modules imported by the plugin | {heavy} | none |",
        f"| pytest, 200 plain tests + deselected parity items, plugin disabled | {fmt(without, 's', 1)} | |",
        f"| the same with `--onnx-parity` | {fmt(with_flag, 's', 1)} | |",
        f"| added by `--onnx-parity` | {1e3 * (statistics.median(with_flag) - statistics.median(without)):.0f} ms "
        f"({statistics.median(with_flag) / statistics.median(without):.2f}x) | |",
        "",
    ]


# -- 5. scaling -------------------------------------------------------------------------------
def bench_scaling(quick: bool) -> list[str]:
    model, spec = models()["CNN (examples)"]
    lines = [
        "### 5. Scaling (example CNN)",
        "",
        "| examples x variants | onnxparity | floor | ratio |",
        "|---|---|---|---|",
    ]
    six = ["ort-cpu", "ort-cpu-noopt", "int8-dynamic", "int8-static", "fp16", "onnx-reference"]
    points = []
    configs = [(10, six[:1]), (50, six[:1]), (200, six[:1]), (50, six[:3]), (50, six)]
    if quick:
        configs = [(10, six[:1]), (50, six[:1]), (50, six[:3])]
    for n, variants in configs:
        runs, floors, _, tried, _ = overhead(model, spec, n, variants, 1 if quick else 3)
        points.append((tried, statistics.median(runs), statistics.median(floors)))
        lines.append(
            f"| {tried // len(variants)} x {len(variants)} | {fmt(runs, 's', 1)} | {fmt(floors, 's', 1)} | "
            f"{statistics.median(runs) / statistics.median(floors):.2f}x |"
        )
    single = [(t, r) for (t, r, _), (_, v) in zip(points, configs) if len(v) == 1]
    if len(single) >= 2:
        x = np.array([t for t, _ in single], float)
        y = np.array([r for _, r in single], float)
        slope, intercept = np.polyfit(x, y, 1)
        lines += [
            "",
            f"Least squares over the 1-variant rows: {1e3 * slope:.3g} ms per example + {1e3 * intercept:.3g} ms "
            "fixed per check: linear in examples. With more variants the ratio to the floor falls: the "
            "search and the drawing are paid once per test and replayed for the other variants, so the "
            "added time is their inference (int8 and the reference evaluator cost more per run).",
            "",
        ]
    return lines


# -- 6. the thread trap -----------------------------------------------------------------------
TRAP = """
import time, numpy as np, onnxruntime as ort, torch, sys
sys.path.insert(0, {examples!r})
from test_cnn import SmallCNN
mode = {mode!r}
model = SmallCNN().eval()
x = torch.randn(1, 3, 64, 64)
sessions = []
if mode != "none":
    from onnxparity.variants.ort import OrtRunnable
    for _ in range(10):
        if mode == "onnxparity":
            r = OrtRunnable({path!r}, ["CPUExecutionProvider"])
            r.run({{"image": x.numpy()}})
        else:
            s = ort.InferenceSession({path!r}, providers=["CPUExecutionProvider"])
            s.run(None, {{"image": x.numpy()}})
            r = s
        sessions.append(r)
times = []
with torch.inference_mode():
    for _ in range(50):
        t = time.perf_counter(); model(x); times.append(time.perf_counter() - t)
print(np.median(times[5:]) * 1e3, times[0] * 1e3)
"""


def bench_threads(quick: bool) -> list[str]:
    model, spec = models()["CNN (examples)"]
    with ParitySession() as session:
        path = session.prepare(model, spec).exported.path
        results = {}
        for mode in ("none", "onnxparity", "ort-defaults"):
            out = subprocess.run(
                [
                    sys.executable,
                    "-c",
                    TRAP.format(examples=os.path.join(ROOT, "examples"), mode=mode, path=path),
                ],
                capture_output=True,
                text=True,
                env={k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"},
            )
            results[mode] = (
                [float(v) for v in out.stdout.split()] if out.returncode == 0 else [float("nan")] * 2
            )
    base = results["none"][0]
    return [
        "### 6. The thread trap",
        "",
        "PyTorch eager inference of the example CNN (batch 1, 64x64), in a fresh process, after 10 ONNX "
        "Runtime sessions were created and run once (PyTorch at its default threads).",
        "",
        "| sessions created with | torch p50 | torch first call | p50 vs no sessions |",
        "|---|---|---|---|",
        *[
            f"| {label} | {results[m][0]:.3g} ms | {results[m][1]:.3g} ms | {results[m][0] / base:.2f}x |"
            for m, label in (
                ("none", "no sessions"),
                ("onnxparity", "onnxparity's settings (1 intra-op thread, no spinning)"),
                ("ort-defaults", "ONNX Runtime defaults (a thread per core, spinning)"),
            )
        ],
        "",
    ]


def fix_malloc_thresholds() -> bool:
    """Fix glibc's malloc thresholds for the whole run, for every side alike. With glibc's
    dynamic defaults, arrays above 128 KiB come from fresh mmap'ed pages or the heap depending on
    what was freed last: measured, the two-conv CNN's PyTorch forward (2 MB activations) took
    0.95 or 4 ms per call on the same input, switching every few seconds, so whichever side
    ran in the slow phase lost. False where this is not glibc."""
    import ctypes

    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return False
    m_trim_threshold, m_mmap_threshold = -1, -3
    return bool(libc.mallopt(m_mmap_threshold, 256 << 20)) and bool(libc.mallopt(m_trim_threshold, 512 << 20))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats and examples")
    parser.add_argument(
        "--only",
        nargs="*",
        help="run these sections: overhead drawing polygraphy endtoend startup scaling threads",
    )
    parser.add_argument("--out", default=os.path.join(HERE, "results.md"))
    args = parser.parse_args()
    import platform

    import onnxruntime

    from onnxparity.environment import cpu_name

    sections = {
        "overhead": bench_overhead,
        "drawing": bench_drawing,
        "polygraphy": bench_polygraphy,
        "endtoend": bench_end_to_end,
        "startup": bench_startup,
        "scaling": bench_scaling,
        "threads": bench_threads,
    }
    chosen = args.only or list(sections)
    fixed = fix_malloc_thresholds()
    lines = [
        f"## Results ({time.strftime('%Y-%m-%d')}, {'quick' if args.quick else 'full'} run)",
        "",
        f"Machine: {cpu_name()}, {os.cpu_count()} cores; Python {platform.python_version()}, torch "
        f"{torch.__version__}, onnxruntime {onnxruntime.__version__}, onnxparity {op.__version__}.",
        "",
        ("glibc's malloc thresholds fixed for the run (mmap 256 MiB, trim 512 MiB)." if fixed else
         "glibc's malloc thresholds left dynamic (not glibc): expect bimodal framework times."),
        "",
    ]
    for name in chosen:
        started = time.perf_counter()
        lines += sections[name](args.quick)
        print(f"[{name}: {time.perf_counter() - started:.0f} s]", file=sys.stderr)
    text = "\n".join(lines) + "\n"
    print(text)
    with open(args.out, "w") as f:
        f.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
