"""The persistent cache's store trusts nothing it reads back: a manifest's file names stay inside
the entry and the folder files are copied into, its files are verified by size and content as
they are copied, malformed metadata is a miss (never an error), and no file outside the cache or
the caller's folder is read, written or deleted through a symlink or a hostile name."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from onnxparity import persist
from onnxparity.persist import FORMAT, MANIFEST, Store

pytestmark = pytest.mark.skipif(os.name != "posix", reason="symlinks and FIFOs as POSIX has them")

KEY = "ab" * 20


def _stored(tmp_path, files=(("model.onnx", b"graph"),), key=KEY):
    """A store at ``tmp_path/cache`` holding one entry of ``files``, and that entry's folder."""
    source = tmp_path / "source"
    source.mkdir(exist_ok=True)
    for name, content in files:
        (source / name).write_bytes(content)
    store = Store(str(tmp_path / "cache"), 1 << 20)
    assert store.put("exports", key, [str(source / name) for name, _ in files], {"opset": 17})
    return store, tmp_path / "cache" / "exports" / key[:2] / key


def _edit_manifest(entry, edit):
    """Rewrite ``entry``'s manifest as ``edit(manifest)`` returns it (whatever its format)."""
    manifest = json.loads((entry / MANIFEST).read_text())
    (entry / MANIFEST).write_text(json.dumps(edit(manifest)))


def _rename(old, new):
    """An edit that lists the manifest's file ``old`` as ``new`` (its size and digest kept)."""

    def edit(manifest):
        manifest["files"][new] = manifest["files"].pop(old)
        return manifest

    return edit


def _tree(folder, skip=()):
    """Everything under ``folder`` but ``skip`` (paths): symlinks by target, files by content."""
    found = {}
    for here, dirs, names in os.walk(folder):
        dirs[:] = [d for d in dirs if os.path.join(here, d) not in skip]
        for name in dirs + names:
            path = os.path.join(here, name)
            if os.path.islink(path):
                found[path] = ("link", os.readlink(path))
            elif os.path.isfile(path):
                with open(path, "rb") as f:
                    found[path] = ("file", f.read())
            else:
                found[path] = ("folder",)
    return found


def _outside(tmp_path):
    """What lies outside the cache and the folder ``get`` copies into (``out``)."""
    return _tree(str(tmp_path), skip=(str(tmp_path / "cache"), str(tmp_path / "out")))


# -- names in a manifest ---------------------------------------------------------------------------


def test_a_manifest_naming_an_absolute_path_deletes_and_copies_nothing(tmp_path):
    store, entry = _stored(tmp_path)
    victim = tmp_path / "outside" / "victim"
    victim.parent.mkdir()
    victim.write_bytes(b"graph")  # the same size and content: only its name is wrong
    _edit_manifest(entry, _rename("model.onnx", str(victim)))
    before = _outside(tmp_path)
    assert store.get("exports", KEY, str(tmp_path / "out")) is None
    assert _outside(tmp_path) == before and victim.read_bytes() == b"graph"
    assert store.counts["corrupt"] == 1 and store.counts["hits"] == 0


def test_a_manifest_naming_a_parent_path_writes_nothing_outside(tmp_path):
    store, entry = _stored(tmp_path)
    # the name resolves to a planted file from the entry, and outside the cache from ``into``
    planted = tmp_path / "cache" / "outside" / "x"
    planted.parent.mkdir()
    planted.write_bytes(b"graph")
    (tmp_path / "outside").mkdir()
    _edit_manifest(entry, _rename("model.onnx", "../../../outside/x"))
    into = tmp_path / "out" / "a" / "b"
    assert store.get("exports", KEY, str(into)) is None
    assert list((tmp_path / "outside").iterdir()) == []
    assert store.counts["corrupt"] == 1


