"""Branch coverage: which side of each boundary the graph branches on a search reached.

Two kinds of site. A boundary that maps back to a graph input (:mod:`.boundaries`) is checked on
the input values themselves: one min/max pass per input. A branching node deeper in the network
(a ``Clip`` after a convolution, a ``Relu`` in a hidden layer, a ``Where`` on a computed mask) is
checked on the value it actually sees: a second ONNX Runtime session of the exported model that
also outputs those tensors runs each example once (cached across the variants of a model), and
keeps only each tensor's minimum and maximum. Reported per item (``coverage``): how many sides
there are, and a line for each side no example reached, e.g.
``Clip '/act/Clip': upper bound 6 never reached in 25 examples``; and the values each dim took
(``{"dims": {"batch": [1, 2, 3, 4]}}``).
"""

from __future__ import annotations

import collections
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, cast

import numpy as np
import onnx

from onnxparity.graph.boundaries import MAX_BOUNDARIES, Site
from onnxparity.graph.branches import Branch, Side, harvest_branches
from onnxparity.graph.files import check_external_data
from onnxparity.graph.nodes import with_outputs

if TYPE_CHECKING:
    from onnxparity.exporters import ExportedModel
    from onnxparity.search.data import ExampleKey
    from onnxparity.spec import ParitySpec

#: larger models (with their external data) are not watched: the copy is held in memory
MAX_MODEL_BYTES = 1 << 30
#: examples whose inner statistics are kept (the variants of a model search much the same ones)
MAX_CACHED = 4096


class InnerCoverage:
    """Runs the watched tensors of one exported model and keeps, per example, each tensor's
    (min, max) and the constants it equalled. Built lazily; a model this cannot run (external
    data, an op the CPU build lacks) is simply not measured."""

    def __init__(self, path: str, branches: list[Branch], proto: onnx.ModelProto | None = None) -> None:
        self.path = path
        self.branches = branches
        self.session: Any = None
        self.failed = not branches or _size(path, proto) > MAX_MODEL_BYTES
        self._stats: collections.OrderedDict[ExampleKey, dict[str, tuple[float, float, frozenset[float]]]] = (
            collections.OrderedDict()
        )
        self.runs = 0

    def _start(self) -> bool:
        if self.session is None and not self.failed:
            import onnxruntime as ort

            options = ort.SessionOptions()
            options.log_severity_level = 4
            options.intra_op_num_threads = 1
            try:  # external data read into the copy: a model from bytes cannot point at files
                model = with_outputs(onnx.load(self.path), {b.tensor for b in self.branches})
                self.session = ort.InferenceSession(
                    model.SerializeToString(), options, providers=["CPUExecutionProvider"]
                )
            except Exception:  # noqa: BLE001 - coverage is a report, never a verdict
                self.failed = True
        return self.session is not None

    def stats(
        self, key: ExampleKey, feeds: Mapping[str, np.ndarray]
    ) -> dict[str, tuple[float, float, frozenset[float]]] | None:
        """{tensor: (min, max, equalled constants)} on ``feeds``; None where it cannot run."""
        found = self._stats.get(key)
        if found is not None:
            self._stats.move_to_end(key)
            return found
        if not self._start():
            return None
        names = sorted({b.tensor for b in self.branches})
        try:
            values = self.session.run(names, dict(feeds))
        except Exception:  # noqa: BLE001 - an input the model rejects is the variant's verdict
            return None
        self.runs += 1
        equal: dict[str, set[float]] = {}
        for b in self.branches:
            for side in b.sides:
                if side.test == "equal":
                    equal.setdefault(b.tensor, set()).add(side.value)
        found = {}
        for name, array in zip(names, values):
            array = np.asarray(array)
            if array.dtype.kind not in "biuf" or not array.size:
                continue
            if array.dtype.kind == "f":
                finite = array[np.isfinite(array)] if not np.isfinite(array).all() else array
                if not finite.size:
                    continue
                low, high = float(finite.min()), float(finite.max())
            else:
                low, high = float(array.min()), float(array.max())
            hits = frozenset(v for v in equal.get(name, ()) if bool(np.any(array == v)))
            found[name] = (low, high, hits)
        self._stats[key] = found
        if len(self._stats) > MAX_CACHED:
            self._stats.popitem(last=False)
        return found


class InnerCache:
    """One :class:`InnerCoverage` per exported model, its branches read from the graph once.
    Handed to the first search of each model and declared inputs only: the variants search
    the same input space, and a second model run per example is the whole cost."""

    def __init__(self, timings: collections.defaultdict[str, float] | None = None) -> None:
        self._found: dict[str, InnerCoverage] = {}
        self._claimed: set[tuple[str, str]] = set()
        #: where the time spent reading branches goes (the session's "coverage" timing)
        self.timings = timings if timings is not None else collections.defaultdict(float)

    def claim(
        self, exported: ExportedModel, sites: dict[str, list[Site]], spec: ParitySpec, mode: str = "inner"
    ) -> InnerCoverage | None:
        """The inner coverage of ``exported`` (an exported model: ``key``, ``path``) for the
        first search of ``spec``'s inputs; None for later ones, and where ``mode`` is "inputs"."""
        key, path = exported.key, exported.path
        if mode != "inner" or (key, spec.input_digest) in self._claimed:
            return None
        self._claimed.add((key, spec.input_digest))
        if key not in self._found:
            started = time.perf_counter()
            proto = onnx.load(path, load_external_data=False)
            skip = {s.node for found in sites.values() for s in found}
            self._found[key] = InnerCoverage(path, harvest_branches(proto, skip), proto)
            self.timings["coverage"] += time.perf_counter() - started
        return self._found[key]


