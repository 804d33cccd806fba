"""A PyTorch model's intermediate values, by the name of the ONNX value each became.

- **Dynamo exports.** The dynamo exporter names every ONNX value it lowers from an FX node
  after that node (``conv2d``, ``hardtanh``, ``linear``; ``torch.onnx.verification`` relies on
  the same). The model is exported once more, without a file, by the same call as the export
  (so the program and its names are the same), and the program's graph runs in an FX
  interpreter on the failing input, keeping the tensor of every ``call_function`` node whose
  name the ONNX graph has.
- **TorchScript exports** name nodes by module scope (``/encoder/layers.0/linear1/MatMul``).
  Forward hooks record every call of every submodule on the failing input, and a call's output
  pairs with the one ONNX value that leaves that call's nodes (produced inside, read outside);
  a call with several such values, or a non-tensor output, is left out rather than guessed. A
  module called several times (a detection head shared across feature levels) has a scope per
  call: ``head/act`` for the first, ``head/act_1`` for the second (see :class:`_Calls`).
  A module the exporter folded into the one before it (a BatchNorm into its Conv, in eval mode)
  leaves no node: the Conv's value is the BatchNorm's output, and pairs with it (measured: the
  Conv module's own output once blamed the first Conv for a bias lost in the second). Every
  torch function's output on the way is kept too (``unnamed``, at most :data:`UNNAMED_BYTES`):
  where names do not tell, forensics pairs them by value (:func:`onnxparity.forensics.export.
  by_value`), so a functional call between two modules is seen agreeing or not.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from onnxparity.draw import arrays_for_dims, export_dims
from onnxparity.environment import quiet
from onnxparity.errors import NoMapping
from onnxparity.exporters.torch_call import TORCH_LOGGERS, Call, dynamo_arguments, import_torch
from onnxparity.graph.nodes import leaving_values, scope_tokens
from onnxparity.spec import ParitySpec

#: the framework values kept for pairing by value (bytes): beyond, the rest is not kept
UNNAMED_BYTES = 64 << 20


class Intermediates(dict[str, np.ndarray]):
    """Values by ONNX value name, and the framework's other values on the way (``unnamed``:
    every torch function's output, in call order), which forensics may pair by value."""

    def __init__(self, values: dict[str, np.ndarray], unnamed: list[np.ndarray]) -> None:
        super().__init__(values)
        self.unnamed = unnamed


def intermediates(
    model: Any, spec: ParitySpec, call: Call, feeds: Mapping[str, np.ndarray], graph: Any, kept: Any = None
) -> dict[str, np.ndarray]:
    """``kept``: the program this session's export of the model translated, if still held."""
    produced = {out for node in graph.node for out in node.output if out}
    if any(node.name.startswith("/") for node in graph.node):  # TorchScript's scope names
        return _by_module(model, spec, call, feeds, graph)
    return _by_fx_name(model, spec, call, feeds, kept, produced)


def _tensors(feeds: Mapping[str, np.ndarray], spec: ParitySpec, torch: Any) -> tuple[Any, ...]:
    return tuple(torch.from_numpy(np.array(feeds[i.name])) for i in spec.inputs)


