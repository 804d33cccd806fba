"""Framework model -> ONNX file + a reference callable.

Each framework lives in its own module, imported only when a model of that framework is
checked: ``import onnxparity`` imports no framework. An exporter returns an
:class:`ExportedModel` (where the ONNX file is, how it was made, what it noticed) and a
:data:`Reference` (numpy feeds -> list of numpy outputs in the ONNX output order).
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import io
import logging
import os
import re
import shutil
import sys
import warnings
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import InvalidSpec
from ..spec import ParitySpec

#: numpy feeds by input name -> outputs in ONNX output order.
Reference = Callable[[Mapping[str, np.ndarray]], list]


@dataclass(frozen=True)
class ExportedModel:
    """An ONNX model on disk (external data beside it) and how it came to be."""

    path: str
    input_names: tuple[str, ...]
    output_names: tuple[str, ...]
    exporter: str
    opset: int | None
    key: str
    notes: tuple[str, ...] = field(default_factory=tuple)

    def describe(self) -> str:
        opset = f", opset {self.opset}" if self.opset is not None else ""
        return f"{self.exporter}{opset}"


def flatten_outputs(
    outputs: Any, is_leaf: Callable[[Any], bool], *, sort_keys: bool = False, prefix: str = ""
) -> list[tuple[str, Any]]:
    """Name and flatten a model's outputs depth-first: a leaf is ``output``; a tuple or list
    gives ``output_0``, ``output_1``...; a dict gives its keys (in insertion order, or sorted
    when the framework flattens dicts that way); nesting joins names with ``.``. ``None`` is
    dropped, as the exporters drop it."""
    if is_leaf(outputs):
        return [(prefix or "output", outputs)]
    if outputs is None:
        return []
    if isinstance(outputs, (tuple, list)):
        base = f"{prefix}." if prefix else "output_"
        return [
            pair
            for i, v in enumerate(outputs)
            for pair in flatten_outputs(v, is_leaf, sort_keys=sort_keys, prefix=f"{base}{i}")
        ]
    if isinstance(outputs, Mapping):
        base = f"{prefix}." if prefix else ""
        keys = sorted(outputs) if sort_keys else list(outputs)
        return [
            pair
            for k in keys
            for pair in flatten_outputs(outputs[k], is_leaf, sort_keys=sort_keys, prefix=f"{base}{k}")
        ]
    from ..errors import ExportError

    raise ExportError(
        f"the model returned a {type(outputs).__name__} at {prefix or 'the top level'}; "
        "parity compares tensors: return tensors, or tuples/lists/dicts of them"
    )


@contextlib.contextmanager
def quiet(*logger_prefixes: str) -> Iterator[None]:
    """Keep a framework's warnings, log records and prints out of the user's output while
    it exports; its errors still arrive as exceptions."""
    manager = logging.Logger.manager
    names = list(logger_prefixes) + [n for n in list(manager.loggerDict) if n.startswith(logger_prefixes)]
    loggers = [logging.getLogger(n) for n in dict.fromkeys(names)]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    try:
        with (
            warnings.catch_warnings(),
            contextlib.redirect_stdout(io.StringIO()),
            contextlib.redirect_stderr(io.StringIO()),
        ):
            warnings.simplefilter("ignore")
            yield
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)


def rename_values(model_proto, renames: Mapping[str, str]) -> None:
    """Rename graph inputs/outputs (and every reference to them) in place."""
    renames = {old: new for old, new in renames.items() if old != new}
    if not renames:
        return
    graph = model_proto.graph
    for value in list(graph.input) + list(graph.output) + list(graph.value_info):
        if value.name in renames:
            value.name = renames[value.name]
    for node in graph.node:
        for i, name in enumerate(node.input):
            if name in renames:
                node.input[i] = renames[name]
        for i, name in enumerate(node.output):
            if name in renames:
                node.output[i] = renames[name]


def rename_dim_params(model_proto, renames: Mapping[str, str]) -> None:
    """Rename symbolic dims (``unk__3`` -> ``batch``) throughout the graph's declared shapes."""
    graph = model_proto.graph
    for value in list(graph.input) + list(graph.output) + list(graph.value_info):
        if value.type.HasField("tensor_type") and value.type.tensor_type.HasField("shape"):
            for dim in value.type.tensor_type.shape.dim:
                if dim.dim_param in renames:
                    dim.dim_param = renames[dim.dim_param]


