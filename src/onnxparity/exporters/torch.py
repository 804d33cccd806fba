"""PyTorch ``nn.Module`` -> ONNX, and the module itself as the reference.

Export order: the dynamo exporter (``torch.onnx.export(..., dynamo=True)``) with
``dynamic_shapes`` built from the spec's symbolic dims; when it raises, the TorchScript
exporter with ``dynamic_axes``. The dynamo exporter is tried first because the TorchScript one
breaks transformer encoders at any sequence length other than the traced one. Both can
silently specialise a dim (``int(x.shape[0])``, adaptive pooling): the example traced uses
dims >= 2, distinct from each other, and the exported graph's inputs are checked afterwards
(:func:`specialised_dims`); the parity loop then shows where the model breaks.

Inputs are passed to ``forward`` positionally, in the order the spec declares them. Outputs
are flattened depth-first: a tensor is ``output``; a tuple or list gives ``output_0``,
``output_1``...; a dict gives its keys in insertion order; nesting joins names with ``.``
(``output_1.logits``). ``None`` outputs are dropped, as the exporters drop them.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import sys
from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np

from ..errors import ExportError
from ..onnxutils import default_opset, load_model, quiet
from ..spec import ParitySpec
from ..strategies import arrays_for_dims, export_dims
from . import (
    ExportedModel,
    Exporter,
    Reference,
    class_root,
    exported_model,
    flatten_outputs,
    register_exporter,
    require,
    root_cause,
)

_LOGGERS = ("torch", "onnxscript", "onnx_ir")


def _torch():
    return require("torch", "torch", "torch")


def fingerprint(model: Any) -> str:
    """A digest of the module's class and every parameter and buffer, to key caches by."""
    torch = _torch()
    h = hashlib.blake2b(digest_size=16)
    h.update(f"{type(model).__module__}.{type(model).__qualname__}".encode())
    with torch.no_grad():
        for name, tensor in model.state_dict().items():
            h.update(name.encode())
            h.update(str(tuple(tensor.shape)).encode())
            h.update(str(tensor.dtype).encode())
            flat = tensor.detach().to("cpu").contiguous().reshape(-1)
            h.update(flat.view(torch.uint8).numpy().tobytes() if flat.numel() else b"")
    return h.hexdigest()


def check_fit(model: Any, spec: ParitySpec | None = None) -> None:
    """Raise when the model cannot give a deterministic CPU reference."""
    torch = _torch()
    if not isinstance(model, torch.nn.Module):
        raise ExportError(
            f"{type(model).__name__} is not a torch.nn.Module; wrap the callable in one, "
            "or give onnx= and reference= instead"
        )
    training = [name or type(model).__name__ for name, m in model.named_modules() if m.training]
    if training:
        raise ExportError(
            f"{type(model).__name__} is in training mode ({training[0]} has training=True): "
            "call model.eval() first: dropout/batch-norm make outputs random"
        )
    devices = {p.device.type for p in model.parameters()} | {b.device.type for b in model.buffers()}
    if devices - {"cpu"}:
        raise ExportError(
            f"{type(model).__name__} has parameters on {', '.join(sorted(devices - {'cpu'}))}: "
            "the reference runs on CPU; pass model.cpu()"
        )


def named_outputs(outputs: Any) -> list[tuple[str, Any]]:
    """A forward's outputs, named and flattened in the documented order."""
    torch = _torch()
    return flatten_outputs(outputs, lambda v: isinstance(v, torch.Tensor))


def _to_numpy(tensor) -> np.ndarray:
    torch = _torch()
    tensor = tensor.detach().to("cpu")
    if tensor.dtype == torch.bfloat16:
        tensor = tensor.float()
    return tensor.numpy()


def make_reference(model: Any, spec: ParitySpec) -> Reference:
    """The module on CPU under ``torch.inference_mode()``, as numpy in -> numpy out."""
    torch = _torch()
    names = [i.name for i in spec.inputs]

    def reference(feeds: Mapping[str, np.ndarray]) -> list[np.ndarray]:
        # A copy: a module may write into its input (x.mul_(2)), and the inputs are shared
        # with the ONNX runtimes checked next.
        args = [torch.tensor(feeds[n]) for n in names]
        with torch.inference_mode():
            outputs = model(*args)
        return [_to_numpy(t) for _, t in named_outputs(outputs)]

    return reference


