"""The persistent cache: what one run computed that the next can reuse (``.onnxparity/cache/``).

An entry is a folder of files plus a ``manifest.json`` (its files with their sizes and digests,
and what the caller stored beside them), found by a key the caller derives from everything the
content depends on. Writes are atomic and safe against concurrent xdist workers and interrupted
runs: an entry is assembled in a private temporary folder and renamed into place in one step, so
a reader sees a whole entry or none; two writers of one key both succeed (the second finds it
there and drops its copy). A reader copies the files out, so an entry evicted a moment later
does not take them away (not hard links: onnx refuses external data files with several links).
The cache is bounded (``max_bytes``): the least recently used entries go first. Deleting the
folder is always safe. Knows nothing of frameworks or pytest.

Nothing read back from the cache folder is trusted (a disk fills up, a file is edited by hand, a
cloned repository ships a planted cache):

- a manifest names its files by plain names: one path component, never empty, ``.``, ``..``,
  ``manifest.json``, or holding ``/``, ``\\`` or NUL; each with its size and blake2b digest,
  checked on the bytes as they are copied out (a file changed to the same size is a miss);
- a file is read only when it is a regular file in the entry itself (never through a symlink,
  never a FIFO or a folder) and copied to a temporary name in the caller's folder, then renamed
  over its name there: a symlink there is replaced, never written through;
- the folders under the root (a kind, a shard, an entry, ``tmp/``) are used only when they are
  real folders: a symlink among them is a miss and a cache that cannot be written, never a read,
  write or deletion elsewhere; only a real entry folder under the root is ever removed;
- anything else (not JSON, another format, a manifest of the wrong shape, metadata that is not
  a mapping, an entry under another key) is a miss counted as ``corrupt`` and the entry is
  removed: ``get`` never raises on what the folder holds.

Files onnxparity writes beside its outputs (``.gitignore``) go through :func:`write_new`, which
never follows a symlink either.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import hmac
import json
import os
import re
import shutil
import stat
import time
import uuid
from collections.abc import Iterable, Mapping
from typing import Any

MANIFEST = "manifest.json"
#: the manifest's format; an entry of another format is a miss
FORMAT = 2
#: a manifest larger than this is neither read nor written (its metadata is a few kilobytes)
MAX_MANIFEST = 16 << 20
#: the longest file name most file systems take, in bytes
MAX_NAME = 255
_CHUNK = 1 << 20
_HEX = re.compile(r"[0-9a-f]{128}")  # a blake2b digest (64 bytes)
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_NONBLOCK = getattr(os, "O_NONBLOCK", 0)  # a FIFO opens without waiting for a writer
_BINARY = getattr(os, "O_BINARY", 0)


def digest(parts: Any) -> str:
    """A key from JSON-able ``parts`` (order of mapping keys does not matter)."""
    text = json.dumps(parts, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.blake2b(text.encode(), digest_size=20).hexdigest()


class _Corrupt(Exception):
    """An entry that is not as :meth:`Store.put` writes one: a miss, and the entry goes."""


class Store:
    """A folder of cache entries by kind and key, at most ``max_bytes`` in all."""

    def __init__(self, root: str, max_bytes: int) -> None:
        self.root = root
        self.max_bytes = max_bytes
        #: hits, misses, writes and evictions in this process (tests and benchmarks read them)
        self.counts: dict[str, int] = {"hits": 0, "misses": 0, "writes": 0, "evictions": 0, "corrupt": 0}

    def _entry(self, kind: str, key: str) -> str:
        """The folder of ``key``'s entry; ValueError for a kind or key that is not a plain name."""
        if kind == "tmp" or not all(_plain(n) for n in (kind, key, key[:2])):
            raise ValueError(f"not a cache kind and key: {kind!r}, {key!r}")
        return os.path.join(self.root, kind, key[:2], key)

    def _folders(self, entry: str) -> str:
        """'real' when the kind, shard and entry folders of ``entry`` are real folders under the
        root, 'missing' when one is not there, 'foreign' when one is anything else (a symlink)."""
        try:
            parts = os.path.relpath(entry, self.root).split(os.sep)
            if not _under(self.root, entry) or len(parts) != 3:
                return "foreign"
        except ValueError:  # another drive
            return "foreign"
        path = self.root
        for part in parts:
            path = os.path.join(path, part)
            try:
                if not stat.S_ISDIR(os.lstat(path).st_mode):
                    return "foreign"
            except OSError:
                return "missing"
        return "real"

    def get(self, kind: str, key: str, into: str) -> dict[str, Any] | None:
        """The entry's stored metadata, with its files copied into folder ``into``, each checked
        against its size and digest; None on a miss (nothing there, or anything not as
        :meth:`put` writes it), never an exception."""
        try:
            entry = self._entry(kind, key)
        except ValueError:
            self.counts["misses"] += 1
            return None
        folders = self._folders(entry)
        if folders != "real":
            return self._corrupt(entry) if folders == "foreign" else self._miss()
        manifest = os.path.join(entry, MANIFEST)
        try:
            files, meta = _parse(_read(manifest, MAX_MANIFEST), kind, key)
            _copy_out(entry, files, into)
            with contextlib.suppress(OSError):
                os.utime(manifest)  # recently used: evicted last
        except _Corrupt:
            return self._corrupt(entry)
        except OSError:  # evicted while we read it, or unreadable here: a miss, never a failure
            return self._miss()
        self.counts["hits"] += 1
        return meta

    def discard(self, kind: str, key: str) -> bool:
        """Remove ``key``'s entry (its content was found wrong by the caller); False when there
        was none to remove."""
        try:
            return self._remove(self._entry(kind, key))
        except ValueError:
            return False

    def _miss(self) -> dict[str, Any] | None:  # what get() returns on a miss: always None
        """Count a miss: nothing there, or not readable here (the entry is kept)."""
        self.counts["misses"] += 1
        return None

    def _corrupt(self, entry: str) -> dict[str, Any] | None:  # likewise always None
        """Count a miss on an entry not as :meth:`put` writes one, and remove it when it is ours."""
        self.counts["corrupt"] += 1
        self.counts["misses"] += 1
        self._remove(entry)
        return None

    def put(self, kind: str, key: str, files: Iterable[str], meta: Mapping[str, Any]) -> bool:
        """Store ``files`` (paths; kept by their base names) with ``meta``; False when the
        cache cannot be written (full disk, read-only, a folder that is a symlink) or a file's
        name cannot be kept (``manifest.json``, twice the same): a cache never fails a run."""
        paths = list(files)
        names = [os.path.basename(p) for p in paths]
        try:
            entry = self._entry(kind, key)
        except ValueError:
            return False
        if len(set(names)) != len(names) or not all(_plain(n) and n != MANIFEST for n in names):
            return False
        folders = self._folders(entry)
        if folders == "foreign":
            return False
        if folders == "real" and _is_regular(os.path.join(entry, MANIFEST)):
            return True
        staging = None
        try:
            os.makedirs(self.root, exist_ok=True)
            tmp = _real_folder(os.path.join(self.root, "tmp"))
            with contextlib.suppress(OSError):  # a courtesy: a cache it cannot mark still works
                ignore_in_git(self.root)
            staging = os.path.join(tmp, f"{os.getpid()}-{uuid.uuid4().hex}")
            os.mkdir(staging)
            listed = {}
            for path, name in zip(paths, names):
                with open(path, "rb") as source:
                    size, hexdigest = _copy(source, os.path.join(staging, name))
                listed[name] = {"size": size, "blake2b": hexdigest}
            manifest = {"format": FORMAT, "kind": kind, "key": key, "files": listed, "meta": dict(meta)}
            text = json.dumps(manifest).encode("utf-8")
            if len(text) > MAX_MANIFEST:
                return False
            _write_exclusive(os.path.join(staging, MANIFEST), text)
            _real_folder(os.path.dirname(os.path.dirname(entry)))
            _real_folder(os.path.dirname(entry))
            try:
                os.rename(staging, entry)  # atomic: the whole entry appears at once
            except OSError:  # another writer was first (the entry exists now)
                return self._folders(entry) == "real" and _is_regular(os.path.join(entry, MANIFEST))
            staging = None
        except OSError:
            return False
        finally:
            if staging is not None:
                shutil.rmtree(staging, ignore_errors=True)
        self.counts["writes"] += 1
        self.evict()
        return True

    def _remove(self, entry: str) -> bool:
        """Take ``entry`` out of sight in one rename, then delete it: only a real entry folder
        under the root, through real folders, so nothing elsewhere is ever deleted."""
        if self._folders(entry) != "real":
            return False
        try:
            grave = os.path.join(_real_folder(os.path.join(self.root, "tmp")), f"gone-{uuid.uuid4().hex}")
            os.rename(entry, grave)
        except OSError:
            return False
        shutil.rmtree(grave, ignore_errors=True)
        return True

    def entries(self) -> list[tuple[float, int, str]]:
        """(last used, bytes, folder) of every entry (only real folders: symlinks are not followed)."""
        found = []
        for kind in _listdir(self.root):
            if kind == "tmp" or not _is_folder(os.path.join(self.root, kind)):
                continue
            for shard in _listdir(os.path.join(self.root, kind)):
                if not _is_folder(os.path.join(self.root, kind, shard)):
                    continue
                for key in _listdir(os.path.join(self.root, kind, shard)):
                    entry = os.path.join(self.root, kind, shard, key)
                    if not _is_folder(entry):
                        continue
                    try:
                        used = os.lstat(os.path.join(entry, MANIFEST)).st_mtime
                        size = sum(os.lstat(os.path.join(entry, n)).st_size for n in _listdir(entry))
                    except OSError:
                        continue
                    found.append((used, size, entry))
        return found

    def evict(self) -> None:
        """Remove the least recently used entries until the cache fits ``max_bytes``; clear
        temporary folders an interrupted run left behind (older than an hour)."""
        entries = sorted(self.entries())
        total = sum(size for _, size, _ in entries)
        for _, size, entry in entries:
            if total <= self.max_bytes:
                break
            if self._remove(entry):
                self.counts["evictions"] += 1
            total -= size
        tmp = os.path.join(self.root, "tmp")
        if not _is_folder(tmp):
            return
        for name in _listdir(tmp):
            path = os.path.join(tmp, name)
            with contextlib.suppress(OSError):
                found = os.lstat(path)
                if time.time() - found.st_mtime <= 3600:
                    continue
                if stat.S_ISDIR(found.st_mode):
                    shutil.rmtree(path, ignore_errors=True)
                else:  # a file or a symlink: the link goes, never what it points to
                    os.unlink(path)


