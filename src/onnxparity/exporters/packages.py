"""Which code is library code — the standard library, an installed package, onnxparity itself —
and the version that keys it: a model's identity digests the user's code and names the library's
by version (:mod:`.walk`).
"""

from __future__ import annotations

import functools
import importlib.metadata
import importlib.util
import os
import sys
import sysconfig
from collections.abc import Mapping


@functools.cache
def _library_roots() -> tuple[str, ...]:
    paths = sysconfig.get_paths()
    roots = {paths.get(k) for k in ("stdlib", "platstdlib", "purelib", "platlib")}
    roots |= {sys.prefix, sys.base_prefix, sys.exec_prefix}
    return tuple(os.path.realpath(r) + os.sep for r in roots if r)


@functools.cache
def _distributions() -> Mapping[str, list[str]]:
    return importlib.metadata.packages_distributions()


def distributions_of(root: str) -> list[str]:
    """The installed distributions that ship top-level package ``root``."""
    return list(_distributions().get(root) or ())


@functools.cache
def version_of(distribution: str) -> str | None:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


def _root(name: str) -> str:
    return name.split(".")[0]


def real_file(module: object) -> str | None:
    """The file ``module`` was loaded from, when it names one: an absolute path to a file that
    exists (its ``__file__``, else its spec's origin). None for a module with no real file —
    ``torch.ops`` says ``__file__ = "_ops.py"``, its namespaces ``"torch.ops"`` — and never a
    path resolved against the working directory (which may be gone)."""
    spec = getattr(module, "__spec__", None)
    for path in (getattr(module, "__file__", None), getattr(spec, "origin", None)):
        if isinstance(path, str) and os.path.isabs(path) and os.path.isfile(path):
            return path
    return None


def _module_file(name: str) -> str | None:
    """The real file of module ``name`` (or of its top-level package), without importing it."""
    module = sys.modules.get(name)
    path = real_file(module) if module is not None else None
    if path:
        return path
    top = sys.modules.get(_root(name))
    path = real_file(top) if top is not None else None
    if path:
        return path
    try:
        spec = importlib.util.find_spec(_root(name))
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.has_location or not isinstance(spec.origin, str) or not os.path.isabs(spec.origin):
        return None
    return spec.origin


def is_library(name: str) -> bool:
    """Whether module ``name`` is library code (the standard library, an installed package,
    onnxparity itself), keyed by versions rather than digested."""
    root = _root(name)
    if root == "onnxparity" or name in sys.builtin_module_names or root in sys.stdlib_module_names:
        return True
    path = _module_file(name)
    if not path:
        return False  # no file to say so: digest what it holds
    try:
        return os.path.realpath(path).startswith(_library_roots())
    except OSError:  # a path that cannot be resolved: no library's
        return False
