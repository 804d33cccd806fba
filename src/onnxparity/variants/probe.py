"""The values of an ONNX model on one input, by name: one ONNX Runtime session (CPU unless told
otherwise, one thread, logging at FATAL only: :func:`onnxparity.variants.ort.session_options`)
over a model whose wanted values were made graph outputs (``graph.nodes.with_outputs``).

What forensics reads to compare two runs of a graph value by value (the framework against the
export, a float16 or int8 conversion against float32, the optimizer against no optimization,
CUDA against the CPU): it imports this module, never the other way.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np


def tensor_values(
    model: Any,
    feeds: Mapping[str, np.ndarray],
    providers: Sequence[str | tuple[str, Mapping[str, str]]] = ("CPUExecutionProvider",),
    *,
    optimization: str = "none",
    saved: str | None = None,
    disabled: tuple[str, ...] = (),
) -> dict[str, np.ndarray]:
    """Every output of ``model`` on ``feeds`` by name (ONNX Runtime, CPU unless ``providers``
    says otherwise; feeds the graph does not take are left out). ``optimization``: the graph
    optimization level ("none" keeps every value); ``saved``: where the optimized graph is
    written; ``disabled``: optimizers turned off by name."""
    import onnxruntime as ort

    from onnxparity.variants.narrow import narrow_values, run_typed
    from onnxparity.variants.ort import session_options

    options = session_options(1, optimization)
    if saved:
        options.optimized_model_filepath = saved
    session = ort.InferenceSession(
        model.SerializeToString(), options, providers=list(providers), disabled_optimizers=list(disabled)
    )
    names = [o.name for o in session.get_outputs()]
    used = {i.name for i in session.get_inputs()}
    feeds = {k: v for k, v in feeds.items() if k in used}
    narrow_in, narrow_out = narrow_values(session.get_inputs()), narrow_values(session.get_outputs())
    if narrow_in or narrow_out:  # bfloat16, float8, float4, int4, int2: typed OrtValues (:mod:`.narrow`)
        return dict(zip(names, run_typed(session, feeds, names, narrow_in, narrow_out, None)))
    return dict(zip(names, session.run(names, feeds)))