def write_new(path: str, text: str) -> bool:
    """Create file ``path`` holding ``text`` unless a regular file is there already (False then),
    atomically and never through a symlink: written to a new temporary file beside it and renamed
    over it, so a symlink at ``path`` (dangling or not) is replaced, not followed; OSError when it
    cannot be written (a folder there)."""
    with contextlib.suppress(FileNotFoundError):
        if stat.S_ISREG(os.lstat(path).st_mode):
            return False
    temp = os.path.join(os.path.dirname(path), f".onnxparity-{uuid.uuid4().hex}.tmp")
    try:
        _write_exclusive(temp, text.encode("utf-8"))
        os.replace(temp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp)
        raise
    return True


def ignore_in_git(folder: str) -> None:
    """Keep ``folder`` out of version control, as pytest does for its own cache (a ``.gitignore``
    already there is kept; one is never written through a symlink)."""
    write_new(os.path.join(folder, ".gitignore"), "# created by onnxparity\n*\n")


def _plain(name: object) -> bool:
    """Whether ``name`` is one path component that stays in the folder it is joined to."""
    if not isinstance(name, str) or name in ("", ".", ".."):
        return False
    if any(c in name for c in "/\\\0") or os.path.isabs(name) or os.path.splitdrive(name)[0]:
        return False
    try:
        return len(os.fsencode(name)) <= MAX_NAME
    except UnicodeError:  # a lone surrogate: no file name at all
        return False


