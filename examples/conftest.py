"""A team's own post-export step, used by examples/test_mlp.py: the export with shapes inferred
and written into the file (``onnx.shape_inference.infer_shapes(..., data_prop=True)``) and its
doc strings stripped — the kind of graph surgery a team ships after the exporter.

One line makes it a variant with the built-in steps' reporting, caching and forensics;
docs/variants.md walks through it.
"""

import onnx

import onnxparity as op


def shape_inferred(model: onnx.ModelProto) -> onnx.ModelProto:
    inferred = onnx.shape_inference.infer_shapes(model, data_prop=True)
    for node in inferred.graph.node:
        node.doc_string = ""
    return inferred


op.register_rewrite("shape-inferred", shape_inferred, replace=True)  # conftest modules can be imported twice
