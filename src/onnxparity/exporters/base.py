"""The model-source protocol and what every source shares: :class:`Exporter` (what a source
must say about its models), :class:`ExportedModel` and :class:`ModelPair` (an ONNX file and the
reference it must match), :class:`Subject` (what one check is about), and the helpers the
built-in sources use — output flattening, importing a framework on first use, detection by class
root, export notes and checks. It knows no source and no registry (:mod:`onnxparity.exporters`)."""

from __future__ import annotations

import contextlib
import importlib
import re
import sys
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from onnxparity.environment import quiet
from onnxparity.errors import ExportError, FrameworkNotInstalled, NoMapping
from onnxparity.spec import Dim, Input, ParitySpec, Tolerance

#: numpy feeds by input name -> outputs in ONNX output order.
Reference = Callable[[Mapping[str, np.ndarray]], list[np.ndarray]]


@dataclass(frozen=True)
class ExportedModel:
    """An ONNX model on disk (external data beside it) and how it came to be."""

    path: str
    input_names: tuple[str, ...]
    output_names: tuple[str, ...]
    exporter: str
    opset: int | None
    key: str
    notes: tuple[str, ...] = field(default_factory=tuple)
    #: the tolerance lossless variants get when the declaration names none (None: the global
    #: default); an exporter sets it from what it knows, e.g. float32 summation of many trees
    default_tolerance: Any = None
    #: where the file came from across runs (:mod:`.stored`): "reused from the persistent
    #: cache", "stored in ...", "not cached: <why>"; empty without a persistent cache
    cache: str = ""
    #: its key in the persistent cache (empty: not cached); passing results are keyed by it too
    cache_key: str = ""
    #: the digest of what the file computes (:func:`.stored.graph_digest`), where it was taken
    graph: str = ""
    #: under the cache's verify mode: how the cached export differed from a fresh one
    cache_error: str = ""
    #: what the exporter printed while exporting (``export.log`` beside the file; "" when it
    #: printed nothing): kept for the reproducer, never shown in a failure message
    log: str = ""
    #: ONNX output name -> the model's own name, for outputs renamed in the export because an
    #: input has the model's name (:func:`outputs_apart`); a note says both names
    renamed: Mapping[str, str] = field(default_factory=dict)
    #: a prebuilt graph's sequence inputs and outputs converted to tensors (the plan of
    #: :func:`onnxparity.graph.containers.tensor_form`; empty: none)
    containers: Mapping[str, Any] = field(default_factory=dict)

    def model_name(self, output: str) -> str:
        """The name the model gives ONNX output ``output`` (the same unless it was renamed)."""
        return self.renamed.get(output, output)

    def describe(self) -> str:
        opset = f", opset {self.opset}" if self.opset is not None else ""
        return f"{self.exporter}{opset}"


@dataclass(frozen=True)
class ModelPair:
    """An ONNX model (exported or supplied) and the reference it must match."""

    exported: ExportedModel
    reference: Reference
    #: the subject's key: the reference's identity in cache keys
    reference_key: str
    #: label output -> (its probability output, classes in column order), for classifiers
    labels: Mapping[str, tuple[str, tuple[Any, ...]]] = field(default_factory=dict)
    subject: Subject | None = None
    #: the framework in float64 where the source can run it so (None: it cannot), for telling
    #: an ill-conditioned example from a parity failure (:mod:`onnxparity.search.conditioning`)
    reference64: Reference | None = None
    #: what the source says of the model for the steps after export (``Exporter.model_facts``)
    facts: Mapping[str, Any] = field(default_factory=dict)


def export_folder(workdir: str, key: str) -> str:
    """The folder an export with ``key`` writes into: readable, and unique for the whole key
    (a key's tail, such as its opset, must not be cut off: two opsets would share one file)."""
    import hashlib
    import os

    return os.path.join(
        workdir, f"export-{key[:40]}-{hashlib.blake2b(key.encode(), digest_size=6).hexdigest()}"
    )


