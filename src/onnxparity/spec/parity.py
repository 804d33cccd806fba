"""The whole declaration of one parity check: :class:`ParitySpec`."""

from __future__ import annotations

import difflib
import fnmatch
import functools
import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from onnxparity.errors import InvalidSpec
from onnxparity.spec.budgets import Latency, Opset, latencies
from onnxparity.spec.inputs import Dim, Input, freeze_mapping, is_int
from onnxparity.spec.outputs import Output, declared_outputs
from onnxparity.spec.policy import DEFAULT_TOLERANCE, Agreement, Policy, Tolerance


@dataclass(frozen=True)
class ParitySpec:
    """Everything one parity check declares, validated as a whole.

    ``tolerance`` is one :class:`Tolerance` for every variant, or a mapping from a variant
    name or glob pattern (``"int8-*"``) to its policy (:class:`Tolerance` or
    :class:`Agreement`). Which applies to a variant: its exact name, else the longest matching
    pattern other than ``"*"``, else the variant's own default (lossy variants default to an
    :class:`Agreement`), else a ``"*"`` entry (a bare ``tolerance=op.Tolerance(...)`` is one),
    else :data:`DEFAULT_TOLERANCE`. So a bare Tolerance tunes the lossless variants and leaves
    ``int8-*``/``fp16`` on their documented defaults unless named.

    ``variant_options`` maps a variant name to the options its builder takes (e.g.
    ``{"ort-gpu": {"device_id": 1}, "int8-static": {"method": "entropy"}}``).

    ``outputs`` declares outputs whose rows have no fixed order (:class:`Output`: compared as
    a set, or sorted first); the names are checked against the model's when it runs.
    """

    inputs: tuple[Input, ...]
    dims: Mapping[str, Dim] = field(default_factory=dict)
    variants: tuple[str, ...] = ("ort-cpu",)
    tolerance: Mapping[str, Policy] = field(default_factory=dict)
    #: the opset to export at (None: the exporter's choice)
    opset: int | None = None
    examples: int | None = None
    variant_options: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    latency: tuple[Latency, ...] = ()
    #: the opset budget (what the model may use); checked by the ``opset`` item
    opset_budget: Opset | None = None
    #: the inputs were read from the model (nobody declared them): an example that the
    #: reference and the variant both reject is outside the model's domain, not a failure
    inferred: bool = False
    #: outputs whose rows have no fixed order (detections): see :class:`Output`
    outputs: tuple[Output, ...] = ()

    def __post_init__(self) -> None:
        inputs = self.inputs
        if isinstance(inputs, Input):
            inputs = (inputs,)
        if isinstance(inputs, (str, bytes)) or not isinstance(inputs, Iterable):
            raise InvalidSpec(f"inputs={inputs!r}: give a list of op.Input(...)")
        inputs = tuple(inputs)
        if not inputs and not self.inferred:  # (a graph without inputs: its one run is the check)
            raise InvalidSpec("inputs=[]: declare at least one op.Input(name, shape, ...)")
        item: Input | Latency  # the loops below go over inputs, then latency budgets
        for item in inputs:
            if not isinstance(item, Input):
                raise InvalidSpec(f"inputs: {item!r} is not an op.Input(name, shape, ...)")
        names = [i.name for i in inputs]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise InvalidSpec(f"inputs: the name {dupes[0]!r} is declared more than once")
        object.__setattr__(self, "inputs", inputs)

        if not isinstance(self.dims, Mapping):
            raise InvalidSpec(f"dims={self.dims!r}: give a dict of dim name -> op.Dim(min, max)")
        for name, dim in self.dims.items():
            if not isinstance(dim, Dim):
                raise InvalidSpec(f"dims[{name!r}]={dim!r}: use op.Dim(min, max)")
        used = {n for i in inputs for n in i.dim_names}
        for item in inputs:
            for axis, entry in enumerate(item.shape):
                if isinstance(entry, str) and entry not in self.dims:
                    known = ", ".join(sorted(self.dims)) or "none declared"
                    raise InvalidSpec(
                        f"Input({item.name!r}): unknown dim name {entry!r} at axis {axis} "
                        f"(known: {known}); declare it in dims={{{entry!r}: op.Dim(min, max)}}"
                    )
        unused = sorted(set(self.dims) - used)
        if unused:
            raise InvalidSpec(f"dims declares {unused[0]!r} but no input uses it; check its spelling")
        object.__setattr__(self, "dims", freeze_mapping(self.dims))

        variants = self.variants
        if isinstance(variants, str):
            variants = (variants,)
        variants = tuple(variants)
        if not variants or not all(isinstance(v, str) and v for v in variants):
            raise InvalidSpec(f"variants={self.variants!r}: give a list of variant names")
        object.__setattr__(self, "variants", variants)

        tolerance = self.tolerance
        if isinstance(tolerance, (Tolerance, Agreement)):
            tolerance = {"*": tolerance}
        if not isinstance(tolerance, Mapping):
            raise InvalidSpec(
                f"tolerance={tolerance!r}: give op.Tolerance(...) or a dict variant -> Tolerance"
            )
        value: Policy | int  # a policy here, a dim's size in the latency loop below
        for key, value in tolerance.items():
            if not isinstance(key, str) or not isinstance(value, (Tolerance, Agreement)):
                raise InvalidSpec(
                    f"tolerance[{key!r}]={value!r}: keys are variant names or patterns, "
                    "values op.Tolerance(atol=..., rtol=...) or op.Agreement(labels=...)"
                )
        object.__setattr__(self, "tolerance", freeze_mapping(tolerance))

        if isinstance(self.opset, Opset):
            raise InvalidSpec(
                f"ParitySpec(opset={self.opset!r}): an op.Opset is a budget; pass it as opset_budget= "
                "(and its target, if any, as opset=), or use op.check(opset=op.Opset(...))"
            )
        if self.opset_budget is not None and not isinstance(self.opset_budget, Opset):
            raise InvalidSpec(f"opset_budget={self.opset_budget!r}: give op.Opset(...)")
        if self.opset is not None and (not is_int(self.opset) or self.opset < 7):
            raise InvalidSpec(f"opset={self.opset!r}: give an ONNX opset number such as 17, or op.Opset(...)")
        latency = latencies(self.latency)
        for item in latency:
            for name, value in item.at.items():
                if name not in self.dims:
                    known = ", ".join(sorted(self.dims)) or "none declared"
                    raise InvalidSpec(f"{item.describe()}: at= names {name!r}, not a declared dim ({known})")
                if value not in self.dims[name]:
                    raise InvalidSpec(
                        f"{item.describe()}: {name}={value} is outside dims[{name!r}]={self.dims[name]}"
                    )
        object.__setattr__(self, "latency", latency)
        if self.examples is not None and (not is_int(self.examples) or self.examples < 1):
            raise InvalidSpec(f"examples={self.examples!r}: give a positive number of examples")

        options = self.variant_options or {}
        if not isinstance(options, Mapping) or not all(
            isinstance(k, str) and isinstance(v, Mapping) and all(isinstance(o, str) for o in v)
            for k, v in options.items()
        ):
            raise InvalidSpec(
                f"variant_options={options!r}: give a dict variant name -> dict of options, "
                "e.g. {'int8-static': {'method': 'entropy'}}"
            )
        object.__setattr__(
            self, "variant_options", freeze_mapping({k: freeze_mapping(v) for k, v in options.items()})
        )
        object.__setattr__(self, "outputs", declared_outputs(self.outputs))
        _check_variant_keys("tolerance", self.tolerance, variants, globs=True)
        _check_variant_keys("variant_options", self.variant_options, variants, globs=False)

    @property
    def symbolic_dims(self) -> tuple[str, ...]:
        """Dim names in order of first use across the inputs."""
        seen: dict[str, None] = {}
        for item in self.inputs:
            for name in item.dim_names:
                seen.setdefault(name, None)
        return tuple(seen)

    @functools.cached_property
    def input_digest(self) -> str:
        """A short digest of the inputs and dims: what an export and its examples depend on.
        Cached: it keys the reference cache on every drawn example."""
        text = repr((self.inputs, sorted(self.dims.items())))
        return hashlib.blake2b(text.encode(), digest_size=8).hexdigest()

    def policy_for(
        self, variant: str, default: Policy | None = None, fallback: Policy | None = None
    ) -> Policy:
        """What applies to ``variant`` (see the class docstring for the order); ``default`` is
        the variant's own default policy, if it has one; ``fallback`` replaces the global default
        tolerance where the exported model knows better (its ``default_tolerance``)."""
        if variant in self.tolerance:
            return self.tolerance[variant]
        patterns = [p for p in self.tolerance if p != "*" and fnmatch.fnmatchcase(variant, p)]
        if patterns:
            return self.tolerance[max(patterns, key=len)]
        if default is not None:
            return default
        return self.tolerance.get("*", fallback or DEFAULT_TOLERANCE)

    def latency_dims(self, latency: Latency) -> dict[str, int]:
        """The concrete dims a latency budget is measured at (undeclared ones at their minimum)."""
        return {name: latency.at.get(name, self.dims[name].first) for name in self.symbolic_dims}

    def options_for(self, variant: str) -> Mapping[str, Any]:
        """The builder options declared for ``variant`` (empty when none)."""
        return self.variant_options.get(variant, MappingProxyType({}))


def _check_variant_keys(
    what: str, mapping: Mapping[str, Any], variants: tuple[str, ...], *, globs: bool
) -> None:
    """InvalidSpec for a key that names no variant of the check (a typo would be ignored
    silently), or a pattern that matches none; ``"*"`` is every variant."""
    for key in mapping:
        if key == "*" and globs:
            continue
        pattern = globs and any(c in key for c in "*?[")
        if key in variants or (pattern and any(fnmatch.fnmatchcase(v, key) for v in variants)):
            continue
        close = difflib.get_close_matches(key, variants, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise InvalidSpec(
            f"{what}[{key!r}] {'matches' if pattern else 'names'} no variant of this check "
            f"(its variants: {', '.join(variants)}){hint}"
        )
