"""Messages between the test process and a variant's worker process, never pickled: a message
is a frame of JSON followed by the raw bytes of the arrays it names (:func:`send`,
:func:`receive`); an array is rebuilt from its dtype, shape and bytes only, never from an object
dtype, and large numeric inputs go through a shared file instead (:class:`SharedFeeds`). A frame
that is anything else (a pickle, an object array, a broken header) is refused before anything in
it is decoded (:class:`FrameError`). Besides arrays and JSON's own values, a frame carries the
policies (:mod:`onnxparity.spec`) and the explanation types named in :data:`CROSSING`, which
this module names but does not import.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib
import json
import math
import mmap
import os
import struct
from collections.abc import Mapping
from typing import Any

import numpy as np

#: inputs of at least this many bytes go through shared memory, not the pipe (measured: a
#: 1.5 MB input took 1-2.6 ms through a pipe; see benchmarks/isolation.py).
SHARED_FROM = 64 * 1024


class FrameError(Exception):
    """A frame from the other process that is not one onnxparity sends (a pickle, an object
    array, a broken header): refused, nothing in it decoded."""


class SharedFeeds:
    """An anonymous shared file (Linux ``memfd``) both processes map: large numeric inputs
    are copied in once instead of written through the pipe."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.size = 0
        self.map: mmap.mmap | None = None

    @classmethod
    def create(cls) -> SharedFeeds | None:
        if not hasattr(os, "memfd_create"):
            return None
        return cls(os.memfd_create("onnxparity-feeds", 0))

    def put(self, feeds: Mapping[str, np.ndarray]) -> dict[str, Any]:
        """The run request for ``feeds``: large numeric arrays laid out in the shared file."""
        # np.require, not np.ascontiguousarray: that one turns a 0-d array into shape (1,)
        arrays = {name: np.require(value, requirements="C") for name, value in feeds.items()}
        total = sum(a.nbytes + 64 for a in arrays.values())
        if total < SHARED_FROM or any(
            a.dtype.kind not in "biufc" or a.dtype.type.__module__ == "ml_dtypes" for a in arrays.values()
        ):  # (ml_dtypes' float8 is kind "f", its str "<f1": such arrays go in the frame, by name)
            return {"kind": "run", "feeds": arrays}
        if total > self.size:
            size = max(total, 2 * self.size)
            os.ftruncate(self.fd, size)
            if self.map is not None:
                self.map.close()
            self.map = mmap.mmap(self.fd, size)
            self.size = size
        layout, offset = [], 0
        for name, array in arrays.items():
            view = np.ndarray(array.shape, array.dtype, buffer=self.map, offset=offset)
            view[...] = array
            layout.append([name, array.dtype.str, list(array.shape), offset])
            offset += (array.nbytes + 63) // 64 * 64
        return {"kind": "run-shared", "size": self.size, "layout": layout}

    def view(self, size: int, layout: list[Any]) -> dict[str, np.ndarray]:
        """(In the worker.) The feeds of a ``run-shared`` request, as views of the file; a
        layout naming a non-numeric dtype or reaching past the file is refused."""
        try:
            if size > self.size:
                if self.map is not None:
                    self.map.close()
                self.map = mmap.mmap(self.fd, size)
                self.size = size
            feeds = {}
            for name, dtype, shape, offset in layout:
                kind = _dtype(dtype)
                if kind.kind not in "biufc":
                    raise FrameError(f"a shared input of dtype {dtype!r}")
                feeds[str(name)] = np.ndarray(_shape(shape), kind, buffer=self.map, offset=int(offset))
            return feeds
        except (TypeError, ValueError, OSError) as exc:
            raise FrameError(f"a shared-memory layout that does not fit the file: {exc}") from None

    def close(self) -> None:
        if self.map is not None:
            self.map.close()
            self.map = None
        os.close(self.fd)


# -- frames: JSON and raw array bytes, never pickle ----------------------------------------------
#: a frame's head: the magic and the JSON header's length; the header lists the blobs' lengths
_HEAD = struct.Struct("<4sQ")
_MAGIC = b"OPF1"

