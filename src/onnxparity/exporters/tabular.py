"""What a fitted tabular model knows of its inputs' values, so inferred inputs draw from there.

A model's inputs inferred without ``data=`` used to be drawn from [-1, 1]: an XGBoost model
trained on breast-cancer features then gave one constant output, KMeans and gradient boosting
a single label — a pass that could not have failed. The fitted model usually knows better:
a scaler's statistics, every tree split's threshold (reaching a little past the outermost, so
rows land on both sides of each split), cluster centres, training rows a neighbours model
keeps. :func:`feature_ranges` reads them per feature, reading attributes only (no framework is
imported), and :func:`features_input` makes the one ``(batch, n_features)`` input; an input
has one range, so per-feature ranges become their union, and :func:`range_notes` says when
that (or the [-1, 1] fallback) is a weak stand-in for real rows. What a fitted classifier knows
of its outputs is here too: :func:`label_outputs` pairs its label output with its probabilities.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, cast

import numpy as np

from onnxparity.exporters.base import ExportedModel
from onnxparity.spec import DEFAULT_RANGES, DEFAULT_TOLERANCE, Input, ParitySpec, Tolerance

#: how far past a feature's outermost split thresholds the inferred range reaches, as a fraction
#: of their spread (or of the threshold itself when a feature has one): rows land on both sides.
THRESHOLD_MARGIN = 0.1
#: a scaler's mean ± this many standard deviations.
STD_SPAN = 3.0
#: RobustScaler's median ± this many interquartile ranges (about Tukey's fences).
IQR_SPAN = 2.0
#: cluster centres and class means lie inside the data: reach this fraction of their spread past them.
CENTRE_MARGIN = 0.5
#: features whose spans differ by more than this share one drawn range poorly (a note says so).
SCALE_RATIO = 100.0

#: steps that leave the values of the features they pass on unchanged (only NaN is imputed).
_VALUE_PRESERVING = ("SimpleImputer", "KNNImputer", "IterativeImputer")


@dataclass(frozen=True)
class FeatureRanges:
    """Per-feature value ranges a fitted model knows (NaN: nothing known of that feature)."""

    low: np.ndarray
    high: np.ndarray
    source: str  # what they came from, for notes: "split thresholds of 20 trees"

    def union(self) -> tuple[float, float] | None:
        """The one range an input of all these features draws from (None: nothing known)."""
        known = ~(np.isnan(self.low) | np.isnan(self.high))
        if not known.any():
            return None
        low, high = float(self.low[known].min()), float(self.high[known].max())
        return (low, high) if high > low else (low - 1.0, low + 1.0)

    def spread(self) -> float:
        """How many times wider the widest known feature span is than the narrowest."""
        spans = (self.high - self.low)[~np.isnan(self.high - self.low)]
        spans = spans[spans > 0]
        return float(spans.max() / spans.min()) if len(spans) > 1 else 1.0


def split_ranges(features: np.ndarray, thresholds: np.ndarray, n_features: int, source: str) -> FeatureRanges:
    """Per-feature ranges reaching past the outermost split thresholds, from (feature, threshold)
    pairs of every split node."""
    low = np.full(n_features, np.nan)
    high = np.full(n_features, np.nan)
    keep = (features >= 0) & (features < n_features) & np.isfinite(thresholds)
    features, thresholds = features[keep].astype(np.int64), thresholds[keep].astype(np.float64)
    np.fmin.at(low, features, thresholds)
    np.fmax.at(high, features, thresholds)
    span = high - low
    pad = np.where(span > 0, span, np.maximum(np.abs(low), 1.0)) * THRESHOLD_MARGIN
    return FeatureRanges(low - pad, high + pad, source)


def feature_ranges(model: Any) -> FeatureRanges | None:
    """The value ranges a fitted estimator learned per input feature: scaler statistics, tree
    split thresholds, cluster centres, training rows it keeps; a pipeline's first step that
    knows (through steps that keep feature values). None when it knows none."""
    steps = getattr(model, "steps", None)
    if steps is not None:
        for _, step in steps:
            if step is None or step == "passthrough":
                continue
            found = feature_ranges(step)
            if found is not None or type(step).__name__ not in _VALUE_PRESERVING:
                return found
        return None
    n = getattr(model, "n_features_in_", None)
    if n is None:
        return None
    try:
        return _known_ranges(model, int(n))
    except (AttributeError, TypeError, ValueError, IndexError):
        return None


def _known_ranges(model: Any, n: int) -> FeatureRanges | None:
    name = type(model).__name__
    attrs = vars(model)

    def centred(centre: Any, scale: Any, span: float, what: str) -> FeatureRanges:
        centre = np.zeros(n) if centre is None else np.asarray(centre, dtype=np.float64)
        scale = np.ones(n) if scale is None else np.asarray(scale, dtype=np.float64)
        return FeatureRanges(centre - span * scale, centre + span * scale, f"{name}'s {what}")

    def spanned(points: Any, what: str, margin: float) -> FeatureRanges:
        points = np.asarray(points, dtype=np.float64).reshape(-1, n)
        low, high = points.min(axis=0), points.max(axis=0)
        pad = np.where(high > low, (high - low) * margin, np.maximum(np.abs(low), 1.0) * margin)
        return FeatureRanges(low - pad, high + pad, f"{name}'s {what}")

    if "data_min_" in attrs:  # MinMaxScaler
        return FeatureRanges(
            *cast(  # two arrays (mypy cannot count what a generator unpacks to)
                "tuple[np.ndarray, np.ndarray]",
                (np.asarray(a, dtype=np.float64) for a in (model.data_min_, model.data_max_)),
            ),
            f"{name}'s data_min_/data_max_",
        )
    if "max_abs_" in attrs:  # MaxAbsScaler
        return FeatureRanges(
            -np.asarray(model.max_abs_, float), np.asarray(model.max_abs_, float), f"{name}'s max_abs_"
        )
    if "var_" in attrs and "mean_" in attrs and (attrs["mean_"] is not None or attrs["var_"] is not None):
        var = attrs["var_"]  # StandardScaler
        return centred(attrs["mean_"], None if var is None else np.sqrt(var), STD_SPAN, "mean ± 3 std")
    if "center_" in attrs or name == "RobustScaler":
        return centred(attrs.get("center_"), attrs.get("scale_"), IQR_SPAN, "median ± 2 IQR")
    if "theta_" in attrs and "var_" in attrs:  # GaussianNB: per class
        theta, std = np.asarray(model.theta_), np.sqrt(np.asarray(model.var_))
        return FeatureRanges(
            (theta - STD_SPAN * std).min(0), (theta + STD_SPAN * std).max(0), f"{name}'s class means ± 3 std"
        )
    if "tree_" in attrs:
        tree = model.tree_
        return split_ranges(np.asarray(tree.feature), np.asarray(tree.threshold), n, "split thresholds")
    if "_predictors" in attrs:  # HistGradientBoosting*
        nodes = [p.nodes for trees in model._predictors for p in trees]
        splits: list[np.ndarray] | np.ndarray | None = [
            nd[(nd["is_leaf"] == 0) & (nd["is_categorical"] == 0)] for nd in nodes
        ]
        splits = np.concatenate(splits) if splits else None
        if splits is None or not len(splits):
            return None
        return split_ranges(
            splits["feature_idx"], splits["num_threshold"], n, f"split thresholds of {len(nodes)} trees"
        )
    if "estimators_" in attrs:
        return _ensemble_ranges(model, n)
    if "cluster_centers_" in attrs:
        return spanned(model.cluster_centers_, "cluster centres", CENTRE_MARGIN)
    for attr, what, margin in (
        ("_fit_X", "training rows", 0.0),  # nearest neighbours keep them
        ("support_vectors_", "support vectors", 0.0),
        ("centroids_", "class centroids", CENTRE_MARGIN),
        ("means_", "class means", CENTRE_MARGIN),
    ):
        if attrs.get(attr) is not None:
            return spanned(attrs[attr], what, margin)
    return None


def _ensemble_ranges(model: Any, n: int) -> FeatureRanges | None:
    """The union of the ranges the members know, mapped through their feature subsets."""
    members = model.estimators_  # a list, or (GradientBoosting) a 2-D array of trees
    members = list(members.ravel()) if isinstance(members, np.ndarray) else list(members)
    subsets = getattr(model, "estimators_features_", None) or [None] * len(members)
    low, high = np.full(n, np.nan), np.full(n, np.nan)
    sources = set()
    for member, subset in zip(members, subsets):
        found = feature_ranges(member)
        if found is None:
            continue
        index = np.arange(n) if subset is None else np.asarray(subset)
        low[index] = np.fmin(low[index], found.low)
        high[index] = np.fmax(high[index], found.high)
        sources.add(found.source)
    if not sources:
        return None
    trees = all(s == "split thresholds" for s in sources)
    source = f"split thresholds of {len(members)} trees" if trees else f"{len(members)} members' ranges"
    return FeatureRanges(low, high, source)


def features_input(name: str, n_features: int, ranges: FeatureRanges | None, data: Any = None) -> Input:
    """The ``(batch, n_features)`` input of a model: values over the observed range of ``data=``
    rows, else the union of the ranges the model knows, else the dtype's default range."""
    span = _observed_span(data.get(name) if isinstance(data, Mapping) else data)
    if span is None and ranges is not None:
        span = ranges.union()
    low, high = span if span is not None else (None, None)
    return Input(name, ("batch", int(n_features)), low=low, high=high)