@pytest.mark.parametrize(
    "name", ["", ".", "..", "a/b", "a\\b", "nul\x00", MANIFEST, "/", "sub", "\ud800", "x" * 300]
)
def test_a_name_that_is_not_a_plain_file_of_the_entry_is_a_miss(tmp_path, name):
    store, entry = _stored(tmp_path)
    (entry / "sub").mkdir()
    _edit_manifest(entry, _rename("model.onnx", name))
    before = _outside(tmp_path)
    assert store.get("exports", KEY, str(tmp_path / "out")) is None
    assert _outside(tmp_path) == before
    assert store.counts["corrupt"] == 1 and not entry.exists()  # a real entry folder: removed
    assert not (tmp_path / "out").exists() or os.listdir(tmp_path / "out") == []


@pytest.mark.parametrize("planted", ["symlink", "folder", "fifo"])
def test_an_entry_file_that_is_not_a_regular_file_is_a_miss(tmp_path, planted):
    store, entry = _stored(tmp_path)
    secret = tmp_path / "outside" / "secret"
    secret.parent.mkdir()
    secret.write_bytes(b"graph")  # what the entry lists, so following the link would be a hit
    (entry / "model.onnx").unlink()
    if planted == "symlink":
        os.symlink(secret, entry / "model.onnx")
    elif planted == "folder":
        (entry / "model.onnx").mkdir()
    else:
        os.mkfifo(entry / "model.onnx")
    assert store.get("exports", KEY, str(tmp_path / "out")) is None
    assert secret.read_bytes() == b"graph" and not (tmp_path / "out" / "model.onnx").exists()
    assert store.counts["corrupt"] == 1 and not entry.exists()


@pytest.mark.parametrize("planted", ["symlink", "fifo"])
def test_a_manifest_that_is_not_a_regular_file_is_a_miss(tmp_path, planted):
    """A FIFO is never opened for reading (it would block the run); a symlinked manifest is not
    read through, even when it names files that are there."""
    store, entry = _stored(tmp_path)
    elsewhere = tmp_path / "outside" / MANIFEST
    elsewhere.parent.mkdir()
    shutil.copy(entry / MANIFEST, elsewhere)
    (entry / MANIFEST).unlink()
    if planted == "symlink":
        os.symlink(elsewhere, entry / MANIFEST)
    else:
        os.mkfifo(entry / MANIFEST)
    assert store.get("exports", KEY, str(tmp_path / "out")) is None
    assert elsewhere.exists() and store.counts["corrupt"] == 1


def test_a_symlink_where_a_file_is_copied_to_is_replaced_not_written_through(tmp_path):
    store, _ = _stored(tmp_path, (("model.onnx", b"graph"), ("model.onnx.data", b"weights")))
    out, outside = tmp_path / "out", tmp_path / "outside"
    out.mkdir()
    outside.mkdir()
    (outside / "victim").write_bytes(b"old")
    os.symlink(outside / "victim", out / "model.onnx")
    os.symlink(outside / "created", out / "model.onnx.data")  # dangling
    assert store.get("exports", KEY, str(out)) == {"opset": 17}
    assert (outside / "victim").read_bytes() == b"old" and not (outside / "created").exists()
    assert not os.path.islink(out / "model.onnx") and (out / "model.onnx").read_bytes() == b"graph"
    assert (out / "model.onnx.data").read_bytes() == b"weights"
    assert sorted(os.listdir(out)) == ["model.onnx", "model.onnx.data"]  # no temporary left


# -- content ---------------------------------------------------------------------------------------


def test_a_file_changed_to_the_same_size_is_a_miss_and_nothing_is_copied(tmp_path):
    store, entry = _stored(tmp_path, (("model.onnx", b"graph"), ("model.onnx.data", b"weights")))
    (entry / "model.onnx.data").write_bytes(b"WEIGHTS")  # bytes flipped, the size kept
    out = tmp_path / "out"
    assert store.get("exports", KEY, str(out)) is None
    assert store.counts["corrupt"] == 1 and store.counts["hits"] == 0 and not entry.exists()
    assert os.listdir(out) == []  # neither file (nor a temporary) is left in ``into``


