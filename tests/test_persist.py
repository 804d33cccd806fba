"""The persistent cache across runs: exports keyed by everything that determines them (weights,
the user's code, inputs, opset, versions), reused by the next run, missed on a changed line of
``forward`` or a changed weight, refused (and reported) where the code cannot be pinned down;
entries written atomically, safe under concurrent writers, bounded in size."""

from __future__ import annotations

import json
import multiprocessing
import os
import re
import sys

import pytest

from onnxparity.persist import MANIFEST, Store, digest

# -- the store -----------------------------------------------------------------------------------


def _file(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def test_an_entry_round_trips_and_a_miss_is_none(tmp_path):
    store = Store(str(tmp_path / "cache"), 1 << 20)
    files = [_file(tmp_path, "model.onnx", "graph"), _file(tmp_path, "model.onnx.data", "weights")]
    assert store.get("exports", "k" * 40, str(tmp_path / "out")) is None
    assert store.put("exports", "k" * 40, files, {"opset": 17})
    assert store.get("exports", "k" * 40, str(tmp_path / "out")) == {"opset": 17}
    assert (tmp_path / "out" / "model.onnx.data").read_text() == "weights"
    assert os.stat(tmp_path / "out" / "model.onnx.data").st_nlink == 1  # a copy: onnx refuses hard links
    assert store.counts == {"hits": 1, "misses": 1, "writes": 1, "evictions": 0, "corrupt": 0}
    assert digest({"a": 1, "b": [2]}) == digest({"b": [2], "a": 1})


def test_an_entry_that_does_not_match_its_manifest_is_a_miss_and_goes(tmp_path):
    store = Store(str(tmp_path / "cache"), 1 << 20)
    store.put("exports", "ab" * 20, [_file(tmp_path, "model.onnx", "graph")], {})
    entry = tmp_path / "cache" / "exports" / "ab" / ("ab" * 20)
    (entry / "model.onnx").write_text("gra")  # truncated by a full disk
    assert store.get("exports", "ab" * 20, str(tmp_path / "out")) is None
    assert not entry.exists() and store.counts["corrupt"] == 1
    store.put("exports", "cd" * 20, [_file(tmp_path, "model.onnx", "graph")], {})
    (tmp_path / "cache" / "exports" / "cd" / ("cd" * 20) / MANIFEST).write_text("{not json")
    assert store.get("exports", "cd" * 20, str(tmp_path / "out")) is None
    assert store.counts["corrupt"] == 2


def test_an_interrupted_write_leaves_no_entry(tmp_path):
    """A writer killed before its rename leaves a staging folder under tmp/, never an entry."""
    store = Store(str(tmp_path / "cache"), 1 << 20)
    staging = tmp_path / "cache" / "tmp" / "123-dead"
    staging.mkdir(parents=True)
    (staging / "model.onnx").write_text("half")
    assert store.entries() == []
    assert store.get("exports", "ef" * 20, str(tmp_path / "out")) is None
    os.utime(staging, (0, 0))  # an hour old: the next eviction sweeps it
    store.evict()
    assert not staging.exists()


def _writer(root, source, barrier):
    store = Store(root, 1 << 20)
    barrier.wait()
    ok = store.put("exports", "99" * 20, [source], {"writer": os.getpid()})
    raise SystemExit(0 if ok else 1)


def test_concurrent_writers_of_one_key_leave_one_whole_entry(tmp_path):
    root, source = str(tmp_path / "cache"), _file(tmp_path, "model.onnx", "x" * 100_000)
    context = multiprocessing.get_context("fork")
    barrier = context.Barrier(6)
    writers = [context.Process(target=_writer, args=(root, source, barrier)) for _ in range(6)]
    for w in writers:
        w.start()
    for w in writers:
        w.join(30)
    assert [w.exitcode for w in writers] == [0] * 6
    store = Store(root, 1 << 20)
    assert len(store.entries()) == 1
    assert store.get("exports", "99" * 20, str(tmp_path / "out")) is not None
    assert (tmp_path / "out" / "model.onnx").read_text() == "x" * 100_000
    assert os.listdir(os.path.join(root, "tmp")) == []  # the losers dropped their copies


def test_the_cache_keeps_to_its_size_least_recently_used_first(tmp_path):
    store = Store(str(tmp_path / "cache"), 3000)
    for key in ("a1", "b2", "c3"):
        store.put("exports", key * 20, [_file(tmp_path, "m.onnx", "x" * 1000)], {})
        manifest = tmp_path / "cache" / "exports" / key[:2] / (key * 20) / MANIFEST
        os.utime(manifest, (100 + len(store.entries()), 100 + len(store.entries())))
    # three entries of ~1.3 KB (the file and its manifest) do not fit 3 KB: the oldest went
    assert store.get("exports", "a1" * 20, str(tmp_path / "o")) is None
    assert store.get("exports", "b2" * 20, str(tmp_path / "o")) is not None
    assert store.counts["evictions"] == 1


# -- exports across runs (the plugin) --------------------------------------------------------------
MODELS = """
import torch


class Net(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = torch.nn.Linear(8, 4)

    def forward(self, x):
        return torch.tanh(self.fc(x)){tail}
"""

OTHER = """
import torch


class Other(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = torch.nn.Linear(8, 2)

    def forward(self, x):
        return self.fc(x)
"""

TESTS = """
import pytest
import torch
import onnxparity as op
from cache_models import Net
from other_models import Other

SPEC = dict(inputs=[op.Input("x", ("batch", 8))], dims={{"batch": op.Dim(1, 3)}}, examples=3)


@pytest.mark.onnx_parity(**SPEC)
def test_net(onnx_parity):
    torch.manual_seed({seed})
    onnx_parity.check(Net().eval())


@pytest.mark.onnx_parity(**SPEC)
def test_other(onnx_parity):
    torch.manual_seed(0)
    onnx_parity.check(Other().eval())


@pytest.mark.onnx_parity(**SPEC, variants=["fp16"], tolerance={{"fp16": op.Agreement(sqnr_db=200)}})
def test_strict(onnx_parity):
    torch.manual_seed(0)
    onnx_parity.check(Other().eval())


@pytest.mark.onnx_parity(**SPEC)
def test_local(onnx_parity):
    class Local(torch.nn.Module):
        def forward(self, x):
            return x * 2

    onnx_parity.check(Local().eval())
"""


def _run(pytester, seed=0, tail=""):
    pytester.makepyfile(cache_models=MODELS.format(tail=tail), other_models=OTHER)
    pytester.makepyfile(test_cached=TESTS.format(seed=seed))
    report = pytester.path / "r.json"
    result = pytester.runpytest_inprocess(
        "--onnx-parity", f"--onnx-parity-report={report}", "-p", "no:cacheprovider"
    )
    result.assert_outcomes(passed=3, failed=1)  # test_strict fails on purpose: failures are never kept
    items = json.loads(report.read_text())["items"]
    exports = {i["test"].split("::")[-1]: i["model"]["cache"] for i in items}
    reused = {i["test"].split("::")[-1] for i in items if "cached" in i["result"]}
    return exports, reused, result


def test_exports_and_passing_results_are_reused_until_a_line_or_a_weight_changes(pytester, warm_exporter):
    stored, reused = "stored in the persistent cache", "reused from the persistent cache"
    first, kept, _ = _run(pytester)
    (pytester.path / "r.json").rename(pytester.path / "fresh.json")
    assert first == {
        "test_net": stored,
        "test_other": stored,
        "test_strict": stored,  # the same model as test_other: one export in this session
        "test_local": stored,  # a class defined in the test: its code and closure are digested
    }
    assert kept == set() and (pytester.path / ".onnxparity" / "cache" / "exports").is_dir()
    second, kept, result = _run(pytester)
    assert second == {test: reused for test in first}
    # passing searches are skipped; the failing one runs again
    assert kept == {"test_net", "test_other", "test_local"}
    result.stdout.fnmatch_lines(["*test_net*ort-cpu*passed (cached)*"])
    # a reused result reads like a fresh one, in the report and through the result object
    fresh = json.loads((pytester.path / "fresh.json").read_text())
    again = json.loads((pytester.path / "r.json").read_text())
    for before, after in zip(fresh["items"], again["items"]):
        if "cached" in after["result"]:
            assert {**after["result"], "cached": None} == {**before["result"], "cached": None}
    result.stdout.fnmatch_lines(["*test_strict*fp16*failed *"])
    # a changed line in Net's forward: Net exports and searches again, Other (another file) does not
    changed, kept, _ = _run(pytester, tail=" * 1.0")
    assert (changed["test_net"], changed["test_other"], kept) == (stored, reused, {"test_other", "test_local"})
    # a changed weight (another seed): exported again
    assert _run(pytester, seed=1, tail=" * 1.0")[0]["test_net"] == stored
    assert _run(pytester, seed=1, tail=" * 1.0")[1] == {"test_net", "test_other", "test_local"}


def test_the_cache_is_off_with_the_option(pytester, warm_exporter):
    pytester.makepyfile(cache_models=MODELS.format(tail=""), other_models=OTHER)
    pytester.makepyfile(test_cached=TESTS.format(seed=0))
    result = pytester.runpytest_inprocess(
        "--onnx-parity", "--onnx-parity-cache=off", "-p", "no:cacheprovider"
    )
    result.assert_outcomes(passed=3, failed=1)
    assert not (pytester.path / ".onnxparity" / "cache").exists()


def test_instance_changes_the_class_does_not_show_are_digested_by_their_code():
    """A hook or a forward replaced on the instance once made a model uncacheable; their code
    is part of the identity now, so another hook is another key and the same hook the same."""
    from onnxparity.exporters.states import torch_identity
    from parity_models import Mlp

    def twice(module, inputs, output):
        return output * 2

    def thrice(module, inputs, output):
        return output * 3

    plain = torch_identity(Mlp().eval())
    digests = []
    for hook in (twice, thrice, twice):
        model = Mlp().eval()
        model.register_forward_hook(hook)
        identity = torch_identity(model)
        assert identity.why is None and identity.digest != plain.digest
        digests.append(identity.digest)
    assert digests[0] != digests[1] and digests[0] == digests[2]
    other = Mlp().eval()
    other.forward = lambda x: x
    assert torch_identity(other).why is None and torch_identity(other).digest != plain.digest


def test_a_reused_results_outputs_read_as_the_fresh_ones():
    from onnxparity.results import OutputSummary
    from onnxparity.runner.reuse import output_summary

    fresh = OutputSummary("y", 1.5e-7, 3e-6, 0.0, 0, 32, None, None, 0, 0, 2e-7, None, None)
    assert output_summary(fresh.to_dict()) == fresh
    lossy = OutputSummary("y", float("inf"), float("nan"), 0.5, 3, 32, 0.99, 20.5, 0, 0, None, 0.999, 31.0)
    again = output_summary(lossy.to_dict())
    assert again.max_abs_error == float("inf") and again.max_rel_error != again.max_rel_error
    assert (again.min_cosine, again.sqnr_db, again.mismatched) == (0.99, 31.0, 3)


def test_a_reused_pass_keeps_its_ill_conditioned_examples():
    import onnxparity as op
    from onnxparity.results import VariantResult
    from onnxparity.runner.reuse import _result

    fresh = VariantResult("ort-cpu", "passed", op.Tolerance(), 28, ill_conditioned=5, conditioning="ill-conditioned: x")
    again = _result(fresh.to_dict(), "ort-cpu", op.Tolerance())
    assert (again.ill_conditioned, again.conditioning) == (5, "ill-conditioned: x")
    assert _result({**fresh.to_dict(), "ill_conditioned": "5"}, "ort-cpu", op.Tolerance()) is None


def test_a_cache_that_cannot_be_written_or_read_never_fails_a_run(tmp_path):
    """An entry whose files cannot be copied out is a miss; a read-only cache folder stores
    nothing and the run goes on."""
    store = Store(str(tmp_path / "cache"), 1 << 20)
    source = _file(tmp_path, "model.onnx", "graph")
    assert store.put("exports", "aa" * 20, [source], {})
    (tmp_path / "blocked").write_text("a file where the folder should go")
    assert store.get("exports", "aa" * 20, str(tmp_path / "blocked" / "out")) is None
    os.chmod(tmp_path / "cache", 0o500)
    try:
        if os.access(tmp_path / "cache", os.W_OK):
            pytest.skip("running as a user who can write anywhere (root)")
        assert store.put("exports", "bb" * 20, [source], {}) is False
    finally:
        os.chmod(tmp_path / "cache", 0o700)


def test_built_variants_are_reused_across_runs_and_a_new_option_builds_again(tmp_path):
    """int8 (dynamic and static, calibrated on drawn inputs) and fp16 conversions are stored
    beside the export: a later run whose search differs (more examples) converts nothing; another
    option of a variant converts that variant again."""
    import torch

    import onnxparity as op
    from onnxparity.config import ParityConfig
    from onnxparity.runner import ParitySession
    from parity_models import Mlp

    torch.manual_seed(0)
    model = Mlp().eval()
    lossy = ("int8-dynamic", "int8-static", "fp16")
    spec = op.ParitySpec(inputs=(op.Input("x", ("batch", 16)),), dims={"batch": op.Dim(1, 4)}, variants=lossy)

    def run(examples, spec=spec):
        config = ParityConfig(reproducer_dir=str(tmp_path / "r"), cache_dir=str(tmp_path / "cache"))
        with ParitySession(config) as session:
            pair = session.prepare(model, spec)
            statuses = [
                session.check_variant(pair, spec, v, name="t", examples=examples).status for v in lossy
            ]
            return statuses, session.counts["exports"], session.counts["cached_builds"]

    assert run(3) == (["passed"] * 3, 1, 0)
    assert run(4) == (["passed"] * 3, 0, 3)  # a new search: the export and all three builds reused
    assert len(os.listdir(tmp_path / "cache" / "variants")) >= 1
    other = op.ParitySpec(
        inputs=spec.inputs,
        dims=spec.dims,
        variants=lossy,
        variant_options={"int8-dynamic": {"per_channel": True}},
    )
    assert run(5, other) == (["passed"] * 3, 0, 2)  # only int8-dynamic converts again


# -- a new user's project: every edit gets a fresh verdict ---------------------------------------
FLAG_MODEL = """
import torch


class M(torch.nn.Module):
    def __init__(self, bake=False):
        super().__init__()
        self.fc = torch.nn.Linear(4, 3)
        self.bake = bake

    def forward(self, x):
        from flag_helpers import post

        y = self.fc(x)
        if self.bake:
            y = y.reshape(int(x.shape[0]), 3)
        return post(y)
"""

FLAG_TEST = """
import pytest
import torch
import onnxparity as op
from flag_model import M


@pytest.mark.onnx_parity(inputs=[op.Input("x", ("batch", 4))], dims={{"batch": op.Dim(1, 4)}}, examples=4)
def test_m(onnx_parity):
    torch.manual_seed(0)
    onnx_parity.check(M(bake={bake}).eval())
"""


def test_a_constructor_flag_or_a_helper_imported_in_forward_is_never_a_stale_pass(pytester, warm_exporter):
    """Issue 25: M(bake=False) -> M(bake=True) in the test, or a changed helper that forward
    imports inside the function, once gave 'passed (cached)' where a fresh run fails."""
    pytester.makepyfile(flag_model=FLAG_MODEL, flag_helpers="def post(y):\n    return y * 1.0\n")

    def run(bake: bool, post: str | None = None):
        if post is not None:
            pytester.makepyfile(flag_helpers=f"def post(y):\n    return {post}\n")
        pytester.makepyfile(test_flag=FLAG_TEST.format(bake=bake))
        for name in ("flag_model", "flag_helpers", "test_flag"):
            sys.modules.pop(name, None)
        result = pytester.runpytest_inprocess("--onnx-parity", "-p", "no:cacheprovider", "-r", "a")
        outcome = result.parseoutcomes()
        cached = any("passed (cached)" in line for line in result.outlines)
        return ("passed" if outcome.get("passed") else "failed"), cached

    assert run(False) == ("passed", False)
    assert run(False) == ("passed", True)  # nothing changed: reused
    assert run(True) == ("failed", False)  # the flag bakes the batch: a fresh verdict
    assert run(False) == ("passed", True)  # back as it was: the stored pass is the right one
    # a helper forward imports inside the function, changed to bake the batch
    assert run(False, post="y.reshape(int(y.shape[0]), 3)") == ("failed", False)
    assert run(False, post="y * 1.0") == ("passed", True)


ENV_MODEL = """
import os
import re
import torch


class E(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = torch.nn.Linear(4, 3)

    def forward(self, x):
        y = self.fc(x) * float(os.environ.get("ONNXPARITY_TEST_SCALE", "1"))
        if os.environ.get("ONNXPARITY_TEST_BAKE"):
            y = y.reshape(int(x.shape[0]), 3)
        return y
"""

ENV_TEST = """
import pytest
import torch
import onnxparity as op
from env_model import E


@pytest.mark.onnx_parity(inputs=[op.Input("x", ("batch", 4))], dims={"batch": op.Dim(1, 4)}, examples=4)
def test_e(onnx_parity):
    torch.manual_seed(0)
    onnx_parity.check(E().eval())
"""


def test_verify_mode_reuses_nothing_and_names_what_the_cache_got_wrong(pytester, warm_exporter, monkeypatch):
    """What no identity sees (here an environment variable forward reads) makes a stale entry;
    --onnx-parity-cache=verify computes everything, and a difference from the cache is a cache
    error naming both graph digests, or the stored pass against the fresh verdict."""
    pytester.makepyfile(env_model=ENV_MODEL, test_env=ENV_TEST)
    monkeypatch.delenv("ONNXPARITY_TEST_SCALE", raising=False)
    monkeypatch.delenv("ONNXPARITY_TEST_BAKE", raising=False)

    def run(*flags):
        report = pytester.path / "r.json"
        result = pytester.runpytest_inprocess(
            "--onnx-parity", f"--onnx-parity-report={report}", "-p", "no:cacheprovider", *flags
        )
        (item,) = json.loads(report.read_text())["items"]
        return result, item

    assert run()[1]["model"]["cache"] == "stored in the persistent cache"
    result, item = run("--onnx-parity-cache=verify")
    result.assert_outcomes(passed=1)  # nothing reused, and the cache held the truth
    assert item["model"]["cache"].startswith("verified: the cached export is the fresh one (graph ")
    assert "cached" not in item["result"]
    monkeypatch.setenv("ONNXPARITY_TEST_SCALE", "2")
    result, item = run()
    assert item["model"]["cache"] == "reused from the persistent cache"  # stale, as the cache cannot know
    result, item = run("--onnx-parity-cache=verify")
    result.assert_outcomes(failed=1)
    assert item["result"]["status"] == "error"
    first = item["result"]["message"].splitlines()[0]
    assert re.fullmatch(
        r"cache error: the cache held graph [0-9a-f]{32} for this export, a fresh export is graph "
        r"[0-9a-f]{32}: its key \(entry [0-9a-f]{40}\) misses something the export depends on; the entry "
        r"was replaced",
        first,
    ), first
    assert "the fresh verdict, passed" in item["result"]["message"]
    assert run()[1]["model"]["cache"] == "reused from the persistent cache"  # the replaced entry
    monkeypatch.setenv("ONNXPARITY_TEST_BAKE", "1")  # the batch baked: only the verdict differs in kind
    assert run()[0].parseoutcomes() == {"passed": 1}  # a stale pass: what verify is for
    result, item = run("--onnx-parity-cache=verify")
    result.assert_outcomes(failed=1)
    message = item["result"]["message"]
    assert "cache error: the cache held graph" in message
    assert "cache error: the cache held a pass for this item (stored " in message
    assert "a fresh run gives failed" in message and "the fresh verdict, failed:" in message
    result, item = run()
    result.assert_outcomes(failed=1)  # the wrong entries went: the next run is fresh


def _entries(root, kind):
    return sorted((root / ".onnxparity" / "cache" / kind).glob("*/*/manifest.json"))


def _edit(manifest, change):
    data = json.loads(manifest.read_text())
    change(data)
    manifest.write_text(json.dumps(data))


def _rehash(entry, name, data: bytes):
    """Write ``data`` as file ``name`` of ``entry`` with a matching manifest: only a reader
    that parses the file can tell."""
    import hashlib

    (entry / name).write_bytes(data)
    _edit(
        entry / MANIFEST,
        lambda m: m["files"][name].update(size=len(data), blake2b=hashlib.blake2b(data).hexdigest()),
    )


@pytest.mark.parametrize(
    ("kind", "change"),
    [
        ("results", lambda m: m["meta"].update(examples="many")),
        ("results", lambda m: m["meta"]["outputs"][0].pop("name")),
        ("results", lambda m: m["meta"].update(dims_covered=[1, 2])),
        ("results", lambda m: m.update(meta=["a", "list"])),
        ("exports", lambda m: m.update(meta=["a", "list"])),
        ("exports", lambda m: m["meta"].update(file="../../../outside.onnx")),
        ("exports", lambda m: m["meta"].update(output_names="y")),
        ("exports", lambda m: m["meta"].update(default_tolerance={"atol": "loose"})),
    ],
)
def test_malformed_metadata_in_the_cache_is_a_miss_never_an_error(pytester, warm_exporter, kind, change):
    """Metadata a stored entry should not hold once made the item err on every run until the
    cache was deleted; now the entry is a miss, searched (or exported) again and stored anew."""
    pytester.makepyfile(env_model=ENV_MODEL, test_env=ENV_TEST)
    pytester.runpytest_inprocess("--onnx-parity", "-p", "no:cacheprovider").assert_outcomes(passed=1)
    (manifest,) = _entries(pytester.path, kind)
    _edit(manifest, change)
    result = pytester.runpytest_inprocess("--onnx-parity", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
    if kind == "results":  # searched again
        assert not any("passed (cached)" in line for line in result.outlines)
    else:  # exported again and stored anew (the passing result of that export still holds)
        (manifest,) = _entries(pytester.path, kind)
        assert isinstance(json.loads(manifest.read_text())["meta"]["graph"], str)
    assert not (pytester.path.parent / "outside.onnx").exists()
    again = pytester.runpytest_inprocess("--onnx-parity", "-p", "no:cacheprovider")
    again.assert_outcomes(passed=1)  # stored anew, and reused
    again.stdout.fnmatch_lines(["*test_e*ort-cpu*passed (cached)*"])


def test_an_export_that_does_not_parse_is_a_miss(pytester, warm_exporter):
    """A corrupt export of the same size once erred with protobuf's DecodeError; bytes that
    match their digest but are no ONNX file are a miss too."""
    pytester.makepyfile(env_model=ENV_MODEL, test_env=ENV_TEST)
    pytester.runpytest_inprocess("--onnx-parity", "-p", "no:cacheprovider").assert_outcomes(passed=1)
    (manifest,) = _entries(pytester.path, "exports")
    model = manifest.parent / "model.onnx"
    size = model.stat().st_size
    model.write_bytes(b"\xff" * size)  # the same size, other bytes
    result = pytester.runpytest_inprocess("--onnx-parity", "-p", "no:cacheprovider", "--onnx-parity-cache=off")
    result.assert_outcomes(passed=1)
    for attempt in range(2):
        result = pytester.runpytest_inprocess("--onnx-parity", "-p", "no:cacheprovider")
        result.assert_outcomes(passed=1)
        (manifest,) = _entries(pytester.path, "exports")
        if attempt == 0:  # stored anew; now garbage whose manifest says it is right
            for entry in _entries(pytester.path, "results"):
                entry.parent.joinpath(MANIFEST).unlink()
            _rehash(manifest.parent, "model.onnx", b"\x08\x07 not a model" * 10)


def test_a_skip_is_kept_like_a_pass_and_a_gpu_variant_is_searched_again(tmp_path):
    """A variant that cannot run a model (fp16 on ai.onnx.ml ops) is a skip a later run reuses
    without building the variant again; ort-gpu's skip hangs on the machine's CUDA libraries,
    which no key names, so it is never kept (issue 31: a second run does only what changed)."""
    from sklearn.datasets import load_iris
    from sklearn.tree import DecisionTreeClassifier

    import onnxparity as op
    from onnxparity.config import ParityConfig
    from onnxparity.runner import ParitySession

    x, y = load_iris(return_X_y=True)
    model = DecisionTreeClassifier(max_depth=3, random_state=0).fit(x, y)
    variants = ("ort-cpu", "fp16", "ort-gpu")
    spec = op.ParitySpec(inputs=(op.Input("input", ("batch", 4)),), dims={"batch": op.Dim(1, 4)}, variants=variants)

    def run():
        config = ParityConfig(reproducer_dir=str(tmp_path / "r"), cache_dir=str(tmp_path / "cache"))
        with ParitySession(config) as session:
            pair = session.prepare(model, spec)
            results = [session.check_variant(pair, spec, v, name="t", examples=3) for v in variants]
            return [(r.status, "cached" in r.to_dict()) for r in results], session.stats.counts["cached_results"]

    first, _ = run()
    assert [status for status, _ in first] == ["passed", "skipped", "skipped"]
    again, reused = run()
    assert again == [("passed", True), ("skipped", True), ("skipped", False)] and reused == 2
