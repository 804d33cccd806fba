"""A group's phases back to back, ahead of its examples' evaluation: every input set drawn,
then the reference run on each, then the variant on each; :meth:`Search.evaluate
<onnxparity.search.engine.Search.evaluate>` then takes each example in order and finds its
inputs and outputs ready (the drawn inputs and the reference's outputs in the session's
:class:`~onnxparity.search.data.ExampleData`, the variant's here). What each example is
compared on, the order of the verdicts and the first failure are those of one example at a
time; only work past a failing example is done for nothing.

Why: run one after the other, each phase's code and data push the others' out of the CPU's
caches. A check's time added per example over a loop of the same inferences, one example at a
time against back to back (`benchmarks/ahead.py`): the examples' MLP 0.31 -> 0.22 ms, its
transformer 0.49 -> 0.25 ms; issue 31's two-conv CNN 1.45x -> 1.13x the loop.

Bounded: at most :data:`AHEAD_BYTES` of inputs and outputs are held ahead and
:data:`AHEAD_SECONDS` of inference run ahead (the rest of a group is evaluated one at a time),
and nothing is started past the search's deadline.
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

#: seconds of inference run ahead per group (the references half of it): what a failure early
#: in a group can cost for nothing. A model whose inference takes a second runs one example at
#: a time; back to back saves only per-example costs, small beside such an inference.
AHEAD_SECONDS = 0.25

#: what the variant gave on one example run ahead: its outputs, or the error it raised
Ran = list[np.ndarray] | VariantRunError


def run_ahead(
    data: ExampleData, pair: ModelPair, spec: ParitySpec, rows: Mapping[str, np.ndarray], runnable: Runnable,
    keys: Sequence[ExampleKey], deadline: float | None,
) -> dict[ExampleKey, Ran]:
    """Draw ``keys``' inputs, run the reference on each, then the variant on each; the
    variant's outcome per example. An example the reference fails on is left to its evaluation
    (which meets the same error, kept, and says why); after a worker crash the rest are too."""
    clock = time.perf_counter
    started = clock()

    def full(of_bytes: float, of_seconds: float) -> bool:
        now = clock()
        late = now - started > of_seconds * AHEAD_SECONDS or (deadline is not None and now > deadline)
        return late or held >= of_bytes * AHEAD_BYTES

    held, drawn = 0, []
    for key in keys:
        if full(0.5, 0.5):  # inputs: half of the bytes, the outputs the rest
            break
        feeds = data.feeds_for(spec, key, rows)
        drawn.append((key, feeds))
        held += nbytes(feeds)
    computed = []
    for key, feeds in drawn:
        if full(1.0, 0.5):  # the references: half of the seconds, the variant the rest
            break
        try:
            held += nbytes(data.reference_outputs(pair, key, feeds))
        except Exception:  # (not the variant's to run ahead: the evaluation handles it)
            continue
        computed.append((key, feeds))
    ran: dict[ExampleKey, Ran] = {}
    timings = data.stats.timings
    for key, feeds in computed:
        if full(1.0, 1.0):
            break
        began = clock()
        try:
            outputs = runnable.run(feeds)
        except VariantRunCrashed as exc:  # the worker is gone: the rest run in order, restarted
            ran[key] = exc
            break
        except VariantRunError as exc:
            ran[key] = exc
            continue
        finally:
            timings["variant"] += clock() - began
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