def range_notes(model_name: str, ranges: FeatureRanges | None, spec: ParitySpec) -> list[str]:
    """Notes when the drawn range proves little: the model knows none, the spec misses most of
    what it knows, or its features' scales differ so much that one range serves few of them."""
    if len(spec.inputs) != 1 or spec.inputs[0].dtype not in ("float32", "float64"):
        return []
    item = spec.inputs[0]
    drawn = f"input {item.name!r} is drawn from [{item.low:.6g}, {item.high:.6g}]"
    if ranges is None or ranges.union() is None:
        if (item.low, item.high) != DEFAULT_RANGES[cast(str, item.dtype)]:
            return []
        return [
            f"{drawn} (the default): {model_name} keeps no training range (no scaler statistics, "
            "split thresholds or cluster centres); give data= (real rows) or op.Input(low=, high=)"
        ]
    low, high = cast("tuple[float, float]", ranges.union())
    covered = max(0.0, min(high, cast(float, item.high)) - max(low, cast(float, item.low))) / (high - low)
    if covered < 0.5:
        return [
            f"{drawn} but {model_name}'s {ranges.source} span [{low:.6g}, {high:.6g}]: most rows miss "
            "what the model learned; give data= (real rows) or a low=/high= covering that"
        ]
    if ranges.spread() > SCALE_RATIO:
        return [
            f"{drawn}: {model_name}'s features span scales up to {ranges.spread():.0f}x apart "
            f"({ranges.source}), and one range for all of them draws the narrow ones mostly far "
            "from their own values; give data= (real rows) to draw each feature near its own"
        ]
    return []