def require(module: str, framework: str, extra: str, *loggers: str) -> Any:
    """Import ``module`` on first use (quietly, for the given loggers); a missing one is
    :class:`FrameworkNotInstalled` naming the extra to install. Already imported: free."""
    loaded = sys.modules.get(module)
    if loaded is not None:
        return loaded
    from ..errors import FrameworkNotInstalled

    try:
        with quiet(*loggers) if loggers else contextlib.nullcontext():
            return importlib.import_module(module)
    except ImportError as exc:
        raise FrameworkNotInstalled(framework, extra) from exc


_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def root_cause(exc: BaseException) -> str:
    """The innermost cause's type and first line: exporters wrap the real reason in advice."""
    while exc.__cause__ is not None:
        exc = exc.__cause__
    lines = [line.strip() for line in _ANSI.sub("", str(exc)).splitlines() if line.strip()]
    return f"{type(exc).__name__}: {lines[0] if lines else ''}"[:300]


def framework_of(model: Any) -> str | None:
    """'torch', 'tensorflow' or 'sklearn', judged from the model's class without importing;
    a directory holding ``saved_model.pb`` is a TensorFlow SavedModel."""
    if isinstance(model, (str, os.PathLike)):
        return "tensorflow" if os.path.isfile(os.path.join(os.fspath(model), "saved_model.pb")) else None
    for cls in type(model).__mro__:
        root = (cls.__module__ or "").split(".")[0]
        if root == "torch":
            return "torch"
        if root in ("keras", "tensorflow", "tf_keras"):
            return "tensorflow"
        if root == "sklearn":
            return "sklearn"
    return None


def model_name(model: Any) -> str:
    """What a report calls the model: its class, or a SavedModel directory's name."""
    if isinstance(model, (str, os.PathLike)):
        return os.path.basename(os.path.normpath(os.fspath(model)))
    return type(model).__name__


def default_opset(model_proto) -> int | None:
    for entry in model_proto.opset_import:
        if entry.domain in ("", "ai.onnx"):
            return int(entry.version)
    return None


def specialised_dims(model_proto, spec: ParitySpec) -> list[str]:
    """Notes for each dim the spec declares symbolic but the ONNX graph fixes to a size,
    and for each input whose rank disagrees with the spec."""
    graph_inputs = {i.name: i for i in model_proto.graph.input}
    notes = []
    for item in spec.inputs:
        graph_input = graph_inputs.get(item.name)
        if graph_input is None or not graph_input.type.HasField("tensor_type"):
            continue
        tensor = graph_input.type.tensor_type
        if not tensor.HasField("shape"):
            continue
        dims = tensor.shape.dim
        if len(dims) != len(item.shape):
            notes.append(
                f"input {item.name!r} has rank {len(dims)} in the ONNX graph but the spec "
                f"declares shape {item.shape} (rank {len(item.shape)})"
            )
            continue
        for axis, (entry, dim) in enumerate(zip(item.shape, dims)):
            if isinstance(entry, str) and spec.dims[entry].values_count > 1:
                if dim.HasField("dim_value") and not dim.dim_param:
                    notes.append(
                        f"input {item.name!r} axis {axis} ({entry!r}) is fixed at size "
                        f"{dim.dim_value} in the ONNX graph: the exporter specialised a dim "
                        f"declared dynamic, so other sizes are rejected or computed wrongly"
                    )
    return notes


def check_input_names(model_proto, spec: ParitySpec) -> None:
    """Raise when the spec's inputs and the ONNX graph's inputs do not correspond."""
    initializers = {t.name for t in model_proto.graph.initializer}
    graph_names = [i.name for i in model_proto.graph.input if i.name not in initializers]
    declared = [i.name for i in spec.inputs]
    missing = [n for n in declared if n not in graph_names]
    extra = [n for n in graph_names if n not in declared]
    if missing or extra:
        raise InvalidSpec(
            f"the ONNX model's inputs are {graph_names} but the spec declares {declared}; "
            "name each op.Input after an ONNX graph input"
        )