#: the largest JSON header read (a length beyond it is a broken or hostile frame)
MAX_HEADER = 256 << 20

#: array kinds that cross as raw bytes (no object, no structured dtype)
_RAW_KINDS = "biufcSUmM"

#: the dataclasses of an explanation that cross besides the policies, by tag: resolved by name
#: when one arrives, so that this package imports nothing of forensics (whose explainers a
#: worker imports only when asked to explain)
CROSSING = {
    "divergence": "onnxparity.forensics:Divergence",
    "subgraph": "onnxparity.forensics.subgraph:Subgraph",
}
_TAGS = {reference: tag for tag, reference in CROSSING.items()}

#: what writes and reads a frame's header (what _encode makes holds no cycle)
_JSON_OUT = json.JSONEncoder(separators=(",", ":"), check_circular=False).encode
_JSON_IN = json.JSONDecoder().decode


def encode_frame(message: Any) -> list[bytes | np.ndarray]:
    """The buffers of one frame for ``message``; TypeError naming what cannot cross. Arrays
    cross as raw bytes named by dtype and shape, not as ``.npy`` files: np.load parses each
    header (measured 20 µs per array against 1 µs for np.frombuffer, 4 per run) and neither
    can hold an object."""
    blobs: list[np.ndarray] = []
    body = _JSON_OUT({"m": _encode(message, blobs), "b": [b.nbytes for b in blobs]}).encode()
    return [_HEAD.pack(_MAGIC, len(body)) + body, *blobs]


def write_frame(stream: Any, frame: list[bytes | np.ndarray]) -> None:
    for part in frame:
        stream.write(part)
    stream.flush()


def send(stream: Any, message: Any) -> None:
    write_frame(stream, encode_frame(message))


def receive(stream: Any) -> dict[str, Any]:
    """One message; EOFError where the other side is gone, FrameError for anything that is
    not a frame onnxparity sends (nothing of it decoded)."""
    head = stream.read(_HEAD.size)
    if not head:
        raise EOFError("the other process closed its end")
    head = _complete(stream, head, _HEAD.size)
    magic, length = _HEAD.unpack(head)
    if magic != _MAGIC or length > MAX_HEADER:
        raise FrameError(f"not an onnxparity frame (it starts {head[:8]!r})")
    try:
        header = _JSON_IN(_complete(stream, stream.read(length), length).decode("utf-8"))
        sizes = header["b"]
        if not isinstance(sizes, list) or not all(isinstance(n, int) and n >= 0 for n in sizes):
            raise FrameError("a header whose blob lengths are not counts of bytes")
    except (ValueError, RecursionError, KeyError, TypeError) as exc:
        raise FrameError(f"a header that is not onnxparity's JSON: {type(exc).__name__}") from None
    blobs = [_blob(stream, n) for n in sizes]
    try:
        message = _decode(header["m"], blobs)
    except FrameError:
        raise
    except (ValueError, RecursionError, KeyError, TypeError, IndexError) as exc:
        raise FrameError(f"a message onnxparity cannot decode: {type(exc).__name__}: {exc}") from None
    if not isinstance(message, dict):
        raise FrameError(f"a message that is a {type(message).__name__}, not a dict")
    return message


def _complete(stream: Any, data: bytes, size: int) -> bytes:
    """``data`` read on to ``size`` bytes; EOFError where the stream ends first."""
    while len(data) < size:
        more = stream.read(size - len(data))
        if not more:
            raise EOFError("the other process ended in the middle of a frame")
        data += more
    return data


def _blob(stream: Any, size: int) -> bytearray:
    """``size`` bytes read into a buffer of their own (the array built on it is writable, as
    the variant's were), grown as they arrive: a claimed length costs no memory it does not
    bring. EOFError where the stream ends first."""
    data = bytearray(min(size, 1 << 24))
    got = 0
    while got < size:
        if got == len(data):
            data.extend(bytes(min(size - got, got)))
        with memoryview(data) as whole, whole[got:] as rest:
            read = stream.readinto(rest)
        if not read:
            raise EOFError("the other process ended in the middle of a frame")
        got += read
    return data