def _under(root: str, path: str) -> bool:
    """Whether ``path`` lies under folder ``root`` (by name: symlinks are checked apart)."""
    root = os.path.abspath(root)
    return os.path.commonpath([root, os.path.abspath(path)]) == root


def _is_folder(path: str) -> bool:
    """Whether ``path`` is a real folder (not a symlink to one)."""
    try:
        return stat.S_ISDIR(os.lstat(path).st_mode)
    except OSError:
        return False


def _is_regular(path: str) -> bool:
    """Whether ``path`` is a regular file (not a symlink to one)."""
    try:
        return stat.S_ISREG(os.lstat(path).st_mode)
    except OSError:
        return False


def _real_folder(path: str) -> str:
    """``path``, made a folder unless it is one; OSError when it is anything else (a symlink)."""
    try:
        os.mkdir(path)
    except FileExistsError:
        if not _is_folder(path):
            raise OSError(errno.ENOTDIR, "not a real folder", path) from None
    return path


def _open_regular(path: str) -> int:
    """A read descriptor of ``path``; _Corrupt unless it is a regular file itself (a symlink is
    not followed, a FIFO not waited on); OSError when it cannot be read (FileNotFoundError)."""
    if not _is_regular(path) and os.path.lexists(path):  # where O_NOFOLLOW is missing too
        raise _Corrupt(path)
    try:
        fd = os.open(path, os.O_RDONLY | _NOFOLLOW | _NONBLOCK | _BINARY)
    except FileNotFoundError:
        raise
    except OSError as exc:  # swapped for a symlink (ELOOP) or a folder (EISDIR) since
        if _is_regular(path):
            raise
        raise _Corrupt(path) from exc
    if not stat.S_ISREG(os.fstat(fd).st_mode):  # a FIFO or a device: opened, never read
        os.close(fd)
        raise _Corrupt(path)
    return fd


