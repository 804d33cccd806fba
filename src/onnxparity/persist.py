"""The persistent cache: what one run computed that the next can reuse (``.onnxparity/cache/``).

An entry is a folder of files plus a ``manifest.json`` (its files, their sizes, and what the
caller stored beside them), found by a key the caller derives from everything the content
depends on. Writes are atomic and safe against concurrent xdist workers and interrupted runs:
an entry is assembled in a private temporary folder and renamed into place in one step, so a
reader sees a whole entry or none; two writers of one key both succeed (the second finds it
there and drops its copy). A reader copies the files out, so an entry evicted a moment later
does not take them away (not hard links: onnx refuses external data files with several links). A manifest that does not match its files (a disk that
filled up, a file edited by hand) is a miss, and the entry is removed. The cache is bounded
(``max_bytes``): the least recently used entries go first. Deleting the folder is always safe.
Knows nothing of frameworks or pytest.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import time
import uuid
from collections.abc import Iterable, Mapping
from typing import Any

MANIFEST = "manifest.json"
#: the manifest's format; an entry of another format is a miss
FORMAT = 1


def digest(parts: Any) -> str:
    """A key from JSON-able ``parts`` (order of mapping keys does not matter)."""
    text = json.dumps(parts, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.blake2b(text.encode(), digest_size=20).hexdigest()


class Store:
    """A folder of cache entries by kind and key, at most ``max_bytes`` in all."""

    def __init__(self, root: str, max_bytes: int) -> None:
        self.root = root
        self.max_bytes = max_bytes
        #: hits, misses, writes and evictions in this process (tests and benchmarks read them)
        self.counts: dict[str, int] = {"hits": 0, "misses": 0, "writes": 0, "evictions": 0, "corrupt": 0}

    def _entry(self, kind: str, key: str) -> str:
        return os.path.join(self.root, kind, key[:2], key)

    def get(self, kind: str, key: str, into: str) -> dict | None:
        """The entry's stored metadata, with its files linked into folder ``into``; None on a
        miss (nothing there, or an entry whose files do not match its manifest)."""
        entry = self._entry(kind, key)
        try:
            with open(os.path.join(entry, MANIFEST), encoding="utf-8") as f:
                manifest = json.load(f)
        except FileNotFoundError:
            self.counts["misses"] += 1
            return None
        except (OSError, ValueError):
            return self._corrupt(entry)
        files = manifest.get("files") if isinstance(manifest, dict) else None
        if manifest.get("format") != FORMAT or not isinstance(files, dict):
            return self._corrupt(entry)
        try:
            os.makedirs(into, exist_ok=True)
            for name, size in files.items():
                source = os.path.join(entry, name)
                if os.path.getsize(source) != size:
                    return self._corrupt(entry)
                target = os.path.join(into, name)
                if os.path.lexists(target):
                    os.remove(target)
                # a copy, not a hard link: onnx refuses external data with several links
                # ("a potential hardlink attack", measured with onnx 1.23)
                shutil.copyfile(source, target)
            os.utime(os.path.join(entry, MANIFEST))  # recently used: evicted last
        except OSError:  # evicted while we read it, or unreadable here: a miss, never a failure
            self.counts["misses"] += 1
            return None
        self.counts["hits"] += 1
        return manifest.get("meta") or {}

    def _corrupt(self, entry: str) -> None:
        self.counts["corrupt"] += 1
        self.counts["misses"] += 1
        self._remove(entry)
        return None

    def put(self, kind: str, key: str, files: Iterable[str], meta: Mapping[str, Any]) -> bool:
        """Store ``files`` (paths; kept by their base names) with ``meta``; False when the
        cache cannot be written (full disk, read-only): a cache never fails a run."""
        entry = self._entry(kind, key)
        if os.path.exists(os.path.join(entry, MANIFEST)):
            return True
        staging = os.path.join(self.root, "tmp", f"{os.getpid()}-{uuid.uuid4().hex}")
        try:
            os.makedirs(staging)
            _ignore_in_git(self.root)
            sizes = {}
            for path in files:
                name = os.path.basename(path)
                shutil.copyfile(path, os.path.join(staging, name))
                sizes[name] = os.path.getsize(os.path.join(staging, name))
            with open(os.path.join(staging, MANIFEST), "w", encoding="utf-8") as f:
                json.dump({"format": FORMAT, "kind": kind, "key": key, "files": sizes, "meta": meta}, f)
            os.makedirs(os.path.dirname(entry), exist_ok=True)
            try:
                os.rename(staging, entry)  # atomic: the whole entry appears at once
            except OSError:  # another writer was first (the entry exists now)
                shutil.rmtree(staging, ignore_errors=True)
                return os.path.exists(os.path.join(entry, MANIFEST))
        except OSError:
            shutil.rmtree(staging, ignore_errors=True)
            return False
        self.counts["writes"] += 1
        self.evict()
        return True

    def _remove(self, entry: str) -> None:
        """Take ``entry`` out of sight in one rename, then delete it."""
        grave = os.path.join(self.root, "tmp", f"gone-{uuid.uuid4().hex}")
        with contextlib.suppress(OSError):
            os.makedirs(os.path.dirname(grave), exist_ok=True)
            os.rename(entry, grave)
            shutil.rmtree(grave, ignore_errors=True)

    def entries(self) -> list[tuple[float, int, str]]:
        """(last used, bytes, folder) of every entry."""
        found = []
        for kind in _listdir(self.root):
            if kind == "tmp" or not os.path.isdir(os.path.join(self.root, kind)):
                continue
            for shard in _listdir(os.path.join(self.root, kind)):
                for key in _listdir(os.path.join(self.root, kind, shard)):
                    entry = os.path.join(self.root, kind, shard, key)
                    try:
                        used = os.path.getmtime(os.path.join(entry, MANIFEST))
                        size = sum(os.path.getsize(os.path.join(entry, n)) for n in _listdir(entry))
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
            self._remove(entry)
            self.counts["evictions"] += 1
            total -= size
        tmp = os.path.join(self.root, "tmp")
        for name in _listdir(tmp):
            path = os.path.join(tmp, name)
            with contextlib.suppress(OSError):
                if time.time() - os.path.getmtime(path) > 3600:
                    shutil.rmtree(path, ignore_errors=True)


def _ignore_in_git(root: str) -> None:
    """Keep the cache out of version control, as pytest does for its own."""
    marker = os.path.join(root, ".gitignore")
    if not os.path.exists(marker):
        with open(marker, "w") as f:
            f.write("# created by onnxparity\n*\n")


def _listdir(path: str) -> list[str]:
    try:
        return sorted(os.listdir(path))
    except OSError:
        return []