def _encode(value: Any, blobs: list[np.ndarray]) -> Any:
    """``value`` as JSON, with arrays' bytes appended to ``blobs``; a tagged object
    (``{"$": tag, ...}``) for what JSON has no form of."""
    kind = type(value)
    if kind is str or kind is float or kind is int or kind is bool or value is None:
        return value
    if kind is np.ndarray:  # the common cases first: a run's arrays, in a dict or a list
        return _encode_array(value, blobs)
    if kind is list:
        return [_encode(v, blobs) for v in value]
    if isinstance(value, np.ndarray):
        return _encode_array(value, blobs)
    if kind is dict or isinstance(value, Mapping):
        if "$" not in value and all(type(k) is str for k in value):
            return {k: _encode(v, blobs) for k, v in value.items()}
        return {"$": "map", "items": [[_encode(k, blobs), _encode(v, blobs)] for k, v in value.items()]}
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, np.generic):
        return {"$": "scalar", "a": _encode_array(np.asarray(value), blobs)}
    if isinstance(value, list):
        return [_encode(v, blobs) for v in value]
    if isinstance(value, tuple):
        return {"$": "tuple", "items": [_encode(v, blobs) for v in value]}
    if isinstance(value, (bytes, bytearray)):
        blobs.append(np.frombuffer(bytes(value), np.uint8))
        return {"$": "bytes", "i": len(blobs) - 1}
    from onnxparity.spec import Agreement, Tolerance

    if isinstance(value, Tolerance):
        from onnxparity.spec.policy import DEFAULT_TOLERANCE

        fields = dataclasses.asdict(value)
        return {"$": "tolerance", "fields": fields, "default": value is DEFAULT_TOLERANCE}
    if isinstance(value, Agreement):
        fields = {f.name: _encode(getattr(value, f.name), blobs) for f in dataclasses.fields(value)}
        return {"$": "agreement", "fields": fields}
    tag = _TAGS.get(f"{type(value).__module__}:{type(value).__qualname__}")
    if tag is not None:
        fields = {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}
        if tag == "subgraph":
            fields["model"] = fields["model"].SerializeToString()
        return {"$": tag, "fields": {k: _encode(v, blobs) for k, v in fields.items()}}
    raise TypeError(f"a {type(value).__module__}.{type(value).__qualname__} cannot be sent between processes")


def _encode_array(array: np.ndarray, blobs: list[np.ndarray]) -> dict[str, Any]:
    if not array.flags.c_contiguous:  # (0-d arrays always are: ascontiguousarray would make them 1-d)
        array = np.ascontiguousarray(array)
    kind = array.dtype.kind
    if array.dtype.type.__module__ == "ml_dtypes":  # bfloat16, float8, int4: named; their str is
        name = f"ml_dtypes:{array.dtype.name}"  # "<V2", or "<f1" for float8 (numpy cannot read it back)
    elif kind in _RAW_KINDS:
        name = array.dtype.str
    elif kind == "O":
        items = array.reshape(-1).tolist()
        if all(isinstance(i, str) for i in items):  # strings (sklearn's inputs): as a unicode array
            return {**_encode_array(array.astype(str), blobs), "object": True}
        return {"$": "objects", "shape": list(array.shape), "items": [_encode(i, blobs) for i in items]}
    else:
        raise TypeError(f"an array of dtype {array.dtype} cannot be sent between processes")
    blobs.append(array.reshape(-1).view(np.uint8) if array.nbytes else np.empty(0, np.uint8))
    return {"$": "array", "i": len(blobs) - 1, "dtype": name, "shape": list(array.shape)}


