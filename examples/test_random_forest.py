"""A RandomForest on a dataset bundled with scikit-learn (breast cancer, 30 features)."""

import pytest

pytest.importorskip("skl2onnx", reason="skl2onnx is not installed: pip install 'onnxparity[sklearn]'")

from sklearn.datasets import load_breast_cancer  # noqa: E402
from sklearn.ensemble import RandomForestClassifier  # noqa: E402

import onnxparity as op  # noqa: E402

X, y = load_breast_cancer(return_X_y=True)
X = X.astype("float32")  # trees split in float32: float32 inputs compare without threshold flips


@pytest.fixture(scope="module")
def forest():
    """Fitted once for the test's eight items (one per variant and budget), not once per item."""
    return RandomForestClassifier(n_estimators=30, max_depth=8, random_state=0).fit(X, y)


@pytest.mark.onnx_parity(
    inputs=[op.Input("X", ("batch", 30), low=0, high=float(X.max()))],
    dims={"batch": op.Dim(1, 128)},
    # Every variant, to show how inapplicable ones report themselves: int8-* and fp16 skip
    # with "nothing to quantize/convert" (a tree ensemble is all ai.onnx.ml ops). A real test
    # would list ort-cpu, ort-cpu-noopt, ort-gpu and onnx-reference.
    variants=op.ALL_VARIANTS,
    # The exported forest must not be slower than scikit-learn's own predict_proba at batch 32.
    latency=op.Latency(variant="ort-cpu", at={"batch": 32}, max_ratio=1.0),
    data=X,  # real rows, resampled and jittered around the split thresholds
)
def test_random_forest(onnx_parity, forest):
    onnx_parity.check(forest)
