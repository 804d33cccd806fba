"""A corpus of planted export bugs across frameworks (issue 27, "a named node is the node that
went wrong"): how often failure forensics names the node a bug was planted in.

Not a test module: a library of cases that ``benchmarks/forensics_corpus.py`` runs and tables.
Each :class:`Case` builds a tiny model and the declaration to check it with, exports it (the
TorchScript cases with ``torch.onnx.export(..., dynamo=False)`` themselves, the others through
onnxparity, as ``test_forensics.py``'s ``forensic`` fixture does), plants one edit into a copy
of the ONNX file and names the node(s) whose computation the edit changed. The edited file is
then checked as a prebuilt file against the model (:func:`run`), and :func:`judge` says whether
the first divergence names the planted node ("named"), holds it in a short span ("in span"),
names the module or layer it came from ("module"), or names an innocent node ("innocent").

Classes of bugs covered: TorchScript CNNs whose BatchNorms are folded into the convolutions
(a second conv's bias lost, a weight bit flipped, a changed pad or stride); functional ops,
each followed by a module that a wrong localizer would blame (``F.interpolate``'s Resize mode,
``F.pad``'s pads, integer floor division become truncation, ``torch.cumsum``'s exclusive flag,
``F.avg_pool2d``'s count_include_pad), in both torch exporters; a removed epsilon that turns a
zero row into NaN (``F.normalize``, a hand-written RMS norm: the draw's ``zeros`` pattern, drawn
first, makes the zero row); a hand-decomposed LayerNorm with its variance left uncentered; Keras
convolutions with a fused ReLU (bias, activation), Dense layers, LayerNormalization's epsilon,
pooling layers, a subclassed model; scikit-learn pipeline steps (a scaler's mean, a PCA
component, a tree threshold, a LogisticRegression coefficient, an imputer's value, a
OneHotEncoder's category).
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import onnx
from onnx import helper, numpy_helper

FRAMEWORKS = ("torch-dynamo", "torch-script", "keras", "sklearn")

#: a span of at most this many nodes that holds the planted node counts as localizing it
SPAN_LIMIT = 10


@dataclasses.dataclass(frozen=True)
class Case:
    """One planted bug. ``build()`` returns (model, the check's declaration: ``inputs``,
    ``dims`` and optionally ``data``); ``edit(proto)`` changes the ONNX model in place and
    returns the names of the nodes whose computation it changed; ``modules``: the framework's
    module, layer or step names that name it right too."""

    name: str
    framework: str
    build: Callable[[], tuple[Any, dict]]
    edit: Callable[[onnx.ModelProto], set[str]]
    modules: frozenset[str] = frozenset()
    #: what was planted, in words
    what: str = ""
    examples: int = 6
    #: torch-script only: more keyword arguments of torch.onnx.export
    export_options: tuple[tuple[str, Any], ...] = ()

    def export(self, session: Any, model: Any, declared: dict, folder: str) -> str:
        """The path of the correct export the edit is planted into."""
        if self.framework == "torch-script":
            path = os.path.join(folder, f"{self.name}.onnx")
            return torchscript(model, declared, path, **dict(self.export_options))
        import onnxparity as op

        spec = op.ParitySpec(inputs=tuple(declared["inputs"]), dims=dict(declared.get("dims") or {}))
        return session.prepare(model, spec).exported.path


@dataclasses.dataclass
class Outcome:
    case: Case
    status: str
    planted: set[str]
    divergence: Any  # onnxparity.forensics.Divergence or None
    line: str
    verdict: str
    seconds: float
    message: str = ""


def judge(case: Case, planted: set[str], divergence: Any) -> str:
    """The verdict on ``divergence``: ``named`` (the planted node), ``in span`` (in a span of at
    most :data:`SPAN_LIMIT` nodes), ``module`` (the planted node's module, layer or step),
    ``innocent`` (another node, the planted one not in its span), ``wide span`` (the planted
    node in a longer span, another node named) or ``none`` (no divergence)."""
    if divergence is None:
        return "none"
    if divergence.node in planted:
        return "named"
    inside = bool(planted & set(divergence.nodes))
    if inside and len(divergence.nodes) <= SPAN_LIMIT:
        return "in span"
    if divergence.source is not None and divergence.source in case.modules:
        return "module"
    return "wide span" if inside else "innocent"


def run(case: Case, session: Any, folder: str) -> Outcome:
    """Export ``case``'s model, plant its edit into a copy, check the copy as a prebuilt file
    against the model (ort-cpu) and judge the first divergence."""
    import onnxparity as op

    started = time.perf_counter()
    model, declared = case.build()
    broken = onnx.load(case.export(session, model, declared, folder))
    planted = case.edit(broken)
    onnx.checker.check_model(broken)
    result = op.check(
        model,
        onnx=broken,
        examples=case.examples,
        session=session,
        name=f"corpus {case.name}",
        **declared,
    )["ort-cpu"]
    line = next((ln.strip() for ln in (result.message or "").splitlines() if "first divergence" in ln), "")
    return Outcome(
        case,
        result.status,
        planted,
        result.divergence,
        line,
        judge(case, planted, result.divergence),
        time.perf_counter() - started,
        result.message or "",
    )


# -- editing an ONNX model ---------------------------------------------------------------------


def nodes(m: onnx.ModelProto, op_type: str) -> list:
    return [n for n in m.graph.node if n.op_type == op_type]


def node(m: onnx.ModelProto, op_type: str, k: int = 0, contains: str = "") -> Any:
    """The ``k``-th node of ``op_type`` (whose name holds ``contains``)."""
    found = [n for n in nodes(m, op_type) if contains in n.name]
    if len(found) <= k:
        raise LookupError(
            f"no {op_type} #{k} (name containing {contains!r}) in {[x.name for x in m.graph.node]}"
        )
    return found[k]


def constant(m: onnx.ModelProto, value_name: str) -> np.ndarray | None:
    """The value of an initializer or a Constant node's output; None if computed."""
    for t in m.graph.initializer:
        if t.name == value_name:
            return numpy_helper.to_array(t).copy()
    for n in m.graph.node:
        if n.op_type == "Constant" and n.output[0] == value_name:
            for a in n.attribute:
                if a.name == "value":
                    return numpy_helper.to_array(a.t).copy()
    return None


def own_input(m: onnx.ModelProto, target: Any, index: int, value: Any, dtype: Any = None) -> None:
    """Input ``index`` of ``target`` becomes a new initializer holding ``value`` (others that
    read the old value keep it: only ``target``'s computation changes)."""
    old = constant(m, target.input[index]) if index < len(target.input) and target.input[index] else None
    dtype = dtype or (old.dtype if old is not None else np.float32)
    name = f"planted_{target.name or target.op_type}_{index}".replace("/", "_")
    m.graph.initializer.append(numpy_helper.from_array(np.asarray(value).astype(dtype), name))
    while len(target.input) <= index:
        target.input.append("")
    target.input[index] = name


def initializer(m: onnx.ModelProto, name: str) -> np.ndarray:
    return numpy_helper.to_array(next(t for t in m.graph.initializer if t.name == name)).copy()


def set_initializer(m: onnx.ModelProto, name: str, value: np.ndarray) -> None:
    tensor = next(t for t in m.graph.initializer if t.name == name)
    dtype = numpy_helper.to_array(tensor).dtype
    tensor.CopyFrom(numpy_helper.from_array(np.asarray(value).astype(dtype), name))


def attribute(target: Any, name: str, value: Any) -> None:
    for a in target.attribute:
        if a.name == name:
            target.attribute.remove(a)
            break
    if value is not None:
        target.attribute.append(helper.make_attribute(name, value))


def get_attribute(target: Any, name: str, default: Any = None) -> Any:
    for a in target.attribute:
        if a.name == name:
            return helper.get_attribute_value(a)
    return default


def flip_bit(m: onnx.ModelProto, target: Any, index: int = 1, bit: int = 30) -> set[str]:
    """An exponent bit of the first element of ``target``'s weight (input ``index``) flipped."""
    weight = initializer(m, target.input[index])
    weight.reshape(-1).view(np.uint32)[0] ^= np.uint32(1 << bit)
    set_initializer(m, target.input[index], weight)
    return {target.name}


def scale_input(m: onnx.ModelProto, target: Any, index: int, factor: float) -> set[str]:
    value = constant(m, target.input[index])
    own_input(m, target, index, value * factor)
    return {target.name}


def drop_bias(m: onnx.ModelProto, target: Any, index: int = 2) -> set[str]:
    """``target``'s bias (input ``index``) lost: all zeros."""
    value = constant(m, target.input[index])
    own_input(m, target, index, np.zeros_like(value))
    return {target.name}


def floats_attribute(target: Any, name: str, change: Callable[[list], list]) -> None:
    a = next(a for a in target.attribute if a.name == name)
    values = change(list(a.floats))
    del a.floats[:]
    a.floats.extend(values)


def retype(target: Any, op_type: str, keep_inputs: int | None = None, drop: tuple = ()) -> set[str]:
    target.op_type = op_type
    if keep_inputs is not None:
        del target.input[keep_inputs:]
    for name in drop:
        attribute(target, name, None)
    return {target.name}


def with_constant(m: onnx.ModelProto, op_type: str, near: float) -> Any:
    """The ``op_type`` node with a constant input equal to ``near`` (an epsilon's Add, ...)."""
    for n in nodes(m, op_type):
        for value in n.input:
            c = constant(m, value)
            if c is not None and c.size == 1 and np.isclose(float(c.reshape(-1)[0]), near, rtol=1e-3, atol=0):
                return n
    raise LookupError(f"no {op_type} with a constant {near} in {[x.name for x in m.graph.node]}")


# -- torch models ----------------------------------------------------------------------------


def _torch():
    import torch

    return torch


def _image(channels: int = 3) -> dict:
    import onnxparity as op

    return dict(
        inputs=[op.Input("x", ("batch", channels, "s", "s"), low=-1, high=1)],
        dims={"batch": op.Dim(1, 3), "s": op.Dim(4, 8)},
    )


def _rows(features: int = 8, low: float = -2, high: float = 2) -> dict:
    import onnxparity as op

    return dict(inputs=[op.Input("x", ("batch", features), low=low, high=high)], dims={"batch": op.Dim(1, 4)})


def _seeded(model: Any) -> Any:
    """``model`` in eval mode, its BatchNorms with the running statistics and affine values of
    a trained model (not the identity they start as)."""
    torch = _torch()
    generator = torch.Generator().manual_seed(1)
    for module in model.modules():
        if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
            n = module.num_features
            module.running_mean.copy_(torch.rand(n, generator=generator) - 0.5)
            module.running_var.copy_(torch.rand(n, generator=generator) * 1.5 + 0.5)
            module.weight.data.copy_(torch.rand(n, generator=generator) + 0.5)
            module.bias.data.copy_(torch.rand(n, generator=generator) - 0.5)
    return model.eval()


def torch_models() -> dict[str, Callable[[], tuple[Any, dict]]]:
    """Builders of the torch models, by name (each seeded: the same weights every call)."""
    torch = _torch()
    F = torch.nn.functional
    nn = torch.nn

    class BnCnn(nn.Module):
        """Conv-BN-ReLU twice, then a head: in eval mode the TorchScript exporter folds each BN
        into its conv."""

        def __init__(self) -> None:
            super().__init__()
            self.conv1, self.bn1 = nn.Conv2d(3, 6, 3, padding=1), nn.BatchNorm2d(6)
            self.conv2, self.bn2 = nn.Conv2d(6, 6, 3, padding=1), nn.BatchNorm2d(6)
            self.fc = nn.Linear(6, 3)

        def forward(self, x):
            h = F.relu(self.bn1(self.conv1(x)))
            h = F.relu(self.bn2(self.conv2(h)))
            return self.fc(h.mean((2, 3)))

    class Interpolate(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv1, self.conv2 = nn.Conv2d(3, 4, 1), nn.Conv2d(4, 4, 3, padding=1)

        def forward(self, x):
            h = F.interpolate(self.conv1(x), scale_factor=2, mode="nearest")
            return self.conv2(h).mean((2, 3))

    class Pad(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv1, self.conv2 = nn.Conv2d(3, 4, 1), nn.Conv2d(4, 4, 3)

        def forward(self, x):
            h = F.pad(self.conv1(x), (1, 1, 1, 1), value=0.5)
            return self.conv2(h).mean((2, 3))

    class FloorDiv(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc = nn.Linear(8, 4)

        def forward(self, ids):
            return self.fc(torch.div(ids, 3, rounding_mode="floor").float())

    class CumSum(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc1, self.fc2 = nn.Linear(8, 8), nn.Linear(8, 4)

        def forward(self, x):
            return self.fc2(torch.cumsum(self.fc1(x), dim=1))

    class AvgPool(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv1, self.conv2 = nn.Conv2d(3, 4, 1), nn.Conv2d(4, 4, 3, padding=1)

        def forward(self, x):
            h = F.avg_pool2d(self.conv1(x), 3, stride=1, padding=1, count_include_pad=False)
            return self.conv2(h).mean((2, 3))

    class Normalize(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc = nn.Linear(8, 4)

        def forward(self, x):
            return self.fc(F.normalize(x, dim=-1))

    class RmsNorm(nn.Module):
        """x / sqrt(mean(x^2) + eps), written by hand."""

        def __init__(self) -> None:
            super().__init__()
            self.fc = nn.Linear(8, 4)

        def forward(self, x):
            return self.fc(x / torch.sqrt((x * x).mean(-1, keepdim=True) + 1e-6))

    class DecomposedLayerNorm(nn.Module):
        """LayerNorm written as mean and variance ops."""

        def __init__(self) -> None:
            super().__init__()
            self.fc1, self.fc2 = nn.Linear(8, 8), nn.Linear(8, 4)
            self.gamma = nn.Parameter(torch.rand(8) + 0.5)
            self.beta = nn.Parameter(torch.rand(8) - 0.5)

        def forward(self, x):
            h = self.fc1(x)
            mu = h.mean(-1, keepdim=True)
            d = h - mu
            var = (d * d).mean(-1, keepdim=True)
            return self.fc2(d / torch.sqrt(var + 1e-5) * self.gamma + self.beta)

    def make(cls, declared):
        def build():
            torch.manual_seed(0)
            return _seeded(cls()), declared()

        return build

    import onnxparity as op

    ids = lambda: dict(  # noqa: E731
        inputs=[op.Input("ids", ("batch", 8), dtype="int64", low=-20, high=20)], dims={"batch": op.Dim(1, 4)}
    )
    return {
        "bn_cnn": make(BnCnn, _image),
        "interpolate": make(Interpolate, _image),
        "pad": make(Pad, _image),
        "floordiv": make(FloorDiv, ids),
        "cumsum": make(CumSum, _rows),
        "avg_pool": make(AvgPool, _image),
        "normalize": make(Normalize, _rows),
        "rms_norm": make(RmsNorm, _rows),
        "layer_norm": make(DecomposedLayerNorm, _rows),
    }


def torchscript(model: Any, declared: dict, path: str, **options: Any) -> str:
    """``model`` exported by the TorchScript exporter (opset 17), its symbolic dims dynamic;
    ``options``: more arguments of ``torch.onnx.export``."""
    torch = _torch()
    dims = declared.get("dims") or {}
    args, dynamic = [], {}
    for i in declared["inputs"]:
        shape = [max(2, dims[d].min) if isinstance(d, str) else d for d in i.shape]
        if (i.dtype or "float32").startswith("int"):
            args.append(torch.randint(int(i.low), int(i.high) + 1, shape, dtype=getattr(torch, i.dtype)))
        else:
            args.append(torch.rand(*shape) * 2 - 1)
        dynamic[i.name] = {k: d for k, d in enumerate(i.shape) if isinstance(d, str)}
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with torch.no_grad():
        torch.onnx.export(
            model,
            tuple(args),
            path,
            dynamo=False,
            input_names=[i.name for i in declared["inputs"]],
            output_names=["y"],
            dynamic_axes=dynamic,
            opset_version=17,
            **options,
        )
    return path


# -- torch edits: one function per bug, written for both exporters' graphs ------------------


def conv2_bias_dropped(m):
    """The second conv's bias lost (all zeros; in a TorchScript export, the bias the BN folded into)."""
    return drop_bias(m, node(m, "Conv", 1))


def conv2_bit_flipped(m):
    return flip_bit(m, node(m, "Conv", 1))


def conv2_pads_moved(m):
    """The second conv's padding all on the top-left (same output shape, shifted values)."""
    conv = node(m, "Conv", 1)
    attribute(conv, "pads", [2, 2, 0, 0])
    return {conv.name}


def fc_bias_dropped(m):
    """The head's bias lost."""
    return drop_bias(m, node(m, "Gemm"))


def conv1_stride(m):
    """The first conv's stride 2 (a smaller feature map)."""
    conv = node(m, "Conv", 0)
    attribute(conv, "strides", [2, 2])
    return {conv.name}


def resize_mode(m):
    resize = node(m, "Resize")
    attribute(resize, "mode", "linear")
    attribute(resize, "nearest_mode", None)
    return {resize.name}


def pads_moved(m):
    """F.pad's pads (1 on each side of H and W) all on the top and left."""
    pad = node(m, "Pad")
    own_input(m, pad, 1, np.array([0, 0, 2, 2, 0, 0, 0, 0]), np.int64)
    return {pad.name}


def floor_becomes_truncation(m):
    """Integer floor division rounds toward zero (the floor's correction lost)."""
    floors = nodes(m, "Floor")
    if floors:  # dynamo: Cast, Div, Floor, Cast
        return retype(floors[0], "Identity")
    where = node(m, "Where")  # TorchScript: Div, then Where(negative and inexact, Div - 1, Div)
    where.input[:] = [where.input[2]]
    return retype(where, "Identity")


def cumsum_exclusive(m):
    cumsum = node(m, "CumSum")
    attribute(cumsum, "exclusive", 1)
    return {cumsum.name}


def avg_pool_counts_padding(m):
    pool = node(m, "AveragePool")
    attribute(pool, "count_include_pad", 1)
    return {pool.name}


def normalize_epsilon_removed(m):
    """F.normalize's clamp of the norm (min 1e-12) at 0: a zero row divides 0 by 0."""
    clip = node(m, "Clip")
    own_input(m, clip, 1, np.array(0.0, np.float32))
    return {clip.name}


def rms_epsilon_removed(m):
    """mean(x^2) + 1e-6 loses its 1e-6: a zero row divides 0 by 0."""
    add = with_constant(m, "Add", 1e-6)
    index = next(k for k, v in enumerate(add.input) if constant(m, v) is not None)
    own_input(m, add, index, np.array(0.0, np.float32))
    return {add.name}


def variance_uncentered(m):
    """The decomposed LayerNorm's variance squares the input, not its difference from the mean."""
    square = next(n for n in nodes(m, "Mul") if n.input[0] == n.input[1])
    sub = next(n for n in nodes(m, "Sub") if square.input[0] in n.output)
    square.input[:] = [sub.input[0], sub.input[0]]
    return {square.name}


_TORCH_CASES = [
    # (name, model, edit, the modules that count)
    ("bn_cnn_conv2_bias", "bn_cnn", conv2_bias_dropped, {"conv2", "bn2"}),
    ("bn_cnn_conv2_bit", "bn_cnn", conv2_bit_flipped, {"conv2", "bn2"}),
    ("bn_cnn_conv2_pads", "bn_cnn", conv2_pads_moved, {"conv2", "bn2"}),
    ("bn_cnn_conv1_stride", "bn_cnn", conv1_stride, {"conv1", "bn1"}),
    ("bn_cnn_fc_bias", "bn_cnn", fc_bias_dropped, {"fc"}),
    ("interpolate_mode", "interpolate", resize_mode, set()),
    ("pad_pads", "pad", pads_moved, set()),
    ("floordiv_truncates", "floordiv", floor_becomes_truncation, set()),
    ("cumsum_exclusive", "cumsum", cumsum_exclusive, set()),
    ("avg_pool_count_pad", "avg_pool", avg_pool_counts_padding, set()),
    ("normalize_eps", "normalize", normalize_epsilon_removed, set()),
    ("rms_norm_eps", "rms_norm", rms_epsilon_removed, set()),
    ("layer_norm_variance", "layer_norm", variance_uncentered, set()),
]


def torch_cases() -> list[Case]:
    builders = torch_models()
    cases = []
    for framework, prefix in (("torch-dynamo", "dynamo"), ("torch-script", "ts")):
        for name, model, edit, modules in _TORCH_CASES:
            cases.append(
                Case(
                    f"{prefix}_{name}",
                    framework,
                    builders[model],
                    edit,
                    frozenset(modules),
                    what=(edit.__doc__ or edit.__name__).strip().splitlines()[0],
                )
            )
    # the contrast: the same bug in a TorchScript export whose BatchNorms are not folded
    cases.append(
        Case(
            "ts_unfolded_bn_cnn_conv2_bias",
            "torch-script",
            builders["bn_cnn"],
            conv2_bias_dropped,
            frozenset({"conv2"}),
            what="the second conv's bias lost, exported with do_constant_folding=False (BNs kept)",
            export_options=(("do_constant_folding", False),),
        )
    )
    return cases


# -- keras ----------------------------------------------------------------------------------


def _keras_image() -> dict:
    import onnxparity as op

    return dict(inputs=[op.Input("x", ("batch", 8, 8, 3), low=-1, high=1)], dims={"batch": op.Dim(1, 3)})


def _keras_rows() -> dict:
    import onnxparity as op

    return dict(inputs=[op.Input("x", ("batch", 8), low=-3, high=3)], dims={"batch": op.Dim(1, 4)})


def _random_bias() -> Any:
    """Non-zero biases (tf2onnx drops zero ones)."""
    import keras

    return keras.initializers.RandomNormal(stddev=0.5, seed=1)


def keras_cnn() -> tuple[Any, dict]:
    """Conv2D(relu) -> MaxPool -> Conv2D -> AvgPool -> Flatten -> Dense(tanh) -> Dense."""
    import keras

    keras.utils.set_random_seed(0)
    bias = _random_bias()
    x = keras.Input((8, 8, 3), name="x")
    h = keras.layers.Conv2D(4, 3, padding="same", activation="relu", bias_initializer=bias, name="conv")(x)
    h = keras.layers.MaxPooling2D(2, name="pool")(h)
    h = keras.layers.Conv2D(4, 3, padding="same", bias_initializer=bias, name="conv2")(h)
    h = keras.layers.AveragePooling2D(2, name="avg")(h)
    h = keras.layers.Flatten(name="flat")(h)
    h = keras.layers.Dense(8, activation="tanh", bias_initializer=bias, name="dense")(h)
    model = keras.Model(x, keras.layers.Dense(3, bias_initializer=bias, name="head")(h))
    return model, _keras_image()


def keras_mlp() -> tuple[Any, dict]:
    """Dense(relu) -> LayerNormalization -> Dense(tanh) -> Dense: no image layout."""
    import keras

    keras.utils.set_random_seed(0)
    bias = _random_bias()
    x = keras.Input((8,), name="x")
    h = keras.layers.Dense(16, activation="relu", bias_initializer=bias, name="hidden")(x)
    h = keras.layers.LayerNormalization(name="norm")(h)
    h = keras.layers.Dense(8, activation="tanh", bias_initializer=bias, name="dense")(h)
    model = keras.Model(x, keras.layers.Dense(3, bias_initializer=bias, name="head")(h))
    return model, _keras_rows()


def keras_bn() -> tuple[Any, dict]:
    """Sequential Conv2D -> BatchNormalization (trained-like statistics) -> ReLU -> pooling -> Dense."""
    import keras

    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [
            keras.Input((8, 8, 3), name="x"),
            keras.layers.Conv2D(4, 3, padding="same", name="conv"),
            keras.layers.BatchNormalization(name="bn"),
            keras.layers.ReLU(name="relu"),
            keras.layers.GlobalAveragePooling2D(name="gap"),
            keras.layers.Dense(3, name="head"),
        ]
    )
    rng = np.random.default_rng(1)
    bn = model.get_layer("bn")
    gamma, beta, mean, var = (w.shape for w in bn.get_weights())
    bn.set_weights(
        [
            rng.uniform(0.5, 1.5, gamma).astype(np.float32),
            rng.uniform(-0.5, 0.5, beta).astype(np.float32),
            rng.uniform(-0.5, 0.5, mean).astype(np.float32),
            rng.uniform(0.5, 2.0, var).astype(np.float32),
        ]
    )
    return model, _keras_image()


def keras_subclassed_cnn() -> tuple[Any, dict]:
    import keras

    class SubclassedCnn(keras.Model):
        def __init__(self):
            super().__init__()
            self.conv = keras.layers.Conv2D(
                4, 3, padding="same", activation="relu", bias_initializer=_random_bias(), name="conv"
            )
            self.pool = keras.layers.GlobalAveragePooling2D(name="pool")
            self.hidden = keras.layers.Dense(
                8, activation="relu", bias_initializer=_random_bias(), name="hidden"
            )
            self.head = keras.layers.Dense(3, name="head")

        def call(self, x):
            return self.head(self.hidden(self.pool(self.conv(x))))

    keras.utils.set_random_seed(0)
    model = SubclassedCnn()
    model(np.zeros((1, 8, 8, 3), np.float32))
    return model, _keras_image()


def keras_subclassed_mlp() -> tuple[Any, dict]:
    import keras

    class SubclassedMlp(keras.Model):
        def __init__(self):
            super().__init__()
            self.hidden = keras.layers.Dense(
                16, activation="relu", bias_initializer=_random_bias(), name="hidden"
            )
            self.head = keras.layers.Dense(4, name="head")

        def call(self, x):
            return self.head(self.hidden(x))

    keras.utils.set_random_seed(0)
    model = SubclassedMlp()
    model(np.zeros((1, 8), np.float32))
    return model, _keras_rows()


def _layer(layer: str) -> str:
    """A tf2onnx node name fragment for layer ``layer`` (Keras 3 traces it as ``layer_1``); ""
    for any layer."""
    return f"/{layer}_1/" if layer else ""


def _constant_input(m, target) -> int:
    return next(k for k, v in enumerate(target.input) if constant(m, v) is not None)


def bias_lost(op_type: str, layer: str = "") -> Callable:
    def edit(m):
        """The layer's bias lost (all zeros)."""
        target = node(m, op_type, contains=_layer(layer))
        if op_type == "Conv" and len(target.input) < 3:  # not fused: the BiasAdd after it
            target = node(m, "Add", contains=_layer(layer))
        index = 2 if target.op_type == "Conv" else _constant_input(m, target)
        own_input(m, target, index, np.zeros_like(constant(m, target.input[index])))
        return {target.name}

    edit.__doc__ = f"{layer or op_type}'s bias lost (all zeros)"
    return edit


def activation_changed(op_type: str, layer: str = "", to: str = "Identity") -> Callable:
    def edit(m):
        return retype(node(m, op_type, contains=_layer(layer)), to)

    edit.__doc__ = f"{layer or 'the'} layer's {op_type} computed as {to}"
    return edit


def weight_scaled(op_type: str, layer: str = "", factor: float = 1.01, k: int = 0) -> Callable:
    def edit(m):
        return scale_input(m, node(m, op_type, k, contains=_layer(layer)), 1, factor)

    edit.__doc__ = f"{layer or op_type}'s weights x{factor}"
    return edit


def weight_bit_flipped(op_type: str, layer: str = "") -> Callable:
    def edit(m):
        return flip_bit(m, node(m, op_type, contains=_layer(layer)))

    edit.__doc__ = f"an exponent bit of {layer or op_type}'s first weight flipped"
    return edit


def keras_conv2_pads(m):
    """The second Conv2D's "same" padding all on the top-left."""
    conv = node(m, "Conv", contains=_layer("conv2"))
    attribute(conv, "auto_pad", None)
    attribute(conv, "pads", [2, 2, 0, 0])
    return {conv.name}


def keras_maxpool(m):
    """MaxPooling2D computed as an average."""
    return retype(node(m, "MaxPool"), "AveragePool", drop=("storage_order", "dilations"))


def keras_avgpool(m):
    """AveragePooling2D computed as a max."""
    return retype(node(m, "AveragePool"), "MaxPool", drop=("count_include_pad",))


def keras_norm_epsilon(m):
    """LayerNormalization's epsilon (1e-3) at 0."""
    add = node(m, "Add", contains="/norm_1/add")
    own_input(m, add, 1, np.zeros_like(constant(m, add.input[1])))
    return {add.name}


def keras_norm_gamma(m):
    """LayerNormalization's gamma x1.5."""
    mul = node(m, "Mul", contains="/norm_1/mul")
    return scale_input(m, mul, _constant_input(m, mul), 1.5)


def keras_bn_beta(m):
    """The BatchNormalization's shift off by 1 in one channel (tf2onnx folds it into the conv's bias)."""
    bn = nodes(m, "BatchNormalization")
    target, index = (bn[0], 2) if bn else (node(m, "Conv"), 2)
    if target.op_type == "Conv" and len(target.input) < 3:
        target = next(n for n in nodes(m, "Add") if any(constant(m, v) is not None for v in n.input))
        index = _constant_input(m, target)
    value = constant(m, target.input[index])
    value.reshape(-1)[0] += 1.0
    own_input(m, target, index, value)
    return {target.name}


def keras_cases() -> list[Case]:
    rows = [
        # a functional CNN (tf2onnx computes in NCHW, TensorFlow in NHWC)
        ("conv_relu_bias", keras_cnn, bias_lost("Conv", "conv"), {"conv"}),
        ("conv_relu_activation", keras_cnn, activation_changed("Relu", "conv"), {"conv"}),
        ("conv2_weight", keras_cnn, weight_scaled("Conv", "conv2"), {"conv2"}),
        ("conv2_pads", keras_cnn, keras_conv2_pads, {"conv2"}),
        ("maxpool_as_avg", keras_cnn, keras_maxpool, {"pool"}),
        ("avgpool_as_max", keras_cnn, keras_avgpool, {"avg"}),
        ("cnn_dense_activation", keras_cnn, activation_changed("Tanh", "dense", "Sigmoid"), {"dense"}),
        ("bn_beta", keras_bn, keras_bn_beta, {"bn", "conv"}),
        # a functional MLP
        ("mlp_hidden_bias", keras_mlp, bias_lost("Add", "hidden"), {"hidden"}),
        ("mlp_hidden_activation", keras_mlp, activation_changed("Relu", "hidden"), {"hidden"}),
        ("mlp_layernorm_eps", keras_mlp, keras_norm_epsilon, {"norm"}),
        ("mlp_layernorm_gamma", keras_mlp, keras_norm_gamma, {"norm"}),
        ("mlp_dense_activation", keras_mlp, activation_changed("Tanh", "dense", "Sigmoid"), {"dense"}),
        ("mlp_head_bit", keras_mlp, weight_bit_flipped("MatMul", "head"), {"head"}),
        # subclassed models (no layer outputs to read; their layers named as above)
        ("subclassed_cnn_conv_bias", keras_subclassed_cnn, bias_lost("Conv", "conv"), {"conv"}),
        (
            "subclassed_cnn_hidden_weight",
            keras_subclassed_cnn,
            weight_scaled("MatMul", "hidden", 1.05),
            {"hidden"},
        ),
        ("subclassed_mlp_activation", keras_subclassed_mlp, activation_changed("Relu", "hidden"), {"hidden"}),
        ("subclassed_mlp_head_weight", keras_subclassed_mlp, weight_scaled("MatMul", "head", 1.05), {"head"}),
    ]
    return [
        Case(
            f"keras_{name}",
            "keras",
            build,
            edit,
            frozenset(modules),
            what=(edit.__doc__ or edit.__name__).strip().splitlines()[0],
        )
        for name, build, edit, modules in rows
    ]


# -- scikit-learn ---------------------------------------------------------------------------


def _cancer() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_breast_cancer

    x, y = load_breast_cancer(return_X_y=True)
    return x.astype(np.float32), y


def _table(data: np.ndarray, allow_nan: bool = False) -> dict:
    import onnxparity as op

    return dict(
        inputs=[op.Input("X", ("batch", data.shape[1]), allow_nan=allow_nan)],
        dims={"batch": op.Dim(1, 8)},
        data=data,
    )


def sklearn_scaler_pca_lr() -> tuple[Any, dict]:
    from sklearn.decomposition import PCA
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    x, y = _cancer()
    return make_pipeline(StandardScaler(), PCA(5), LogisticRegression(max_iter=500)).fit(x, y), _table(x)


def sklearn_scaler_tree() -> tuple[Any, dict]:
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.tree import DecisionTreeRegressor

    x, y = _cancer()
    tree = DecisionTreeRegressor(max_depth=3, random_state=0)
    return make_pipeline(StandardScaler(), tree).fit(x, y), _table(x)


def sklearn_forest() -> tuple[Any, dict]:
    """One estimator, not a pipeline: only its outputs pair."""
    from sklearn.ensemble import RandomForestRegressor

    x, y = _cancer()
    return RandomForestRegressor(n_estimators=3, max_depth=3, random_state=0).fit(x, y), _table(x)


def sklearn_imputer() -> tuple[Any, dict]:
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    x, y = _cancer()
    x = x[:, :6].copy()
    rng = np.random.default_rng(0)
    x[rng.random(x.shape) < 0.2] = np.nan
    model = make_pipeline(SimpleImputer(), StandardScaler(), LogisticRegression(max_iter=500)).fit(x, y)
    return model, _table(x, allow_nan=True)


def sklearn_columns() -> tuple[Any, dict]:
    import pandas as pd
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    import onnxparity as op

    rng = np.random.default_rng(0)
    frame = pd.DataFrame(
        {
            "age": rng.uniform(18, 80, 200).astype(np.float32),
            "income": rng.lognormal(10, 0.5, 200).astype(np.float32),
            "city": rng.choice(["paris", "oslo", "lima"], 200),
        }
    )
    features = ColumnTransformer(
        [
            ("numeric", StandardScaler(), ["age", "income"]),
            ("city", OneHotEncoder(handle_unknown="ignore"), ["city"]),
        ]
    )
    target = (frame.age > 45) ^ (frame.city == "oslo")
    model = make_pipeline(features, LogisticRegression()).fit(frame, target)
    declared = dict(
        inputs=[
            op.Input("age", ("batch", 1)),
            op.Input("income", ("batch", 1)),
            op.Input("city", ("batch", 1), dtype="str", categories=("paris", "oslo", "lima")),
        ],
        dims={"batch": op.Dim(1, 8)},
        data=frame,
    )
    return model, declared


def sk_scaler_mean(m):
    """StandardScaler's mean of the first column off by one standard deviation."""
    scaler = node(m, "Scaler")
    floats_attribute(scaler, "offset", lambda v: [v[0] + 1.0 / get_attribute(scaler, "scale")[0], *v[1:]])
    return {scaler.name}


def sk_pca_component(m):
    """One entry of PCA's first component x1.5."""
    matmul = next(n for n in nodes(m, "MatMul") if constant(m, n.input[1]) is not None)
    value = constant(m, matmul.input[1])
    value[0, 0] *= 1.5
    own_input(m, matmul, 1, value)
    return {matmul.name}


def sk_lr_coefficient(m):
    """LogisticRegression's first coefficient x1.5."""
    linear = node(m, "LinearClassifier")
    floats_attribute(linear, "coefficients", lambda v: [v[0] * 1.5, *v[1:]])
    return {linear.name}


def sk_tree_threshold(m):
    """The first tree's root split threshold moved far off (every row goes one way)."""
    tree = next(n for n in m.graph.node if n.op_type.startswith("TreeEnsemble"))
    floats_attribute(tree, "nodes_values", lambda v: [v[0] + 1000.0, *v[1:]])
    return {tree.name}


def sk_imputer_value(m):
    """SimpleImputer's fill value of the first column off."""
    imputer = node(m, "Imputer")
    floats_attribute(imputer, "imputed_value_floats", lambda v: [v[0] + 5.0, *v[1:]])
    return {imputer.name}


def sk_onehot_category(m):
    """OneHotEncoder's categories swapped: "lima" and "oslo" trade columns."""
    encoder = node(m, "OneHotEncoder")
    a = next(a for a in encoder.attribute if a.name == "cats_strings")
    values = [s.decode() for s in a.strings]
    i, j = values.index("lima"), values.index("oslo")
    values[i], values[j] = values[j], values[i]
    del a.strings[:]
    a.strings.extend(s.encode() for s in values)
    return {encoder.name}


def sk_column_scaler(m):
    """The ColumnTransformer's StandardScaler's mean of age off by 5."""
    scaler = node(m, "Scaler")
    floats_attribute(scaler, "offset", lambda v: [v[0] + 5.0, *v[1:]])
    return {scaler.name}


def sklearn_cases() -> list[Case]:
    rows = [
        ("scaler_mean", sklearn_scaler_pca_lr, sk_scaler_mean, {"standardscaler"}),
        ("pca_component", sklearn_scaler_pca_lr, sk_pca_component, {"pca"}),
        ("lr_coefficient", sklearn_scaler_pca_lr, sk_lr_coefficient, {"logisticregression"}),
        ("tree_threshold", sklearn_scaler_tree, sk_tree_threshold, {"decisiontreeregressor"}),
        ("forest_threshold", sklearn_forest, sk_tree_threshold, set()),
        ("imputer_value", sklearn_imputer, sk_imputer_value, {"simpleimputer"}),
        ("onehot_category", sklearn_columns, sk_onehot_category, {"columntransformer.city"}),
        ("column_scaler_mean", sklearn_columns, sk_column_scaler, {"columntransformer.numeric"}),
    ]
    return [
        Case(
            f"sklearn_{name}",
            "sklearn",
            build,
            edit,
            frozenset(modules),
            what=(edit.__doc__ or edit.__name__).strip().splitlines()[0],
            examples=8,
        )
        for name, build, edit, modules in rows
    ]


def cases(frameworks: tuple[str, ...] = FRAMEWORKS) -> list[Case]:
    """Every case of the corpus, for the frameworks named."""
    found: list[Case] = []
    if {"torch-dynamo", "torch-script"} & set(frameworks):
        found += [c for c in torch_cases() if c.framework in frameworks]
    if "keras" in frameworks:
        found += keras_cases()
    if "sklearn" in frameworks:
        found += sklearn_cases()
    return found
