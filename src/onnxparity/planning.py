"""From a declaration to what runs: the :class:`ParitySpec` (inputs read from the model where
it declares them), the items it makes (one per variant, per opset of a matrix, per budget) and
the stable seed an item's search starts from. Items are planned once: at collection under
pytest, per call in the library."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from onnxparity.errors import InvalidSpec
from onnxparity.spec import Dim, Input, Latency, Opset, ParitySpec
from onnxparity.spec.budgets import latencies


@dataclass(frozen=True)
class Item:
    """One pytest item of a declaration: a parity check of a variant (at an opset of a
    matrix), the opset budget, or a latency budget. ``id`` is the item's parameter id."""

    kind: str  # "parity", "opset" or "latency"
    id: str
    variant: str | None = None
    opset: int | None = None
    latency: Latency | None = None

    def __str__(self) -> str:
        return self.id


def plan_items(variants: Iterable[str], opset: Any = None, latency: Any = None) -> list[Item]:
    """The items a declaration makes, in order: parity items (one per variant, or per
    (variant, opset) for an opset matrix), then ``opset``, then ``latency-<variant>`` each."""
    if isinstance(variants, str):
        variants = (variants,)
    budget = opset if isinstance(opset, Opset) else None
    items: list[Item] = []
    for variant in variants:
        if budget is not None and budget.matrix:
            items += [Item("parity", f"{variant}-opset{n}", variant, n) for n in budget.matrix]
        else:
            items.append(Item("parity", str(variant), variant))
    if budget is not None:
        items.append(Item("opset", "opset"))
    for n, item in enumerate(latencies(latency)):
        base = f"latency-{item.variant}"
        taken = {i.id for i in items}
        items.append(
            Item("latency", base if base not in taken else f"{base}-{n}", item.variant, latency=item)
        )
    return items


def stable_seed(name: str, seed: int = 0) -> int:
    """A seed derived from a test's name (and the run's ``seed`` setting, when not 0): the same
    on every run and every xdist worker."""
    text = name if not seed else f"{name}#seed={seed}"
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=4).digest(), "little")


#: the range of a symbolic dim the model declares but the user does not.
DEFAULT_DIM = Dim(1, 16)


def build_spec(
    subject: Any = None,
    *,
    data: Any = None,
    inputs: Input | Iterable[Input] | None = None,
    dims: Mapping[str, Dim] | None = None,
    **declared: Any,
) -> ParitySpec:
    """The ParitySpec of a declaration (marker or ``check()`` arguments), reading the inputs
    from ``subject`` (an :class:`onnxparity.exporters.Subject`) when they are not given.

    Every dim the model declares and the user does not gets :data:`DEFAULT_DIM`; values get the
    dtype's default range. ``opset=op.Opset(...)`` is the opset budget (exported at its
    target). ``calibration=`` (feeds for int8-static) is shorthand for
    ``variant_options={"int8-static": {"calibration": ...}}``. ``outputs=`` (:class:`op.Output
    <onnxparity.spec.Output>` declarations) goes to the spec as given: its names are checked
    against the model's outputs when the model runs, as only the export knows them."""
    opset = declared.pop("opset", None)
    if isinstance(opset, Opset):
        declared["opset_budget"], opset = opset, opset.target
    declared["opset"] = opset
    calibration = declared.pop("calibration", None)
    if calibration is not None:
        if isinstance(calibration, (str, bytes, Mapping)) or not hasattr(calibration, "__iter__"):
            raise InvalidSpec(
                "calibration= must be a list of feeds: dicts of input name -> array, e.g. [{'x': batch}, ...]"
            )
        variants = declared.get("variants", ("ort-cpu",))
        if "int8-static" not in ((variants,) if isinstance(variants, str) else tuple(variants)):
            raise InvalidSpec(
                "calibration= calibrates int8-static, which this check does not run; add it to variants= "
                "or drop calibration="
            )
        options = {k: dict(v) for k, v in (declared.pop("variant_options", None) or {}).items()}
        options.setdefault("int8-static", {})["calibration"] = list(calibration)
        declared["variant_options"] = options
    if inputs is None:
        inputs = subject.declared_inputs(data) if subject is not None else None
        if inputs is None:
            what = subject.name if subject is not None else "the model"
            raise InvalidSpec(
                f"{what} does not declare its inputs: give inputs=[op.Input(name, shape, dtype=...)] "
                "(on the onnx_parity marker or in check())"
            )
        given = set(dims or {})
        dims = default_dims(inputs, dims or {})
        if subject is not None:  # an ONNX file's windows need dims of some least size
            dims = subject.least_dims(inputs, dims, set(dims) - given)
        declared["inferred"] = True
    return ParitySpec(
        inputs=tuple(inputs) if not isinstance(inputs, Input) else (inputs,),
        dims=dict(dims or {}),
        **declared,
    )


def default_dims(inputs: tuple[Input, ...], declared: Mapping[str, Dim]) -> dict[str, Dim]:
    """``declared`` plus :data:`DEFAULT_DIM` for every other symbolic dim the inputs use."""
    dims = dict(declared)
    for item in inputs:
        for name in item.dim_names:
            dims.setdefault(name, DEFAULT_DIM)
    return dims


def test_name(nodeid: str, item_id: str) -> str:
    """A parity item's test without its item: ``t.py::test[ort-cpu-small]`` with item
    ``ort-cpu`` is ``t.py::test[small]``. One name for all the items of one parameter set: it
    seeds their searches (so they share examples) and names their reproducers and report rows,
    which stay apart per parameter set."""
    if not nodeid.endswith("]") or "[" not in nodeid:
        return nodeid
    base, _, params = nodeid[:-1].partition("[")
    for rest in (
        "" if params == item_id else None,
        params[len(item_id) + 1 :] if params.startswith(f"{item_id}-") else None,
        params[: -len(item_id) - 1] if params.endswith(f"-{item_id}") else None,
        params.replace(f"-{item_id}-", "-", 1) if f"-{item_id}-" in params else None,
    ):
        if rest is not None:
            return f"{base}[{rest}]" if rest else base
    return nodeid
