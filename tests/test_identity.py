"""The identity behind a cached export: every source of what an export depends on, planted and
changed, changes the key (a miss), and an unchanged model keeps it (a hit); where no digest
can be had, the identity says why in one line (issue 25)."""

from __future__ import annotations

import importlib
import sys
import textwrap
import threading

import numpy as np
import pytest

from onnxparity.exporters import resolve

torch = pytest.importorskip("torch")


@pytest.fixture
def project(tmp_path, monkeypatch):
    """Write user modules into a folder on sys.path; (re)import them by name."""
    monkeypatch.syspath_prepend(str(tmp_path))
    written: list[str] = []

    def write(name: str, text: str):
        (tmp_path / f"{name}.py").write_text(textwrap.dedent(text))
        written.append(name)
        for module in written:
            sys.modules.pop(module, None)
        importlib.invalidate_caches()
        return importlib.import_module(name)

    yield write
    for module in written:
        sys.modules.pop(module, None)


def key(model, origin=None):
    """(the key of the model within a run, its digest across runs, why it has none)."""
    subject = resolve(model, origin=origin)
    return subject.key, subject.identity.digest, subject.identity.why


NET = """
    import torch

    class Net(torch.nn.Module):
        def __init__(self, bake=False, scale=1.0, mode="a"):
            super().__init__()
            torch.manual_seed(0)
            self.fc = torch.nn.Linear(4, 3)
            self.bake, self.scale, self.mode = bake, scale, mode

        def forward(self, x):
            y = self.fc(x) * self.scale
            return y.reshape(int(x.shape[0]), 3) if self.bake else y
"""


def test_a_constructor_flag_kept_as_a_plain_attribute_changes_the_key(project):
    """M(bake=False) -> M(bake=True) with the same weights once reused a stale export."""
    models = project("flag_models", NET)
    plain = key(models.Net().eval())
    assert plain[2] is None
    assert key(models.Net().eval()) == plain  # the same model: the same key (a hit)
    for changed in (dict(bake=True), dict(scale=2.0), dict(mode="b")):
        other = key(models.Net(**changed).eval())
        assert other[0] != plain[0] and other[1] != plain[1], changed


def test_code_reached_from_forward_changes_the_key(project):
    """A helper imported inside forward, a global in another module, a closure variable, a
    function held as an attribute: each change is a miss."""
    project("helpers_a", "SCALE = 2.0\n\ndef post(y):\n    return y * 1.0\n")
    models = project(
        "code_models",
        """
        import torch
        import helpers_a

        def make(k):
            class Closed(torch.nn.Module):
                def __init__(self):
                    super().__init__()
                    torch.manual_seed(0)
                    self.fc = torch.nn.Linear(4, 3)

                def forward(self, x):
                    return self.fc(x) * k
            return Closed

        class Inside(torch.nn.Module):
            def __init__(self, act=None):
                super().__init__()
                torch.manual_seed(0)
                self.fc = torch.nn.Linear(4, 3)
                self.act = act

            def forward(self, x):
                from helpers_a import post
                return post(self.fc(x))

        class Global(Inside):
            def forward(self, x):
                return self.fc(x) * helpers_a.SCALE
        """,
    )
    inside, glob = key(models.Inside().eval()), key(models.Global().eval())
    assert inside[2] is None and glob[2] is None
    project("helpers_a", "SCALE = 2.0\n\ndef post(y):\n    return y * 1.5\n")
    assert key(models.Inside().eval())[1] != inside[1]  # the helper imported inside forward
    assert key(models.Global().eval())[1] != glob[1]  # the whole file of a module the code reaches
    helpers = sys.modules["helpers_a"]
    before = key(models.Global().eval())
    helpers.SCALE = 3.0  # a global changed at run time, not in the file
    assert key(models.Global().eval())[1] != before[1]
    one, two = key(models.make(1.0)().eval()), key(models.make(2.0)().eval())
    assert one[2] is None and one[0] != two[0] and one[1] != two[1]  # the closure variable

    def double(y):
        return y * 2

    def triple(y):
        return y * 3

    assert key(models.Inside(double).eval())[1] != key(models.Inside(triple).eval())[1]