def test_the_manifest_holds_each_files_size_and_digest(tmp_path):
    _, entry = _stored(tmp_path)
    manifest = json.loads((entry / MANIFEST).read_text())
    assert manifest["format"] == FORMAT >= 2
    assert manifest["files"] == {"model.onnx": {"size": 5, "blake2b": hashlib.blake2b(b"graph").hexdigest()}}


def test_an_entry_of_the_earlier_format_is_a_miss(tmp_path):
    store, entry = _stored(tmp_path)
    (entry / MANIFEST).write_text(
        json.dumps({"format": 1, "kind": "exports", "key": KEY, "files": {"model.onnx": 5}, "meta": {}})
    )
    assert store.get("exports", KEY, str(tmp_path / "out")) is None
    assert store.counts["corrupt"] == 1


def test_an_entry_under_another_key_is_a_miss(tmp_path):
    """An entry copied to another key's folder does not hold what that key stands for."""
    store, entry = _stored(tmp_path)
    other = "cd" * 20
    (tmp_path / "cache" / "exports" / "cd").mkdir()
    shutil.copytree(entry, tmp_path / "cache" / "exports" / "cd" / other)
    assert store.get("exports", other, str(tmp_path / "out")) is None
    assert store.counts["corrupt"] == 1


def _set(field, value):
    def edit(manifest):
        manifest[field] = value
        return manifest

    return edit


def _set_file(value):
    def edit(manifest):
        manifest["files"]["model.onnx"] = value(manifest["files"]["model.onnx"])
        return manifest

    return edit


MALFORMED = {
    "a list": lambda m: [m],
    "a string": lambda m: "manifest",
    "null": lambda m: None,
    "a number": lambda m: 2,
    "no files": lambda m: {k: v for k, v in m.items() if k != "files"},
    "files a list": _set("files", ["model.onnx"]),
    "files of sizes": _set("files", {"model.onnx": 5}),
    "a size as text": _set_file(lambda f: {**f, "size": "5"}),
    "a size true": _set_file(lambda f: {**f, "size": True}),
    "a size negative": _set_file(lambda f: {**f, "size": -1}),
    "a size float": _set_file(lambda f: {**f, "size": 5.0}),
    "no digest": _set_file(lambda f: {"size": f["size"]}),
    "a digest number": _set_file(lambda f: {**f, "blake2b": 5}),
    "a digest short": _set_file(lambda f: {**f, "blake2b": f["blake2b"][:10]}),
    "meta a list": _set("meta", ["opset", 17]),
    "meta empty list": _set("meta", []),
    "meta a string": _set("meta", "opset"),
    "meta null": _set("meta", None),
    "format as text": _set("format", str(FORMAT)),
    "format true": _set("format", True),
    "format float": _set("format", float(FORMAT)),
    "format missing": lambda m: {k: v for k, v in m.items() if k != "format"},
}


@pytest.mark.parametrize("edit", list(MALFORMED.values()), ids=list(MALFORMED))
def test_malformed_metadata_is_a_miss_never_an_error(tmp_path, edit):
    store, entry = _stored(tmp_path)
    _edit_manifest(entry, edit)
    assert store.get("exports", KEY, str(tmp_path / "out")) is None
    assert store.counts["corrupt"] == 1 and store.counts["misses"] == 1 and not entry.exists()
    assert not (tmp_path / "out" / "model.onnx").exists()


@pytest.mark.parametrize(
    "raw", [b"", b"{not json", b"\xff\xfe\x00", b"[" * 100_000, b'{"format": ' + b"9" * 5000 + b"}"]
)
def test_a_manifest_that_is_not_json_is_a_miss_never_an_error(tmp_path, raw):
    store, entry = _stored(tmp_path)
    (entry / MANIFEST).write_bytes(raw)
    assert store.get("exports", KEY, str(tmp_path / "out")) is None
    assert store.counts["corrupt"] == 1 and not entry.exists()


# -- any manifest at all (a property) --------------------------------------------------------------