def export(model: Any, spec: ParitySpec, *, workdir: str, opset: int | None = None) -> ExportedModel:
    """Export ``model`` at ``spec``'s dims into ``workdir``."""
    torch = _torch()

    check_fit(model)
    key = f"torch-{fingerprint(model)}-{spec.input_digest}-opset{opset}"
    path = os.path.join(workdir, f"export-{key[:48]}", "model.onnx")
    os.makedirs(os.path.dirname(path), exist_ok=True)

    dims = export_dims(spec)
    arrays = arrays_for_dims(spec, dims)
    args = tuple(torch.from_numpy(arrays[i.name]) for i in spec.inputs)
    with torch.inference_mode():
        try:
            example_outputs = model(*args)
        except Exception as exc:
            shapes = ", ".join(f"{n}{list(a.shape)} {a.dtype}" for n, a in arrays.items())
            raise ExportError(
                f"{type(model).__name__} raised on the export example ({shapes}): "
                f"{type(exc).__name__}: {exc}; check that op.Input shapes and dtypes match forward()"
            ) from exc
    output_names = [name for name, _ in named_outputs(example_outputs)]
    input_names = [i.name for i in spec.inputs]

    notes: list[str] = []

    def torchscript_export() -> None:
        with quiet(*_LOGGERS):
            torch.onnx.export(
                model,
                args,
                path,
                dynamo=False,
                input_names=input_names,
                output_names=output_names,
                dynamic_axes=_dynamic_axes(spec),
                opset_version=opset,
            )

    exporter = "torch.onnx dynamo exporter"
    try:
        with quiet(*_LOGGERS):
            torch.onnx.export(
                model,
                args,
                path,
                dynamo=True,
                dynamic_shapes=_dynamic_shapes(torch, spec),
                input_names=input_names,
                output_names=output_names,
                opset_version=opset,
                external_data=True,
                verbose=False,
            )
    except Exception as dynamo_exc:
        reason = root_cause(dynamo_exc)
        exporter = "torch.onnx TorchScript exporter"
        notes.append(f"the dynamo exporter failed ({reason}); used the TorchScript exporter")
        try:
            torchscript_export()
        except Exception as legacy_exc:
            raise ExportError(
                f"torch.onnx could not export {type(model).__name__}:\n"
                f"  dynamo exporter: {reason}\n"
                f"  TorchScript exporter: {root_cause(legacy_exc)}"
            ) from legacy_exc

    got = default_opset(load_model(path))
    if opset is not None and got != opset and exporter == "torch.onnx dynamo exporter":
        # The dynamo exporter cannot emit every opset (asked for 13 it silently emits 18).
        try:
            torchscript_export()
            exporter = "torch.onnx TorchScript exporter"
            notes.append(f"the dynamo exporter emits opset {got}, not {opset}; used the TorchScript exporter")
        except Exception as exc:
            raise ExportError(
                f"torch.onnx's dynamo exporter emits opset {got}, not {opset}, and the TorchScript exporter "
                f"failed at {opset}: {root_cause(exc)}"
            ) from exc

    proto = load_model(path)
    return exported_model(path, proto, spec, exporter=exporter, key=key, notes=notes)


def _dynamic_shapes(torch, spec: ParitySpec) -> tuple:
    torch_dims = {
        name: torch.export.Dim(name, min=dim.first, max=dim.last)
        for name, dim in spec.dims.items()
        if dim.values_count > 1
    }
    shapes = []
    for item in spec.inputs:
        axes = {
            axis: torch_dims[e] for axis, e in enumerate(item.shape) if isinstance(e, str) and e in torch_dims
        }
        shapes.append(axes or None)
    return tuple(shapes)


def _dynamic_axes(spec: ParitySpec) -> dict[str, dict[int, str]]:
    axes: dict[str, dict[int, str]] = {}
    for item in spec.inputs:
        named = {axis: e for axis, e in enumerate(item.shape) if isinstance(e, str)}
        if named:
            axes[item.name] = named
    return axes


@contextlib.contextmanager
def limit_threads(threads: int) -> Iterator[None]:
    """PyTorch with ``threads`` intra-op threads, restored after.

    Measured on 2 cores: torch eager slowed from ~0.3 ms to ~52 ms when its thread pool competed
    with ONNX Runtime's; timing both sides with the same small thread count avoids it."""
    torch = _torch()
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


class TorchExporter(Exporter):
    """``torch.nn.Module`` (in eval mode, on CPU)."""

    name = "torch"
    extra = "torch"

    def detects(self, model: Any) -> bool:
        return "torch" in class_root(model)

    def fingerprint(self, model: Any) -> str:
        return fingerprint(model)

    def check_fit(self, model: Any, spec: ParitySpec) -> None:
        check_fit(model, spec)

    def export(self, model: Any, spec: ParitySpec, *, workdir: str, opset: int | None) -> ExportedModel:
        return export(model, spec, workdir=workdir, opset=opset)

    def reference(self, model: Any, spec: ParitySpec, exported: ExportedModel) -> Reference:
        return make_reference(model, spec)

    def seed(self, seed: int) -> None:
        torch = sys.modules.get("torch")
        if torch is not None:
            torch.manual_seed(seed)

    def limit_threads(self, threads: int) -> contextlib.AbstractContextManager:
        return limit_threads(threads)


register_exporter(TorchExporter(), replace=True)