def test_a_comment_does_not_change_the_key_and_a_changed_line_does(project):
    base = key(project("lines", NET).Net().eval())
    commented = NET.replace("import torch", "# a comment\n\n    import torch").replace(
        "y = self.fc", "# a comment\n\n            y = self.fc"
    )
    assert key(project("lines", commented).Net().eval())[1] == base[1]
    changed = NET.replace("* self.scale", "* self.scale + 0")
    assert key(project("lines", changed).Net().eval())[1] != base[1]


def test_the_test_function_that_builds_the_model_is_part_of_the_key(project):
    models = project("origin_models", NET)
    tests = project(
        "origin_tests",
        "from origin_models import Net\n\ndef test_a():\n    return Net(bake=False)\n\n"
        "def test_b():\n    return Net(bake=True)\n",
    )
    a = resolve(models.Net().eval(), origin=tests.test_a).origin
    b = resolve(models.Net().eval(), origin=tests.test_b).origin
    assert a.why is None and a.digest != b.digest
    assert resolve(models.Net().eval(), origin=tests.test_a).origin == a


def test_state_beyond_the_weights_changes_the_key(project):
    """Non-persistent buffers, plain tensor attributes, hooks, config objects, submodules held
    outside the tree."""
    models = project(
        "state_models",
        """
        import dataclasses
        import torch

        @dataclasses.dataclass
        class Config:
            heads: int = 2
            eps: float = 1e-5
            names: tuple = ("a", "b")

        class Net(torch.nn.Module):
            def __init__(self, config=None):
                super().__init__()
                torch.manual_seed(0)
                self.fc = torch.nn.Linear(4, 3)
                self.register_buffer("freq", torch.arange(3.0), persistent=False)
                self.offset = torch.zeros(3)
                self.config = config or Config()
                self.extra = [torch.nn.Linear(3, 3)]

            def forward(self, x):
                return self.fc(x) + self.freq + self.offset + self.extra[0](self.fc(x))
        """,
    )
    base = key(models.Net().eval())
    assert base[2] is None
    changes = {
        "non-persistent buffer": lambda m: m.freq.add_(1),
        "plain tensor": lambda m: m.offset.add_(1),
        "dataclass field": lambda m: setattr(m.config, "eps", 1e-6),
        "nested tuple": lambda m: setattr(m.config, "names", ("a", "c")),
        "module outside the tree": lambda m: m.extra[0].weight.data.add_(1),
        "a forward hook": lambda m: m.fc.register_forward_hook(lambda mod, i, o: o * 2),
    }
    for what, change in changes.items():
        model = models.Net().eval()
        with torch.no_grad():
            change(model)
        assert key(model)[0] != base[0], what
    hooked = [models.Net().eval() for _ in range(2)]
    hooked[0].fc.register_forward_hook(lambda mod, i, o: o * 2)
    hooked[1].fc.register_forward_hook(lambda mod, i, o: o * 3)
    assert key(hooked[0])[2] is None and key(hooked[0])[1] != key(hooked[1])[1]  # the hook's code


def test_a_value_with_no_stable_digest_is_never_reused_and_says_why(project):
    models = project("opaque_models", NET)
    model = models.Net().eval()
    model.lock = threading.Lock()
    subject, why = key(model)[0], key(model)[2]
    assert why == "Net.lock: a _thread.lock with no stable digest (its state is native)"
    assert key(model)[0] == subject  # within one run: the same object, the same key
    other = models.Net().eval()
    other.lock = threading.Lock()
    assert key(other)[0] != subject  # another object: never confused with the first
    native = models.Net().eval()
    native.post = np.random.default_rng(0)
    assert "no stable digest" in key(native)[2]


