"""How a scikit-learn estimator meets skl2onnx, shared by its export (:mod:`.sklearn`) and the
replay of its pipeline steps for forensics (:mod:`.sklearn_values`): importing skl2onnx on first
use, the rows an estimator takes from the feeds (float inputs as float64, several inputs as
DataFrame columns), the initial types the declared inputs give, and the conversion itself
(``zipmap=False`` for classifiers, ``ai.onnx.ml`` at 3 for estimators that need it)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from onnxparity.environment import quiet
from onnxparity.errors import FrameworkNotInstalled, InvalidSpec
from onnxparity.exporters.base import require
from onnxparity.spec import ParitySpec

#: the loggers skl2onnx and scikit-learn write to, kept quiet while a conversion runs
SKLEARN_LOGGERS = ("skl2onnx", "sklearn")


def import_skl2onnx() -> tuple[Any, Any]:
    """``skl2onnx`` and its ``common.data_types``, imported on first use."""
    skl2onnx = require("skl2onnx", "skl2onnx", "sklearn", *SKLEARN_LOGGERS)
    return skl2onnx, require("skl2onnx.common.data_types", "skl2onnx", "sklearn", *SKLEARN_LOGGERS)


def estimator_rows(spec: ParitySpec, feeds: Mapping[str, np.ndarray]) -> Any:
    """What the estimator is called on: the one input's array, or a DataFrame of one column per
    input."""
    if len(spec.inputs) == 1:
        return feeds[spec.inputs[0].name]
    try:
        import pandas as pd
    except ImportError as exc:
        raise FrameworkNotInstalled("pandas", "sklearn", "several inputs are DataFrame columns") from exc
    return pd.DataFrame({i.name: np.asarray(feeds[i.name]).reshape(-1) for i in spec.inputs})


def floats_as_float64(feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Float inputs as float64: how estimators are usually fitted (KMeans refuses a mismatch)."""
    return {k: v.astype(np.float64) if v.dtype.kind == "f" else v for k, v in feeds.items()}


def initial_types_of(spec: ParitySpec) -> list[tuple[str, Any]]:
    """skl2onnx's ``initial_types`` for the declared inputs."""
    _, types = import_skl2onnx()
    tensor_types = {
        "float32": types.FloatTensorType,
        "float64": types.DoubleTensorType,
        "int64": types.Int64TensorType,
        "int32": types.Int32TensorType,
        "str": types.StringTensorType,
        "bool": types.BooleanTensorType,
    }
    initial_types = []
    for item in spec.inputs:
        if item.dtype not in tensor_types:
            raise InvalidSpec(
                f"Input({item.name!r}) dtype {item.dtype}: skl2onnx takes {', '.join(tensor_types)}"
            )
        shape = [None if isinstance(e, str) else e for e in item.shape]
        initial_types.append((item.name, tensor_types[item.dtype](shape)))
    return initial_types


def convert(model: Any, initial_types: list[tuple[str, Any]], opset: int | None, intermediate: bool = False) -> Any:
    """skl2onnx's conversion as the export does it (``intermediate``: also its topology)."""
    skl2onnx, _ = import_skl2onnx()
    with quiet(*SKLEARN_LOGGERS):
        return skl2onnx.convert_sklearn(
            model,
            initial_types=initial_types,
            options=_no_zipmap(model),
            target_opset=_target_opset(skl2onnx, model, opset),
            intermediate=intermediate,
        )


#: estimators whose skl2onnx converter builds ``ai.onnx.ml`` nodes only up to opset 3 (it raises
#: "version 4 of domain 'ai.onnx.ml' not supported" at the default, the newest).
_ML_OPSET_3 = ("IsolationForest",)


def _target_opset(skl2onnx: Any, model: Any, opset: int | None) -> int | dict[str, Any] | None:
    """``opset``, or with ``ai.onnx.ml`` pinned to 3 when the model holds an estimator that needs it."""
    nested = [model, *model.get_params(deep=True).values()] if hasattr(model, "get_params") else [model]
    if not any(type(est).__name__ in _ML_OPSET_3 for est in nested):
        return opset
    return {"": opset or skl2onnx.get_latest_tested_opset_version(), "ai.onnx.ml": 3}


def _no_zipmap(model: Any) -> dict[int, dict[str, bool]]:
    """``zipmap=False`` for every classifier in the model (skl2onnx rejects it on others)."""
    found = [model] + [v for v in model.get_params(deep=True).values() if hasattr(v, "get_params")]
    return {id(est): {"zipmap": False} for est in found if is_classifier(est)}


def is_classifier(est: Any) -> bool:
    """scikit-learn's ``is_classifier``, False for what is not an estimator: a parameter that has
    ``get_params`` but no tags (a Gaussian process's kernel) makes scikit-learn >= 1.6 raise."""
    from sklearn.base import is_classifier as sklearn_is_classifier

    try:
        return bool(sklearn_is_classifier(est))
    except (AttributeError, TypeError):
        return False


def is_regressor(est: Any) -> bool:
    """scikit-learn's ``is_regressor``, False for what is not an estimator (see is_classifier)."""
    from sklearn.base import is_regressor as sklearn_is_regressor

    try:
        return bool(sklearn_is_regressor(est))
    except (AttributeError, TypeError):
        return False


def _kbins(model: Any) -> list[Any]:
    """Every fitted KBinsDiscretizer inside ``model`` (pipelines, column transformers, unions)."""
    from sklearn.preprocessing import KBinsDiscretizer

    found, stack = [], [model]
    while stack:
        current = stack.pop()
        if isinstance(current, KBinsDiscretizer) and hasattr(current, "bin_edges_"):
            found.append(current)
        for attribute in ("steps", "transformers_", "transformer_list"):
            for entry in getattr(current, attribute, None) or ():
                if isinstance(entry, tuple) and len(entry) >= 2:
                    stack.append(entry[1])
    return found


def round_bin_edges(proto: Any, model: Any) -> list[str]:
    """Move each KBinsDiscretizer bin edge skl2onnx stored rounded down up to the next float32,
    in place; a note for the edges moved. skl2onnx stores an edge as the nearest float32 and
    bins with ``x < edge``, where scikit-learn compares in float64: a float32 input exactly on an
    edge that rounded down falls in the next bin (measured: 6 of 8 edges of a uniform KBins
    changed a prediction). The smallest float32 at or above each edge decides as scikit-learn
    does for every float32 input."""
    from onnx import TensorProto, numpy_helper

    wanted = []
    for kbins in _kbins(model):
        for edges in kbins.bin_edges_:
            inner = np.asarray(edges[1:-1], dtype=np.float64)
            nearest = inner.astype(np.float32)
            up = np.where(nearest.astype(np.float64) < inner, np.nextafter(nearest, np.float32(np.inf)), nearest)
            if not np.array_equal(up, nearest):
                wanted.append((nearest, up.astype(np.float32)))
    moved = 0
    for tensor in proto.graph.initializer:
        if tensor.data_type != TensorProto.FLOAT or not wanted:
            continue
        values = numpy_helper.to_array(tensor)
        for nearest, up in wanted:
            if values.size == nearest.size and np.array_equal(values.reshape(-1), nearest):
                tensor.CopyFrom(numpy_helper.from_array(up.reshape(values.shape), tensor.name))
                moved += int((up != nearest).sum())
                break
    if not moved:
        return []
    return [
        f"{moved} KBinsDiscretizer bin edge(s) moved up to the next float32: skl2onnx stores each edge as "
        "the nearest float32, and an input exactly on one that rounded down fell in the next bin"
    ]