def _read(path: str, limit: int) -> bytes:
    """The bytes of regular file ``path``; _Corrupt past ``limit`` bytes or when not a file."""
    with open(_open_regular(path), "rb") as f:
        data = f.read(limit + 1)
    if len(data) > limit:
        raise _Corrupt(path)
    return data


def _parse(data: bytes, kind: str, key: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """(files by name with their size and digest, metadata) of a manifest; _Corrupt unless it is
    one :meth:`Store.put` writes for this kind and key."""
    try:
        manifest = json.loads(data.decode("utf-8"))
    except (ValueError, RecursionError) as exc:  # not UTF-8, not JSON, nested past the stack
        raise _Corrupt("not JSON") from exc
    if (
        not isinstance(manifest, dict)
        or type(manifest.get("format")) is not int
        or manifest["format"] != FORMAT
    ):
        raise _Corrupt("another format")
    files, meta = manifest.get("files"), manifest.get("meta")
    if manifest.get("kind") != kind or manifest.get("key") != key:
        raise _Corrupt("another key")
    if not isinstance(files, dict) or not isinstance(meta, dict):
        raise _Corrupt("files or metadata")
    for name, listed in files.items():
        if not (_plain(name) and name != MANIFEST and isinstance(listed, dict)):
            raise _Corrupt(f"file name {name!r}")
        size, hexdigest = listed.get("size"), listed.get("blake2b")
        if (
            type(size) is not int
            or size < 0
            or not isinstance(hexdigest, str)
            or not _HEX.fullmatch(hexdigest)
        ):
            raise _Corrupt(f"size or digest of {name!r}")
    return files, meta


def _copy_out(entry: str, files: dict[str, Any], into: str) -> None:
    """Copy each of ``files`` from ``entry`` into folder ``into``, each checked against its size
    and digest before any takes its name there; _Corrupt on a mismatch, and nothing is left."""
    os.makedirs(into, exist_ok=True)
    temps: dict[str, str] = {}
    placed: list[str] = []
    try:
        for name, listed in files.items():
            temps[name] = os.path.join(into, f".onnxparity-{uuid.uuid4().hex}.part")
            with open(_open_regular(os.path.join(entry, name)), "rb") as source:
                if os.fstat(source.fileno()).st_size != listed["size"]:
                    raise _Corrupt(name)
                size, hexdigest = _copy(source, temps[name], limit=listed["size"])
            if size != listed["size"] or not hmac.compare_digest(hexdigest, listed["blake2b"]):
                raise _Corrupt(name)
        for name, temp in temps.items():
            os.replace(temp, os.path.join(into, name))  # a symlink there is replaced, not followed
            placed.append(name)
    except BaseException:
        for path in [*temps.values(), *(os.path.join(into, n) for n in placed)]:
            with contextlib.suppress(OSError):
                os.unlink(path)
        raise


def _copy(source: Any, target: str, limit: int | None = None) -> tuple[int, str]:
    """(bytes, blake2b hex digest) of what was copied from open file ``source`` to new file
    ``target``; _Corrupt when more than ``limit`` bytes come."""
    hasher, size = hashlib.blake2b(), 0
    with open(_create(target), "wb") as out:
        while chunk := source.read(_CHUNK):
            size += len(chunk)
            if limit is not None and size > limit:
                raise _Corrupt(target)
            hasher.update(chunk)
            out.write(chunk)
    return size, hasher.hexdigest()


def _create(path: str) -> int:
    """A write descriptor of a new file ``path``: never an existing file, never through a symlink."""
    return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW | _BINARY, 0o666)


def _write_exclusive(path: str, data: bytes) -> None:
    """Write ``data`` to new file ``path`` (see :func:`_create`)."""
    with open(_create(path), "wb") as f:
        f.write(data)


def _listdir(path: str) -> list[str]:
    try:
        return sorted(os.listdir(path))
    except OSError:
        return []


def options_digest(options: Mapping[str, Any]) -> str:
    """A digest of a variant's options (arrays by content), keying its build."""
    import numpy as np

    def text(value: Any) -> str:
        if isinstance(value, np.ndarray) and value.dtype != object:
            return f"array{value.dtype}{value.shape}{hashlib.blake2b(np.ascontiguousarray(value).tobytes()).hexdigest()}"
        if isinstance(value, Mapping):
            return "".join(repr(k) + text(value[k]) for k in sorted(value, key=str))
        if isinstance(value, (list, tuple)):
            return "[" + "".join(text(v) for v in value) + "]"
        return f"array{value.dtype}{value.shape}{value!r}" if isinstance(value, np.ndarray) else repr(value)

    return "-" + hashlib.blake2b(text(dict(options)).encode(), digest_size=8).hexdigest() if options else ""
