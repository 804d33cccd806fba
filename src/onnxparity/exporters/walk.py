"""Digests of values and of the code they reach: the machinery behind a model's identity
(:mod:`.identity` states the rule). A :class:`Walker` turns numbers, containers, objects,
classes, functions and modules into digests, keys library code by its package's version, and
records the first reason a digest cannot key the persistent cache.
"""

from __future__ import annotations

import dataclasses
import dis
import enum
import functools
import hashlib
import importlib
import importlib.metadata
import importlib.util
import os
import re
import sys
import types
from collections.abc import Callable, Iterable, Mapping
from typing import Any, cast

from onnxparity.exporters.packages import distributions_of, is_library, real_file, version_of


class NotCacheable(Exception):
    """The model's export cannot be keyed honestly; the message says why."""


@dataclasses.dataclass(frozen=True)
class Identity:
    """A digest of a model's state and code; ``why`` it cannot key the persistent cache (None:
    it can)."""

    digest: str
    why: str | None = None


#: class attributes that say nothing about behaviour
_CLASS_NOISE = frozenset(
    {"__dict__", "__weakref__", "__module__", "__qualname__", "__doc__", "__annotations__", "_abc_impl",
     "__slots__", "__firstlineno__", "__static_attributes__", "__parameters__", "__orig_bases__"}
)
_PRIMITIVES = (bool, int, float, complex, str, bytes)
#: how deep a value is followed before it is called too deep to digest
MAX_DEPTH = 60


def hash_parts(*parts: Any) -> bytes:
    h = hashlib.blake2b(digest_size=20)
    for part in parts:
        data = part if isinstance(part, bytes) else str(part).encode("utf-8", "surrogatepass")
        h.update(len(data).to_bytes(8, "little"))
        h.update(data)
    return h.digest()


def _file_bytes(path: str) -> bytes | None:
    """The file's bytes; None when it cannot be read."""
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError:
        return None


def _namespace(module: Any) -> bool:
    """Whether ``module`` is a namespace package (folders, no file)."""
    spec = getattr(module, "__spec__", None)
    return (
        getattr(module, "__file__", None) is None
        and spec is not None
        and spec.origin in (None, "namespace")
        and spec.submodule_search_locations is not None
    )


def _described(value: Any) -> str:
    kind = type(value)
    name = f"{kind.__module__}.{kind.__qualname__}" if kind.__module__ != "builtins" else kind.__name__
    return f"{'an' if name[0].lower() in 'aeiou' else 'a'} {name}"


