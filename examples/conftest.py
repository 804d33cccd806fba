"""A user-registered variant, used by examples/test_mlp.py: the model as ONNX Runtime saves it
after offline graph optimization (``SessionOptions.optimized_model_filepath``), then loaded with
optimizations off — what you ship when you pre-optimize a model to cut session start-up time.

docs/variants.md walks through it.
"""

import os

import onnxruntime as ort

import onnxparity as op
from onnxparity.variants.ort import OrtRunnable


def build_offline_optimized(context):
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
    options.optimized_model_filepath = os.path.join(context.workdir, "optimized.onnx")
    # Weights the exporter stored as external data go to a file beside the saved model.
    options.add_session_config_entry(
        "session.optimized_model_external_initializers_file_name", "optimized.onnx.data"
    )
    ort.InferenceSession(context.model_path, options, providers=["CPUExecutionProvider"])  # writes it
    return OrtRunnable(
        options.optimized_model_filepath,
        ["CPUExecutionProvider"],
        threads=context.threads,
        optimization="none",  # already optimized: run the saved graph as is
    )


op.register_variant(
    "ort-offline",
    build_offline_optimized,
    description="ONNX Runtime graph saved after offline optimization, run as saved",
    replace=True,  # conftest modules can be imported more than once
)