VICTIM = b"graph"
GOOD = {"size": len(VICTIM), "blake2b": hashlib.blake2b(VICTIM).hexdigest()}
JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=6),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=8,
)
HOSTILE = [
    "model.onnx",
    "link",
    "sub",
    "fifo",
    "",
    ".",
    "..",
    "/",
    "a/b",
    "a\\b",
    "nul\x00",
    "\ud800",
    MANIFEST,
    "../outside/victim",
    "../../../../outside/victim",
    "{outside}/victim",
    "{outside}",
    "{outside}/new",
]
NAMES = st.sampled_from(HOSTILE) | st.text(max_size=10)
FILE = st.just(GOOD) | st.just(len(VICTIM)) | JSON | st.fixed_dictionaries({"size": JSON, "blake2b": JSON})
MANIFESTS = JSON | st.fixed_dictionaries(
    {
        "format": st.just(FORMAT) | JSON,
        "kind": st.just("exports") | JSON,
        "key": st.just(KEY) | JSON,
        "files": st.dictionaries(NAMES, FILE, max_size=4) | JSON,
        "meta": st.dictionaries(st.text(max_size=5), JSON, max_size=3) | JSON,
    }
)


@settings(max_examples=50, deadline=None, database=None, suppress_health_check=list(HealthCheck))
@given(manifest=MANIFESTS)
def test_any_manifest_is_a_hit_or_a_miss_and_touches_nothing_outside(manifest):
    """Whatever a manifest holds, ``get`` returns a dict or None, never raises, and changes nothing
    outside the cache and the folder it copies into."""
    with tempfile.TemporaryDirectory() as folder:
        outside = os.path.join(folder, "outside")
        os.makedirs(outside)
        with open(os.path.join(outside, "victim"), "wb") as f:
            f.write(VICTIM)
        entry = os.path.join(folder, "cache", "exports", KEY[:2], KEY)
        os.makedirs(os.path.join(entry, "sub"))
        with open(os.path.join(entry, "model.onnx"), "wb") as f:
            f.write(VICTIM)
        os.symlink(os.path.join(outside, "victim"), os.path.join(entry, "link"))
        os.mkfifo(os.path.join(entry, "fifo"))
        if isinstance(manifest, dict) and isinstance(manifest.get("files"), dict):
            manifest["files"] = {n.replace("{outside}", outside): v for n, v in manifest["files"].items()}
        with open(os.path.join(entry, MANIFEST), "w") as f:
            json.dump(manifest, f)
        into = os.path.join(folder, "out")
        before = _tree(folder, skip=(os.path.join(folder, "cache"), into))
        store = Store(os.path.join(folder, "cache"), 1 << 20)
        got = store.get("exports", KEY, into)
        assert got is None or isinstance(got, dict)
        assert _tree(folder, skip=(os.path.join(folder, "cache"), into)) == before
        copied = _tree(into) if os.path.isdir(into) else {}
        assert all(kind == ("file", VICTIM) for kind in copied.values())
        assert got is None or set(map(os.path.basename, copied)) == set(manifest["files"])


# -- folders that are not what the store made -----------------------------------------------------


@pytest.mark.parametrize("level", ["kind", "shard", "entry"])
def test_a_symlinked_folder_in_the_cache_is_never_read_written_or_deleted_through(tmp_path, level):
    """A kind, shard or entry folder that is a symlink to a folder elsewhere (holding a whole,
    valid entry) is a miss, cannot be written, and is neither removed as corrupt nor evicted."""
    store, entry = _stored(tmp_path)
    folder = {"kind": entry.parent.parent, "shard": entry.parent, "entry": entry}[level]
    elsewhere = tmp_path / "elsewhere"
    shutil.move(folder, elsewhere)
    os.symlink(elsewhere, folder)
    before = _outside(tmp_path)
    assert store.get("exports", KEY, str(tmp_path / "out")) is None
    assert store.counts["hits"] == 0 and _outside(tmp_path) == before
    manifest = next(elsewhere.rglob(MANIFEST))
    manifest.write_text("{not json")  # corrupt elsewhere: still nothing removed there
    before = _outside(tmp_path)
    assert store.get("exports", KEY, str(tmp_path / "out")) is None
    assert _outside(tmp_path) == before and manifest.exists()
    Store(str(tmp_path / "cache"), 0).evict()
    assert _outside(tmp_path) == before
    source = tmp_path / "source" / "model.onnx"
    assert store.put("exports", KEY, [str(source)], {}) is False
    assert store.put("exports", "ab" + "ef" * 19, [str(source)], {}) is (level == "entry")
    assert _outside(tmp_path) == before


