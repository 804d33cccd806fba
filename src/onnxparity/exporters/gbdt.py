"""Gradient-boosted trees -> ONNX: XGBoost and LightGBM models through onnxmltools, CatBoost
models through CatBoost's own export; each through its scikit-learn API (``XGBClassifier``,
``XGBRegressor``, ``LGBMClassifier``, ``LGBMRegressor``, ``CatBoostClassifier``,
``CatBoostRegressor``).

skl2onnx has no converter for them (``MissingShapeCalculator``); onnxmltools' ``convert_xgboost``
and ``convert_lightgbm`` write one ``TreeEnsembleClassifier``/``TreeEnsembleRegressor``, and so
does CatBoost's ``save_model(format="onnx")`` (its input is renamed like the spec's, and its
ZipMap dropped: the check reads the probability tensor under it). The
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
``tabular.rounding_tolerance`` then raises the model's default atol to that bound. Every planted 1% change to a first
tree's leaves failed at the default tolerance (tests/test_zoo_trees.py), so the default stands.
Rows exactly on a LightGBM threshold that onnxmltools rounded *up* to float32 do go the other
way: the boundary pattern found it on every LightGBM zoo model (drawn rows never had), so the
LightGBM export rounds those thresholds down (:meth:`LightGBMExporter.round_thresholds`).
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import tempfile
from collections.abc import Iterator, Mapping
from typing import Any, cast

import numpy as np

from onnxparity.environment import quiet
from onnxparity.errors import ExportError, FrameworkNotInstalled, InvalidSpec
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
from onnxparity.exporters.tabular import (
    FeatureRanges,
    features_input,
    label_outputs,
    range_notes,
    rounding_tolerance,
    split_ranges,
)
from onnxparity.graph.files import load_model, rename_dim_params, rename_values, save_model
from onnxparity.spec import Input, ParitySpec

_LOGGERS = ("onnxmltools", "skl2onnx")


class BoostedTreesExporter(Exporter):
    """What the boosted-tree sources share: one float32 input, predict/predict_proba."""

    extra = "gbdt"
    #: the framework's top-level package, as class modules name it
    framework = ""
    #: the scikit-learn-API classes it converts, for errors
    wrappers = ""
    #: what writes the ONNX file, for reports
    converter = ""

    packages = ("xgboost", "lightgbm", "catboost", "onnxmltools", "onnx", "scikit-learn")

    def identity(self, model: Any) -> Any:
        """The wrapper's class and parameters (``missing``, a custom objective's code); the
        booster is the fingerprint."""
        from onnxparity.exporters.states import estimator_identity

        return estimator_identity(model)

    def detects(self, model: Any) -> bool:
        return self.framework in class_root(model)

    def fitted(self, model: Any) -> bool:
        is_fitted = getattr(model, "__sklearn_is_fitted__", None)
        return bool(is_fitted()) if callable(is_fitted) else False

    def booster_text(self, model: Any) -> bytes:
        """The fitted model, serialised: what the fingerprint digests."""
        raise NotImplementedError

    def splits(self, model: Any) -> tuple[np.ndarray, np.ndarray, int]:
        """(feature index, threshold) of every numeric split, and the number of trees."""
        raise NotImplementedError

    def convert(self, model: Any, item: Input, opset: int | None, folder: str) -> Any:
        """The model as an ONNX ModelProto with one float32 input named like ``item``."""
        raise NotImplementedError

    def repair(self, proto: Any, item: Input) -> list[str]:
        """Fix what the converter declares wrongly, in place; a note for each fix."""
        return _free_batch_dims(proto, item.shape[0], self.converter)

    def round_thresholds(self, proto: Any, model: Any) -> list[str]:
        """Fix split thresholds the converter rounded to the wrong side, in place; a note."""
        return []

    # -- the Exporter protocol ---------------------------------------------------------------
    def fingerprint(self, model: Any) -> str:
        digest = hashlib.blake2b(digest_size=16)
        digest.update(f"{type(model).__module__}.{type(model).__qualname__}".encode())
        if self.fitted(model):
            digest.update(self.booster_text(model))
        digest.update(self.identity(model).digest.encode())
        return digest.hexdigest()

    def check_fit(self, model: Any, spec: ParitySpec | None = None) -> None:
        name = type(model).__name__
        if not (callable(getattr(model, "fit", None)) and callable(getattr(model, "predict", None))):
            raise ExportError(
                f"{type(model).__module__}.{name} is not a scikit-learn-API {self.framework} model: "
                f"check a fitted {self.wrappers}"
            )
        if not self.fitted(model):
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
        item, name = spec.inputs[0], type(model).__name__
        key = f"{self.name}-{self.fingerprint(model)}-{spec.input_digest}-opset{opset}"
        folder = export_folder(workdir, key)
        os.makedirs(folder, exist_ok=True)
        path = os.path.join(folder, "model.onnx")
        try:
            with quiet(*_LOGGERS):
                proto = self.convert(model, item, opset, folder)
        except (ExportError, FrameworkNotInstalled):
            raise
        except Exception as exc:
            raise ExportError(f"{self.converter} could not convert {name}: {root_cause(exc)}") from exc
        notes = self.repair(proto, item) + self.round_thresholds(proto, model)
        try:
            onnx.checker.check_model(proto, full_check=True)
        except Exception as exc:
            raise ExportError(
                f"{self.converter} produced an invalid ONNX model for {name}: {root_cause(exc)}"
            ) from exc
        save_model(proto, path)
        notes += range_notes(name, self.feature_ranges(model), spec)
        tolerance, rounding = rounding_tolerance(name, proto)
        return exported_model(
            path,
            proto,
            spec,
            exporter=self.converter,
            key=key,
            notes=[*notes, *rounding],
            default_tolerance=tolerance,
        )

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
                rank = ranks.get(output, value.ndim)
                if value.ndim == 1 and rank == 2:
                    value = value.reshape(-1, 1)
                elif value.ndim == 2 and rank == 1 and value.shape[1] == 1:  # CatBoost's labels
                    value = value.reshape(-1)
                outputs.append(value)
            return outputs

        return reference

    label_outputs = staticmethod(label_outputs)


class OnnxmltoolsExporter(BoostedTreesExporter):
    """A source converted by one of onnxmltools' functions."""

    converter = "onnxmltools"
    #: onnxmltools' function for it
    function = ""

    def convertible(self, model: Any) -> Any:
        """The model as the converter takes it (a copy where it must change)."""
        return model

    def convert_options(self) -> dict[str, Any]:
        return {}

    def convert(self, model: Any, item: Input, opset: int | None, folder: str) -> Any:
        onnxmltools = require("onnxmltools", "onnxmltools", self.extra, *_LOGGERS)
        types = require("onnxmltools.convert.common.data_types", "onnxmltools", self.extra, *_LOGGERS)
        initial_types = [(item.name, types.FloatTensorType([None, int(model.n_features_in_)]))]
        return getattr(onnxmltools, self.function)(
            self.convertible(model), initial_types=initial_types, target_opset=opset, **self.convert_options()
        )


