"""PyTorch ``nn.Module`` -> ONNX, and the module itself as the reference.

Export order: the dynamo exporter (``torch.onnx.export(..., dynamo=True)``) with
``dynamic_shapes`` built from the spec's symbolic dims; when it raises, the TorchScript
exporter with ``dynamic_axes``. The dynamo exporter is tried first because the TorchScript one
breaks transformer encoders at any sequence length other than the traced one. Both can
silently specialise a dim (``int(x.shape[0])``, adaptive pooling): the example traced uses
dims >= 2, distinct from each other, and the exported graph's inputs are checked afterwards
(:func:`specialised_dims`); the parity loop then shows where the model breaks.

How inputs reach ``forward``: by keyword when every declared input name is a keyword-capable
parameter of ``forward``, else by position, with ``use_cache=False`` where ``forward`` takes it
(the rule: :func:`.torch_call.plan_call`).

Outputs are flattened depth-first: a tensor is ``output``; a tuple or list gives ``output_0``,
``output_1``...; a dict (a Hugging Face ``ModelOutput`` too) gives its keys in insertion order
(``last_hidden_state``, ``logits``); nesting joins names with ``.`` (``output_1.logits``).
``None`` outputs are dropped, as the exporters drop them. A cache object among the outputs is
an error that says to pass ``use_cache=False``. An output named like an input (a diffusers
UNet's ``forward(sample)`` returns ``{"sample": ...}``) is ``sample_output`` in the file, which
could not be valid otherwise; a note says both names (:func:`.base.outputs_apart`).

What torch prints while exporting — warnings, log records, and what its C++ writes straight to
the terminal (a failed TorchScript export prints the whole graph) — is kept out of the user's
output and of failure messages, in ``export.log`` beside the file (``ExportedModel.log``).
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import hashlib
import os
import sys
from collections.abc import Iterator, Mapping
from typing import Any, cast

import numpy as np

from onnxparity.draw import arrays_for_dims, export_dims
from onnxparity.environment import quiet
from onnxparity.errors import ExportError
from onnxparity.exporters.base import (
    ExportedModel,
    Exporter,
    Reference,
    class_root,
    export_folder,
    exported_model,
    flatten_outputs,
    outputs_apart,
    root_cause,
)
from onnxparity.exporters.identity import known_fingerprint
from onnxparity.exporters.torch_call import TORCH_LOGGERS, Call, dynamo_arguments, import_torch, plan_call
from onnxparity.graph.files import load_model
from onnxparity.graph.nodes import default_opset
from onnxparity.spec import ParitySpec


def fingerprint(model: Any) -> str:
    """A digest of the module's class and every parameter and buffer, to key caches by."""
    torch = import_torch()
    h = hashlib.blake2b(digest_size=16)
    h.update(f"{type(model).__module__}.{type(model).__qualname__}".encode())
    with torch.no_grad():
        for name, tensor in model.state_dict().items():
            h.update(name.encode())
            h.update(str(tuple(tensor.shape)).encode())
            h.update(str(tensor.dtype).encode())
            flat = tensor.detach().to("cpu").contiguous().reshape(-1)
            if flat.numel():  # the tensor's own memory, not a copy: a 2 GB embedding stays 2 GB
                h.update(flat.view(torch.uint8).numpy())
    return h.hexdigest()


def check_fit(model: Any, spec: ParitySpec | None = None) -> None:
    """Raise when the model cannot give a deterministic CPU reference."""
    torch = import_torch()
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
    torch = import_torch()
    try:
        return flatten_outputs(outputs, lambda v: isinstance(v, torch.Tensor))
    except ExportError:
        found = _find_cache(outputs, "")
        if found is None:
            raise
        where, cache = found
        raise ExportError(
            f"the model returned a {type(cache).__name__} at {where or 'the top level'}: a key/value "
            "cache, not a tensor, and an ONNX graph has no place for it; call the model with "
            "use_cache=False: set model.config.use_cache = False (Hugging Face), or give forward a "
            "use_cache parameter (onnxparity passes use_cache=False to a forward that takes one)"
        ) from None