def test_a_symlinked_tmp_folder_is_neither_written_nor_swept(tmp_path):
    store, _ = _stored(tmp_path)
    elsewhere = tmp_path / "elsewhere"
    (elsewhere / "old").mkdir(parents=True)
    (elsewhere / "old" / "keep").write_text("mine")
    os.utime(elsewhere / "old", (0, 0))  # older than an hour, as an interrupted write's folder
    shutil.rmtree(tmp_path / "cache" / "tmp")
    os.symlink(elsewhere, tmp_path / "cache" / "tmp")
    before = _outside(tmp_path)
    assert store.put("exports", "cd" * 20, [str(tmp_path / "source" / "model.onnx")], {}) is False
    store.evict()
    assert _outside(tmp_path) == before


def test_the_temporary_folder_sweep_removes_links_not_what_they_point_to(tmp_path):
    store, _ = _stored(tmp_path)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "keep").write_text("mine")
    link = tmp_path / "cache" / "tmp" / "gone-1"
    os.symlink(elsewhere, link)
    os.utime(link, (0, 0), follow_symlinks=False)
    os.utime(elsewhere, (0, 0))
    store.evict()
    assert not os.path.lexists(link) and (elsewhere / "keep").read_text() == "mine"


def test_a_file_named_like_the_manifest_is_not_stored(tmp_path):
    (tmp_path / MANIFEST).write_text("{}")
    store = Store(str(tmp_path / "cache"), 1 << 20)
    assert store.put("exports", KEY, [str(tmp_path / MANIFEST)], {}) is False
    assert store.get("exports", KEY, str(tmp_path / "out")) is None


# -- files onnxparity creates ----------------------------------------------------------------------


def test_the_gitignore_is_not_written_through_a_symlink(tmp_path):
    (tmp_path / "cache").mkdir()
    (tmp_path / "outside").mkdir()
    os.symlink(tmp_path / "outside" / "created", tmp_path / "cache" / ".gitignore")  # dangling
    _stored(tmp_path)
    assert list((tmp_path / "outside").iterdir()) == []
    marker = tmp_path / "cache" / ".gitignore"
    assert not marker.is_symlink() and marker.read_text() == "# created by onnxparity\n*\n"


def test_write_new_creates_a_file_never_through_a_symlink_and_keeps_one_there(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "victim").write_text("old")
    os.symlink(outside / "victim", tmp_path / "to_victim")
    os.symlink(outside / "created", tmp_path / "dangling")
    os.symlink(outside, tmp_path / "to_folder")
    for name in ("new", "to_victim", "dangling", "to_folder"):
        assert persist.write_new(str(tmp_path / name), "text\n") is True
        assert not (tmp_path / name).is_symlink() and (tmp_path / name).read_text() == "text\n"
    assert persist.write_new(str(tmp_path / "new"), "other\n") is False  # a file there is kept
    assert (tmp_path / "new").read_text() == "text\n"
    assert sorted(os.listdir(outside)) == ["victim"] and (outside / "victim").read_text() == "old"
    assert sorted(os.listdir(tmp_path)) == ["dangling", "new", "outside", "to_folder", "to_victim"]
    (tmp_path / "folder").mkdir()
    with pytest.raises(OSError):
        persist.write_new(str(tmp_path / "folder"), "text\n")
    assert sorted(os.listdir(tmp_path / "folder")) == [] and "folder" in os.listdir(tmp_path)
    persist.ignore_in_git(str(tmp_path / "folder"))
    assert (tmp_path / "folder" / ".gitignore").read_text() == "# created by onnxparity\n*\n"
