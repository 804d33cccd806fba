"""What a scikit-learn failure looks like, on purpose: `pytest --onnx-parity examples/test_failures_sklearn.py -rx`.

A pipeline converted with skl2onnx, then the PCA step's components changed in the file. The
diagnosis names the step (see test_failures.py for PyTorch).
"""

import numpy as np
import pytest

pytest.importorskip("skl2onnx", reason="skl2onnx is not installed: pip install 'onnxparity[sklearn]'")

from onnx import numpy_helper  # noqa: E402
from skl2onnx import to_onnx  # noqa: E402
from sklearn.datasets import load_breast_cancer  # noqa: E402
from sklearn.decomposition import PCA  # noqa: E402
from sklearn.linear_model import LogisticRegression  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402

X, Y = load_breast_cancer(return_X_y=True)
X = X.astype(np.float32)


def converted_then_edited(pipeline):
    edited = to_onnx(pipeline, X[:1], options={LogisticRegression: {"zipmap": False}})
    components = next(t for t in edited.graph.initializer if t.name == "transform_matrix")
    value = numpy_helper.to_array(components).copy()
    value[0, 0] *= 1.5
    components.CopyFrom(numpy_helper.from_array(value, components.name))
    return edited


@pytest.mark.xfail(
    strict=True,
    raises=pytest.fail.Exception,
    reason="on purpose: the PCA step's components edited in the file",
)
@pytest.mark.onnx_parity(data=X)
def test_edited_pipeline_step_is_localized(onnx_parity):
    pipeline = make_pipeline(StandardScaler(), PCA(5), LogisticRegression(max_iter=500)).fit(X, Y)
    with pytest.raises(pytest.fail.Exception) as failed:
        onnx_parity.check(pipeline, onnx=converted_then_edited(pipeline))
    # skl2onnx writes PCA as Sub then MatMul, with no value of the framework's in between: a span
    assert ": 2 nodes (step pca) — Sub, MatMul;" in str(failed.value)
    raise failed.value
