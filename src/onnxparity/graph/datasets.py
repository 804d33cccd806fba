"""Stored input/output pairs of an ONNX graph, read from a folder: the ONNX backend tests'
layout (``test_data_set_N/input_K.pb`` and ``output_K.pb``, TensorProtos, or one such set in
the folder itself) or ``.npz`` files (one pair per file, arrays named after the graph's inputs
and outputs). ``onnxparity check MODEL --data DIR`` checks the variants on these inputs against
these outputs. Nothing is run here."""

from __future__ import annotations

import glob
import os
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

import numpy as np

from onnxparity.errors import InvalidSpec

if TYPE_CHECKING:
    from onnxparity.spec import Input


@dataclass(frozen=True)
class Pair:
    """One stored example: its name (the set's folder or file), the inputs by graph input
    name and the outputs in graph output order."""

    name: str
    inputs: dict[str, np.ndarray]
    outputs: tuple[np.ndarray, ...]

    def reference(self, *arrays: Any) -> list[Any]:
        """The stored outputs, as a ``reference=`` callable of the stored inputs; it refuses
        other inputs (the check draws only the stored ones: each is an input's one choice)."""
        if len(arrays) != len(self.inputs) or not all(
            a.shape == b.shape and np.array_equal(np.asarray(a, dtype=b.dtype), b, equal_nan=b.dtype.kind == "f")
            for a, b in zip(arrays, self.inputs.values())
        ):
            raise RuntimeError(f"{self.name}: the check ran inputs other than the stored ones")
        return list(self.outputs)


def _numbered(folder: str, prefix: str) -> list[str]:
    found = glob.glob(os.path.join(folder, f"{prefix}_*.pb"))
    number = re.compile(rf"{prefix}_(\d+)\.pb$")
    keyed = [(int(m.group(1)), path) for path in found if (m := number.search(os.path.basename(path)))]
    return [path for _, path in sorted(keyed)]


def _tensor(path: str) -> tuple[str, np.ndarray]:
    import onnx
    from onnx import numpy_helper

    try:
        tensor = onnx.load_tensor(path)
        return tensor.name, numpy_helper.to_array(tensor)
    except Exception as exc:
        raise InvalidSpec(f"{path}: not a readable TensorProto ({type(exc).__name__}: {exc})") from None


def _ordered(found: list[tuple[str, np.ndarray]], names: list[str], what: str, where: str) -> list[np.ndarray]:
    """The arrays in ``names`` order: by their tensor names where every one names one of
    ``names``, else in file order; InvalidSpec where the count differs."""
    if len(found) != len(names):
        raise InvalidSpec(
            f"{where}: {len(found)} {what} files for the graph's {len(names)} {what}s {names}: give one "
            f"{what}_K.pb per {what}, K from 0 in the graph's order"
        )
    by_name = {name: array for name, array in found}
    if set(by_name) == set(names):
        return [by_name[n] for n in names]
    return [array for _, array in found]


def read_pairs(folder: str, proto: Any) -> list[Pair]:
    """The stored pairs in ``folder`` for the graph of ``proto`` (initializers aside); InvalidSpec
    naming the file or the count that does not fit."""
    initializers = {t.name for t in proto.graph.initializer}
    inputs = [v.name for v in proto.graph.input if v.name not in initializers]
    outputs = [v.name for v in proto.graph.output]
    if not os.path.isdir(folder):
        raise InvalidSpec("not a folder: give the folder that holds the stored pairs")
    sets = sorted(glob.glob(os.path.join(folder, "test_data_set_*")), key=_set_number)
    if _numbered(folder, "input"):
        sets = [folder, *sets]
    pairs = []
    for where in sets:
        feeds = _ordered([_tensor(p) for p in _numbered(where, "input")], inputs, "input", where)
        expected = _ordered([_tensor(p) for p in _numbered(where, "output")], outputs, "output", where)
        pairs.append(Pair(os.path.basename(where.rstrip(os.sep)) or where, dict(zip(inputs, feeds)), tuple(expected)))
    for path in sorted(glob.glob(os.path.join(folder, "*.npz"))):
        with np.load(path, allow_pickle=False) as stored:
            missing = [n for n in (*inputs, *outputs) if n not in stored.files]
            if missing:
                raise InvalidSpec(
                    f"{path}: no array named {missing[0]!r}; an .npz pair holds one array per graph input "
                    f"{inputs} and output {outputs}, by name"
                )
            pairs.append(
                Pair(os.path.basename(path), {n: stored[n] for n in inputs}, tuple(stored[n] for n in outputs))
            )
    if not pairs:
        raise InvalidSpec(
            "no stored pair: give test_data_set_N/ folders of input_K.pb and output_K.pb "
            "(the ONNX backend tests' layout), input_K.pb and output_K.pb in the folder, or .npz files "
            "with arrays named after the graph's inputs and outputs"
        )
    return pairs


def _set_number(path: str) -> int:
    found = re.search(r"(\d+)$", path)
    return int(found.group(1)) if found else -1


def fixed_inputs(pair: Pair, proto: Any) -> list[Input]:
    """Declarations (:class:`~onnxparity.spec.Input`) that draw exactly ``pair``'s inputs: each
    of its stored shape, with its stored value as the one choice, of the graph's element type
    (InvalidSpec where a stored array is of another)."""
    from onnxparity.spec import Input
    from onnxparity.spec.dtypes import ONNX_DTYPES

    types = {v.name: v.type for v in proto.graph.input}
    declared = []
    for name, array in pair.inputs.items():
        kind = types[name].WhichOneof("value")
        dtype = ONNX_DTYPES.get(types[name].tensor_type.elem_type) if kind == "tensor_type" else None
        if dtype is None:
            raise InvalidSpec(
                f"{pair.name}: input {name!r} is not a tensor (or of a type onnxparity does not read): --data "
                "reads stored tensors; check the file on drawn inputs instead (without --data)"
            )
        if dtype == "str":
            array = np.vectorize(lambda v: v.decode() if isinstance(v, bytes) else str(v), otypes=[object])(array)
        elif array.dtype.name != dtype:
            raise InvalidSpec(
                f"{pair.name}: input {name!r} is stored as {array.dtype.name}, but the graph takes {dtype}: "
                f"store it as {dtype}"
            )
        _check_stored_shape(pair.name, name, array, types[name].tensor_type)
        # (choices: a list, which Input makes a tuple)
        declared.append(Input(name, tuple(array.shape), dtype=dtype, choices=cast("tuple[Any, ...]", [array])))
    return declared


def _check_stored_shape(pair: str, name: str, array: np.ndarray, tensor: Any) -> None:
    """InvalidSpec where a stored input's rank or a fixed dim differs from the graph input's
    (before: the check said to "declare a shape" that --data takes from the stored array)."""
    if not tensor.HasField("shape"):
        return
    dims = [d.dim_value if d.HasField("dim_value") else (d.dim_param or "?") for d in tensor.shape.dim]
    fits = len(dims) == array.ndim and all(not isinstance(d, int) or d == n for d, n in zip(dims, array.shape))
    if not fits:
        shown = "(" + ", ".join(map(str, dims)) + (",)" if len(dims) == 1 else ")")
        raise InvalidSpec(
            f"{pair}: input {name!r} is stored with shape {tuple(array.shape)}, but the graph takes {shown}: "
            "store it in that shape (one row of a batched input as a batch of one)"
        )