def _by_fx_name(
    model: Any,
    spec: ParitySpec,
    call: Call,
    feeds: Mapping[str, np.ndarray],
    kept: Any = None,
    wanted: set[str] | frozenset[str] = frozenset(),
) -> dict[str, np.ndarray]:
    """The tensors of the FX nodes named in ``wanted``, and the others as ``unnamed`` (a prebuilt
    file from elsewhere names none of them: its values are then paired by value)."""
    torch = import_torch()
    exported = kept
    if exported is None:  # exported in another session, or evicted: export again, in memory
        arrays = arrays_for_dims(spec, export_dims(spec))
        example = tuple(torch.from_numpy(arrays[i.name]) for i in spec.inputs)
        try:
            with quiet(*TORCH_LOGGERS, native=True):
                program = torch.onnx.export(
                    model, dynamo=True, verbose=False, **dynamo_arguments(torch, spec, call, example)
                )
        except Exception as exc:
            raise NoMapping(f"the dynamo exporter failed on the model again ({type(exc).__name__})") from None
        exported = getattr(program, "exported_program", None)
    if exported is None:
        raise NoMapping("the dynamo exporter kept no program to run")
    failing = dynamo_arguments(torch, spec, call, _tensors(feeds, spec, torch))
    try:
        flat, _ = exported._get_flat_args_with_check(failing["args"], failing["kwargs"] or {})
    except Exception:  # torch's own helper (torch.onnx.verification uses it) moved: positional order
        flat = [*failing["args"], *[v for v in (failing["kwargs"] or {}).values() if torch.is_tensor(v)]]
    values: dict[str, np.ndarray] = {}
    unnamed: list[np.ndarray] = []  # a file whose names are not the FX nodes' pairs these by value
    held = [0]  # bytes of unnamed

    class Capture(torch.fx.Interpreter):  # type: ignore[name-defined, misc]  # (torch is imported at runtime: Any)
        def run_node(self, node: Any) -> Any:
            result = super().run_node(node)
            if torch.is_tensor(result) and not result.is_complex():
                if node.name in wanted:
                    values[node.name] = result.detach().cpu().numpy().copy()
                elif result.numel() > 1 and held[0] + result.numel() * result.element_size() <= UNNAMED_BYTES:
                    unnamed.append(result.detach().cpu().numpy().copy())
                    held[0] += result.numel() * result.element_size()
            return result

    try:
        with torch.no_grad(), quiet(*TORCH_LOGGERS, native=True):
            Capture(exported.module()).run(*flat, enable_io_processing=False)
    except Exception as exc:
        raise NoMapping(
            f"the exported program did not run on the failing input ({type(exc).__name__}: {exc})"
        ) from None
    return Intermediates(values, unnamed)


def _by_module(
    model: Any, spec: ParitySpec, call: Call, feeds: Mapping[str, np.ndarray], graph: Any
) -> dict[str, np.ndarray]:
    torch = import_torch()
    calls = _Calls(torch)
    unnamed: list[np.ndarray] = []
    kept = [0]  # bytes

    class Record(torch.overrides.TorchFunctionMode):  # type: ignore[name-defined, misc]  # (torch: a runtime import)
        """Every torch function's tensor outputs, copied, within :data:`UNNAMED_BYTES`."""

        def __torch_function__(
            self,
            func: Callable[..., Any],
            types: Any,
            args: Sequence[Any] = (),
            kwargs: Mapping[str, Any] | None = None,
        ) -> Any:
            result = func(*args, **(kwargs or {}))
            for value in result if isinstance(result, (tuple, list)) else (result,):
                if torch.is_tensor(value) and not value.is_complex() and value.numel() > 1:
                    size = value.numel() * value.element_size()
                    if kept[0] + size <= UNNAMED_BYTES:
                        unnamed.append(value.detach().cpu().numpy().copy())
                        kept[0] += size
            return result

    hooks = []
    for path, module in model.named_modules():
        if path:
            hooks.append(module.register_forward_pre_hook(calls.enter(path)))
            hooks.append(module.register_forward_hook(calls.leave(path)))
    try:
        with torch.no_grad(), Record(), quiet(*TORCH_LOGGERS, native=True):
            call(model, _tensors(feeds, spec, torch))
    except Exception as exc:
        raise NoMapping(f"the model did not run on the failing input ({type(exc).__name__})") from None
    finally:
        for hook in hooks:
            hook.remove()
    members = calls.members(graph)
    folded = _folded_into(calls.outputs, members, calls.reads, calls.returned)
    paired: dict[str, np.ndarray] = {}
    for key in calls.outputs:
        leaving = (
            leaving_values(graph, lambda node, own=members[key]: id(node) in own) if members[key] else []
        )
        if len(leaving) == 1 and leaving[0] not in paired:
            paired[leaving[0]] = calls.outputs[folded.get(key, key)]
    if not paired and not unnamed:
        raise NoMapping("no module's output pairs with exactly one value of the TorchScript export")
    return Intermediates(paired, unnamed)