class Walker:
    """Digests values and the code they reach (see the module docstring). ``opaque(value,
    where)`` lets a model source digest its framework's objects (tensors, layers) first: it
    returns bytes, or None to leave the value to the generic rules."""

    def __init__(self, opaque: Callable[[Any, str], bytes | None] | None = None) -> None:
        self.opaque = opaque
        #: the first reason the digest cannot key the persistent cache
        self.why: str | None = None
        #: distributions whose code was reached -> their versions
        self.versions: dict[str, str] = {}
        self._memo: dict[int, bytes] = {}
        self._active: set[int] = set()
        self._alive: list[Any] = []  # the walk's objects stay alive: their ids stay theirs
        self._depth = 0
        self._modules: dict[tuple[str, tuple[str, ...]], bytes] = {}

    # -- results -----------------------------------------------------------------------------
    def refuse(self, why: str) -> None:
        if self.why is None:
            self.why = why

    def identity(self, parts: Iterable[bytes]) -> Identity:
        h = hashlib.blake2b(digest_size=20)
        for part in parts:
            h.update(part)
        h.update(hash_parts(sorted(self.versions.items())))
        return Identity(h.hexdigest(), self.why)

    # -- values ------------------------------------------------------------------------------
    def value(self, value: Any, where: str) -> bytes:
        kind = type(value)
        if value is None or value is Ellipsis or value is NotImplemented or kind in _PRIMITIVES:
            return hash_parts(kind.__name__, repr(value))
        key = id(value)
        memo = self._memo.get(key)
        if memo is not None:
            return memo
        if key in self._active:
            return hash_parts("cycle")
        if self._depth >= MAX_DEPTH:
            self.refuse(f"{where}: nested more than {MAX_DEPTH} levels deep")
            return hash_parts("deep", key)
        self._active.add(key)
        self._alive.append(value)
        self._depth += 1
        try:
            out = self._value(value, where)
        finally:
            self._depth -= 1
            self._active.discard(key)
        self._memo[key] = out
        return out

    def _value(self, value: Any, where: str) -> bytes:
        kind = type(value)
        if self.opaque is not None:
            found = self.opaque(value, where)
            if found is not None:
                return found
        if isinstance(value, type):
            return self.cls(value, where)
        if isinstance(value, types.FunctionType):
            return self.function(value, where)
        if isinstance(value, types.ModuleType):
            return self.module(value.__name__, (), where)
        if isinstance(value, types.MethodType):
            return hash_parts(
                "method",
                self.value(value.__func__, where),  # (a function, or any callable bound as a method)
                self.value(value.__self__, where),
            )
        if isinstance(value, functools.partial):
            return hash_parts(
                "partial",
                self.value(value.func, where),
                self.value(value.args, where),
                self.value(value.keywords, where),
            )
        if isinstance(value, (staticmethod, classmethod)):
            return hash_parts(kind.__name__, self.value(value.__func__, where))
        if isinstance(value, property):
            return hash_parts("property", *(self.value(f, where) for f in (value.fget, value.fset, value.fdel)))
        if isinstance(value, types.CodeType):
            return self.code(value, {}, where)
        if isinstance(value, enum.Enum):
            return hash_parts("enum", self.cls(kind, where), value.name)
        if isinstance(value, (bool, int, float, complex, str, bytes)):  # subclasses
            return hash_parts(self.cls(kind, where), repr(kind.__mro__[-2](value)))
        if isinstance(value, (tuple, list)):
            return hash_parts(self.cls(kind, where), *(self.value(v, f"{where}[{i}]") for i, v in enumerate(value)))
        if isinstance(value, Mapping):
            return hash_parts(
                self.cls(kind, where),
                *(
                    hash_parts(self.value(k, where), self.value(v, f"{where}[{k!r}]"))
                    for k, v in _items(value, where, self)
                ),
            )
        if isinstance(value, (set, frozenset)):
            return hash_parts(self.cls(kind, where), *sorted(self.value(v, where) for v in value))
        if isinstance(value, (range, slice, re.Pattern)):
            return hash_parts(kind.__name__, repr(value), getattr(value, "flags", ""))
        array = _numpy(value, where, self)
        if array is not None:
            return array
        if dataclasses.is_dataclass(value):
            return hash_parts(
                "dataclass",
                self.cls(kind, where),
                *(
                    hash_parts(f.name, self.value(getattr(value, f.name, None), f"{where}.{f.name}"))
                    for f in dataclasses.fields(value)
                ),
            )
        if callable(value) and not hasattr(value, "__dict__"):  # builtins, ufuncs, C callables
            return self.native(value, where)
        return self.instance(value, where)

    def instance(self, value: Any, where: str) -> bytes:
        """An object by its class and what it holds (``__dict__`` and ``__slots__``); one whose
        state lives in native code (a lock, a file, an extension type) is refused."""
        kind = type(value)
        native = [k for k in kind.__mro__[:-1] if _native(k)]
        state: dict[str, Any] = dict(getattr(value, "__dict__", None) or {})
        for klass in kind.__mro__:
            slots = getattr(klass, "__slots__", ())
            for slot in (slots,) if isinstance(slots, str) else slots:
                if slot not in ("__dict__", "__weakref__") and hasattr(value, slot):
                    state.setdefault(slot, getattr(value, slot))
        if native:
            self.refuse(f"{where}: {_described(value)} with no stable digest (its state is native)")
            return hash_parts("id", id(value))
        return hash_parts(
            "object",
            self.cls(kind, where),
            *(hash_parts(name, self.value(v, f"{where}.{name}")) for name, v in state.items()),
        )

    def native(self, value: Any, where: str) -> bytes:
        """A callable without Python code: library code by its package's version; else refused."""
        module = getattr(value, "__module__", None) or type(value).__module__
        name = getattr(value, "__qualname__", None) or getattr(value, "__name__", None) or type(value).__qualname__
        if module and is_library(module):
            self.library(module, where)
            return hash_parts("native", module, name)
        self.refuse(
            f"{where}: {module}.{name} is a C-extension callable outside an installed package; its code cannot be read"
        )
        return hash_parts("id", id(value))

    # -- code ----------------------------------------------------------------------------------
    def library(self, module: str, where: str) -> None:
        """Key library module ``module`` by its distribution's version."""
        root = module.split(".")[0]
        if root == "onnxparity" or root in sys.stdlib_module_names or module in sys.builtin_module_names:
            return  # onnxparity's own digest and Python's version key every entry
        names = distributions_of(root)
        if not names:
            self.refuse(f"{where}: {module} is from no installed package with a version")
            return
        for name in names:
            found = version_of(name)
            if found is None:
                self.refuse(f"{where}: {module} is from package {name}, which has no version")
            else:
                self.versions[name] = found

    def cls(self, klass: type, where: str) -> bytes:
        key = id(klass)
        memo = self._memo.get(key)
        if memo is not None:
            return memo
        module = getattr(klass, "__module__", "") or ""
        if module and is_library(module):
            self.library(module, where)
            out = hash_parts("class", module, klass.__qualname__)
            self._memo[key] = out
            return out
        self._memo[key] = hash_parts("class", module, klass.__qualname__)  # recursion through its own methods
        parts = [hash_parts("class", module, klass.__qualname__)]
        parts += [self.cls(base, where) for base in klass.__bases__]
        for name, attr in vars(klass).items():
            if name in _CLASS_NOISE:
                continue
            parts.append(hash_parts(name, self.value(attr, f"{klass.__qualname__}.{name}")))
        out = hash_parts(*parts)
        self._memo[key] = out
        return out

    def function(self, fn: types.FunctionType, where: str) -> bytes:
        module = getattr(fn, "__module__", None) or ""
        if module and is_library(module):
            self.library(module, where)
            return hash_parts("function", module, fn.__qualname__)
        name = fn.__qualname__
        parts = [
            hash_parts("function", name),
            self.code(fn.__code__, fn.__globals__, name),
            self.value(fn.__defaults__, f"{name} (defaults)"),
            self.value(fn.__kwdefaults__, f"{name} (defaults)"),
        ]
        for var, cell in zip(fn.__code__.co_freevars, fn.__closure__ or ()):
            try:
                contents = cell.cell_contents
            except ValueError:
                parts.append(hash_parts("empty cell", var))
                continue
            parts.append(hash_parts(var, self.value(contents, f"{name} (closure variable {var})")))
        return hash_parts(*parts)

    def code(self, code: types.CodeType, globals_: Mapping[str, Any], where: str) -> bytes:
        names: set[str] = set()
        out = self._code(code, names)
        parts = [out]
        for name in sorted(names):
            if name in globals_:
                value = globals_[name]
                if isinstance(value, types.ModuleType):
                    parts.append(hash_parts(name, self.module(value.__name__, names, f"{where} uses {name}")))
                else:
                    parts.append(hash_parts(name, self.value(value, f"{where} uses {name}")))
        for module in sorted(_imports_inside(code, globals_)):
            parts.append(hash_parts("import", module, self.module(module, names, where, inside=True)))
        return hash_parts(*parts)

    def _code(self, code: types.CodeType, names: set[str]) -> bytes:
        """Compiled code without its line numbers; the names it uses go into ``names``."""
        names.update(code.co_names)
        consts = []
        for const in code.co_consts:
            if isinstance(const, types.CodeType):
                consts.append(self._code(const, names))
            else:
                consts.append(self.value(const, getattr(code, "co_qualname", code.co_name)))
        return hash_parts(
            code.co_code,
            code.co_flags,
            code.co_argcount,
            code.co_posonlyargcount,
            code.co_kwonlyargcount,
            code.co_name,
            code.co_names,
            code.co_varnames,
            code.co_freevars,
            code.co_cellvars,
            getattr(code, "co_exceptiontable", b""),
            *consts,
        )

    def module(self, name: str, names: Iterable[str], where: str, *, inside: bool = False) -> bytes:
        """A module the code reaches: a library's version, or a user module's file and the
        attributes of it the code names."""
        if is_library(name):
            self.library(name, where)
            return hash_parts("library module", name)
        names = tuple(sorted(set(names)))
        memo = self._modules.get((name, names))
        if memo is not None:
            return memo
        self._modules[(name, names)] = hash_parts("module", name)  # a module that reaches itself
        out = self._user_module(name, names, where, inside)
        self._modules[(name, names)] = out
        return out

    def _user_module(self, name: str, names: tuple[str, ...], where: str, inside: bool) -> bytes:
        module = sys.modules.get(name)
        if module is None:
            try:
                module = importlib.import_module(name)  # what the function would import when run
            except Exception as exc:
                self.refuse(f"{where} imports {name} inside the function, and it cannot be imported ({exc})")
                return hash_parts("missing", name)
        parts = [hash_parts("module", name)]
        path = real_file(module)
        source = _file_bytes(path) if path and path.endswith(".py") else None
        told = f"{where}: {name}{', imported inside the function,' if inside else ''}"
        if source is not None:
            parts.append(source)
        elif path and path.endswith(".py"):
            self.refuse(f"{told}: its source file {path} cannot be read")
        elif path:
            self.refuse(f"{told} is {os.path.basename(path)}, native code outside an installed package")
        elif not _namespace(module):  # a namespace package has no code of its own to read
            stated = getattr(module, "__file__", None)
            self.refuse(
                f"{told} has no readable source file"
                + (f" (its __file__ is {stated!r})" if stated else "")
                + " and is from no installed package, so its code cannot be digested"
            )
        for attr in names:
            if attr in vars(module):
                value = vars(module)[attr]
                if isinstance(value, types.ModuleType):
                    parts.append(hash_parts(attr, self.module(value.__name__, (), f"{where} uses {name}.{attr}")))
                else:
                    parts.append(hash_parts(attr, self.value(value, f"{where} uses {name}.{attr}")))
        return hash_parts(*parts)


