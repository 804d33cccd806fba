"""Gradient-boosted trees -> ONNX (onnxmltools): XGBoost and LightGBM models, through their
scikit-learn API (``XGBClassifier``, ``XGBRegressor``, ``LGBMClassifier``, ``LGBMRegressor``).

skl2onnx has no converter for them (``MissingShapeCalculator``); onnxmltools' ``convert_xgboost``
and ``convert_lightgbm`` write one ``TreeEnsembleClassifier``/``TreeEnsembleRegressor``. The
input is one float32 ``(batch, n_features)`` tensor — the TreeEnsemble compares float32
thresholds — drawn, when inferred, over the booster's own split thresholds (see ``tabular``).
Classifier outputs are ``label`` and ``probabilities`` (``zipmap=False``), a regressor's is
``variable``; the reference is ``predict``/``predict_proba`` shaped like them, and labels are
judged with ties excused (``label_outputs``).

Measured (xgboost 3.2, lightgbm 4.7, onnxruntime 1.32; 10-500 trees of depth 6; ~12k rows per
model: drawn over the inferred range, the training rows, and rows jittered by 1% of each
feature's spread): XGBoost computes in float32 as ONNX does, in another order; LightGBM sums in
float64 and compares float64 thresholds, which onnxmltools stores as float32. Probabilities
differ by at most 2.9e-6 (9% of the default Tolerance, atol=1e-5 + rtol=1e-4), regressors on a
standardised target by 1.7e-6 (3%), and no label flipped. A regressor whose outputs are large
and cross zero is the exception: a target in the hundred thousands gave 0.5 absolute at 500
trees, 19x the default tolerance where an output was near zero — float32 summation, not a bug;
``tabular.rounding_notes`` then says which atol to declare. Every planted 1% change to a first
tree's leaves failed at the default tolerance (tests/test_zoo_trees.py), so the default stands.
Rows exactly on a float32-rounded LightGBM threshold could still go the other way; none did.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np

from ..errors import ExportError, InvalidSpec
from ..onnxutils import load_model, quiet, save_model
from ..spec import Input, ParitySpec
from . import (
    ExportedModel,
    Exporter,
    Reference,
    class_root,
    exported_model,
    register_exporter,
    require,
    root_cause,
)
from .tabular import FeatureRanges, features_input, range_notes, rounding_notes, split_ranges

_LOGGERS = ("onnxmltools", "skl2onnx")


class BoostedTreesExporter(Exporter):
    """What XGBoost and LightGBM share: one float32 input, onnxmltools, predict/predict_proba."""

    extra = "gbdt"
    #: the framework's top-level package, as class modules name it
    framework = ""
    #: onnxmltools' converter function for it
    converter = ""

    #: the scikit-learn-API classes it converts, for errors
    wrappers = ""

    def detects(self, model: Any) -> bool:
        return self.framework in class_root(model)

    def booster_text(self, model: Any) -> bytes:
        """The fitted model, serialised: what the fingerprint digests."""
        raise NotImplementedError

    def splits(self, model: Any) -> tuple[np.ndarray, np.ndarray, int]:
        """(feature index, threshold) of every numeric split node, and the number of trees."""
        raise NotImplementedError

    def convertible(self, model: Any) -> Any:
        """The model as the converter takes it (a copy where it must change)."""
        return model

    def convert_options(self) -> dict:
        return {}

    # -- the Exporter protocol ---------------------------------------------------------------
    def fingerprint(self, model: Any) -> str:
        digest = hashlib.blake2b(digest_size=16)
        digest.update(f"{type(model).__module__}.{type(model).__qualname__}".encode())
        if _fitted(model):
            digest.update(self.booster_text(model))
        return digest.hexdigest()

    def check_fit(self, model: Any, spec: ParitySpec | None = None) -> None:
        name = type(model).__name__
        if not hasattr(model, "__sklearn_is_fitted__"):
            raise ExportError(
                f"{type(model).__module__}.{name} is not a scikit-learn-API {self.framework} model: "
                f"check a fitted {self.wrappers}"
            )
        if not _fitted(model):
            raise ExportError(f"{name} is not fitted: call fit() before checking its export")
        if spec is None:
            return
        n_features = int(model.n_features_in_)
        if len(spec.inputs) != 1:
            raise InvalidSpec(
                f"{name} takes one input, shaped ('batch', {n_features}), but the spec declares "
                f"{len(spec.inputs)}: declare one op.Input"
            )
        item = spec.inputs[0]
        if len(item.shape) != 2 or item.shape[1] != n_features:
            raise InvalidSpec(
                f"Input({item.name!r}) has shape {item.shape} but {name} was fitted on {n_features} "
                f"features: declare shape ('batch', {n_features})"
            )
        if item.dtype != "float32":
            raise InvalidSpec(
                f"Input({item.name!r}) dtype {item.dtype}: {self.framework} exports take float32 "
                "features (the TreeEnsemble compares float32 thresholds); declare dtype='float32'"
            )

    def declared_inputs(self, model: Any, data: Any = None) -> tuple[Input, ...]:
        self.check_fit(model)
        return (features_input("X", int(model.n_features_in_), self.feature_ranges(model), data),)

    def feature_ranges(self, model: Any) -> FeatureRanges | None:
        """Each feature's outermost split thresholds, widened (see ``tabular.split_ranges``)."""
        features, thresholds, trees = self.splits(model)
        if not len(features):
            return None
        n_features = int(model.n_features_in_)
        return split_ranges(features, thresholds, n_features, f"split thresholds of {trees} trees")

    def export(self, model: Any, spec: ParitySpec, *, workdir: str, opset: int | None) -> ExportedModel:
        import onnx

        self.check_fit(model, spec)
        onnxmltools = require("onnxmltools", "onnxmltools", self.extra, *_LOGGERS)
        types = require("onnxmltools.convert.common.data_types", "onnxmltools", self.extra, *_LOGGERS)
        item = spec.inputs[0]
        initial_types = [(item.name, types.FloatTensorType([None, int(model.n_features_in_)]))]
        key = f"{self.name}-{self.fingerprint(model)}-{spec.input_digest}-opset{opset}"
        folder = os.path.join(workdir, f"export-{key[:48]}")
        os.makedirs(folder, exist_ok=True)
        path = os.path.join(folder, "model.onnx")
        convert = getattr(onnxmltools, self.converter)
        try:
            with quiet(*_LOGGERS):
                proto = convert(
                    self.convertible(model),
                    initial_types=initial_types,
                    target_opset=opset,
                    **self.convert_options(),
                )
        except Exception as exc:
            raise ExportError(
                f"onnxmltools could not convert {type(model).__name__}: {root_cause(exc)}"
            ) from exc
        notes = _free_batch_dims(proto, item.shape[0])
        try:
            onnx.checker.check_model(proto, full_check=True)
        except Exception as exc:
            raise ExportError(
                f"onnxmltools produced an invalid ONNX model for {type(model).__name__}: {root_cause(exc)}"
            ) from exc
        save_model(proto, path)
        notes += range_notes(type(model).__name__, self.feature_ranges(model), spec)
        notes += rounding_notes(type(model).__name__, proto)
        return exported_model(path, proto, spec, exporter="onnxmltools", key=key, notes=notes)

    def reference(self, model: Any, spec: ParitySpec, exported: ExportedModel) -> Reference:
        proto = load_model(exported.path)
        ranks = {o.name: len(o.type.tensor_type.shape.dim) for o in proto.graph.output}
        methods = [_method_for(model, name) for name in exported.output_names]
        columns = getattr(model, "feature_names_in_", None)
        name = spec.inputs[0].name

        def reference(feeds: Mapping[str, np.ndarray]) -> list[np.ndarray]:
            X = feeds[name]
            if columns is not None:  # fitted on a DataFrame: predict on one (LightGBM warns otherwise)
                import pandas as pd

                X = pd.DataFrame(X, columns=list(columns))
            outputs = []
            for output, method in zip(exported.output_names, methods):
                value = np.asarray(method(X))
                if value.ndim == 1 and ranks.get(output, 1) == 2:
                    value = value.reshape(-1, 1)
                outputs.append(value)
            return outputs

        return reference

    def label_outputs(self, model: Any, exported: ExportedModel) -> dict[str, tuple[str, tuple]]:
        classes = getattr(model, "classes_", None)
        names = exported.output_names
        label = next((n for n in names if "label" in n.lower()), None)
        probabilities = next((n for n in names if "probabilit" in n.lower()), None)
        if classes is None or label is None or probabilities is None:
            return {}
        return {label: (probabilities, tuple(np.asarray(classes).tolist()))}


