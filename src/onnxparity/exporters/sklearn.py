"""scikit-learn estimator or pipeline -> ONNX (skl2onnx), and the estimator as the reference.

Inputs: one ``(batch, n_features)`` input is passed to the estimator as an array; several
inputs are the columns of a pandas DataFrame (one ONNX input per column, named like it, shape
``(batch, 1)``) — the form a ``ColumnTransformer`` over named numeric and string columns takes.
Initial types follow the spec's dtypes (float32 -> FloatTensorType, float64 ->
DoubleTensorType, int64 -> Int64TensorType, str -> StringTensorType). Classifiers convert with
``zipmap=False`` so probabilities are a plain array (with float64 inputs the ZipMap graph is
invalid anyway).

The reference mirrors the ONNX outputs by name: ``label`` -> ``predict``, ``probabilities`` ->
``predict_proba``, ``variable`` -> ``predict`` (regressors) or ``transform`` (transformers),
``scores`` -> ``decision_function`` or ``transform`` (e.g. KMeans distances); each reshaped to
the ONNX output's rank. Labels compare exactly — except on ties, see compare.excuse_ties.

Float inputs reach the estimator as float64 (lossless, and how estimators are usually
fitted: some, such as KMeans, refuse a dtype other than their fitted one); when it refuses
float64 they arrive as declared.

Inferred inputs (no ``inputs=``) draw over what the fitted estimator knows of its features —
scaler statistics, tree split thresholds, cluster centres, kept training rows — or over the
rows of ``data=`` (see ``tabular``); a note says when nothing is known and [-1, 1] stands in.
IsolationForest converts with ``ai.onnx.ml`` opset 3, the newest its converter can build.

NaN inputs: scikit-learn raises on NaN where the ONNX model silently returns NaN, so NaN is
drawn only for inputs declared ``allow_nan=True`` (for estimators that accept NaN).
"""

from __future__ import annotations

import hashlib
import os
import pickle
from collections.abc import Mapping
from typing import Any

import numpy as np

from onnxparity.errors import ExportError, InvalidSpec
from onnxparity.exporters.base import (
    ExportedModel,
    Exporter,
    Reference,
    class_root,
    export_folder,
    exported_model,
    require,
    root_cause,
)
from onnxparity.exporters.sklearn_convert import (
    convert,
    estimator_rows,
    floats_as_float64,
    initial_types_of,
    is_classifier,
    is_regressor,
    round_bin_edges,
)
from onnxparity.exporters.tabular import (
    feature_ranges,
    features_input,
    label_outputs,
    range_notes,
    rounding_tolerance,
)
from onnxparity.graph.files import load_model, save_model
from onnxparity.spec import Input, ParitySpec


def _sklearn() -> Any:
    return require("sklearn", "scikit-learn", "sklearn")


def fingerprint(model: Any) -> str:
    """A digest of the fitted estimator (its pickle: parameters and state) and of the code of
    the functions it holds (a pickle names a function; its code is the identity's)."""
    from onnxparity.exporters.states import estimator_identity

    h = hashlib.blake2b(pickle.dumps(model, protocol=4), digest_size=16)
    h.update(estimator_identity(model).digest.encode())
    return h.hexdigest()


def check_fit(model: Any, spec: ParitySpec | None = None) -> None:
    """Raise when the estimator is not fitted, or the spec contradicts what it was fitted on."""
    _sklearn()
    from sklearn.exceptions import NotFittedError
    from sklearn.utils.validation import check_is_fitted

    try:
        check_is_fitted(model)
    except NotFittedError:
        raise ExportError(
            f"{type(model).__name__} is not fitted: call fit() before checking its export"
        ) from None
    except TypeError as exc:
        raise ExportError(f"{type(model).__name__} is not a scikit-learn estimator: {exc}") from None
    if spec is None:
        return
    n_features = getattr(model, "n_features_in_", None)
    names = getattr(model, "feature_names_in_", None)
    if len(spec.inputs) == 1:
        item = spec.inputs[0]
        if len(item.shape) != 2:
            raise InvalidSpec(f"Input({item.name!r}) must be (batch, n_features) for a scikit-learn model")
        if n_features is not None and item.shape[1] != n_features:
            raise InvalidSpec(
                f"Input({item.name!r}) has {item.shape[1]} features but {type(model).__name__} "
                f"was fitted on {n_features}: declare shape ('batch', {n_features})"
            )
    else:
        for item in spec.inputs:
            if item.shape[1:] != (1,) or len(item.shape) != 2:
                raise InvalidSpec(
                    f"Input({item.name!r}) has shape {item.shape}: with several inputs each is one "
                    "DataFrame column, shaped ('batch', 1)"
                )
        if names is not None:
            missing = [i.name for i in spec.inputs if i.name not in set(names)]
            extra = [n for n in names if n not in {i.name for i in spec.inputs}]
            if missing or extra:
                raise InvalidSpec(
                    f"{type(model).__name__} was fitted on columns {list(names)} but the spec declares "
                    f"{[i.name for i in spec.inputs]}: declare one op.Input per column, named like it"
                )