def _find_cache(value: Any, where: str) -> tuple[str, Any] | None:
    """The first key/value cache object (DynamicCache, EncoderDecoderCache...) in outputs."""
    if type(value).__name__.endswith("Cache") or callable(getattr(value, "get_seq_length", None)):
        return where, value
    if isinstance(value, Mapping):
        items = [(f"{where}.{k}" if where else str(k), v) for k, v in value.items()]
    elif isinstance(value, (tuple, list)):
        items = [(f"{where}.{i}" if where else f"output_{i}", v) for i, v in enumerate(value)]
    else:
        return None
    return next((found for k, v in items if (found := _find_cache(v, k)) is not None), None)


def _to_numpy(tensor: Any) -> np.ndarray:
    torch = import_torch()
    tensor = tensor.detach()
    if not tensor.is_cpu:
        tensor = tensor.cpu()
    if tensor.dtype == torch.bfloat16:
        tensor = tensor.float()
    return cast(np.ndarray, tensor.numpy())


def make_reference(model: Any, spec: ParitySpec, call: Call | None = None) -> Reference:
    """The module on CPU under ``torch.inference_mode()``, as numpy in -> numpy out."""
    torch = import_torch()
    call = call or plan_call(model, spec)

    def reference(feeds: Mapping[str, np.ndarray]) -> list[np.ndarray]:
        # A copy: a module may write into its input (x.mul_(2)), and the inputs are shared
        # with the ONNX runtimes checked next (numpy's copy, then shared: 2.3 -> 0.7 us a call).
        args = [torch.from_numpy(np.array(feeds[n])) for n in call.names]
        with torch.inference_mode():
            outputs = call(model, args)
        return [_to_numpy(t) for _, t in named_outputs(outputs)]

    return reference


def _positional(torch: Any, model: Any, call: Call) -> Any:
    """``model`` behind a forward taking the declared inputs positionally (the TorchScript
    exporter's way), in eval mode: that exporter restores the wrapper's mode on every submodule."""

    class PositionalCall(torch.nn.Module):  # type: ignore[misc]  # (torch is imported at runtime: Any)
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, *args: Any) -> Any:
            return call(self.model, args)

    return PositionalCall().eval()


def export(
    model: Any,
    spec: ParitySpec,
    *,
    workdir: str,
    opset: int | None = None,
    call: Call | None = None,
    source: str = "torch",
    identity: str | None = None,
) -> ExportedModel:
    """Export ``model`` at ``spec``'s dims into ``workdir``, calling it as ``call`` says;
    ``source`` and ``identity`` (the source's fingerprint of the model) key the export."""
    torch = import_torch()

    check_fit(model)
    call = call or plan_call(model, spec)
    identity = identity or fingerprint(model)
    digest = hashlib.blake2b(f"{identity}{call}".encode(), digest_size=16).hexdigest()
    key = f"{source}-{digest}-{spec.input_digest}-opset{opset}"
    path = os.path.join(export_folder(workdir, key), "model.onnx")
    os.makedirs(os.path.dirname(path), exist_ok=True)

    dims = export_dims(spec)
    arrays = arrays_for_dims(spec, dims)
    args = tuple(torch.from_numpy(arrays[i.name]) for i in spec.inputs)
    with torch.inference_mode():
        try:
            example_outputs = call(model, args)
        except Exception as exc:
            shapes = ", ".join(f"{n}{list(a.shape)} {a.dtype}" for n, a in arrays.items())
            raise ExportError(
                f"{type(model).__name__} raised on the export example ({shapes}): "
                f"{type(exc).__name__}: {exc}; check that op.Input shapes and dtypes match forward() "
                f"(the inputs were passed {call.describe()})"
            ) from exc
    input_names = [i.name for i in spec.inputs]
    output_names, renamed, notes = outputs_apart([name for name, _ in named_outputs(example_outputs)], input_names)

    printed: list[str] = []  # what torch printed while exporting: kept in export.log, not shown

    def torchscript_export() -> None:
        traced = _positional(torch, model, call) if call.keyword or call.fixed else model
        with exporting(torch, printed):
            torch.onnx.export(
                traced,
                args,
                path,
                dynamo=False,
                input_names=input_names,
                output_names=output_names,
                dynamic_axes=_dynamic_axes(spec),
                opset_version=opset,
            )

    how = dynamo_arguments(torch, spec, call, args)
    exporter = "torch.onnx dynamo exporter"
    try:
        with exporting(torch, printed):
            program = torch.onnx.export(
                model,
                f=path,
                dynamo=True,
                output_names=output_names,
                opset_version=opset,
                external_data=True,
                verbose=False,
                **how,
            )
        keep_program(program_key(identity, call, spec), getattr(program, "exported_program", None))
    except Exception as dynamo_exc:
        reason = root_cause(dynamo_exc)
        exporter = "torch.onnx TorchScript exporter"
        notes.append(f"the dynamo exporter failed ({reason}); used the TorchScript exporter")
        try:
            torchscript_export()
        except Exception as legacy_exc:
            raise left_out(
                ExportError(
                    f"torch.onnx could not export {type(model).__name__}:\n"
                    f"  dynamo exporter: {reason}\n"
                    f"  TorchScript exporter: {root_cause(legacy_exc)}"
                ),
                path,
                printed,
            ) from legacy_exc

    got = default_opset(load_model(path))
    if opset is not None and got != opset and exporter == "torch.onnx dynamo exporter":
        # The dynamo exporter cannot emit every opset (asked for 13 it silently emits 18).
        try:
            torchscript_export()
            exporter = "torch.onnx TorchScript exporter"
            notes.append(f"the dynamo exporter emits opset {got}, not {opset}; used the TorchScript exporter")
        except Exception as exc:
            raise left_out(
                ExportError(
                    f"torch.onnx's dynamo exporter emits opset {got}, not {opset}, and the TorchScript exporter "
                    f"failed at {opset}: {root_cause(exc)}"
                ),
                path,
                printed,
            ) from exc

    proto = load_model(path)
    exported = exported_model(path, proto, spec, exporter=exporter, key=key, notes=notes)
    return dataclasses.replace(exported, log=keep_log(path, printed), renamed=renamed)


