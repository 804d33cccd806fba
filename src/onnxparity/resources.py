"""The resource guard: what an example costs before it is drawn, and a refusal that names
the inputs that make a declaration too large (instead of a raw MemoryError mid-search)."""

from __future__ import annotations

import numpy as np

from .spec import ParitySpec

#: bytes a str element is counted as (a Python object and a short string).
STR_ELEMENT_BYTES = 64


def largest_example_bytes(spec: ParitySpec) -> dict[str, int]:
    """Bytes of each input when every dim is at its largest value: the memory an example may
    need before anything runs (outputs and intermediates come on top)."""
    dims = {name: spec.dims[name].last for name in spec.symbolic_dims}
    sizes = {}
    for item in spec.inputs:
        count = int(np.prod(item.concrete_shape(dims), dtype=np.float64))
        itemsize = STR_ELEMENT_BYTES if item.dtype == "str" else np.dtype(item.dtype).itemsize
        sizes[item.name] = count * itemsize
    return sizes


def over_memory_budget(spec: ParitySpec, budget_mb: int) -> str | None:
    """Why the spec's largest example is refused under a budget of ``budget_mb`` MiB of
    inputs (naming the inputs that make it so), or None when it fits."""
    sizes = largest_example_bytes(spec)
    if sum(sizes.values()) <= budget_mb * 2**20:
        return None
    at = ", ".join(f"{n}={spec.dims[n].last}" for n in spec.symbolic_dims)
    parts = ", ".join(
        f"{n} {size / 2**20:.4g} MiB" for n, size in sorted(sizes.items(), key=lambda kv: -kv[1])
    )
    return (
        f"the largest example the spec declares ({at}) needs {sum(sizes.values()) / 2**20:.4g} MiB of inputs "
        f"({parts}), over the budget of {budget_mb} MiB: lower the dims' maxima, or raise the budget"
    )
