"""The in-memory caches of one session: one typed key for everything drawn or computed per
example, and a least-recently-used store bounded in bytes.

An example's arrays depend on the spec's inputs and dims (``ParitySpec.input_digest``), the real
rows (``data=``) and the drawn :class:`~onnxparity.draw.Example`: :class:`ExampleKey`
holds all three, and every cache entry computed from those arrays — the drawn feeds, the
reference's outputs, the anchor variant's outputs — is keyed by it. (Leaving the digest out
once made one prebuilt ONNX file checked under two input ranges reuse the other range's
anchor outputs.)
"""

from __future__ import annotations

import collections
import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np

from onnxparity.draw import Example, materialize
from onnxparity.search.stats import RunStats
from onnxparity.spec import ParitySpec
from onnxparity.verdict.distribution import input_size
from onnxparity.verdict.power import summarize

if TYPE_CHECKING:
    from onnxparity.exporters import ModelPair
    from onnxparity.verdict.power import Summary

#: bytes of outputs (references' and the anchor's) kept per session.
OUTPUTS_CACHE_BYTES = 256 * 2**20

#: bytes of drawn inputs kept per session, so the variants of one test draw each input once.
FEEDS_CACHE_BYTES = 256 * 2**20

#: per-example output summaries kept for power (a few numbers each).
SUMMARIES_KEPT = 65536

#: the reference's errors kept per session, by example (the latest).
ERRORS_KEPT = 1024


class ExampleKey(NamedTuple):
    """What the arrays of one example depend on (a named tuple: hashed on every lookup, and
    a tuple hashes in C)."""

    input_digest: str
    rows_digest: str
    example: Example


class OutputKey(NamedTuple):
    """Whose outputs, on which example: ``producer`` is ``reference:<model key>`` or
    ``<variant>:<exported model key>``."""

    producer: str
    example: ExampleKey


def nbytes(value: Any) -> int:
    """Bytes held by a list or dict of arrays."""
    arrays = value.values() if isinstance(value, Mapping) else value
    return sum(getattr(a, "nbytes", 0) for a in arrays)


class ArrayCache:
    """Least recently used lists or dicts of arrays, at most ``max_bytes`` in all; a value
    larger than that is not kept."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.bytes = 0
        self._entries: collections.OrderedDict[Any, Any] = collections.OrderedDict()

    def get(self, key: Any) -> Any:
        value = self._entries.get(key)
        if value is not None:
            self._entries.move_to_end(key)
        return value

    def put(self, key: Any, value: Any) -> None:
        size = nbytes(value)
        if size > self.max_bytes:
            return
        previous = self._entries.pop(key, None)
        if previous is not None:
            self.bytes -= nbytes(previous)
        self._entries[key] = value
        self.bytes += size
        while self.bytes > self.max_bytes:
            _, dropped = self._entries.popitem(last=False)
            self.bytes -= nbytes(dropped)

    def clear(self) -> None:
        self._entries.clear()
        self.bytes = 0

    def __len__(self) -> int:
        return len(self._entries)


class ExampleData:
    """What a session computes per example, once: the drawn feeds (read-only, shared by every
    variant), the reference's outputs and their power summaries, and the anchor's outputs
    (``outputs``, kept there by :class:`~onnxparity.search.anchor.Anchor`)."""

    def __init__(self, stats: RunStats) -> None:
        self.stats = stats
        self.outputs = ArrayCache(OUTPUTS_CACHE_BYTES)
        self.feeds = ArrayCache(FEEDS_CACHE_BYTES)
        self.summaries: dict[OutputKey, list[Summary | None]] = {}
        #: each example's (input max |value|, input size), for the distribution's points
        self.input_sizes: dict[ExampleKey, tuple[float, int]] = {}
        #: what the reference raised on an example, raised again rather than run again (a group
        #: run ahead meets it first, its evaluation again; so does the next variant)
        self.reference_errors: dict[OutputKey, Exception] = {}

    def clear(self) -> None:
        self.outputs.clear()
        self.feeds.clear()
        self.summaries.clear()
        self.input_sizes.clear()
        self.reference_errors.clear()

    def feeds_for(
        self, spec: ParitySpec, key: ExampleKey, rows: Mapping[str, np.ndarray]
    ) -> dict[str, np.ndarray]:
        """The arrays of an example, drawn once and shared by every variant that checks it.

        They are read-only: a runtime or framework that wrote into its input would change what
        the next one sees (references that may write, such as PyTorch's, get a copy)."""
        feeds: dict[str, np.ndarray] | None = self.feeds.get(key)
        if feeds is not None:
            return feeds
        started = time.perf_counter()
        feeds = materialize(spec, key.example, rows)
        self.stats.timings["draw"] += time.perf_counter() - started
        for array in feeds.values():
            array.flags.writeable = False
        self.feeds.put(key, feeds)
        return feeds

    def reference_outputs(
        self, pair: ModelPair, key: ExampleKey, feeds: Mapping[str, np.ndarray]
    ) -> list[np.ndarray]:
        cache_key = OutputKey(f"reference:{pair.reference_key}", key)
        outputs: list[np.ndarray] | None = self.outputs.get(cache_key)
        if outputs is None:
            if cache_key in self.reference_errors:
                raise self.reference_errors[cache_key]
            started = time.perf_counter()
            try:
                outputs = pair.reference(feeds)
            except Exception as exc:  # kept without its frames (they hold the inputs): only its words are read
                exc.__traceback__ = exc.__context__ = exc.__cause__ = None
                self.reference_errors[cache_key] = exc
                if len(self.reference_errors) > ERRORS_KEPT:
                    self.reference_errors.pop(next(iter(self.reference_errors)))
                raise
            finally:
                self.stats.timings["reference"] += time.perf_counter() - started
                self.stats.counts["reference_runs"] += 1
            self.outputs.put(cache_key, outputs)
        return outputs

    def input_size(self, key: ExampleKey, feeds: Mapping[str, np.ndarray]) -> tuple[float, int]:
        """:func:`~onnxparity.verdict.distribution.input_size` of an example, computed once for every
        variant that checks it (a max and a min over each input: 1.2M values cost ~0.6 ms)."""
        found = self.input_sizes.get(key)
        if found is None:
            found = self.input_sizes[key] = input_size(feeds)
            if len(self.input_sizes) > SUMMARIES_KEPT:
                self.input_sizes.pop(next(iter(self.input_sizes)))
        return found

    def reference_summaries(
        self, pair: ModelPair, key: ExampleKey, expected: Sequence[np.ndarray]
    ) -> list[Summary | None]:
        """What power needs of the reference's outputs on an example, computed once for every
        variant that checks it."""
        cache_key = OutputKey(f"reference:{pair.reference_key}", key)
        found = self.summaries.get(cache_key)
        if found is None:
            found = self.summaries[cache_key] = [summarize(e) for e in expected]
            if len(self.summaries) > SUMMARIES_KEPT:
                self.summaries.pop(next(iter(self.summaries)))
        return found