def file_digest(path: str) -> str:
    h = hashlib.blake2b(digest_size=16)
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def prebuilt_onnx(onnx_model: Any, spec: ParitySpec, workdir: str) -> ExportedModel:
    """An ONNX model the user built themselves (path, bytes or ``onnx.ModelProto``), on disk."""
    import onnx

    if isinstance(onnx_model, (str, os.PathLike)):
        path = os.fspath(onnx_model)
        if not os.path.isfile(path):
            raise InvalidSpec(f"onnx={path!r}: no such file; give the path of an .onnx file")
        try:
            proto = onnx.load(path, load_external_data=False)
        except Exception as exc:  # onnx raises DecodeError and others
            raise InvalidSpec(f"onnx={path!r} is not a readable ONNX model: {exc}") from exc
        key = "file-" + file_digest(path)
    elif isinstance(onnx_model, (bytes, bytearray)):
        key = "bytes-" + hashlib.blake2b(bytes(onnx_model), digest_size=16).hexdigest()
        try:
            proto = onnx.load_from_string(bytes(onnx_model))
        except Exception as exc:
            raise InvalidSpec(f"onnx=<{len(onnx_model)} bytes> is not an ONNX model: {exc}") from exc
        path = os.path.join(workdir, key, "model.onnx")
        if not os.path.exists(path):
            _write_atomic(path, bytes(onnx_model))
    elif isinstance(onnx_model, onnx.ModelProto):
        data = onnx_model.SerializeToString()
        key = "proto-" + hashlib.blake2b(data, digest_size=16).hexdigest()
        proto = onnx_model
        path = os.path.join(workdir, key, "model.onnx")
        if not os.path.exists(path):
            _write_atomic(path, data)
    else:
        raise InvalidSpec(
            f"onnx={type(onnx_model).__name__}: give a path, the model's bytes or an onnx.ModelProto"
        )
    check_input_names(proto, spec)
    return ExportedModel(
        path=path,
        input_names=tuple(i.name for i in spec.inputs),
        output_names=tuple(o.name for o in proto.graph.output),
        exporter="prebuilt ONNX",
        opset=default_opset(proto),
        key=key,
        notes=tuple(specialised_dims(proto, spec)),
    )


def _write_atomic(path: str, data: bytes) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = f"{path}.tmp-{os.getpid()}"
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


def external_data_files(path: str) -> list[str]:
    """Relative paths of the external data files an ONNX file refers to."""
    import onnx

    proto = onnx.load(path, load_external_data=False)
    locations: dict[str, None] = {}
    for tensor in proto.graph.initializer:
        if tensor.data_location == onnx.TensorProto.EXTERNAL:
            for entry in tensor.external_data:
                if entry.key == "location":
                    locations.setdefault(entry.value, None)
    return list(locations)


def copy_model_files(model: ExportedModel, target_dir: str) -> str:
    """Copy the ONNX file and its external data into ``target_dir``; return the copy's path."""
    source_dir = os.path.dirname(os.path.abspath(model.path))
    os.makedirs(target_dir, exist_ok=True)
    target = os.path.join(target_dir, os.path.basename(model.path))
    shutil.copy2(model.path, target)
    for location in external_data_files(model.path):
        src = os.path.join(source_dir, location)
        if os.path.isfile(src):
            dst = os.path.join(target_dir, location)
            os.makedirs(os.path.dirname(dst), exist_ok=True)
            shutil.copy2(src, dst)
    return target


@contextlib.contextmanager
def limit_threads(threads: int) -> Iterator[None]:
    """Run the frameworks already imported with ``threads`` intra-op threads (PyTorch; TensorFlow
    fixes its pools at start-up, so set ``TF_NUM_INTRAOP_THREADS`` for it), restoring them after.

    Measured on 2 cores: torch eager slowed from ~0.3 ms to ~52 ms when its thread pool competed
    with ONNX Runtime's; timing both sides with the same small thread count avoids it."""
    torch = sys.modules.get("torch")
    before = torch.get_num_threads() if torch is not None else None
    if torch is not None:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        if torch is not None and before is not None:
            torch.set_num_threads(before)