class _Calls:
    """Every call of every submodule on one run, in order: a module called several times (a
    detection head shared across feature levels) has one entry per call, ``(path, k)`` for its
    k-th call, with the call it ran inside. The TorchScript exporter names the nodes of the
    k-th call of ``head.conv`` by the scope ``head/conv_k`` (``head/conv`` for the first): the
    module's path with the call's count on its last part, its parents by their plain names."""

    def __init__(self, torch: Any) -> None:
        self.torch = torch
        self.count: dict[str, int] = {}
        self.stack: list[tuple[str, int]] = []
        self.parent: dict[tuple[str, int], tuple[str, int] | None] = {}
        #: each call's tensor output, the ids of the tensors it read and returned
        self.outputs: dict[tuple[str, int], np.ndarray] = {}
        self.reads: dict[tuple[str, int], list[int]] = {}
        self.returned: dict[tuple[str, int], int] = {}
        self.alive: list[Any] = []  # kept alive, so their ids stay theirs

    def enter(self, path: str) -> Callable[[Any, Any], None]:
        def hook(module: Any, args: Any) -> None:
            k = self.count.get(path, 0)
            self.count[path] = k + 1
            self.parent[(path, k)] = self.stack[-1] if self.stack else None
            self.stack.append((path, k))

        return hook

    def leave(self, path: str) -> Callable[[Any, Any, Any], None]:
        torch = self.torch

        def hook(module: Any, args: Any, result: Any) -> None:
            if self.stack and self.stack[-1][0] == path:
                key = self.stack.pop()
            else:  # entered without its pre-hook: its latest call
                key = (path, self.count.get(path, 1) - 1)
            if torch.is_tensor(result) and not result.is_complex():
                self.outputs[key] = result.detach().cpu().numpy().copy()
                self.returned[key] = id(result)
                self.reads[key] = [id(a) for a in args if torch.is_tensor(a)]
                self.alive.extend([result, *args])

        return hook

    @staticmethod
    def scope(key: tuple[str, int]) -> tuple[str, ...]:
        """The scope tokens of a call's own nodes (see :func:`scope_tokens`)."""
        path, k = key
        parts = path.split(".")
        if k:
            parts[-1] = f"{parts[-1]}_{k}"
        return tuple(parts)

    def members(self, graph: Any) -> dict[tuple[str, int], set[int]]:
        """Each call's nodes (by id): those of its own scope and of the calls it made. The
        scopes may sit under a prefix (the exporter's wrapper module, ``model``): the prefix
        most nodes agree on is taken."""
        scopes = {key: self.scope(key) for key in self.parent}
        nodes = [(node, tuple(scope_tokens(node))) for node in graph.node]
        self.alive.append(nodes)  # a node's id is its wrapper's, which lives while held
        known = set(scopes.values())
        prefixes: dict[tuple[str, ...], int] = {}
        for _, tokens in nodes:
            for at in range(len(tokens)):
                if tokens[at:] in known:
                    prefixes[tokens[:at]] = prefixes.get(tokens[:at], 0) + 1
        prefix = min(prefixes, key=lambda p: (-prefixes[p], len(p))) if prefixes else ()
        by_scope: dict[tuple[str, ...], set[int]] = {}
        for node, tokens in nodes:
            if tokens[: len(prefix)] == prefix:
                by_scope.setdefault(tokens[len(prefix) :], set()).add(id(node))
        members = {key: set(by_scope.get(scopes[key], ())) for key in self.parent}
        for key in reversed(list(self.parent)):  # a call's nodes count for the calls around it
            outer = self.parent[key]
            if outer is not None:
                members[outer] |= members[key]
        return members


def _folded_into(
    outputs: Mapping[tuple[str, int], Any],
    members: Mapping[tuple[str, int], set[int]],
    reads: Mapping[tuple[str, int], list[int]],
    returned: Mapping[tuple[str, int], int],
) -> dict[tuple[str, int], tuple[str, int]]:
    """Module -> the module whose output its ONNX value computes, where the modules after it
    left no node of their own: the exporter folded them in (a BatchNorm into the Conv before it,
    in eval mode). The Conv's ONNX value is then the BatchNorm's output, not the Conv module's."""
    takes: dict[int, tuple[str, int]] = {}  # a tensor's id -> the node-less module that read it
    for path in outputs:
        if not members[path] and len(reads[path]) == 1:
            takes.setdefault(reads[path][0], path)
    folded: dict[tuple[str, int], tuple[str, int]] = {}
    for path in outputs:
        last, seen = path, {path}
        while returned.get(last) in takes and takes[returned[last]] not in seen:
            last = takes[returned[last]]
            seen.add(last)
        if last != path:
            folded[path] = last
    return folded