def test_a_transformers_config_field_changes_the_key():
    transformers = pytest.importorskip("transformers")
    config = transformers.BertConfig(
        vocab_size=50, hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32
    )
    torch.manual_seed(0)
    model = transformers.BertModel(config).eval()
    base = key(model)
    assert base[2] is None
    model.config.layer_norm_eps = 1e-3  # the same weights, another epsilon
    assert key(model)[0] != base[0]


SCALE_LAYER = """
import keras

class Scale(keras.layers.Layer):
    def __init__(self, factor=2.0, **kwargs):
        super().__init__(**kwargs)
        self.factor = factor

    def call(self, x):
        return x * self.factor{tail}
"""


def test_a_custom_keras_layer_and_config_change_the_key(project):
    keras = pytest.importorskip("keras")
    layers = project("keras_layers", SCALE_LAYER.format(tail=""))

    def build(factor=2.0, activation="relu"):
        keras.backend.clear_session()  # layer names count up within a process; they name the export's nodes
        keras.utils.set_random_seed(0)
        return keras.Sequential(
            [keras.Input((4,)), keras.layers.Dense(3, activation=activation), layers.Scale(factor)]
        )

    base = key(build())
    assert base[2] is None and key(build()) == base
    assert key(build(factor=3.0))[0] != base[0]  # the custom layer's attribute
    assert key(build(activation="tanh"))[0] != base[0]  # a built-in layer's config
    layers.Scale = project("keras_layers", SCALE_LAYER.format(tail=" + 0.0")).Scale
    assert key(build())[1] != base[1]  # the custom layer's code


def test_a_function_transformers_function_changes_the_key(project):
    pytest.importorskip("sklearn")
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import FunctionTransformer, StandardScaler

    funcs = project("funcs_a", "import numpy as np\n\ndef shift(x):\n    return x + 1\n")
    x = np.arange(12.0).reshape(4, 3)

    def build():
        return make_pipeline(FunctionTransformer(funcs.shift), StandardScaler()).fit(x)

    base = key(build())
    assert base[2] is None and key(build()) == base
    funcs = project("funcs_a", "import numpy as np\n\ndef shift(x):\n    return x + 2\n")
    assert key(build())[1] != base[1]


def test_a_data_frame_the_test_reads_is_digested_by_its_content(project):
    """A pandas DataFrame held by a test (examples/test_sklearn_pipeline.py's FRAME) once made
    its export uncacheable: its block manager has native state."""
    pd = pytest.importorskip("pandas")
    models = project("frame_models", NET)

    project("frame_data", "")

    def origin(frame):
        tests = project("frame_tests", "import frame_data\n\ndef test_t():\n    return frame_data.FRAME\n")
        tests.frame_data.FRAME = frame
        return resolve(models.Net().eval(), origin=tests.test_t).origin

    frame = pd.DataFrame({"a": [1.0, 2.0], "b": ["x", "y"]})
    base = origin(frame)
    assert base.why is None and origin(frame.copy()) == base
    assert origin(frame.assign(b=["x", "z"])).digest != base.digest
    assert origin(frame.rename(columns={"a": "c"})).digest != base.digest


def test_a_method_bound_around_a_partial_is_digested_not_crashed():
    """types.MethodType(functools.partial(f, scale), obj): the walk passed the partial to the
    function digest, which raised AttributeError ('__qualname__'); it is digested as a value,
    and its bound argument is part of the key."""
    import functools
    import types

    from onnxparity.exporters.walk import Walker

    def scaled(self, x, scale):
        return x * scale

    holder = type("Holder", (), {})()
    digests = []
    for scale in (2, 3):
        walker = Walker()
        digests.append(walker.value(types.MethodType(functools.partial(scaled, scale=scale), holder), "model.act"))
        assert walker.why is None
    assert digests[0] != digests[1]