def make_reference(model: Any, spec: ParitySpec, exported: ExportedModel) -> Reference:
    """The estimator's own methods, one per ONNX output, shaped like the ONNX outputs."""

    proto = load_model(exported.path)
    ranks = {o.name: len(o.type.tensor_type.shape.dim) for o in proto.graph.output}
    methods = [_method_for(model, name) for name in exported.output_names]

    upcast = [True]  # float inputs as float64 until the estimator refuses them

    def reference(feeds: Mapping[str, np.ndarray]) -> list[np.ndarray]:
        if upcast[0]:
            try:
                return run(estimator_rows(spec, floats_as_float64(feeds)))
            except (ValueError, TypeError) as exc:
                if "dtype" not in str(exc):
                    raise
                upcast[0] = False
        return run(estimator_rows(spec, feeds))

    def run(X: Any) -> list[np.ndarray]:
        outputs = []
        for name, method in zip(exported.output_names, methods):
            value = np.asarray(method(X))
            rank = ranks.get(name, value.ndim)
            if value.ndim == 1 and rank == 2:
                value = value.reshape(-1, 1)
            outputs.append(value)
        return outputs

    return reference


def _method_for(model: Any, output: str) -> Any:
    lowered = output.lower()
    if lowered == "gpmean":  # GaussianProcessRegressor: the mean, and with return_std its std
        return model.predict
    if lowered in ("gpcovstd", "gpstd"):
        return lambda X: model.predict(X, return_std=True)[1]
    if "label" in lowered:
        return model.predict
    if "probabilit" in lowered:
        return model.predict_proba
    if "score" in lowered:
        return getattr(model, "decision_function", None) or model.transform
    if lowered == "variable":
        if is_regressor(model) or is_classifier(model):
            return model.predict
        if hasattr(model, "transform"):
            return model.transform
        return model.predict
    raise ExportError(
        f"no {type(model).__name__} method matches the ONNX output {output!r}; "
        "pass reference= to say how to compute it"
    )


def export(model: Any, spec: ParitySpec, *, workdir: str, opset: int | None = None) -> ExportedModel:
    import onnx

    check_fit(model, spec)
    initial_types = initial_types_of(spec)

    key = f"sklearn-{fingerprint(model)}-{spec.input_digest}-opset{opset}"
    folder = export_folder(workdir, key)
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, "model.onnx")
    try:
        proto = convert(model, initial_types, opset)
    except Exception as exc:
        raise ExportError(
            f"skl2onnx could not convert {_describe(model)}: {root_cause(exc)} ({_advice(exc)})"
        ) from exc
    try:
        onnx.checker.check_model(proto, full_check=True)
    except Exception as exc:
        raise ExportError(
            f"skl2onnx produced an invalid ONNX model for {_describe(model)}: {root_cause(exc)}"
        ) from exc
    edges = round_bin_edges(proto, model)
    save_model(proto, path)
    name = _describe(model)
    tolerance, rounding = rounding_tolerance(name, proto)
    notes = [*range_notes(name, feature_ranges(model), spec), *rounding, *edges]
    return exported_model(
        path, proto, spec, exporter="skl2onnx", key=key, notes=notes, default_tolerance=tolerance
    )


def _advice(exc: BaseException) -> str:
    """What to do about a converter failure: one known incompatibility, else the README."""
    if "Expected an int, got a boolean" in root_cause(exc):
        # skl2onnx's tree_ensemble.py writes a Python bool into nodes_missing_value_tracks_true
        # for HistGradientBoosting leaves; protobuf 7 rejects bools in an ints field (6 took them).
        import google.protobuf

        return (
            f"skl2onnx writes a bool into an ints attribute, which protobuf {google.protobuf.__version__} "
            "rejects; install 'protobuf<7' until skl2onnx fixes it"
        )
    return "see README 'scikit-learn' for estimators known not to convert"