class Exporter:
    """One model source. Subclass it, override what your source knows, and register an
    instance with :func:`onnxparity.exporters.register_exporter` (see docs/variants.md,
    "Model sources").

    Required: :attr:`name`, :meth:`detects`, :meth:`fingerprint`, :meth:`export` and
    :meth:`reference`. The rest have defaults that do nothing."""

    #: the name reports and errors use ("torch", "sklearn", ...)
    name: str = ""
    #: the ``onnxparity[extra]`` that installs what this source needs (for skip messages)
    extra: str = ""
    #: lossless variants' tolerance when a test declares none, where this source's reference
    #: computes differently from ONNX Runtime (None: the global default); an export may still
    #: set its own (``ExportedModel.default_tolerance``)
    default_tolerance: Any = None

    def detects(self, model: Any) -> bool:
        """Whether ``model`` is one of this source's models; must not import the framework."""
        raise NotImplementedError

    def declared_inputs(self, model: Any, data: Any = None) -> tuple[Input, ...] | None:
        """The inputs the model declares itself (None: it declares none; the user must)."""
        return None

    def fingerprint(self, model: Any) -> str:
        """A digest of everything the export depends on (class, weights, and the digest of
        :meth:`identity`): it keys caches within a run, so two models that differ only in a
        flag must differ here."""
        raise NotImplementedError

    #: the installed packages an export depends on: their versions key the persistent cache
    packages: tuple[str, ...] = ()

    def identity(self, model: Any) -> Any:
        """What the export depends on besides :meth:`fingerprint` (the weights): a digest of
        the model's other state and of the code it runs, as an
        :class:`~onnxparity.exporters.identity.Identity` whose ``why`` says why it cannot key
        the persistent cache (see :mod:`.identity`). The default asks :meth:`cache_identity`."""
        from onnxparity.exporters.identity import Identity, NotCacheable

        try:
            return Identity(self.cache_identity(model))
        except NotCacheable as exc:
            return Identity("", str(exc))

    def cache_identity(self, model: Any) -> str:
        """A digest of what the export depends on besides the weights, for sources that do not
        override :meth:`identity`. Raise
        :class:`~onnxparity.exporters.identity.NotCacheable` naming why where that cannot be
        said honestly; the export is then not cached across runs (the default)."""
        from onnxparity.exporters.identity import NotCacheable

        raise NotCacheable(f"the {self.name} model source does not say what its export depends on")

    def check_fit(self, model: Any, spec: ParitySpec) -> None:
        """Raise (ExportError, InvalidSpec) when the model cannot give a deterministic
        reference or contradicts ``spec`` — before any export."""

    def export(self, model: Any, spec: ParitySpec, *, workdir: str, opset: int | None) -> ExportedModel:
        """Write the model's ONNX file under ``workdir`` at ``spec``'s dims (and ``opset``)."""
        raise NotImplementedError

    def reference(self, model: Any, spec: ParitySpec, exported: ExportedModel) -> Reference:
        """The model itself as numpy feeds -> outputs in ``exported``'s output order. The feeds
        are read-only and shared with the runtimes: copy them if the model may write into them."""
        raise NotImplementedError

    def reference64(self, model: Any, spec: ParitySpec, exported: ExportedModel) -> Reference | None:
        """The model computing in float64 (float inputs widened), as :meth:`reference` takes and
        gives values; None where the source cannot (the default). Run only on failing examples."""
        return None

    #: what a localized failure calls the part of the model a node came from
    source_kind: str = "module"

    def model_facts(self, model: Any) -> dict[str, Any]:
        """What the model says of itself that a step after the export can use (plain JSON
        values): ``model_type``, ``num_heads``, ``hidden_size`` of a transformers config, for
        ONNX Runtime's fusion optimizer (:mod:`onnxparity.variants.fusion`). Empty by default."""
        return {}

    def intermediates(
        self, model: Any, spec: ParitySpec, feeds: Mapping[str, Any], graph: Any
    ) -> dict[str, Any]:
        """The framework's intermediate values on ``feeds`` (numpy arrays), each by the name of
        the value of ``graph`` (the exported ONNX graph) it corresponds to, for localizing a
        failure (:mod:`onnxparity.forensics`). Pair only what is certain: an ambiguous value is
        left out. Raise :class:`~onnxparity.errors.NoMapping` naming why where there is none."""
        raise NoMapping(f"{self.name} models have no mapping from framework values to ONNX values")

    def source_of(self, node: Any) -> str | None:
        """The module, layer or step of the model that ``node`` of its export came from."""
        from onnxparity.graph.nodes import node_source

        return node_source(node)

    def label_outputs(self, model: Any, exported: ExportedModel) -> dict[str, tuple[str, tuple[Any, ...]]]:
        """For a classifier: label output -> (its probability output, classes in column order)."""
        return {}

    def seed(self, seed: int) -> None:
        """Seed the framework's RNGs, if it is imported (model initialisation is then the same
        for every item of a test)."""

    def limit_threads(self, threads: int) -> contextlib.AbstractContextManager[Any]:
        """Run the reference with ``threads`` intra-op threads while timing it."""
        return contextlib.nullcontext()

    def model_name(self, model: Any) -> str:
        """What a report calls the model."""
        return type(model).__name__