def _observed_span(data: Any) -> tuple[float, float] | None:
    """The finite min and max of numeric ``data=`` rows (None: no rows, or not numeric)."""
    if data is None:
        return None
    try:
        values = np.asarray(data.to_numpy() if hasattr(data, "to_numpy") else data, dtype=np.float64)
    except (TypeError, ValueError):
        return None
    values = values[np.isfinite(values)]
    if not values.size:
        return None
    low, high = float(values.min()), float(values.max())
    return (low, high) if high > low else (low, low + 1.0)


def rounding_tolerance(model_name: str, proto: Any) -> tuple[Tolerance | None, list[str]]:
    """The default tolerance of a tree regressor whose float32 summation of leaves can exceed
    the default one (None when it cannot), with the note that says so.

    A TreeEnsembleRegressor adds one leaf per tree in float32, in another order than the
    framework (XGBoost: float32 tree by tree; LightGBM and scikit-learn: float64). Measured on
    XGBoost and LightGBM regressors of 100-500 trees: the difference reaches 2-7 x eps32 x S,
    S = |base| + the sum over trees of their largest |leaf|; ``sqrt(trees) x eps32 x S`` bounds
    it with room. Far from zero rtol covers it; near zero only atol does: a target in the
    hundred thousands crossing zero was 0.5 off at 500 trees, 19x the default tolerance. The
    default atol rises to the bound only when the outputs the leaves can add up to reach that
    zone: a correct export is then never a false alarm, and a 1% change of a leaf still fails."""
    nodes = [n for n in proto.graph.node if n.op_type == "TreeEnsembleRegressor"]
    attrs = {a.name: a for a in nodes[0].attribute} if len(nodes) == 1 else {}
    if "target_weights" not in attrs or "target_treeids" not in attrs:
        return None, []
    trees = np.asarray(attrs["target_treeids"].ints, dtype=np.int64)
    weights = np.asarray(attrs["target_weights"].floats, dtype=np.float64)
    targets = np.asarray(attrs["target_ids"].ints, dtype=np.int64) if "target_ids" in attrs else None
    if not len(trees) or len(trees) != len(weights) or (targets is not None and targets.any()):
        return None, []  # one target only: several would need the sums per target
    count = int(trees.max()) + 1
    lowest, highest, largest = np.full(count, np.inf), np.full(count, -np.inf), np.zeros(count)
    np.minimum.at(lowest, trees, weights)
    np.maximum.at(highest, trees, weights)
    np.maximum.at(largest, trees, np.abs(weights))
    used = np.isfinite(lowest)
    base = float(attrs["base_values"].floats[0]) if "base_values" in attrs else 0.0
    total = abs(base) + largest.sum()
    bound = float(np.sqrt(used.sum()) * np.finfo(np.float32).eps * total)
    tol = DEFAULT_TOLERANCE
    zone = (bound - tol.atol) / tol.rtol if tol.rtol else np.inf  # |output| below it can fail
    low, high = base + lowest[used].sum(), base + highest[used].sum()
    if bound <= tol.atol or low > zone or high < -zone:
        return None, []
    return Tolerance(atol=float(f"{bound:.2g}"), rtol=tol.rtol), [
        f"{model_name} adds {int(used.sum())} trees' leaves (up to {total:.3g} in all) in float32: "
        f"rounding alone can move an output by ~{bound:.2g}, more than the default tolerance allows "
        f"for outputs within ±{zone:.2g} of zero, which these trees can give: this model's default "
        f"tolerance is atol={bound:.2g}, rtol={tol.rtol:g} (a tolerance you declare wins)"
    ]


def label_outputs(model: Any, exported: ExportedModel) -> dict[str, tuple[str, tuple[Any, ...]]]:
    """For a classifier: the label output, its probability output and the classes' order."""
    classes = getattr(model, "classes_", None)
    names = exported.output_names
    label = next((n for n in names if "label" in n.lower()), None)
    probabilities = next((n for n in names if "probabilit" in n.lower()), None)
    if classes is None or label is None or probabilities is None:
        return {}
    return {label: (probabilities, tuple(np.asarray(classes).tolist()))}
