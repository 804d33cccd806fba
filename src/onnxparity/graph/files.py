"""An ONNX model on disk: loading, saving (weights beside the file past protobuf's limit),
copying with its external data (never from outside its folder), renaming values and dims, and
writing files atomically.

Imports no framework and imports ``onnx`` only inside the functions that need it, so
``import onnxparity`` stays light.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator, Mapping
from typing import Any

from onnxparity.graph.nodes import all_graphs, walk_nodes

#: largest serialized model saved inline: protobuf refuses messages of 2 GiB and more (1 MiB
#: margin for what is added while serializing).
INLINE_LIMIT_BYTES = 2**31 - 2**20


def _tensors(proto: Any) -> Iterator[Any]:
    """Every tensor that can hold data: initializers and tensor attributes, subgraphs included."""
    for graph in all_graphs(proto.graph):
        yield from graph.initializer
        for node in graph.node:
            for attribute in node.attribute:
                if attribute.HasField("t"):
                    yield attribute.t
                yield from attribute.tensors


def load_model(path: str | os.PathLike[str], *, external_data: bool = False) -> Any:
    """The ``onnx.ModelProto`` at ``path``; its external data (weights beside the file) is
    read only when ``external_data`` is true — graph structure alone is much cheaper."""
    import onnx

    return onnx.load(os.fspath(path), load_external_data=external_data)


def save_model(proto: Any, path: str | os.PathLike[str]) -> str:
    """Save ``proto`` (with its weights in memory) at ``path``, atomically, and return the path.

    Under :data:`INLINE_LIMIT_BYTES` it is one file; above, protobuf's 2 GB limit forces the
    weights into one file beside it, ``<name>.data``. Files are written under temporary names in
    the same directory and renamed into place, so a crash never leaves a truncated model (and
    onnx, which appends to an existing data file, never sees a stale one)."""
    import onnx
    from onnx.external_data_helper import load_external_data_for_tensor, uses_external_data

    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    name = os.path.basename(path)
    os.makedirs(directory, exist_ok=True)
    if proto.ByteSize() < INLINE_LIMIT_BYTES:
        write_atomic(path, proto.SerializeToString())
        return path
    location = f"{name}.data"
    import shutil
    import tempfile

    staging = tempfile.mkdtemp(prefix=f".{name}.", dir=directory)
    try:
        onnx.save(
            proto,
            os.path.join(staging, name),
            format="protobuf",
            save_as_external_data=True,
            all_tensors_to_one_file=True,
            location=location,
        )
        os.replace(os.path.join(staging, location), os.path.join(directory, location))
        os.replace(os.path.join(staging, name), path)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    # onnx.save moved the weights out of the caller's proto: put them back.
    for tensor in _tensors(proto):
        if uses_external_data(tensor) and _location(tensor) == location and not tensor.HasField("raw_data"):
            load_external_data_for_tensor(tensor, directory)
            tensor.ClearField("data_location")
    return path


def _location(tensor: Any) -> str | None:
    return next((entry.value for entry in tensor.external_data if entry.key == "location"), None)


def write_atomic(path: str | os.PathLike[str], data: bytes | str) -> None:
    """Write ``data`` (str: as UTF-8) to ``path`` through a temp file in the same directory and
    a rename: a crash mid-write leaves the old file (or none), never a truncated one."""
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    # Not mkstemp: its files are private (0600); these get the usual permissions.
    import uuid

    staging = os.path.join(directory, f".{os.path.basename(path)}.{os.getpid()}-{uuid.uuid4().hex[:8]}.tmp")
    try:
        with open(staging, "xb") as f:
            f.write(data.encode("utf-8") if isinstance(data, str) else data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(staging, path)
    except BaseException:
        if os.path.exists(staging):
            os.unlink(staging)
        raise


def file_digest(path: str | os.PathLike[str]) -> str:
    """A short content hash of a file (blake2b, 16 bytes, hex), read in 1 MiB chunks."""
    h = hashlib.blake2b(digest_size=16)
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def external_data_files(path: str | os.PathLike[str], proto: Any = None) -> list[str]:
    """Relative paths of the external data files the ONNX file at ``path`` refers to (in order
    of first use; initializers and tensor attributes of subgraphs included). ``proto``: the
    file, already loaded without its external data."""
    import onnx

    locations: dict[str, None] = {}
    for tensor in _tensors(proto if proto is not None else load_model(path)):
        if tensor.data_location == onnx.TensorProto.EXTERNAL:
            location = _location(tensor)
            if location is not None:
                locations.setdefault(location, None)
    return list(locations)


class UnsafeLocation(ValueError):
    """An ONNX file's external data location points outside the file's directory."""


def check_external_data(model_path: str | os.PathLike[str], proto: Any = None) -> list[str]:
    """The external data locations of the ONNX file at ``model_path`` (``proto``: the file,
    already loaded), each checked to stay inside the file's directory: an absolute path, ``..``
    or a symbolic link that leads out is :class:`UnsafeLocation` naming it (a model file is
    untrusted input; nothing is read)."""
    folder = os.path.realpath(os.path.dirname(os.path.abspath(os.fspath(model_path))))
    locations = external_data_files(model_path, proto)
    for location in locations:
        resolved = os.path.realpath(os.path.join(folder, location))
        if os.path.isabs(location) or os.path.commonpath([folder, resolved]) != folder:
            raise UnsafeLocation(
                f"external data location {location!r} leads outside the model's directory; refusing "
                "to read or copy it (keep external data files beside the .onnx file)"
            )
    return locations


def copy_model_files(model_path: str | os.PathLike[str], target_dir: str | os.PathLike[str]) -> str:
    """Copy the ONNX file and its external data files into ``target_dir``; return the copy's path.
    Locations that lead outside the model's directory are :class:`UnsafeLocation`, and nothing
    is copied."""
    model_path, target_dir = os.fspath(model_path), os.fspath(target_dir)
    source_dir = os.path.dirname(os.path.abspath(model_path))
    locations = check_external_data(model_path)
    import shutil

    os.makedirs(target_dir, exist_ok=True)
    target = os.path.join(target_dir, os.path.basename(model_path))
    shutil.copy2(model_path, target)
    for location in locations:
        src = os.path.join(source_dir, location)
        if os.path.isfile(src):
            dst = os.path.join(target_dir, location)
            os.makedirs(os.path.dirname(dst), exist_ok=True)
            shutil.copy2(src, dst)
    return target


def rename_values(proto: Any, renames: Mapping[str, str]) -> None:
    """Rename graph inputs/outputs/value infos and every node reference to them, in place
    (subgraph nodes included: they may use an outer graph's values)."""
    renames = {old: new for old, new in renames.items() if old != new}
    if not renames:
        return
    graph = proto.graph
    for value in list(graph.input) + list(graph.output) + list(graph.value_info):
        if value.name in renames:
            value.name = renames[value.name]
    for node, _ in walk_nodes(graph):
        for i, name in enumerate(node.input):
            if name in renames:
                node.input[i] = renames[name]
        for i, name in enumerate(node.output):
            if name in renames:
                node.output[i] = renames[name]


def rename_dim_params(proto: Any, renames: Mapping[str, str]) -> None:
    """Rename symbolic dims (``unk__3`` -> ``batch``) throughout the graph's declared shapes, in place."""
    graph = proto.graph
    for value in list(graph.input) + list(graph.output) + list(graph.value_info):
        if value.type.HasField("tensor_type") and value.type.tensor_type.HasField("shape"):
            for dim in value.type.tensor_type.shape.dim:
                if dim.dim_param in renames:
                    dim.dim_param = renames[dim.dim_param]