@dataclass(frozen=True, eq=False)
class Subject:
    """What one check is about: a model and its source, detected once, and optionally the
    prebuilt ONNX file the user hands over to be checked against the model."""

    exporter: Exporter
    model: Any
    #: a prebuilt ONNX model (path, bytes or ModelProto) checked instead of exporting
    onnx: Any = None
    #: ``<source>-<fingerprint>``: the same model gives the same key (a source's fingerprint
    #: holds its identity's digest: two models that differ only in a flag differ in key)
    key: str = ""
    #: the model's state and code beyond its weights (:mod:`.identity`); None: not computed
    identity: Any = None
    #: the identity of the function that built the model (the test), keying exports across runs
    origin: Any = None
    #: reads the inputs the ``onnx=`` file declares (:func:`.prebuilt.graph_inputs`; bound by
    #: :func:`onnxparity.exporters.resolve` when ``onnx`` is given)
    read_graph_inputs: Callable[[Any], tuple[Input, ...]] | None = None
    #: the least dims the ``onnx=`` file's windows take (:func:`.prebuilt.least_graph_dims`, bound alike)
    read_least_dims: Callable[[Any, Sequence[Input], Mapping[str, Dim], Collection[str]], dict[str, Dim]] | None = None

    @property
    def name(self) -> str:
        return self.exporter.model_name(self.model)

    def least_dims(self, inputs: Sequence[Input], dims: Mapping[str, Dim], names: Collection[str]) -> dict[str, Dim]:
        """``dims`` with ``names`` (dims no one declared) raised to the least size the ``onnx=``
        file's convolution and pooling windows take (:func:`onnxparity.graph.sizes.least_dims`)."""
        if self.onnx is None or self.read_least_dims is None:
            return dict(dims)
        return self.read_least_dims(self.onnx, inputs, dims, names)

    def declared_inputs(self, data: Any = None) -> tuple[Input, ...] | None:
        """Inputs the ONNX file declares, else those the model declares (None: neither). With
        a file and real rows (``data=``), an input the model declares alike (name, shape, dtype)
        takes its value range from the model's — the rows' — as the model's own export would:
        a file's own range is the default [-1, 1], where a tabular model's thresholds lie outside."""
        if self.onnx is None or self.read_graph_inputs is None:
            return self.exporter.declared_inputs(self.model, data)
        from_file = self.read_graph_inputs(self.onnx)
        if data is None or from_file is None or self.model is None:
            return from_file
        try:
            own = {i.name: i for i in self.exporter.declared_inputs(self.model, data) or ()}
        except Exception:  # the model declares nothing it can say from these rows: the file's
            return from_file
        alike = [
            replace(item, low=own[item.name].low, high=own[item.name].high)
            if item.name in own
            and own[item.name].shape == item.shape
            and own[item.name].dtype == item.dtype
            and own[item.name].low is not None
            and item.kind == own[item.name].kind == "values"
            else item
            for item in from_file
        ]
        return tuple(alike)


