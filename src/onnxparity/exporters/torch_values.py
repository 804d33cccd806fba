"""A PyTorch model's intermediate values, by the name of the ONNX value each became.

The dynamo exporter names every ONNX value it lowers from an FX node after that node
(``conv2d``, ``hardtanh``, ``linear``; ``torch.onnx.verification`` relies on the same). On a
failure the model is exported once more, without a file, by the same call as the export (so
the program and its names are the same), and the program's graph runs in an FX interpreter on
the failing input, keeping the tensor of every ``call_function`` node whose name the ONNX graph
has. A TorchScript export keeps no FX names: its values do not pair up, and the caller says so.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from ..errors import NoMapping
from ..onnxutils import quiet
from ..spec import ParitySpec
from ..strategies import arrays_for_dims, export_dims
from .torch import _LOGGERS, Call, _torch, dynamo_arguments


def intermediates(
    model: Any, spec: ParitySpec, call: Call, feeds: Mapping[str, np.ndarray]
) -> dict[str, np.ndarray]:
    torch = _torch()
    arrays = arrays_for_dims(spec, export_dims(spec))
    example = tuple(torch.from_numpy(arrays[i.name]) for i in spec.inputs)
    try:
        with quiet(*_LOGGERS):
            program = torch.onnx.export(
                model, dynamo=True, verbose=False, **dynamo_arguments(torch, spec, call, example)
            )
    except Exception as exc:
        raise NoMapping(f"the dynamo exporter failed on the model again ({type(exc).__name__})") from None
    exported = getattr(program, "exported_program", None)
    if exported is None:
        raise NoMapping("the dynamo exporter kept no program to run")
    failing = dynamo_arguments(
        torch, spec, call, tuple(torch.from_numpy(np.array(feeds[i.name])) for i in spec.inputs)
    )
    try:
        flat, _ = exported._get_flat_args_with_check(failing["args"], failing["kwargs"] or {})
    except Exception:  # torch's own helper (torch.onnx.verification uses it) moved: positional order
        flat = [a for a in failing["args"]] + [
            v for v in (failing["kwargs"] or {}).values() if torch.is_tensor(v)
        ]
    values: dict[str, np.ndarray] = {}

    class Capture(torch.fx.Interpreter):
        def run_node(self, node):
            result = super().run_node(node)
            if node.op == "call_function" and torch.is_tensor(result) and not result.is_complex():
                values[node.name] = result.detach().cpu().numpy().copy()
            return result

    try:
        with torch.no_grad():
            Capture(exported.module()).run(*flat, enable_io_processing=False)
    except Exception as exc:
        raise NoMapping(
            f"the exported program did not run on the failing input ({type(exc).__name__}: {exc})"
        ) from None
    return values
