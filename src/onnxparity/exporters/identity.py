"""What an export depends on besides the weights: the model's other state and the code it runs.

A cached export (and a passing result searched on it) is reused only when a fresh run would
export the same file, so the identity digests everything the export reads:

- **state**: every value a model object holds beyond its weights — numbers, strings, enums,
  tuples, dicts, dataclasses and config objects (a transformers config), recursively; tensors
  and arrays that are not parameters (non-persistent buffers, plain tensor attributes) by
  their bytes;
- **code**: every user function and method reachable from the model — its classes' methods,
  hooks, the module globals, closure cells, defaults and attributes of imported modules that
  code names, and the modules it imports inside a function — digested as compiled code
  (bytecode, constants, names; not line numbers, so a comment or a blank line changes
  nothing), and the source file of each user module it reaches as a whole (for names read
  dynamically). Library code is keyed by the version of the distribution that ships it
  (the standard library by Python's version, which keys every entry);
- **the test function** that builds the model (the plugin passes it; see :func:`origin_digest`).

Where a value has no stable digest (an object with native state: a lock, a file, a tokenizer
backed by Rust), a callable is native code outside an installed package, or an import inside
a function cannot be found, the identity says why (:attr:`Identity.why`) and the export is
never reused across runs; within one run such a value is keyed by the object itself (its
``id``, held alive by the session), so two different objects are never confused.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import os
import types
from collections.abc import Callable, Iterator
from typing import Any

from onnxparity.exporters.packages import is_library
from onnxparity.exporters.walk import Identity, NotCacheable, Walker

__all__ = ["Identity", "NotCacheable", "Walker", "is_library", "memoized", "once", "onnxparity_digest", "origin_digest"]


@functools.cache
def onnxparity_digest() -> str:
    """A digest of onnxparity's own source (an editable install changes without a version)."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # the package's folder
    h = hashlib.blake2b(digest_size=16)
    for folder, _, names in sorted(os.walk(root)):
        for name in sorted(n for n in names if n.endswith(".py")):
            with open(os.path.join(folder, name), "rb") as f:
                h.update(name.encode() + f.read())
    return h.hexdigest()


_ONCE: dict[int, Identity] | None = None


@contextlib.contextmanager
def once() -> Iterator[None]:
    """Within this block a model's identity is computed once (a fingerprint and the identity
    of one check ask for it both)."""
    global _ONCE
    outer = _ONCE
    _ONCE = {} if outer is None else outer
    try:
        yield
    finally:
        _ONCE = outer


_KNOWN: dict[int, str] = {}


@contextlib.contextmanager
def fingerprinted(model: Any, fingerprint: str) -> Iterator[None]:
    """Within this block :func:`known_fingerprint` gives ``model``'s fingerprint as computed
    when its check began (no user code runs in between): an export keys itself by it without
    reading every weight again (2.25 GB: ~2 s of hashing)."""
    previous = _KNOWN.get(id(model))
    _KNOWN[id(model)] = fingerprint
    try:
        yield
    finally:
        if previous is None:
            _KNOWN.pop(id(model), None)
        else:
            _KNOWN[id(model)] = previous


def known_fingerprint(model: Any) -> str | None:
    """``model``'s fingerprint inside :func:`fingerprinted`, else None."""
    return _KNOWN.get(id(model))


def memoized(model: Any, compute: Callable[[], Identity]) -> Identity:
    """``compute()``, once per model inside :func:`once`."""
    if _ONCE is None:
        return compute()
    found = _ONCE.get(id(model))
    if found is None:
        found = _ONCE[id(model)] = compute()
    return found


def origin_digest(function: Any) -> Identity:
    """The identity of the function that builds a model (a test function), with what its code
    reaches."""
    walker = Walker()
    target = getattr(function, "__func__", function)
    if not isinstance(target, types.FunctionType):
        return Identity("")
    part = walker.function(target, f"the test {target.__qualname__}")
    return walker.identity([part])