# -- helpers the source modules share ------------------------------------------------------------
def flatten_outputs(
    outputs: Any, is_leaf: Callable[[Any], bool], *, sort_keys: bool = False, prefix: str = ""
) -> list[tuple[str, Any]]:
    """Name and flatten a model's outputs depth-first: a leaf is ``output``; a tuple or list
    gives ``output_0``, ``output_1``...; a dict gives its keys (in insertion order, or sorted
    when the framework flattens dicts that way); nesting joins names with ``.``. ``None`` is
    dropped, as the exporters drop it."""
    if is_leaf(outputs):
        return [(prefix or "output", outputs)]
    if outputs is None:
        return []
    if isinstance(outputs, (tuple, list)):
        base = f"{prefix}." if prefix else "output_"
        return [
            pair
            for i, v in enumerate(outputs)
            for pair in flatten_outputs(v, is_leaf, sort_keys=sort_keys, prefix=f"{base}{i}")
        ]
    if isinstance(outputs, Mapping):
        base = f"{prefix}." if prefix else ""
        keys = sorted(outputs) if sort_keys else list(outputs)
        return [
            pair
            for k in keys
            for pair in flatten_outputs(outputs[k], is_leaf, sort_keys=sort_keys, prefix=f"{base}{k}")
        ]
    raise ExportError(
        f"the model returned a {type(outputs).__name__} at {prefix or 'the top level'}; "
        "parity compares tensors: return tensors, or tuples/lists/dicts of them"
    )


def require(module: str, framework: str, extra: str, *loggers: str) -> Any:
    """Import ``module`` on first use (quietly, for the given loggers); a missing one is
    :class:`FrameworkNotInstalled` naming the extra to install. Already imported: free."""
    loaded = sys.modules.get(module)
    if loaded is not None:
        return loaded
    try:
        with quiet(*loggers) if loggers else contextlib.nullcontext():
            return importlib.import_module(module)
    except ImportError as exc:
        raise FrameworkNotInstalled(framework, extra) from exc


def class_root(model: Any) -> Iterator[str]:
    """The top-level package of every class in ``model``'s MRO (detection without importing)."""
    for cls in type(model).__mro__:
        yield (cls.__module__ or "").split(".")[0]


_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def root_cause(exc: BaseException) -> str:
    """The innermost cause's type and first line: exporters wrap the real reason in advice."""
    while exc.__cause__ is not None:
        exc = exc.__cause__
    lines = [line.strip() for line in _ANSI.sub("", str(exc)).splitlines() if line.strip()]
    return f"{type(exc).__name__}: {lines[0] if lines else ''}"[:300]


def axis_name(input_name: str, axis: int, hint: str | None) -> str:
    """The dim name of an input's dynamic axis the model declares: ``batch`` for the first,
    else the graph's own name when it is an identifier, else ``<input>_<axis>``."""
    if axis == 0:
        return "batch"
    if hint and hint.isidentifier() and not hint.startswith("unk__"):
        return hint
    base = "".join(c if c.isalnum() or c == "_" else "_" for c in input_name).strip("_") or "input"
    return f"{base}_{axis}" if base[0].isalpha() else f"x_{base}_{axis}"


