#!/usr/bin/env bash
# GPU verification: run on a machine with an NVIDIA GPU, CUDA, and onnxruntime-gpu installed in
# place of onnxruntime (pip uninstall -y onnxruntime && pip install -e '.[gpu,all,dev]' -c constraints/ci.txt).
# Prints the environment, the CUDA-vs-CPU error with TF32 on and off, the GPU self-tests and the
# examples under --onnx-parity-require-gpu (so a CUDA fallback fails instead of skipping).
# Record the output in docs/gpu.md (date, card, results). Usage: bash scripts/gpu-check.sh [python]
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${1:-${PYTHON:-python3}}
status=0

echo "== $(date -u +%Y-%m-%dT%H:%MZ)"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || echo "nvidia-smi: not found"
"$PY" - <<'PY' || exit 1
import onnxruntime as ort, sys
print("python", sys.version.split()[0], "onnxruntime", ort.__version__, ort.get_device())
print("providers:", ort.get_available_providers())
if "CUDAExecutionProvider" not in ort.get_available_providers():
    sys.exit("no CUDAExecutionProvider: install onnxruntime-gpu in place of onnxruntime")
PY

echo "== CUDA EP vs CPU on the example CNN and MLP (max abs error vs torch), use_tf32 = 1 and 0"
"$PY" - <<'PY' || status=1
import sys
sys.path.insert(0, "examples")
import numpy as np, torch
import onnxparity as op
from onnxparity.runner import ParitySession
from test_cnn import SmallCNN, trained_like
from test_mlp import MLP

torch.manual_seed(0)
cases = {
    "cnn": (trained_like(SmallCNN()), [op.Input("image", ("batch", 3, "size", "size"), low=-1, high=1)],
            {"batch": op.Dim(1, 8), "size": op.Dim(16, 64, multiple_of=8)}),
    "mlp": (MLP().eval(), [op.Input("x", ("batch", 32), low=-3, high=3)], {"batch": op.Dim(1, 64)}),
}
with ParitySession() as session:
    for name, (model, inputs, dims) in cases.items():
        for tf32 in (1, 0):
            result = op.check(model, inputs=inputs, dims=dims, variants=["ort-cpu", "ort-gpu"], session=session,
                              variant_options={"ort-gpu": {"use_tf32": tf32}}, examples=25,
                              tolerance={"ort-gpu": op.Tolerance(atol=1, rtol=1)}, name=f"{name}-tf32-{tf32}")
            for v in result.variants.values():
                worst = max((o.max_abs_error for o in v.outputs), default=float("nan"))
                print(f"{name:4} use_tf32={tf32} {v.variant:8} {v.status:7} {v.examples:3} examples  max abs error {worst:.3g}")
PY

echo "== a process without PyTorch (a worker, a Keras or scikit-learn check): do CUDA and cuDNN load?"
"$PY" - <<'PY' || status=1
import os, sys, tempfile
import numpy as np, onnx, onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

w = np.random.default_rng(0).normal(size=(8, 4, 1, 1)).astype(np.float32)
graph = helper.make_graph(
    [helper.make_node("Conv", ["x", "w"], ["c"]), helper.make_node("Relu", ["c"], ["y"])], "conv1x1",
    [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 4, "h", "w"])],
    [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 8, "h", "w"])], [numpy_helper.from_array(w, "w")])
model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
path = os.path.join(tempfile.mkdtemp(), "conv1x1.onnx")
onnx.save(model, path)
cuda = ["CUDAExecutionProvider", "CPUExecutionProvider"]
print("raw session, no preload:", ort.InferenceSession(path, providers=cuda).get_providers())
sys.path.insert(0, "src")
import onnxparity as op
assert "torch" not in sys.modules
reference = lambda x: [np.maximum(np.einsum("nchw,oc->nohw", x, w[:, :, 0, 0]), 0)]
result = op.check(onnx=path, reference=reference, variants=["ort-gpu", "ort-cpu"], examples=10,
                  inputs=[op.Input("x", ("n", 4, "h", "w"), low=-2, high=2)],
                  dims={"n": op.Dim(1, 4), "h": op.Dim(1, 16), "w": op.Dim(1, 16)}, name="no-torch-prebuilt")
for v in result.variants.values():
    print(f"prebuilt file, worker: {v.variant:8} {v.status:7} {v.examples} examples {v.message[:400]}")
PY

echo "== latency: ort-gpu vs the framework on the example MLP (recorded, no budget)"
"$PY" - <<'PY' || status=1
import sys
sys.path.insert(0, "examples")
import torch
import onnxparity as op
from test_mlp import MLP

torch.manual_seed(0)
result = op.check(MLP().eval(), inputs=[op.Input("x", ("batch", 32), low=-3, high=3)], dims={"batch": op.Dim(1, 64)},
                  variants=["ort-gpu"], examples=5, latency=[op.Latency("ort-gpu", at={"batch": 64}),
                                                             op.Latency("ort-cpu", at={"batch": 64})])
for item, budget in result.budgets.items():
    print(item, budget.status, budget.measured, budget.message[:400])
PY

echo "== GPU self-tests (-m gpu) and the GPU plugin path"
gpu_tests=$(grep -l "pytest.mark.gpu" tests/*.py)
"$PY" -m pytest -q -p no:cacheprovider -m gpu $gpu_tests -rs || status=1
echo "== examples on ort-gpu, GPU required"
"$PY" -m pytest -q -p no:cacheprovider --onnx-parity --onnx-parity-require-gpu \
  --onnx-parity-variants=ort-gpu,ort-cpu examples/ -rs || status=1
exit $status