@contextlib.contextmanager
def exporting(torch: Any, printed: list[str]) -> Iterator[None]:
    """A torch export step kept quiet, native output too (the TorchScript exporter prints the
    whole graph to ``std::cout`` when it fails); what it printed goes into ``printed``. The
    TorchScript exporter turns torch's ONNX log on for the rest of the process (it reads
    ``_C._jit_is_onnx_log_enabled`` without calling it): it is put back as it was."""
    reads: Any = getattr(torch._C, "_jit_is_onnx_log_enabled", None)
    was = bool(reads()) if callable(reads) else None
    swallowed = None
    try:
        with quiet(*TORCH_LOGGERS, native=True) as swallowed:
            yield
    finally:
        if swallowed:
            printed.append(swallowed.text)
        if was is not None and was != bool(reads()):
            torch._C._jit_set_onnx_log_enabled(was)


def left_out(error: ExportError, path: str, printed: list[str]) -> ExportError:
    """``error`` saying how much torch printed (kept out of the message: a failed TorchScript
    export prints the whole graph), with the text as ``error.printed`` and the file kept as
    ``error.log`` (:func:`keep_log`) for whoever keeps the failure's files."""
    text = "".join(printed)
    lines = len(text.strip().splitlines())
    error.printed = text  # type: ignore[attr-defined]
    error.log = keep_log(path, printed)  # type: ignore[attr-defined]
    if lines:
        error.args = (f"{error.args[0]}\n  (torch printed {lines} lines while exporting: left out here)",)
    return error


def keep_log(path: str, printed: list[str]) -> str:
    """What torch printed while exporting, as ``export.log`` beside the file at ``path`` (kept
    for the reproducer, out of the failure message); its path, or "" when it printed nothing."""
    log = os.path.join(os.path.dirname(path), "export.log")
    text = "".join(printed)
    with contextlib.suppress(OSError):
        os.remove(log)  # an earlier export's
    if not text.strip():
        return ""
    try:
        with open(log, "w", encoding="utf-8") as f:
            f.write(text)
    except OSError:
        return ""
    return log


#: the programs the dynamo exporter last translated, by :func:`program_key`: a failure's
#: localization runs the very program the ONNX values are named after, without exporting again
PROGRAMS: collections.OrderedDict[str, Any] = collections.OrderedDict()
KEEP_PROGRAMS = 4