def _size(path: str, proto: onnx.ModelProto | None = None) -> int:
    """The model file's size with its external data files (beside it; a location leading
    out of its folder counts as too large: it is not read)."""
    import os

    folder = os.path.dirname(os.path.abspath(path))
    try:
        files = check_external_data(path, proto)  # ``proto``: the file, already loaded
        return os.path.getsize(path) + sum(os.path.getsize(os.path.join(folder, f)) for f in files)
    except (OSError, ValueError):
        return MAX_MODEL_BYTES + 1


def _reached(side: Side, low: float, high: float, hits: frozenset[float]) -> bool:
    if side.test == "below":
        return low < side.value
    if side.test == "above":
        return high > side.value
    if side.test == "equal":
        return side.value in hits
    return high >= 1 if side.test == "true" else low <= 0


class Coverage:
    """Which side of each boundary a search's inputs reached: a value below it, above it.
    Per example one min/max pass per input (per column where a site has one), and the inner
    branches' statistics where ``inner`` is given."""

    def __init__(self, sites: dict[str, list[Site]], inner: InnerCoverage | None = None) -> None:
        self.sites = {name: list(s)[: 4 * MAX_BOUNDARIES] for name, s in sites.items()}
        # a side past what the graph lets the input hold (Site.beyond) cannot be reached: counted
        # as seen and not among the sides (before: "Equal at ids = 9: no value above it", ids of a
        # 10-row Gather); a declared range that stops short of a side is still reported
        keys = [(n, i) for n, s in self.sites.items() for i in range(len(s))]
        self.below = {k: self.sites[k[0]][k[1]].beyond[0] for k in keys}
        self.above = {k: self.sites[k[0]][k[1]].beyond[1] for k in keys}
        self.beyond = sum(self.below.values()) + sum(self.above.values())
        self.inner = inner
        self.inner_reached = {(b, s): False for b in (inner.branches if inner else ()) for s in b.sides}
        self.inner_examples = 0
        #: the values each dim took in the examples tried
        self.dims: dict[str, set[int]] = {}

    def add(self, feeds: Mapping[str, Any], key: ExampleKey | None = None) -> None:
        """Count one example's ``feeds`` (``key``: its :class:`~onnxparity.search.data.ExampleKey`,
        for its dims and the inner statistics' cache)."""
        for dim, value in key.example.dims if key is not None else ():
            self.dims.setdefault(dim, set()).add(int(value))
        for name, sites in self.sites.items():
            values = np.asarray(feeds.get(name))
            if values.dtype.kind not in "iuf" or not values.size:
                continue
            flat = values.reshape(-1, values.shape[-1]) if values.ndim else values.reshape(1, 1)
            with np.errstate(invalid="ignore"):
                lowest, highest = np.nanmin(flat, axis=0), np.nanmax(flat, axis=0)
            for i, site in enumerate(sites):
                if site.column is None:
                    low, high = lowest.min(), highest.max()
                elif site.column < len(lowest):
                    low, high = lowest[site.column], highest[site.column]
                else:
                    continue
                self.below[(name, i)] |= bool(low < site.value)
                self.above[(name, i)] |= bool(high > site.value)
        if self.inner is not None and key is not None:
            self._add_inner(key, feeds)

    def _add_inner(self, key: ExampleKey, feeds: Mapping[str, Any]) -> None:
        stats = cast(InnerCoverage, self.inner).stats(key, feeds)  # (called only with ``inner`` set)
        if stats is None:
            return
        self.inner_examples += 1
        for branch, side in self.inner_reached:
            if branch.tensor in stats and not self.inner_reached[(branch, side)]:
                self.inner_reached[(branch, side)] = _reached(side, *stats[branch.tensor])

    def unreached(self, examples: int) -> tuple[str, ...]:
        """A line for every side of a boundary no example reached."""
        lines = []
        for (name, i), below in self.below.items():
            above, site = self.above[(name, i)], self.sites[name][i]
            missing = [side for side, seen in (("below", below), ("above", above)) if not seen]
            if missing:
                lines.append(
                    f"{site.describe(name)}: no value {' or '.join(missing)} it in {examples} examples"
                )
        if self.inner_examples:
            for (branch, side), seen in self.inner_reached.items():
                if not seen:
                    lines.append(f"{branch.describe()}: {side.label} in {self.inner_examples} examples")
        return tuple(lines)

    @property
    def total(self) -> int:
        return 2 * len(self.below) - self.beyond + (len(self.inner_reached) if self.inner_examples else 0)

    def report(self, examples: int) -> dict[str, Any] | None:
        """The result's ``coverage``: how many boundary sides the inputs could reach and a line
        for each never reached (where the graph branches on any), and the values each dim took
        in the ``examples`` tried (``dims``, sorted); None where there is neither."""
        found: dict[str, Any] = {}
        if self.total:
            found = {"sides": self.total, "unreached": list(self.unreached(examples))}
        if self.dims:
            found["dims"] = {name: sorted(values) for name, values in self.dims.items()}
        return found or None
