"""The resource guard: what an example costs before it is drawn, and a refusal that names
the inputs that make a declaration too large (instead of a raw MemoryError mid-search)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import cast

import numpy as np

from onnxparity.spec import ParitySpec
from onnxparity.spec.dtypes import numpy_dtype

#: bytes a str element is counted as (a Python object and a short string).
STR_ELEMENT_BYTES = 64


def largest_example_bytes(spec: ParitySpec) -> dict[str, int]:
    """Bytes of each input when every dim is at its largest value: the memory an example may
    need before anything runs (outputs and intermediates come on top)."""
    dims = {name: spec.dims[name].last for name in spec.symbolic_dims}
    sizes = {}
    for item in spec.inputs:
        count = int(np.prod(item.concrete_shape(dims), dtype=np.float64))
        # (item.dtype: never None, Input sets its default)
        itemsize = STR_ELEMENT_BYTES if item.dtype == "str" else numpy_dtype(cast(str, item.dtype)).itemsize
        sizes[item.name] = count * itemsize
    return sizes


def over_memory_budget(
    spec: ParitySpec, budget_mb: int, outputs: Sequence[tuple[str, str, float]] = ()
) -> str | None:
    """Why the spec's largest example is refused under a budget of ``budget_mb`` MiB of
    inputs, or of one op's output whose size an input's values set (``outputs``: (input, op,
    largest elements), :func:`onnxparity.graph.domains.output_bounds`), naming the input that makes
    it so; None when it fits."""
    sizes = largest_example_bytes(spec)
    if sum(sizes.values()) <= budget_mb * 2**20:
        return _outputs_over(spec, budget_mb, outputs)
    at = ", ".join(f"{n}={spec.dims[n].last}" for n in spec.symbolic_dims)
    parts = ", ".join(
        f"{n} {size / 2**20:.4g} MiB" for n, size in sorted(sizes.items(), key=lambda kv: -kv[1])
    )
    return (
        f"the largest example the spec declares ({at}) needs {sum(sizes.values()) / 2**20:.4g} MiB of inputs "
        f"({parts}), over the budget of {budget_mb} MiB: lower the dims' maxima, or raise the budget"
    )


def _outputs_over(spec: ParitySpec, budget_mb: int, outputs: Sequence[tuple[str, str, float]]) -> str | None:
    """The first op whose output an input's declared values would make larger than the budget
    (counted as float32 elements)."""
    for name, op, elements in outputs:
        if elements * 4 > budget_mb * 2**20:
            item = next(i for i in spec.inputs if i.name == name)
            return (
                f"Input({name!r}) is declared up to "
                f"{max(abs(cast(float, item.low)), abs(cast(float, item.high))):g}, and its values set the "
                f"size of {op}'s output: up to {elements * 4 / 2**20:.4g} MiB, over the budget of {budget_mb} MiB; "
                f"lower its high= (or raise the budget)"
            )
    return None
