"""Padding is don't-care: outputs at padded positions are what no caller reads.

Where an input is ``kind="mask"`` or ``kind="lengths"`` (and does not say
``compare_padded=True``), an output whose leading axes are that input's (rows..., seq) is
compared at real positions only: a mask value 1, a position below the row's length. The
padded positions of the variant's output are set to the reference's before the comparison
(:meth:`PaddingPlan.apply`), and how many values that left out is counted per output. Left
padding under causal attention is why: a left-pad position attends to padding only, and
PyTorch answers that row with 0 where the export computes something else — while every real
token agrees to 1e-7.

**How an output's leading axes are known to be the mask's.** By name first: an exporter
writes a symbolic dim's name (``dim_param``) on each axis of the graph's inputs and outputs,
and the axes that carry the same name are the same axis (the dynamo exporter names inputs' and
outputs' dims alike, ``s43``). Axis *i* of an output is the mask's axis *i* when its name is
one the graph's inputs carry for the mask's dim there, and is *not* when it is a fixed size
(unless the mask's axis is a row axis of that same fixed size) or the name of another input's
dim. Names are exact: ``(batch, decoder_seq)`` is never taken for ``(batch, seq)``, whatever
sizes an example draws, and a hidden size that happens to equal the sequence length in one
example is never taken for it.

Only where the file says nothing that decides an axis (no shape, or a name no input carries,
such as the TorchScript exporter's computed ``Mullast_hidden_state_dim_1``) does the example's
shape decide, and only when that is
unambiguous: the output's size there equals the mask's, and that size is no other axis of the
mask and no other symbolic dim's value in this example (``batch=2, seq=2`` compares in full).
A mask whose sequence axis is a fixed size is never matched by a fixed size: a fixed
``(1, 8, 8)`` output cannot say which 8 is the sequence.
"""

from __future__ import annotations

import collections
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

import numpy as np

from onnxparity.spec import Input, ParitySpec

if TYPE_CHECKING:
    from onnxparity.spec.inputs import DimLike

#: how an output's axis relates to a mask's axis, as the file says
YES, NO, UNKNOWN = "yes", "no", "unknown"

#: plans kept (one per exported file and declared inputs)
MAX_PLANS = 64


@dataclass(frozen=True)
class PaddedOutput:
    """One output padded along one mask: which input, and per leading axis how it is known
    (``"yes"``: by the file's dim names; ``"unknown"``: decided per example by shape)."""

    output: str
    mask: Input
    #: the mask's axes as declared: its own shape, or (its shape..., ``within``) for lengths
    axes: tuple[DimLike | None, ...]
    known: tuple[str, ...]

    @property
    def by_name(self) -> bool:
        return all(k == YES for k in self.known)


@dataclass(frozen=True)
class PaddingPlan:
    """Which outputs are compared at real positions only, and along which mask."""

    outputs: Mapping[str, tuple[PaddedOutput, ...]]

    def __bool__(self) -> bool:
        return bool(self.outputs)

    def apply(
        self,
        names: Sequence[str],
        expected: Sequence[Any],
        actual: Sequence[Any],
        feeds: Mapping[str, Any],
        dims: Mapping[str, int],
    ) -> tuple[list[Any], dict[str, int]]:
        """``actual`` with each padded position of a padded output set to the reference's
        value there (copies; the given arrays are never written), and per output how many
        values that left out (only outputs that left some out)."""
        compared, left_out = list(actual), {}
        for i, (name, e, a) in enumerate(zip(names, expected, actual)):
            padded = None
            for entry in self.outputs.get(name, ()):
                found = _padded_positions(entry, feeds, dims, e, a)
                if found is not None:
                    padded = found if padded is None else padded | found
            if padded is None or not padded.any():
                continue
            rest = int(np.prod(a.shape[padded.ndim :], dtype=np.int64))
            where = np.broadcast_to(padded.reshape(padded.shape + (1,) * (a.ndim - padded.ndim)), a.shape)
            kept = np.array(a, copy=True)
            kept[where] = np.asarray(e)[where]
            compared[i] = kept
            left_out[name] = int(padded.sum()) * rest
        return compared, left_out


NO_PADDING = PaddingPlan({})


def _padded_positions(
    entry: PaddedOutput, feeds: Mapping[str, Any], dims: Mapping[str, int], expected: Any, actual: Any
) -> np.ndarray | None:
    """The padded positions (True) over ``entry``'s mask axes on this example, or None where
    the output is not padded along it here (shapes differ, or the shape is ambiguous)."""
    if not isinstance(expected, np.ndarray) or not isinstance(actual, np.ndarray):
        return None
    if expected.shape != actual.shape or entry.mask.name not in feeds:
        return None
    real = _real(entry.mask, np.asarray(feeds[entry.mask.name]), dims)
    if real is None or actual.ndim < real.ndim or actual.shape[: real.ndim] != real.shape:
        return None
    if not entry.by_name:
        sizes = real.shape
        for axis, (known, declared) in enumerate(zip(entry.known, entry.axes)):
            if known != UNKNOWN:
                continue
            size = sizes[axis]
            others = [s for j, s in enumerate(sizes) if j != axis]
            others += [v for d, v in dims.items() if d != declared]
            if size in others:
                return None  # the size could be another axis's: compared in full
    return ~real


