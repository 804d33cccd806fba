"""The resource guard: what an example costs before it is drawn, and a refusal that names
the inputs that make a declaration too large (instead of a raw MemoryError mid-search)."""

from __future__ import annotations

import numpy as np

from .spec import ParitySpec
from .spec.inputs import numpy_dtype

#: bytes a str element is counted as (a Python object and a short string).
STR_ELEMENT_BYTES = 64


def largest_example_bytes(spec: ParitySpec) -> dict[str, int]:
    """Bytes of each input when every dim is at its largest value: the memory an example may
    need before anything runs (outputs and intermediates come on top)."""
    dims = {name: spec.dims[name].last for name in spec.symbolic_dims}
    sizes = {}
    for item in spec.inputs:
        count = int(np.prod(item.concrete_shape(dims), dtype=np.float64))
        itemsize = STR_ELEMENT_BYTES if item.dtype == "str" else numpy_dtype(item.dtype).itemsize
        sizes[item.name] = count * itemsize
    return sizes


def over_memory_budget(spec: ParitySpec, budget_mb: int, model_path: str | None = None) -> str | None:
    """Why the spec's largest example is refused under a budget of ``budget_mb`` MiB of
    inputs, or of one op's output whose size an input's values set (``model_path``: the ONNX
    graph read for those ops), naming the input that makes it so; None when it fits."""
    sizes = largest_example_bytes(spec)
    if sum(sizes.values()) <= budget_mb * 2**20:
        return _outputs_over(spec, budget_mb, model_path) if model_path else None
    at = ", ".join(f"{n}={spec.dims[n].last}" for n in spec.symbolic_dims)
    parts = ", ".join(
        f"{n} {size / 2**20:.4g} MiB" for n, size in sorted(sizes.items(), key=lambda kv: -kv[1])
    )
    return (
        f"the largest example the spec declares ({at}) needs {sum(sizes.values()) / 2**20:.4g} MiB of inputs "
        f"({parts}), over the budget of {budget_mb} MiB: lower the dims' maxima, or raise the budget"
    )


_BOUNDS: dict[tuple, list] = {}


def _outputs_over(spec: ParitySpec, budget_mb: int, model_path: str) -> str | None:
    """The first op whose output an input's declared values would make larger than the budget
    (float32 elements; :func:`onnxparity.domains.output_bounds`)."""
    import os

    from .domains import output_bounds
    from .onnxutils import load_model

    dims = {name: spec.dims[name].last for name in spec.symbolic_dims}
    try:
        key = (model_path, os.path.getmtime(model_path), spec.input_digest)
        if key not in _BOUNDS:
            if len(_BOUNDS) > 64:
                _BOUNDS.clear()
            _BOUNDS[key] = output_bounds(load_model(model_path), spec.inputs, dims)
        bounds = _BOUNDS[key]
    except Exception:  # a guard that cannot read the graph guards inputs only
        return None
    for name, op, elements in bounds:
        if elements * 4 > budget_mb * 2**20:
            item = next(i for i in spec.inputs if i.name == name)
            return (
                f"Input({name!r}) is declared up to {max(abs(item.low), abs(item.high)):g}, and its values set the "
                f"size of {op}'s output: up to {elements * 4 / 2**20:.4g} MiB, over the budget of {budget_mb} MiB; "
                f"lower its high= (or raise the budget)"
            )
    return None
