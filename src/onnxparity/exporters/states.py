"""The identity of a framework model (:mod:`.identity`): what each framework's objects hold
beyond their weights, and where their code starts.

- **PyTorch**: every submodule's class and attributes (flags, config objects, non-persistent
  buffers, plain tensors), its forward hooks, and the global forward hooks; a submodule held
  outside the module tree (in a plain list, a dict) is digested with its weights.
- **Keras**: the model's config where it has one, every layer's class and attributes beyond
  what Keras itself keeps (its variables by name and shape: the weights are the fingerprint).
- **scikit-learn and gradient-boosted trees**: the estimators' classes and every parameter
  (a ``FunctionTransformer``'s function by its code); the fitted state is the fingerprint.

Each framework is only read through ``sys.modules``: a model of it exists, so it is imported.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import Any

from onnxparity.exporters.identity import memoized
from onnxparity.exporters.packages import is_library
from onnxparity.exporters.walk import Identity, Walker, hash_parts

#: torch.nn.Module attributes that are its machinery, not its behaviour (the parameters and
#: persistent buffers are the fingerprint; submodules are walked by path)
_TORCH_MACHINERY = frozenset(
    {
        "_parameters",
        "_modules",
        "_non_persistent_buffers_set",
        "training",
        "_backward_pre_hooks",
        "_backward_hooks",
        "_is_full_backward_hook",
        "_state_dict_hooks",
        "_state_dict_pre_hooks",
        "_load_state_dict_pre_hooks",
        "_load_state_dict_post_hooks",
        "_forward_hooks_with_kwargs",
        "_forward_hooks_always_called",
        "_forward_pre_hooks_with_kwargs",
    }
)


def _torch_opaque(torch: Any, tree: dict[int, str], walker: Walker) -> Callable[[Any, str], bytes | None]:
    def opaque(value: Any, where: str) -> bytes | None:
        if isinstance(value, torch.Tensor):
            tensor = value.detach()
            if tensor.device.type == "meta":
                walker.refuse(f"{where}: a tensor on the meta device, with no values to digest")
                return hash_parts("meta", id(value))
            flat = tensor.to("cpu").contiguous().reshape(-1)
            data = flat.view(torch.uint8).numpy().tobytes() if flat.numel() else b""
            return hash_parts("tensor", str(tensor.dtype), tuple(tensor.shape), data)
        if isinstance(value, torch.nn.Module):
            path = tree.get(id(value))
            if path is not None:
                return hash_parts("submodule", path)
            return hash_parts("foreign module", *_torch_parts(torch, value, where, walker, weights=True))
        if isinstance(value, (torch.dtype, torch.device, torch.layout, torch.memory_format)):
            return hash_parts(type(value).__name__, str(value))
        if isinstance(value, torch.Generator):
            return hash_parts("generator", value.device, value.get_state().numpy().tobytes())
        script = getattr(getattr(torch, "jit", None), "ScriptFunction", None)
        if script is not None and isinstance(value, script):
            return hash_parts("script", value.code)
        return None

    return opaque


def _torch_parts(torch: Any, model: Any, root: str, walker: Walker, *, weights: bool = False) -> list[bytes]:
    """Each submodule's class, attributes and hooks (and, for a module outside the model's
    tree, its ``weights``: the fingerprint does not hold them)."""
    parts = []
    if weights:
        for name, tensor in model.state_dict().items():
            parts.append(hash_parts(name, walker.value(tensor, f"{root}.{name}")))
    for path, module in model.named_modules():
        where = f"{root}.{path}" if path else root
        parts.append(hash_parts("module", path, walker.cls(type(module), where)))
        if isinstance(module, torch.jit.ScriptModule):
            try:
                parts.append(hash_parts("script", module.code))
            except Exception:  # a scripted module without code of its own
                walker.refuse(f"{where}: a scripted module whose code cannot be read")
        for name, value in vars(module).items():
            if name in _TORCH_MACHINERY:
                continue
            if name == "_buffers":  # persistent buffers are in the state dict (the fingerprint)
                kept = module._non_persistent_buffers_set
                value = {b: t for b, t in value.items() if b in kept}
            elif name in ("_forward_hooks", "_forward_pre_hooks"):
                flags = (
                    vars(module).get(f"{name}_with_kwargs", {}),
                    vars(module).get("_forward_hooks_always_called", {}),
                )
                value = [(hook, key in flags[0], key in flags[1]) for key, hook in value.items()]
            parts.append(hash_parts(name, walker.value(value, f"{where}.{name}")))
    return parts


def torch_identity(model: Any) -> Identity:
    """The identity of a torch module (see the module docstring)."""
    return memoized(model, lambda: _torch_identity(model))


def _torch_identity(model: Any) -> Identity:
    torch = sys.modules["torch"]
    tree = {id(m): path for path, m in model.named_modules()}
    walker = Walker()
    walker.opaque = _torch_opaque(torch, tree, walker)
    root = type(model).__name__
    parts = _torch_parts(torch, model, root, walker)
    hooks = torch.nn.modules.module
    for name in ("_global_forward_hooks", "_global_forward_pre_hooks"):
        registered = getattr(hooks, name, None) or {}
        parts.append(hash_parts(name, walker.value(list(registered.values()), f"{name} (torch's global hooks)")))
    return walker.identity(parts)


@functools.cache
def _keras_machinery(keras: Any) -> frozenset[str]:
    """Attributes every Keras layer and model has: Keras's bookkeeping, not the user's."""
    names = set(vars(keras.layers.Layer()))
    try:
        names |= set(vars(keras.Model()))
    except Exception:  # a Model that cannot be made empty: the layer's are the bulk
        pass
    return frozenset(names)


def keras_identity(model: Any, *, saved_model: bool, keras_model: bool) -> Identity:
    """The identity of a TensorFlow model: a SavedModel is its files (the fingerprint); a Keras
    model its config, its layers' state and code; anything else (a ``tf.function``) has none."""
    if saved_model:
        return Identity("")
    if not keras_model:
        return Identity("", "a tf.function or tf.Module is keyed by its object identity, not its code")
    layers = list(model._flatten_layers(include_self=True, recursive=True))
    return memoized(model, lambda: _keras_identity(model, layers))