class XGBoostExporter(OnnxmltoolsExporter):
    """An ``XGBClassifier`` or ``XGBRegressor``, through ``onnxmltools.convert_xgboost``."""

    name = "xgboost"
    framework = "xgboost"
    function = "convert_xgboost"
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


class LightGBMExporter(OnnxmltoolsExporter):
    """An ``LGBMClassifier`` or ``LGBMRegressor``, through ``onnxmltools.convert_lightgbm``."""

    name = "lightgbm"
    framework = "lightgbm"
    function = "convert_lightgbm"
    wrappers = "LGBMClassifier or LGBMRegressor"

    def booster_text(self, model: Any) -> bytes:
        return cast(bytes, model.booster_.model_to_string().encode())

    def convert_options(self) -> dict[str, Any]:
        return {"zipmap": False}

    def round_thresholds(self, proto: Any, model: Any) -> list[str]:
        """LightGBM sends a row left when ``x <= t`` with ``t`` a float64; onnxmltools stores
        ``t`` as the *nearest* float32, so a float32 input exactly on a threshold rounded up goes
        right in LightGBM and left in the ONNX model (found by the boundary pattern: 3 of 3
        LightGBM zoo models). The float32 that decides like LightGBM is the largest one <= t,
        as skl2onnx stores sklearn's; thresholds rounded up are moved down one float32 step."""
        from onnx import helper

        _, thresholds, _ = self.splits(model)
        rounded_up = {float(np.float32(t)) for t in thresholds if float(np.float32(t)) > t} - {
            float(np.float32(t)) for t in thresholds if float(np.float32(t)) <= t
        }
        moved = 0
        for node in proto.graph.node:
            if not node.op_type.startswith("TreeEnsemble"):
                continue
            attributes = {a.name: a for a in node.attribute}
            modes = [m.decode() for m in attributes["nodes_modes"].strings]
            values = list(attributes["nodes_values"].floats)
            for i, (mode, value) in enumerate(zip(modes, values)):
                if mode == "BRANCH_LEQ" and float(np.float32(value)) in rounded_up:
                    values[i] = float(np.nextafter(np.float32(value), np.float32(-np.inf)))
                    moved += 1
            attributes["nodes_values"].CopyFrom(helper.make_attribute("nodes_values", values))
        if not moved:
            return []
        return [
            f"onnxmltools stored {moved} of LightGBM's float64 split thresholds as the nearest float32, "
            "above the threshold: an input exactly there would go the other way than in LightGBM. They "
            "are rounded down here (as skl2onnx does); an ONNX file converted by onnxmltools directly "
            "still has them (check it with onnx=...)"
        ]

    def splits(self, model: Any) -> tuple[np.ndarray, np.ndarray, int]:
        trees = model.booster_.dump_model()["tree_info"]
        features, thresholds = [], []
        for tree in trees:
            for node in _nodes(tree["tree_structure"], "left_child", "right_child"):
                if node.get("decision_type") == "<=" and "split_feature" in node:
                    features.append(int(node["split_feature"]))
                    thresholds.append(float(node["threshold"]))
        return np.asarray(features, dtype=np.int64), np.asarray(thresholds, dtype=np.float64), len(trees)