def _dtype(text: Any) -> np.dtype:
    """A dtype from its string (``ml_dtypes:<name>`` for ml_dtypes' narrow kinds), refusing
    any that holds Python objects."""
    if not isinstance(text, str):
        raise FrameError(f"a dtype that is not a string: {text!r}")
    return _named_dtype(text)


@functools.lru_cache(maxsize=256)
def _named_dtype(text: str) -> np.dtype:
    module, _, name = text.rpartition(":")
    if module == "ml_dtypes":
        import ml_dtypes

        kind = getattr(ml_dtypes, name, None) if name.isidentifier() and not name.startswith("_") else None
        dtype = np.dtype(kind) if isinstance(kind, type) else np.dtype(object)
        if dtype.hasobject or dtype.type is not kind:
            raise FrameError(f"an array of dtype {text!r} (not one of ml_dtypes' numeric types)")
        return dtype
    dtype = np.dtype(text)
    if dtype.hasobject or dtype.kind not in _RAW_KINDS:
        raise FrameError(f"an array of dtype {text!r} (only numeric and string arrays cross)")
    return dtype


def _shape(shape: Any) -> tuple[int, ...]:
    if not isinstance(shape, list) or not all(isinstance(n, int) and n >= 0 for n in shape):
        raise FrameError(f"an array shape that is not a list of sizes: {shape!r}")
    return tuple(shape)


def _decode(value: Any, blobs: list[bytearray]) -> Any:
    kind = type(value)
    if kind is list:
        return [_decode(v, blobs) for v in value]
    if kind is not dict:  # (json.loads makes only dicts, lists, str, int, float, bool, None)
        return value
    tag = value.get("$")
    if tag is None:
        return {k: _decode(v, blobs) for k, v in value.items()}
    if tag == "array":
        dtype, shape, blob = _dtype(value["dtype"]), _shape(value["shape"]), blobs[value["i"]]
        if len(blob) != math.prod(shape) * dtype.itemsize:
            raise FrameError(f"an array of shape {shape} and dtype {dtype} in {len(blob)} bytes")
        array = np.frombuffer(blob, dtype).reshape(shape) if len(blob) else np.empty(shape, dtype)
        return array.astype(object) if value.get("object") else array
    if tag == "objects":
        shape = _shape(value["shape"])
        items = [_decode(i, blobs) for i in value["items"]]
        if len(items) != math.prod(shape):
            raise FrameError(f"an object array of shape {shape} with {len(items)} items")
        array = np.empty(shape, object)
        flat = array.reshape(-1)
        for n, item in enumerate(items):
            flat[n] = item
        return array
    if tag == "scalar":
        return _decode(value["a"], blobs)[()]
    if tag == "map":
        return {_hashable(_decode(k, blobs)): _decode(v, blobs) for k, v in value["items"]}
    if tag == "tuple":
        return tuple(_decode(v, blobs) for v in value["items"])
    if tag == "bytes":
        return bytes(blobs[value["i"]])
    if tag not in ("tolerance", "agreement", *CROSSING):
        raise FrameError(f"an object tagged {tag!r}")
    fields = value["fields"]
    if not isinstance(fields, dict):
        raise FrameError(f"a {tag!r} whose fields are not a dict")
    if tag == "tolerance":
        from onnxparity.spec.policy import DEFAULT_TOLERANCE, Tolerance

        return DEFAULT_TOLERANCE if value.get("default") is True else Tolerance(**fields)
    if tag == "agreement":
        from onnxparity.spec import Agreement

        return Agreement(**{k: _decode(v, blobs) for k, v in fields.items()})
    decoded = {k: _decode(v, blobs) for k, v in fields.items()}
    if tag == "subgraph":
        import onnx

        decoded["model"] = onnx.load_model_from_string(decoded["model"])
    module, _, name = CROSSING[tag].partition(":")
    return getattr(importlib.import_module(module), name)(**decoded)


def _hashable(key: Any) -> Any:
    if isinstance(key, (list, dict, np.ndarray)):
        raise FrameError(f"a map key that is a {type(key).__name__}")
    return key
