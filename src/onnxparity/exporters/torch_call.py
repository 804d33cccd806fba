"""How a PyTorch module is called, shared by its export (:mod:`.torch`) and the replay of its
values for forensics (:mod:`.torch_values`): importing torch on first use, the :class:`Call`
that passes the declared inputs to ``forward`` (:func:`plan_call`), and the arguments of the
dynamo exporter that make the same call with the declared dims dynamic (:func:`dynamo_arguments`).
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from onnxparity.errors import InvalidSpec
from onnxparity.exporters.base import require
from onnxparity.spec import ParitySpec

#: the loggers torch's exporters write to, kept quiet while they run
TORCH_LOGGERS = ("torch", "onnxscript", "onnx_ir")


def import_torch() -> Any:
    """``torch``, imported on first use (FrameworkNotInstalled naming the extra when missing)."""
    return require("torch", "torch", "torch")


@dataclass(frozen=True)
class Call:
    """How the declared inputs reach ``forward``: by keyword or by position, plus constant
    keyword arguments (``use_cache=False``). The export and the reference both call through it."""

    names: tuple[str, ...]
    keyword: bool
    fixed: Mapping[str, Any] = field(default_factory=dict)

    def __call__(self, model: Any, tensors: Sequence[Any]) -> Any:
        if self.keyword:
            return model(**dict(zip(self.names, tensors)), **self.fixed)
        return model(*tensors, **self.fixed)

    def describe(self) -> str:
        how = "by keyword" if self.keyword else "positionally"
        fixed = ", ".join(f"{k}={v!r}" for k, v in self.fixed.items())
        return how + (f", with {fixed}" if fixed else "")


def forward_parameters(model: Any) -> dict[str, inspect.Parameter] | None:
    """``forward``'s parameters (``self`` excluded), or None when they cannot be read."""
    try:
        return dict(inspect.signature(model.forward).parameters)
    except (TypeError, ValueError, AttributeError):
        return None


def plan_call(model: Any, spec: ParitySpec, fixed: Mapping[str, Any] | None = None) -> Call:
    """How the declared inputs reach ``forward``. ``fixed``: constant keyword arguments to pass
    where ``forward`` takes them and the spec does not declare them; default ``use_cache=False``.

    When every declared input name is a parameter of ``forward`` that can be passed by keyword,
    they are passed by keyword — in the export (``kwargs=``, ``dynamic_shapes`` keyed by name) and
    in the reference alike — so ``op.Input("attention_mask", ...)`` lands in ``attention_mask``
    whatever its position (GPT-2 takes ``cache`` second). Otherwise they are passed positionally,
    in the order the spec declares them; an input named after one ``forward`` parameter but
    landing on another is an error, not a silent mix-up. A ``forward`` that takes ``use_cache``
    (undeclared) gets ``use_cache=False``: a key/value cache is no tensor, and the ONNX graph has
    no place for it."""
    names = tuple(i.name for i in spec.inputs)
    params = forward_parameters(model)
    if params is None:
        return Call(names, keyword=False)
    by_name = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    named = [n for n, p in params.items() if p.kind in by_name]
    keyword = all(n in named for n in names)
    filled = set(names)
    if not keyword:
        positional = [
            n for n, p in params.items() if p.kind in (inspect.Parameter.POSITIONAL_ONLY, by_name[0])
        ]
        for position, name in enumerate(names):
            if name in named and position < len(positional) and positional[position] != name:
                unknown = [n for n in names if n not in named]
                them = "it is" if len(unknown) == 1 else "they are"
                raise InvalidSpec(
                    f"Input({name!r}) would be passed by position to {type(model).__name__}.forward's "
                    f"parameter {positional[position]!r}: inputs are passed by keyword only when every "
                    f"declared name is a forward parameter, and {', '.join(map(repr, unknown))}: {them} not "
                    f"(forward takes {', '.join(named)}); rename, or declare the inputs in forward's order"
                )
        filled = set(positional[: len(names)])
    wanted = {"use_cache": False} if fixed is None else dict(fixed)
    constants = {k: v for k, v in wanted.items() if k in named and k not in filled}
    return Call(names, keyword, constants)


def dynamo_arguments(torch: Any, spec: ParitySpec, call: Call, args: tuple[Any, ...]) -> dict[str, Any]:
    """The arguments of ``torch.onnx.export(dynamo=True)`` that pass ``args`` (tensors in the
    declared inputs' order) as ``call`` says, with the declared dims dynamic."""
    if call.keyword:  # graph inputs take forward's parameter names, which are the declared ones
        how: dict[str, Any] = dict(args=(), kwargs={**dict(zip(call.names, args)), **call.fixed})
        shapes = _dynamic_shapes(torch, spec)
        how["dynamic_shapes"] = {**dict(zip(call.names, shapes)), **dict.fromkeys(call.fixed)}
        return how
    how = dict(args=args, kwargs=dict(call.fixed) or None, input_names=[i.name for i in spec.inputs])
    how["dynamic_shapes"] = _dynamic_shapes(torch, spec)
    if call.fixed:
        how["dynamic_shapes"] = (*how["dynamic_shapes"], *([None] * len(call.fixed)))
    return how


def _dynamic_shapes(torch: Any, spec: ParitySpec) -> tuple[dict[int, Any] | None, ...]:
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