class CatBoostExporter(BoostedTreesExporter):
    """A ``CatBoostClassifier`` or ``CatBoostRegressor``, through CatBoost's own ONNX export
    (``save_model(format="onnx")``; numeric features only: it refuses categorical ones)."""

    name = "catboost"
    framework = "catboost"
    converter = "catboost"
    wrappers = "CatBoostClassifier or CatBoostRegressor"

    def fitted(self, model: Any) -> bool:
        return bool(getattr(model, "is_fitted", lambda: False)())

    def booster_text(self, model: Any) -> bytes:
        with tempfile.TemporaryDirectory() as folder:
            model.save_model(os.path.join(folder, "model.cbm"))
            with open(os.path.join(folder, "model.cbm"), "rb") as handle:
                return handle.read()

    def splits(self, model: Any) -> tuple[np.ndarray, np.ndarray, int]:
        with tempfile.TemporaryDirectory() as folder:
            model.save_model(os.path.join(folder, "model.json"), format="json")
            with open(os.path.join(folder, "model.json")) as handle:
                dumped = json.load(handle)
        features, thresholds = [], []
        for feature in dumped["features_info"].get("float_features", []):
            borders = feature.get("borders") or []
            features += [int(feature["flat_feature_index"])] * len(borders)
            thresholds += [float(b) for b in borders]
        trees = len(dumped.get("oblivious_trees") or dumped.get("trees") or [])
        return np.asarray(features, dtype=np.int64), np.asarray(thresholds, dtype=np.float64), trees

    def convert(self, model: Any, item: Input, opset: int | None, folder: str) -> Any:
        import onnx

        if opset is not None:
            raise ExportError(
                f"CatBoost's ONNX export has no opset choice (it writes ai.onnx.ml 2 only): leave "
                f"opset={opset} unset for {type(model).__name__}"
            )
        path = os.path.join(folder, "catboost.onnx")
        model.save_model(path, format="onnx")
        return onnx.load(path)

    def repair(self, proto: Any, item: Input) -> list[str]:
        from onnx import TensorProto, helper

        (graph_input,) = proto.graph.input
        batch = str(item.shape[0])
        dims = graph_input.type.tensor_type.shape.dim
        rename_dim_params(proto, {dims[0].dim_param: batch} if dims and dims[0].dim_param else {})
        rename_values(proto, {graph_input.name: item.name})
        notes = []
        zipmap = next((n for n in proto.graph.node if n.op_type == "ZipMap"), None)
        if zipmap is not None:  # probabilities as one {class: p} per row: keep the tensor under it
            (output,) = zipmap.output
            proto.graph.node.remove(zipmap)
            proto.graph.output.remove(next(o for o in proto.graph.output if o.name == output))
            rename_values(proto, {zipmap.input[0]: output})
            proto.graph.output.append(helper.make_tensor_value_info(output, TensorProto.FLOAT, [batch, None]))
            notes.append(
                f"CatBoost's export ends in a ZipMap (one {{class: probability}} per row); the check "
                f"reads the tensor under it as {output!r}"
            )
        for output in proto.graph.output:  # the regressor's (batch, targets) is declared (batch,)
            shape = output.type.tensor_type.shape
            if output.type.tensor_type.elem_type == TensorProto.FLOAT and len(shape.dim) == 1:
                shape.dim.add().dim_value = 1
        return notes + _free_batch_dims(proto, batch, self.converter)


def _nodes(root: dict[str, Any], *child_keys: str) -> Iterator[dict[str, Any]]:
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


def _method_for(model: Any, output: str) -> Any:
    lowered = output.lower()
    if "label" in lowered:
        return model.predict
    if "probabilit" in lowered:
        return model.predict_proba
    if lowered in ("variable", "predictions"):  # onnxmltools', CatBoost's regressor output
        return model.predict
    raise ExportError(
        f"no {type(model).__name__} method matches the ONNX output {output!r}; "
        "pass reference= to say how to compute it"
    )


def _free_batch_dims(proto: Any, batch: Any, converter: str) -> list[str]:
    """Make each output's first axis the batch dim where the converter fixed it to 1 (onnxmltools
    declares LightGBM's ``label`` as shape [1]; ONNX Runtime warns on every run of a batch)."""
    notes = []
    for output in proto.graph.output:
        dims = output.type.tensor_type.shape.dim
        if dims and dims[0].HasField("dim_value") and dims[0].dim_value == 1:
            dims[0].dim_param = str(batch)
            notes.append(
                f"{converter} declared output {output.name!r} with a first axis fixed at 1; "
                f"it holds one row per input row, so it is declared {batch!r} here"
            )
    return notes


#: the built-in instances (:data:`onnxparity.exporters.BUILTINS` names them)
XGBOOST_EXPORTER = XGBoostExporter()
LIGHTGBM_EXPORTER = LightGBMExporter()
CATBOOST_EXPORTER = CatBoostExporter()
