"""Export cost per model, and how much of it is onnxparity's own (issue 31, part 3).

    .venv/bin/python benchmarks/exports.py

For a few models per source — PyTorch through the dynamo exporter (the examples' CNN and
transformer encoder, a tiny BERT from a config object) and one the TorchScript exporter takes
(T5, whose dynamo export fails), Keras through tf2onnx (the examples' CNN), scikit-learn through
skl2onnx (a random forest, the examples' pipeline) — one export through
``ParitySession.prepare`` with the persistent cache off, profiled once (after one warm-up export
of another model per source, so the converters' first imports are not counted). The
converter's share is the profile's cumulative time in its entry point (``torch.onnx.export``,
``tf2onnx``'s ``from_graph_def``, ``skl2onnx.convert_sklearn``); the rest of ``prepare`` is
spent outside it: ours (planning the call, identity, reading the file back, checks, renames)
and, for Keras, TensorFlow tracing the model before tf2onnx runs.

Prints a Markdown table (copied into docs/benchmarks.md).
"""

from __future__ import annotations

import cProfile
import os
import pstats
import sys
import tempfile
import time
import warnings

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "examples"))
warnings.filterwarnings("ignore")

import onnxparity as op  # noqa: E402
from onnxparity.config import ParityConfig  # noqa: E402
from onnxparity.runner import ParitySession  # noqa: E402

#: a converter's entry point as the profile names it: (file suffix, function name)
ENTRIES = {
    "torch": (("torch/onnx/__init__.py", "export"),),
    "keras": (("tf2onnx/convert.py", "from_graph_def"),),
    "sklearn": (("skl2onnx/convert.py", "convert_sklearn"),),
}


def torch_models():
    import torch
    import transformers
    from test_cnn import SmallCNN
    from test_transformer import VOCAB, TinyEncoder

    torch.manual_seed(0)
    text = (op.Input("input_ids", ("batch", "seq"), dtype="int64", low=0, high=99), op.Input("attention_mask", ("batch", "seq"), kind="mask"))
    dims = {"batch": op.Dim(1, 4), "seq": op.Dim(1, 16)}
    bert = transformers.BertModel(
        transformers.BertConfig(vocab_size=100, hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=37)
    ).eval()
    t5 = transformers.T5Model(
        transformers.T5Config(vocab_size=100, d_model=32, d_kv=16, d_ff=37, num_layers=2, num_heads=2, decoder_start_token_id=0)
    ).eval()
    decoder = (*text, op.Input("decoder_input_ids", ("batch", "decoder_seq"), dtype="int64", low=0, high=99))
    return [
        ("CNN (examples)", SmallCNN().eval(), op.ParitySpec(
            inputs=(op.Input("image", ("batch", 3, "size", "size")),), dims={"batch": op.Dim(1, 4), "size": op.Dim(32, 64)})),
        ("transformer encoder (examples)", TinyEncoder().eval(), op.ParitySpec(
            inputs=(op.Input("tokens", ("batch", "seq"), dtype="int64", low=0, high=VOCAB - 1),), dims=dims)),
        ("tiny BERT (dynamo)", bert, op.ParitySpec(inputs=text, dims=dims)),
        ("tiny T5 (TorchScript after dynamo fails)", t5, op.ParitySpec(
            inputs=decoder, dims={**dims, "decoder_seq": op.Dim(1, 8)})),
    ]


def keras_models():
    from test_keras_cnn import small_cnn

    return [("Keras CNN (examples)", small_cnn(), op.ParitySpec(
        inputs=(op.Input("image", ("batch", "size", "size", 3), low=-1, high=1),),
        dims={"batch": op.Dim(1, 4), "size": op.Dim(16, 48)}))]


def sklearn_models():
    from sklearn.datasets import load_breast_cancer
    from sklearn.ensemble import RandomForestClassifier
    from test_sklearn_pipeline import churn_model, customers

    x, y = load_breast_cancer(return_X_y=True)
    forest = RandomForestClassifier(n_estimators=50, max_depth=6, random_state=0).fit(x, y)
    frame = customers()
    return [
        ("random forest (50 trees)", forest, op.ParitySpec(inputs=(op.Input("input", ("batch", 30)),), dims={"batch": op.Dim(1, 8)})),
        ("pipeline (examples)", churn_model(frame), op.ParitySpec(
            inputs=(op.Input("age", ("batch", 1), low=18, high=80), op.Input("income", ("batch", 1), low=1_000, high=200_000),
                    op.Input("city", ("batch", 1), dtype="str")), dims={"batch": op.Dim(1, 8)})),
    ]


def converter_time(profile: cProfile.Profile, source: str) -> float:
    stats = pstats.Stats(profile)
    found = 0.0
    for (filename, _, function), (_, _, _, cumulative, _) in stats.stats.items():
        if any(filename.endswith(suffix) and function == name for suffix, name in ENTRIES[source]):
            found = max(found, cumulative)
    return found


def main() -> None:
    print("| model | source | export (s) | converter (s) | outside it (s) | outside / export |")
    print("|---|---|---|---|---|---|")
    for source, models in (("torch", torch_models), ("keras", keras_models), ("sklearn", sklearn_models)):
        listed = models()
        warm = ParitySession(ParityConfig(reproducer_dir=tempfile.mkdtemp(), cache_dir="off"))
        name, model, spec = listed[0]
        warm.prepare(model, spec)  # the converter's imports and first-call set-up
        warm.close()
        for name, model, spec in listed:
            with ParitySession(ParityConfig(reproducer_dir=tempfile.mkdtemp(), cache_dir="off")) as session:
                profile = cProfile.Profile()
                started = time.perf_counter()
                profile.enable()
                try:
                    session.prepare(model, spec)
                except Exception as exc:  # a row that says why
                    profile.disable()
                    print(f"| {name} | {source} | — | — | — | {type(exc).__name__}: {str(exc)[:80]} |")
                    continue
                profile.disable()
                wall = time.perf_counter() - started
            converter = converter_time(profile, source)
            ours = wall - converter
            print(f"| {name} | {source} | {wall:.2f} | {converter:.2f} | {ours:.2f} | {ours / wall:.0%} |")


if __name__ == "__main__":
    main()