class XGBoostExporter(BoostedTreesExporter):
    """An ``XGBClassifier`` or ``XGBRegressor``, through ``onnxmltools.convert_xgboost``."""

    name = "xgboost"
    framework = "xgboost"
    converter = "convert_xgboost"
    wrappers = "XGBClassifier or XGBRegressor (load_model loads a saved booster into one)"

    def booster_text(self, model: Any) -> bytes:
        return bytes(model.get_booster().save_raw("json"))

    def convertible(self, model: Any) -> Any:
        # onnxmltools reads feature ids from the dump as 'f<index>': a model fitted on named
        # columns dumps their names instead. Convert a copy without them.
        names = model.get_booster().feature_names
        if names is None or names == [f"f{i}" for i in range(len(names))]:
            return model
        unnamed = copy.deepcopy(model)
        unnamed.get_booster().feature_names = None
        return unnamed

    def splits(self, model: Any) -> tuple[np.ndarray, np.ndarray, int]:
        booster = model.get_booster()
        names = booster.feature_names
        index = {n: i for i, n in enumerate(names)} if names else {}
        trees = booster.get_dump(dump_format="json")
        features, thresholds = [], []
        for tree in trees:
            for node in _nodes(json.loads(tree), "children"):
                condition = node.get("split_condition")
                if isinstance(condition, (int, float)):  # categorical splits list categories
                    split = node["split"]
                    features.append(index[split] if split in index else int(str(split).lstrip("f")))
                    thresholds.append(float(condition))
        return np.asarray(features, dtype=np.int64), np.asarray(thresholds, dtype=np.float64), len(trees)