def _keras_identity(model: Any, layers: list[Any]) -> Identity:
    keras = sys.modules["keras"]
    tf = sys.modules.get("tensorflow")
    tree = {id(layer): layer.name for layer in layers}
    walker = Walker()

    def opaque(value: Any, where: str) -> bytes | None:
        if isinstance(value, keras.layers.Layer):
            name = tree.get(id(value))
            if name is not None:
                return hash_parts("layer", name)
            walker.refuse(f"{where}: a Keras layer outside the model, whose weights are not the model's")
            return hash_parts("id", id(value))
        if isinstance(value, keras.Variable) or (tf is not None and isinstance(value, tf.Variable)):
            return hash_parts("variable", getattr(value, "path", value.name), tuple(value.shape), str(value.dtype))
        if tf is not None and isinstance(value, tf.Tensor):
            try:
                return hash_parts("tensor", walker.value(value.numpy(), where))
            except Exception:  # a symbolic tensor
                return hash_parts("symbolic", str(value.shape), str(value.dtype))
        if isinstance(value, keras.KerasTensor):
            return hash_parts("symbolic", str(value.shape), str(value.dtype))
        if tf is not None and isinstance(value, tf.DType):
            return hash_parts("dtype", value.name)
        return None

    walker.opaque = opaque
    machinery = _keras_machinery(keras)
    parts = []
    try:
        parts.append(hash_parts("config", walker.value(model.get_config(), "the model's config")))
    except Exception:  # a subclassed model without get_config: its layers say it below
        parts.append(hash_parts("no config"))
    for layer in layers:
        where = f"layer {layer.name!r}"
        parts.append(hash_parts("layer", layer.name, walker.cls(type(layer), where)))
        try:
            parts.append(hash_parts("config", walker.value(layer.get_config(), f"{where}'s config")))
        except Exception:
            parts.append(hash_parts("no config"))
        builtin = is_library(type(layer).__module__)  # Keras's own: its config says what it does
        for name, value in vars(layer).items():
            if (name in machinery or (builtin and name.startswith("_"))) and name not in (
                "name",
                "trainable",
                "dtype_policy",
            ):
                continue
            parts.append(hash_parts(name, walker.value(value, f"{where}.{name}")))
    return walker.identity(parts)


def estimator_identity(model: Any) -> Identity:
    """The identity of a scikit-learn-style estimator: its classes and every parameter (deep),
    functions by their code."""
    return memoized(model, lambda: _estimator_identity(model))


def _estimator_identity(model: Any) -> Identity:
    walker = Walker()
    parts = [walker.cls(type(model), type(model).__name__)]
    params = model.get_params(deep=True) if hasattr(model, "get_params") else {}
    for name, value in sorted(params.items()):
        where = f"{type(model).__name__}.{name}"
        if hasattr(value, "get_params"):  # a nested estimator: its parameters are listed too
            parts.append(hash_parts(name, walker.cls(type(value), where)))
        else:
            parts.append(hash_parts(name, walker.value(value, where)))
    return walker.identity(parts)