def program_key(identity: str, call: Call, spec: ParitySpec) -> str:
    """What a dynamo export's program depends on: the model (its fingerprint), the call, the inputs."""
    return hashlib.blake2b(f"{identity}{call}{spec.input_digest}".encode(), digest_size=16).hexdigest()


def keep_program(key: str, program: Any) -> None:
    if program is not None:
        PROGRAMS[key] = program
        PROGRAMS.move_to_end(key)
        while len(PROGRAMS) > KEEP_PROGRAMS:
            PROGRAMS.popitem(last=False)


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
    torch = import_torch()
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

    packages: tuple[str, ...] = ("torch", "onnx", "onnxscript")

    def fingerprint(self, model: Any) -> str:
        return f"{fingerprint(model)}-{self.identity(model).digest[:20]}"

    def identity(self, model: Any) -> Any:
        from onnxparity.exporters.states import torch_identity

        return torch_identity(model)

    def check_fit(self, model: Any, spec: ParitySpec) -> None:
        check_fit(model, spec)
        self.plan_call(model, spec)  # an input that would land on another parameter: before export

    def export(self, model: Any, spec: ParitySpec, *, workdir: str, opset: int | None) -> ExportedModel:
        call = self.plan_call(model, spec)
        return export(
            model,
            spec,
            workdir=workdir,
            opset=opset,
            call=call,
            source=self.name,
            # the check's own fingerprint, while it exports: a 2.25 GB model's weights hashed once
            identity=known_fingerprint(model) or self.fingerprint(model),
        )

    def reference(self, model: Any, spec: ParitySpec, exported: ExportedModel) -> Reference:
        return make_reference(model, spec, self.plan_call(model, spec))

    def model_facts(self, model: Any) -> dict[str, Any]:
        """A transformers model's ``config``: its model type, heads and hidden size (read by
        attribute: transformers is not imported)."""
        config = getattr(model, "config", None)
        model_type = getattr(config, "model_type", None)
        if not isinstance(model_type, str) or not model_type:
            return {}
        facts: dict[str, Any] = {"model_type": model_type}
        for key, names in (
            ("num_heads", ("num_attention_heads", "n_head", "num_heads", "encoder_attention_heads")),
            ("hidden_size", ("hidden_size", "n_embd", "d_model", "dim")),
        ):
            value = next((getattr(config, n) for n in names if isinstance(getattr(config, n, None), int)), None)
            if value is not None:
                facts[key] = int(value)
        return facts

    def reference64(self, model: Any, spec: ParitySpec, exported: ExportedModel) -> Reference | None:
        """A float64 copy of the module, made on first use (a failing example), float feeds widened."""
        call = self.plan_call(model, spec)
        held: list[Reference] = []

        def reference(feeds: Mapping[str, np.ndarray]) -> list[np.ndarray]:
            if not held:
                import copy

                held.append(make_reference(copy.deepcopy(model).double(), spec, call))
            wide = {n: v.astype(np.float64) if np.asarray(v).dtype.kind == "f" else v for n, v in feeds.items()}
            return held[0](wide)

        return reference

    def intermediates(
        self, model: Any, spec: ParitySpec, feeds: Mapping[str, Any], graph: Any
    ) -> dict[str, Any]:
        from onnxparity.exporters.torch_values import intermediates

        call = self.plan_call(model, spec)
        kept = PROGRAMS.get(program_key(self.fingerprint(model), call, spec))
        return intermediates(model, spec, call, feeds, graph, kept)

    def plan_call(self, model: Any, spec: ParitySpec) -> Call:
        """How the declared inputs reach ``forward`` (:func:`.torch_call.plan_call`)."""
        return plan_call(model, spec)

    def seed(self, seed: int) -> None:
        torch = sys.modules.get("torch")
        if torch is not None:
            torch.manual_seed(seed)

    def limit_threads(self, threads: int) -> contextlib.AbstractContextManager[Any]:
        return limit_threads(threads)


#: the built-in instance (:data:`onnxparity.exporters.BUILTINS` names it)
EXPORTER = TorchExporter()
