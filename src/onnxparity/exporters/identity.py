"""What an export depends on besides the weights: the user's code. A cached export is reused
only when the source files of the classes that make up the model — and, transitively, of the
user modules those files reference — are byte for byte the same; library code is covered by
the library versions in the key. Where the code cannot be pinned down honestly, there is no
identity and the export is not cached (the report says why): a class defined interactively or
inside a function (it may close over values its source does not show), a ``forward`` replaced
on an instance, hooks registered on a module.
"""

from __future__ import annotations

import functools
import hashlib
import inspect
import os
import sys
import sysconfig
import types
from collections.abc import Iterable
from typing import Any


class NotCacheable(Exception):
    """The model's export cannot be keyed honestly; the message says why."""


@functools.cache
def _library_roots() -> tuple[str, ...]:
    paths = sysconfig.get_paths()
    roots = {paths.get(k) for k in ("stdlib", "platstdlib", "purelib", "platlib")}
    roots |= {sys.prefix, sys.base_prefix, sys.exec_prefix}
    return tuple(os.path.realpath(r) + os.sep for r in roots if r)


def _user_file(module: types.ModuleType | None) -> str | None:
    """The source file of a module the user wrote (not the standard library, not an installed
    package, not onnxparity itself); None otherwise."""
    if module is None or module.__name__.split(".")[0] == "onnxparity":
        return None
    path = getattr(module, "__file__", None)
    if not path or not path.endswith(".py"):
        return None
    real = os.path.realpath(path)
    return None if real.startswith(_library_roots()) else real


def code_digest(classes: Iterable[Any]) -> str:
    """A digest of the source files behind ``classes`` (classes or functions: anything with
    ``__module__`` and ``__qualname__``; see the module's docstring); raise
    :class:`NotCacheable` naming the one whose code cannot be pinned down."""
    files: dict[str, None] = {}
    pending = []
    for cls in classes:
        module = sys.modules.get(cls.__module__)
        if "<locals>" in cls.__qualname__:
            raise NotCacheable(
                f"{cls.__qualname__} is defined inside a function: it may use values its source does not show"
            )
        if cls.__module__ == "__main__" and _user_file(module) is None:
            raise NotCacheable(f"{cls.__qualname__} is defined interactively: it has no source file")
        if module is not None and _user_file(module) is not None:
            pending.append(module)
    seen: set[str] = set()
    while pending:  # the user modules these files reach through their globals
        module = pending.pop()
        path = _user_file(module)
        if path is None or path in seen:
            continue
        seen.add(path)
        files[path] = None
        for value in list(vars(module).values()):
            owner = value if isinstance(value, types.ModuleType) else inspect.getmodule(value)
            if owner is not None and owner is not module and _user_file(owner) not in seen:
                pending.append(owner)
    h = hashlib.blake2b(digest_size=20)
    for path in sorted(files):
        h.update(os.path.basename(path).encode())
        with open(path, "rb") as f:
            h.update(f.read())
    return h.hexdigest()


@functools.cache
def onnxparity_digest() -> str:
    """A digest of onnxparity's own source (an editable install changes without a version)."""
    import onnxparity

    root = os.path.dirname(onnxparity.__file__)
    h = hashlib.blake2b(digest_size=16)
    for folder, _, names in sorted(os.walk(root)):
        for name in sorted(n for n in names if n.endswith(".py")):
            with open(os.path.join(folder, name), "rb") as f:
                h.update(name.encode() + f.read())
    return h.hexdigest()


def torch_identity(model: Any) -> str:
    """The code behind a torch module: every submodule's class, checked for instance-level
    changes the source does not show."""
    import torch

    global_hooks = [
        getattr(torch.nn.modules.module, name, {})
        for name in ("_global_forward_hooks", "_global_forward_pre_hooks")
    ]
    if any(global_hooks):
        raise NotCacheable(
            "global forward hooks are registered (torch.nn.modules.module.register_module_forward_hook)"
        )
    classes = {}
    for name, module in model.named_modules():
        where = name or type(model).__name__
        if "forward" in vars(module):
            raise NotCacheable(f"{where}.forward is replaced on the instance: its source is not the class's")
        if module._forward_hooks or module._forward_pre_hooks:
            raise NotCacheable(f"{where} has forward hooks registered: what they do is not in its source")
        classes[type(module)] = None
    return code_digest(classes)


def classes_of(objects: Iterable[Any]) -> list[type]:
    return list(dict.fromkeys(type(o) for o in objects))
