"""What localizing a failure costs, and that a passing check pays nothing for it: the planted
edits of tests/test_forensics.py, each checked (ort-cpu, 6 examples) as a prebuilt file against
the PyTorch model, in one run. Per edit: the whole failing check, the part spent localizing
(``ParitySession.timings["forensics"]``: the second export, the FX interpreter, one ONNX
Runtime run with the paired values as outputs, the walk and the cut-out subgraph), and
whether the named node is the edited one; then the same model unedited.

    .venv/bin/python benchmarks/forensics.py

Then the runtime cases of tests/test_forensics_runtime.py (real disagreements of the installed
ONNX Runtime): its graph optimizer's rewrite bisected in a small and a deeper network, and
ONNX Runtime parting from the spec (the reference evaluator run on the span found).

Prints Markdown tables (copied into docs/benchmarks.md).
"""

from __future__ import annotations

import os
import sys
import time
import warnings

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "tests"))
warnings.simplefilter("ignore")

import onnx  # noqa: E402
import torch  # noqa: E402

import onnxparity as op  # noqa: E402
from onnxparity.runner import ParitySession  # noqa: E402
from test_forensics import EDITS, SPEC, Forensic, check_edited  # noqa: E402
from test_forensics_runtime import (  # noqa: E402
    LN_DIMS,
    LN_INPUTS,
    MVN_INPUTS,
    Deeper,
    MeanMinusX,
    Standardize,
    _mvn_graph,
)


def main() -> None:
    torch.manual_seed(0)
    model = Forensic().eval()
    with ParitySession() as session:
        path = session.prepare(model, SPEC).exported.path
        rows = []
        for name, edit in [("(unedited)", None), *EDITS.items()]:
            broken = onnx.load(path)
            edited = edit(broken) if edit else set()
            before = session.timings["forensics"]
            started = time.perf_counter()
            result = check_edited(session, model, broken, f"bench {name}")
            wall = time.perf_counter() - started
            spent = session.timings["forensics"] - before
            named = result.divergence.node if result.divergence else "—"
            right = (
                "yes"
                if (result.divergence and result.divergence.node in edited)
                else ("—" if not edit else "no")
            )
            rows.append((name, result.status, wall, spent, named, right))
    print("| edit | verdict | check (s) | localizing (s) | its share | named node | the edited one |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for name, status, wall, spent, named, right in rows:
        print(f"| {name} | {status} | {wall:.2f} | {spent:.2f} | {spent / wall:.0%} | {named} | {right} |")
    runtime()


def runtime() -> None:
    """The runtime cases: (name, model, prebuilt file or None, inputs, dims)."""
    torch.manual_seed(0)
    cases = [
        ("optimizer: (mean - x) norm, 11 nodes", MeanMinusX().eval(), None, LN_INPUTS, LN_DIMS),
        ("optimizer: the same inside 19 nodes", Deeper().eval(), None, LN_INPUTS, LN_DIMS),
        ("spec: MVN of a constant", Standardize().eval(), _mvn_graph(), MVN_INPUTS, {"batch": op.Dim(1, 3)}),
    ]
    rows = []
    with ParitySession() as session:
        for name, model, onnx_file, inputs, dims in cases:
            session.prepare(model, op.ParitySpec(inputs=tuple(inputs), dims=dims), onnx=onnx_file)
            before = session.timings["forensics"]
            started = time.perf_counter()
            result = op.check(
                model,
                onnx=onnx_file,
                inputs=inputs,
                dims=dims,
                examples=4,
                variants=["ort-cpu"],
                session=session,
                name=name,
            )["ort-cpu"]
            wall = time.perf_counter() - started
            spent = session.timings["forensics"] - before
            found = result.divergence
            named = f"{found.op_type} {found.node} (span of {len(found.nodes)})" if found else "—"
            rows.append((name, result.status, wall, spent, named))
    print()
    print("| case | verdict | check (s) | localizing (s) | its share | named |")
    print("| --- | --- | --- | --- | --- | --- |")
    for name, status, wall, spent, named in rows:
        print(f"| {name} | {status} | {wall:.2f} | {spent:.2f} | {spent / wall:.0%} | {named} |")


if __name__ == "__main__":
    main()