class LightGBMExporter(BoostedTreesExporter):
    """An ``LGBMClassifier`` or ``LGBMRegressor``, through ``onnxmltools.convert_lightgbm``."""

    name = "lightgbm"
    framework = "lightgbm"
    converter = "convert_lightgbm"
    wrappers = "LGBMClassifier or LGBMRegressor"

    def booster_text(self, model: Any) -> bytes:
        return model.booster_.model_to_string().encode()

    def convert_options(self) -> dict:
        return {"zipmap": False}

    def splits(self, model: Any) -> tuple[np.ndarray, np.ndarray, int]:
        trees = model.booster_.dump_model()["tree_info"]
        features, thresholds = [], []
        for tree in trees:
            for node in _nodes(tree["tree_structure"], "left_child", "right_child"):
                if node.get("decision_type") == "<=" and "split_feature" in node:
                    features.append(int(node["split_feature"]))
                    thresholds.append(float(node["threshold"]))
        return np.asarray(features, dtype=np.int64), np.asarray(thresholds, dtype=np.float64), len(trees)


def _fitted(model: Any) -> bool:
    is_fitted = getattr(model, "__sklearn_is_fitted__", None)
    return bool(is_fitted()) if callable(is_fitted) else False


def _nodes(root: dict, *child_keys: str) -> Iterator[dict]:
    """Every node of a dumped tree (depth-first, without recursion: trees can be deep)."""
    stack = [root]
    while stack:
        node = stack.pop()
        yield node
        for key in child_keys:
            children = node.get(key)
            if isinstance(children, dict):
                stack.append(children)
            elif isinstance(children, list):
                stack.extend(children)


def _method_for(model: Any, output: str):
    lowered = output.lower()
    if "label" in lowered:
        return model.predict
    if "probabilit" in lowered:
        return model.predict_proba
    if lowered == "variable":
        return model.predict
    raise ExportError(
        f"no {type(model).__name__} method matches the ONNX output {output!r}; "
        "pass reference= to say how to compute it"
    )


def _free_batch_dims(proto, batch: Any) -> list[str]:
    """Make each output's first axis the batch dim where the converter fixed it to 1 (onnxmltools
    declares LightGBM's ``label`` as shape [1]; ONNX Runtime warns on every run of a batch)."""
    notes = []
    for output in proto.graph.output:
        dims = output.type.tensor_type.shape.dim
        if dims and dims[0].HasField("dim_value") and dims[0].dim_value == 1:
            dims[0].dim_param = str(batch)
            notes.append(
                f"onnxmltools declared output {output.name!r} with a first axis fixed at 1; "
                f"it holds one row per input row, so it is declared {batch!r} here"
            )
    return notes


register_exporter(XGBoostExporter(), replace=True)
register_exporter(LightGBMExporter(), replace=True)