def _native(kind: type) -> bool:
    """Whether ``kind`` is defined in native code (a builtin or extension module): its
    instances may hold state no attribute shows."""
    name = getattr(kind, "__module__", None) or ""
    if name in sys.builtin_module_names or (name == "builtins" and kind is not object):
        return True
    module = sys.modules.get(name)
    path = real_file(module) if module is not None else None
    return bool(path) and not cast(str, path).endswith(".py")


def _items(mapping: Mapping[Any, Any], where: str, walker: Walker) -> list[tuple[Any, Any]]:
    try:
        return list(mapping.items())
    except Exception as exc:  # a mapping whose items cannot be listed
        walker.refuse(f"{where}: a mapping whose items cannot be read ({type(exc).__name__})")
        return []


def _numpy(value: Any, where: str, walker: Walker) -> bytes | None:
    np = sys.modules.get("numpy")
    if np is None:
        return None
    if isinstance(value, np.ndarray):
        if value.dtype.hasobject:
            return hash_parts("object array", value.shape, *(walker.value(v, where) for v in value.ravel().tolist()))
        return hash_parts("array", value.dtype.str, value.shape, np.ascontiguousarray(value).tobytes())
    if isinstance(value, np.generic):
        return hash_parts("scalar", value.dtype.str, value.tobytes())
    if isinstance(value, np.dtype):
        return hash_parts("dtype", value.str)
    pd = sys.modules.get("pandas")
    if pd is not None and isinstance(value, (pd.DataFrame, pd.Series, pd.Index)):
        frame = value.to_frame() if isinstance(value, pd.Series) else value
        columns = list(frame.columns) if isinstance(frame, pd.DataFrame) else [frame.name]
        dtypes = list(frame.dtypes) if isinstance(frame, pd.DataFrame) else [frame.dtype]
        rows = pd.util.hash_pandas_object(frame, index=not isinstance(frame, pd.Index)).to_numpy()
        return hash_parts(type(value).__name__, repr(columns), repr(dtypes), walker.value(frame.index, where)
                  if not isinstance(frame, pd.Index) else b"", rows.tobytes())  # fmt: skip
    return None


def _imports_inside(code: types.CodeType, globals_: Mapping[str, Any]) -> set[str]:
    """Absolute names of the modules ``code`` (and code nested in it) imports when it runs."""
    found: set[str] = set()
    stack = [code]
    while stack:
        current = stack.pop()
        stack.extend(c for c in current.co_consts if isinstance(c, types.CodeType))
        level = 0
        for instruction in dis.get_instructions(current):
            if instruction.opname == "LOAD_CONST" and isinstance(instruction.argval, int):
                level = instruction.argval
            elif instruction.opname == "IMPORT_NAME":
                name = instruction.argval
                if level:
                    try:
                        name = importlib.util.resolve_name("." * level + name, globals_.get("__package__"))
                    except (ImportError, ValueError):
                        continue
                found.add(name.rstrip("."))
                level = 0
    return found
