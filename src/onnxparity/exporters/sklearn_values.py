"""A scikit-learn pipeline's step outputs, by the name of the ONNX value each became.

skl2onnx's ``convert_sklearn(..., intermediate=True)`` returns, beside the model, the topology
it converted: one operator per estimator, with the names of the ONNX values it writes (what
``skl2onnx.helpers.collect_intermediate_steps`` reads too). The pipeline is converted again
that way, as the export did, and each step of a ``Pipeline`` whose operator writes one value
pairs with the step's own output on the failing input (``pipeline[:k + 1].transform(X)``).
The final estimator's outputs are the graph's outputs, paired by the caller. Steps nested in a
``ColumnTransformer`` are not paired one by one: the transformer as a whole is, where skl2onnx
gives it one operator.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from onnxparity.errors import NoMapping
from onnxparity.exporters.sklearn_convert import convert, estimator_rows, floats_as_float64, initial_types_of
from onnxparity.spec import ParitySpec


class Intermediates(dict[str, np.ndarray]):
    """Values by ONNX value name, and the pipeline step each came from (``sources``)."""

    def __init__(self, values: dict[str, np.ndarray], sources: dict[str, str]) -> None:
        super().__init__(values)
        self.sources = sources


def intermediates(model: Any, spec: ParitySpec, feeds: Mapping[str, np.ndarray], graph: Any) -> Intermediates:
    steps = getattr(model, "steps", None)
    if not steps or len(steps) < 2:
        raise NoMapping(f"{type(model).__name__} is one estimator: its outputs are all there is to compare")
    try:
        _, topology = convert(model, initial_types_of(spec), spec.opset, intermediate=True)
    except Exception as exc:
        raise NoMapping(f"skl2onnx could not list the pipeline's steps ({type(exc).__name__})") from None
    written: dict[int, list[list[str]]] = {}
    read: dict[int, list[list[str]]] = {}
    for operator in topology.unordered_operator_iterator():
        if operator.raw_operator is not None:
            written.setdefault(id(operator.raw_operator), []).append([o.full_name for o in operator.outputs])
            read.setdefault(id(operator.raw_operator), []).append([i.full_name for i in operator.inputs])
    produced = {out for node in graph.node for out in node.output}
    values: dict[str, np.ndarray] = {}
    sources: dict[str, str] = {}

    def pair(names: list[list[str]], value: Any, source: str) -> None:
        if len(names) == 1 and len(names[0]) == 1 and names[0][0] in produced and names[0][0] not in values:
            values[names[0][0]], sources[names[0][0]] = value, source

    for k, (name, step) in enumerate(steps[:-1]):
        try:
            value = _dense(_call(model[: k + 1].transform, spec, feeds))
        except Exception:  # a step that cannot transform these rows is left unpaired
            continue
        # the step's own operator, or (a ColumnTransformer is several) the value the next step reads
        pair(written.get(id(step)) or read.get(id(steps[k + 1][1]), []), value, name)
        for inner, transformer, columns in getattr(step, "transformers_", ()):
            if id(transformer) not in written:
                continue  # "drop", "passthrough", or not converted on its own
            try:
                rows = _call(model[:k].transform, spec, feeds) if k else _call(lambda x: x, spec, feeds)
                inner_value = _dense(transformer.transform(_columns(rows, columns)))
            except Exception:
                continue
            pair(written[id(transformer)], inner_value, f"{name}.{inner}")
    if not values:
        raise NoMapping("no step of the pipeline writes exactly one ONNX value skl2onnx names")
    return Intermediates(values, sources)


def _call(method: Any, spec: ParitySpec, feeds: Mapping[str, np.ndarray]) -> Any:
    """``method`` on the rows the feeds make, as float64 where the estimators take it."""
    try:
        return method(estimator_rows(spec, floats_as_float64(feeds)))
    except (ValueError, TypeError):
        return method(estimator_rows(spec, feeds))


def _dense(out: Any) -> np.ndarray:
    return out.toarray() if hasattr(out, "toarray") else np.asarray(out)


def _columns(rows: Any, columns: Any) -> Any:
    """A ColumnTransformer's column selection: names on a DataFrame, positions on an array."""
    if hasattr(rows, "iloc"):
        return rows[columns] if not isinstance(columns, slice) else rows.iloc[:, columns]
    return np.asarray(rows)[:, columns]