def specialised_dims(model_proto: Any, spec: ParitySpec) -> list[str]:
    """Notes for each dim the spec declares symbolic but the ONNX graph fixes to a size,
    and for each input whose rank disagrees with the spec."""
    graph_inputs = {i.name: i for i in model_proto.graph.input}
    notes = []
    for item in spec.inputs:
        graph_input = graph_inputs.get(item.name)
        if graph_input is None or not graph_input.type.HasField("tensor_type"):
            continue
        tensor = graph_input.type.tensor_type
        if not tensor.HasField("shape"):
            continue
        dims = tensor.shape.dim
        if len(dims) != len(item.shape):
            notes.append(
                f"input {item.name!r} has rank {len(dims)} in the ONNX graph but the spec "
                f"declares shape {item.shape} (rank {len(item.shape)})"
            )
            continue
        for axis, (entry, dim) in enumerate(zip(item.shape, dims)):
            if isinstance(entry, str) and spec.dims[entry].values_count > 1:
                if dim.HasField("dim_value") and not dim.dim_param:
                    notes.append(
                        f"input {item.name!r} axis {axis} ({entry!r}) is fixed at size "
                        f"{dim.dim_value} in the ONNX graph: the exporter specialised a dim "
                        f"declared dynamic, so other sizes are rejected or computed wrongly"
                    )
    return notes


def check_no_extra_inputs(proto: Any, spec: ParitySpec, exporter: str) -> None:
    """ExportError naming graph inputs the spec does not declare (initializers aside): an
    exporter that leaves constants as inputs makes a graph no runtime can feed."""
    initializers = {t.name for t in proto.graph.initializer}
    declared = {i.name for i in spec.inputs}
    extra = [v.name for v in proto.graph.input if v.name not in initializers and v.name not in declared]
    if extra:
        shown = ", ".join(repr(n) for n in extra[:5]) + (
            f" and {len(extra) - 5} more" if len(extra) > 5 else ""
        )
        raise ExportError(
            f"the graph {exporter} exported has inputs the spec does not declare: {shown} "
            f"(declared: {', '.join(sorted(declared))}); these look like constants the exporter left as "
            "graph inputs, which no caller feeds — the export is broken, not the spec's dims"
        )


def outputs_apart(outputs: Sequence[str], inputs: Sequence[str]) -> tuple[list[str], dict[str, str], list[str]]:
    """Output names for the ONNX graph, none of them an input's: a graph where an output is
    named like an input is invalid (a diffusers UNet's ``forward(sample)`` returns
    ``{"sample": ...}``). Such an output is named ``<name>_output`` (``_output_2``... while that
    is taken). Returns the names, ``{ONNX name: the model's name}`` of those renamed, and a note
    for each that says both."""
    taken = set(inputs) | set(outputs)
    names, renamed, notes = [], {}, []
    for name in outputs:
        if name not in set(inputs):
            names.append(name)
            continue
        new, n = f"{name}_output", 1
        while new in taken:
            n += 1
            new = f"{name}_output_{n}"
        taken.add(new)
        names.append(new)
        renamed[new] = name
        notes.append(
            f"output {name!r} is named {new!r} in the ONNX file: an ONNX graph cannot name an output "
            "like an input"
        )
    return names, renamed, notes


def exported_model(
    path: str,
    proto: Any,
    spec: ParitySpec,
    *,
    exporter: str,
    key: str,
    notes: Iterable[str] = (),
    default_tolerance: Tolerance | None = None,
) -> ExportedModel:
    """The :class:`ExportedModel` of an ONNX file an exporter wrote: names from the graph,
    and a note for every dim it specialised."""
    from onnxparity.graph.nodes import default_opset

    check_no_extra_inputs(proto, spec, exporter)
    return ExportedModel(
        path=path,
        input_names=tuple(i.name for i in spec.inputs),
        output_names=tuple(o.name for o in proto.graph.output),
        exporter=exporter,
        opset=default_opset(proto),
        key=key,
        notes=(*notes, *specialised_dims(proto, spec)),
        default_tolerance=default_tolerance,
    )