def _describe(model: Any) -> str:
    steps = getattr(model, "steps", None)
    if steps:
        return f"{type(model).__name__}({', '.join(type(s).__name__ for _, s in steps)})"
    return type(model).__name__


def _column(name: str, column: Any) -> Input:
    """One DataFrame column as an input: strings by category, numbers over their observed range."""
    if column.dtype == object or str(column.dtype) in ("string", "str", "category"):
        return Input(name, ("batch", 1), dtype="str")
    low, high = float(column.min()), float(column.max())
    return Input(name, ("batch", 1), dtype="float32", low=low, high=high if high > low else low + 1.0)


def _string_categories(model: Any) -> tuple[str, ...] | None:
    """The categories of a model whose first step encodes strings (a OneHotEncoder or
    OrdinalEncoder fitted on a numpy array of strings), every column's together; None where it
    takes numbers, or where a category drawn in another column would be refused
    (``handle_unknown='error'``, columns of different categories)."""
    first = model.steps[0][1] if hasattr(model, "steps") else model
    found = getattr(first, "categories_", None)
    if not found or not all(np.asarray(c).dtype.kind in "OUS" for c in found):
        return None
    columns = [tuple(str(v) for v in c) for c in found]
    if getattr(first, "handle_unknown", "error") == "error" and len(set(columns)) > 1:
        return None
    return tuple(sorted({v for c in columns for v in c}))


def declared_inputs(model: Any, data: Any = None) -> tuple[Input, ...]:
    """A fitted estimator's inputs: one ``(batch, n_features)`` input, or one per named column
    (their dtypes from ``data=``)."""
    check_fit(model)
    names = getattr(model, "feature_names_in_", None)
    if names is not None:
        if data is None or not hasattr(data, "dtypes"):
            raise InvalidSpec(
                f"{type(model).__name__} was fitted on named columns {list(names)}: give data= "
                "(a DataFrame of real rows) to infer their dtypes, or inputs=[op.Input(...)] per column"
            )
        return tuple(_column(str(n), data[n]) for n in names)
    n_features = getattr(model, "n_features_in_", None)
    strings = _string_categories(model)
    if strings is not None and n_features is not None:  # fitted on a numpy array of strings
        return (Input("X", ("batch", int(n_features)), dtype="str", categories=strings),)
    first = model.steps[0][1] if hasattr(model, "steps") else model
    if n_features is None and hasattr(first, "build_analyzer"):  # a text vectorizer: it records no count
        raise InvalidSpec(
            f"{type(model).__name__} takes text ({type(first).__name__} reads one document per row): declare "
            "inputs=[op.Input('X', ('batch', 1), dtype='str', categories=[...documents to draw...])], or give "
            "data= with real documents"
        )
    if n_features is None:
        raise InvalidSpec(
            f"{type(model).__name__} does not know how many features it takes (fit() records "
            "n_features_in_): fit it, or give inputs=[op.Input('X', ('batch', n_features))]"
        )
    return (features_input("X", n_features, feature_ranges(model), data),)


class SklearnExporter(Exporter):
    """A fitted scikit-learn estimator or pipeline, through skl2onnx."""

    name = "sklearn"
    extra = "sklearn"

    def detects(self, model: Any) -> bool:
        return "sklearn" in class_root(model)

    declared_inputs = staticmethod(declared_inputs)
    fingerprint = staticmethod(fingerprint)
    packages = ("scikit-learn", "skl2onnx", "onnx")

    def identity(self, model: Any) -> Any:
        """The code of the estimator's classes and of the functions its parameters hold (a
        FunctionTransformer's ``func``); the fitted state is in the fingerprint."""
        from onnxparity.exporters.states import estimator_identity

        return estimator_identity(model)

    check_fit = staticmethod(check_fit)
    export = staticmethod(export)

    def reference(self, model: Any, spec: ParitySpec, exported: ExportedModel) -> Reference:
        return make_reference(model, spec, exported)

    label_outputs = staticmethod(label_outputs)
    source_kind = "step"

    def intermediates(
        self, model: Any, spec: ParitySpec, feeds: Mapping[str, Any], graph: Any
    ) -> dict[str, Any]:
        from onnxparity.exporters.sklearn_values import intermediates

        return intermediates(model, spec, feeds, graph)


#: the built-in instance (:data:`onnxparity.exporters.BUILTINS` names it)
EXPORTER = SklearnExporter()
