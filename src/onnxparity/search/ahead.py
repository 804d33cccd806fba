"""A group's phases back to back, ahead of its examples' evaluation: every input set drawn,
then the reference run on each, then the variant on each; :meth:`Search.evaluate
<onnxparity.search.engine.Search.evaluate>` then takes each example in order and finds its
inputs and outputs ready (the drawn inputs and the reference's outputs in the session's
:class:`~onnxparity.search.data.ExampleData`, the variant's here). What each example is
compared on, the order of the verdicts and the first failure are those of one example at a
time; only work past a failing example is done for nothing.

Why: run one after the other, each phase's code and data push the others' out of the CPU's
caches. Measured on 25 examples of each, the same work in the two orders (drawing, both
inferences, the comparison): the examples' MLP 0.158 -> 0.105 ms per example, its transformer
0.668 -> 0.497 ms, issue 31's two-conv CNN 1.93 -> 1.74 ms (`benchmarks/ahead.py`).

Bounded: at most :data:`AHEAD_BYTES` of inputs and outputs are held ahead (the rest of a group
is evaluated one at a time), and nothing is started past the search's deadline.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from onnxparity.search.data import ExampleData, ExampleKey, nbytes
from onnxparity.spec import ParitySpec
from onnxparity.variants import Runnable, VariantRunError
from onnxparity.variants.worker import VariantRunCrashed

if TYPE_CHECKING:
    from onnxparity.exporters import ModelPair

#: bytes of inputs and outputs (the reference's and the variant's) held ahead per group
AHEAD_BYTES = 64 * 2**20

#: what the variant gave on one example run ahead: its outputs, or the error it raised
Ran = list[np.ndarray] | VariantRunError


def run_ahead(
    data: ExampleData, pair: ModelPair, spec: ParitySpec, rows: Mapping[str, np.ndarray], runnable: Runnable,
    keys: Sequence[ExampleKey], deadline: float | None,
) -> dict[ExampleKey, Ran]:
    """Draw ``keys``' inputs, run the reference on each, then the variant on each; the
    variant's outcome per example. An example the reference fails on is left to its evaluation
    (which runs it again and says why); after a worker crash the rest are too."""
    clock = time.perf_counter

    def full(limit: float) -> bool:
        return held >= limit or (deadline is not None and clock() > deadline)

    held, drawn = 0, []
    for key in keys:
        if full(AHEAD_BYTES / 2):  # inputs: half of it, the outputs the rest
            break
        feeds = data.feeds_for(spec, key, rows)
        drawn.append((key, feeds))
        held += nbytes(feeds)
    computed = []
    for key, feeds in drawn:
        if full(AHEAD_BYTES):
            break
        try:
            held += nbytes(data.reference_outputs(pair, key, feeds))
        except Exception:  # (not the variant's to run ahead: the evaluation handles it)
            continue
        computed.append((key, feeds))
    ran: dict[ExampleKey, Ran] = {}
    timings = data.stats.timings
    for key, feeds in computed:
        if full(AHEAD_BYTES):
            break
        started = clock()
        try:
            outputs = runnable.run(feeds)
        except VariantRunCrashed as exc:  # the worker is gone: the rest run in order, restarted
            ran[key] = exc
            break
        except VariantRunError as exc:
            ran[key] = exc
            continue
        finally:
            timings["variant"] += clock() - started
        ran[key] = outputs
        held += nbytes(outputs)
    return ran


def take(ran: dict[ExampleKey, Ran], key: ExampleKey) -> Any:
    """The variant's outputs on ``key`` run ahead (raising the error it raised there), or None
    where it was not."""
    found = ran.pop(key, None)
    if isinstance(found, VariantRunError):  # (a crash too)
        raise found
    return found