def _real(mask: Input, value: np.ndarray, dims: Mapping[str, int]) -> np.ndarray | None:
    """Real positions (True) over (rows..., seq) of a mask or lengths input's value."""
    if mask.kind == "mask":
        return value != 0 if value.ndim >= 1 else None
    # (a lengths input always has ``within``: a dim name here)
    within = mask.within if isinstance(mask.within, int) else dims.get(cast(str, mask.within))
    if within is None:
        return None
    return np.arange(within) < value[..., None]


def padding_inputs(spec: ParitySpec) -> list[Input]:
    """The masks and lengths whose padding is don't-care (not ``compare_padded=True``)."""
    return [i for i in spec.inputs if i.kind in ("mask", "lengths") and not i.compare_padded]


def _axes(mask: Input) -> tuple[DimLike | None, ...]:
    return mask.shape if mask.kind == "mask" else (*mask.shape, mask.within)


def _onnx_dims(value_info: Any) -> tuple[str | int | None, ...] | None:
    """Per axis: its ``dim_param`` name, its fixed size, or None (unknown); None without a shape."""
    kind = value_info.type
    if not kind.HasField("tensor_type") or not kind.tensor_type.HasField("shape"):
        return None
    return tuple(
        d.dim_param if d.HasField("dim_param") else (d.dim_value if d.HasField("dim_value") else None)
        for d in kind.tensor_type.shape.dim
    )


def plan_from_graph(
    spec: ParitySpec,
    inputs: Mapping[str, tuple[str | int | None, ...] | None],
    outputs: Mapping[str, tuple[str | int | None, ...] | None],
) -> PaddingPlan:
    """The plan for ``spec`` over a graph whose inputs and outputs have these per-axis dims
    (:func:`_onnx_dims`: a name, a size or None; None for a value without a shape)."""
    masks = padding_inputs(spec)
    if not masks:
        return NO_PADDING
    names: dict[str, set[str]] = collections.defaultdict(set)  # a declared dim -> the file's names
    for declared in spec.inputs:
        found = inputs.get(declared.name)
        if found is None or len(found) != len(declared.shape):
            continue
        for entry, dim in zip(declared.shape, found):
            if isinstance(entry, str) and isinstance(dim, str) and dim:
                names[entry].add(dim)
    carried = {d for dims in inputs.values() for d in dims or () if isinstance(d, str) and d}
    planned: dict[str, list[PaddedOutput]] = {}
    for output, dims in outputs.items():
        for mask in masks:
            axes = _axes(mask)
            if dims is not None and len(dims) < len(axes):
                continue
            own = inputs.get(mask.name) or ()  # the mask's own axes in the file (a fixed batch of 1)
            known = tuple(
                _axis(
                    axes[i],
                    None if dims is None else dims[i],
                    i == len(axes) - 1,
                    names,
                    carried,
                    own[i] if i < len(own) and i < len(mask.shape) else None,
                )
                for i in range(len(axes))
            )
            if NO not in known:
                planned.setdefault(output, []).append(PaddedOutput(output, mask, axes, known))
    return PaddingPlan({k: tuple(v) for k, v in planned.items()})


def _axis(
    declared: DimLike | None,
    dim: str | int | None,
    is_seq: bool,
    names: Mapping[str, set[str]],
    carried: set[str],
    own: str | int | None = None,
) -> str:
    """Whether an output's axis with the file's ``dim`` is the mask's axis ``declared`` (``own``:
    the mask's own dim there in the file, where it has one)."""
    if isinstance(dim, str) and dim:
        if isinstance(declared, str) and dim in names.get(declared, ()):
            return YES
        return NO if dim in carried else UNKNOWN
    if isinstance(dim, int) and dim > 0:  # a fixed size (0: ONNX's "unset")
        if not is_seq and dim in (declared, own):  # a row axis of the same fixed size
            return YES
        return NO
    return UNKNOWN


_PLANS: collections.OrderedDict[tuple[str, str, str, tuple[str, ...]], PaddingPlan] = collections.OrderedDict()


def padding_plan(path: str, key: str, spec: ParitySpec, output_names: Sequence[str]) -> PaddingPlan:
    """The plan for the ONNX file at ``path`` (its export ``key``) under ``spec``: read from the
    graph once per (key, declared inputs); no file is read where no input is a mask or lengths."""
    if not padding_inputs(spec):
        return NO_PADDING
    cache_key = (key, path, spec.input_digest, tuple(output_names))
    plan = _PLANS.get(cache_key)
    if plan is None:
        try:
            from onnxparity.graph.files import load_model

            graph = load_model(path).graph
            inputs = {v.name: _onnx_dims(v) for v in graph.input}
            declared = {v.name: _onnx_dims(v) for v in graph.output}
        except Exception:  # noqa: BLE001 - a file that cannot be read: decided by shape alone
            inputs, declared = {}, {}
        plan = plan_from_graph(spec, inputs, {n: declared.get(n) for n in output_names})
        _PLANS[cache_key] = plan
        while len(_PLANS) > MAX_PLANS:
            _PLANS.popitem(last=False)
    _PLANS.move_to_end(cache_key)
    return plan


def left_out_line(left_out: Mapping[str, int], verdict: Any = None) -> str:
    """A line saying which padded values were left out of the comparison ("" where none);
    ``verdict``: the example's, for each output's number of values."""
    if not left_out:
        return ""
    sizes = {o.name: o.size for o in getattr(verdict, "outputs", ())}
    parts = [
        f"{name!r}: {count}" + (f" of {sizes[name]}" if sizes.get(name) else "")
        for name, count in left_out.items()
    ]
    return (
        f"padding: values at padded positions left out of the comparison ({'; '.join(parts)}); "
        "op.Input(..., compare_padded=True) compares them too"
    )
