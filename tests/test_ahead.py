"""A group's phases run back to back (search/ahead.py): every input set drawn, then the
reference on each, then the variant on each, then each example compared in order. What a
search finds, reports and counts must be what one example at a time gives."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch

import onnxparity as op
from onnxparity.search import ahead
from parity_models import Activations, BakedBatch, Mlp, move_clip_max

INPUTS = [op.Input("x", ("batch", 16), low=-2, high=2)]
DIMS = {"batch": op.Dim(1, 16)}


class Logged:
    """ONNX Runtime, each run written to a log file."""

    log = ""

    def __init__(self, context):
        from onnxparity.variants.ort import OrtRunnable

        self.inner = OrtRunnable(context.model_path, ["CPUExecutionProvider"])
        self.output_names = self.inner.output_names

    def run(self, feeds):
        with open(Logged.log, "a") as f:
            f.write(f"variant {_tag(feeds)}\n")
        return self.inner.run(feeds)


def _tag(feeds) -> str:
    x = np.asarray(feeds["x"])
    return f"{x.shape[0]}:{float(x.reshape(-1)[0]) if x.size else 0.0!r}:{float(x.sum())!r}"


def _logged_check(parity_session, tmp_path, name):
    """A check of 26 examples (one Hypothesis group past the explicit ones) of the MLP on the
    logged variant; (the result, the log's lines)."""
    Logged.log = str(tmp_path / f"{name}.log")
    op.register_variant("logged-ahead-test", Logged, replace=True)
    spec = op.ParitySpec(
        inputs=INPUTS, dims=DIMS, examples=26, variants=["logged-ahead-test"],
        variant_options={"logged-ahead-test": {"isolate": False}},
    )
    torch.manual_seed(0)
    prepared = parity_session.prepare(Mlp().eval(), spec)
    reference = prepared.reference

    def logged(feeds):
        with open(Logged.log, "a") as f:
            f.write(f"reference {_tag(feeds)}\n")
        return reference(feeds)

    object.__setattr__(prepared, "reference", logged)
    parity_session.clear_example_caches()
    try:
        result = parity_session.check_variant(prepared, spec, "logged-ahead-test", name="ahead test")
    finally:
        object.__setattr__(prepared, "reference", reference)
    return result, open(Logged.log).read().splitlines()


def _runs(lines) -> list[tuple[str, list[str]]]:
    """The log as runs of one side: (side, the examples' tags in order)."""
    runs: list[tuple[str, list[str]]] = []
    for line in lines:
        side, tag = line.split(" ", 1)
        if runs and runs[-1][0] == side:
            runs[-1][1].append(tag)
        else:
            runs.append((side, [tag]))
    return runs


def test_a_groups_references_run_before_its_variant_runs_each_once(parity_session, tmp_path, monkeypatch):
    monkeypatch.setattr(ahead, "AHEAD_SECONDS", 3600.0)  # the order, not the clock: on a busy CI machine
    # 25 logged references once took past the 0.125 s a group's references are given
    result, lines = _logged_check(parity_session, tmp_path, "ahead")
    assert result.status == "passed" and result.examples >= 26
    runs = _runs(lines)
    # the explicit examples, Hypothesis's simplest example, then its group of 25: each run of
    # references followed by the variant on the same examples in the same order, each once
    assert [side for side, _ in runs] == ["reference", "variant"] * (len(runs) // 2)
    assert all(references == variants for (_, references), (_, variants) in zip(runs[::2], runs[1::2]))
    assert sum(len(tags) for _, tags in runs[::2]) == result.examples and max(len(t) for _, t in runs) >= 20

    # one at a time (nothing held ahead): the same examples, each reference then its variant
    monkeypatch.setattr(ahead, "AHEAD_BYTES", 0)
    alone, alone_lines = _logged_check(parity_session, tmp_path, "alone")
    assert all(len(tags) == 1 for _, tags in _runs(alone_lines))
    assert [line.split(" ", 1)[1] for line in alone_lines[::2]] == [t for _, tags in runs[::2] for t in tags]
    assert alone.examples == result.examples and alone.to_dict()["distribution"] == result.to_dict()["distribution"]


@pytest.mark.parametrize("bound", ["bytes", "seconds"])
def test_what_is_run_ahead_is_bounded(parity_session, tmp_path, monkeypatch, bound):
    """Past half of AHEAD_BYTES of inputs, or AHEAD_SECONDS of inference (what a failure early
    in a group may cost for nothing), the rest of a group runs one example at a time."""
    if bound == "bytes":
        monkeypatch.setattr(ahead, "AHEAD_BYTES", 2 * 3 * 16 * 16 * 4)  # the inputs of three largest sets
        monkeypatch.setattr(ahead, "AHEAD_SECONDS", 3600.0)  # (the bytes alone bound it here)
    else:
        monkeypatch.setattr(ahead, "AHEAD_SECONDS", 0.0)
    result, lines = _logged_check(parity_session, tmp_path, bound)
    assert result.status == "passed"
    longest = max(len(tags) for _, tags in _runs(lines))
    assert (2 <= longest <= 10) if bound == "bytes" else longest == 1, _runs(lines)


def _failing(parity_session, model, spec, onnx_model=None):
    prepared = parity_session.prepare(model, spec, onnx=onnx_model)
    parity_session.clear_example_caches()
    return parity_session.check_variant(prepared, spec, "ort-cpu", name="ahead failing")


@pytest.mark.parametrize("bug", ["value range", "baked batch"])
def test_a_failure_is_the_one_found_one_example_at_a_time(parity_session, monkeypatch, bug):
    """The first failing example in order, shrunk the same, with the same count; the variant's
    own error (a batch baked into the graph: ONNX Runtime refuses the input) raised ahead is
    reported at its example."""
    if bug == "value range":
        spec = op.ParitySpec(inputs=(op.Input("x", ("batch", 8), low=-10, high=10),), dims={"batch": op.Dim(1, 8)})
        model = Activations().eval()
        broken = move_clip_max(onnx.load(parity_session.prepare(model, spec).exported.path), 5.5)
    else:
        spec = op.ParitySpec(inputs=(op.Input("x", ("batch", 4, 5)),), dims={"batch": op.Dim(1, 8)})
        model, broken = BakedBatch().eval(), None
    found = _failing(parity_session, model, spec, broken)
    monkeypatch.setattr(ahead, "AHEAD_BYTES", 0)
    alone = _failing(parity_session, model, spec, broken)
    assert found.status == alone.status == "failed"
    assert found.failing_example == alone.failing_example and found.examples == alone.examples
    assert found.message == alone.message


def test_a_reference_error_met_ahead_is_not_run_again(parity_session):
    """The group's references run ahead; one that raises is raised again from what was kept when
    the example is evaluated, and when the failing group is run again (before: run twice)."""
    spec = op.ParitySpec(inputs=INPUTS, dims=DIMS, examples=26)
    torch.manual_seed(0)
    prepared = parity_session.prepare(Mlp().eval(), spec)
    reference, calls = prepared.reference, []

    def refuses_large_batches(feeds):
        calls.append(id(feeds["x"]))  # one drawn array per example, kept by the session for the check
        if np.asarray(feeds["x"]).shape[0] > 8:
            raise ValueError("batches above 8 are not supported")
        return reference(feeds)

    object.__setattr__(prepared, "reference", refuses_large_batches)
    parity_session.clear_example_caches()
    try:
        result = parity_session.check_variant(prepared, spec, "ort-cpu", name="ahead reference error")
    finally:
        object.__setattr__(prepared, "reference", reference)
        parity_session.clear_example_caches()  # (its errors are kept under the real model's key)
    assert result.status == "failed" and "batches above 8 are not supported" in result.message
    assert len(calls) == len(set(calls))
