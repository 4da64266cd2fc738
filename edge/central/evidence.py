"""Central's evidence store: fetched clips kept by content (sha256), never overwritten, meta beside them.

Layout under ``[evidence] path`` (every file written once, read-only after, by atomic link)::

    sha256/ab/<hex>.mp4          the clip exactly as the node signed it
    sha256/ab/<hex>.meta.json    its META.json (record, signature, previous record, pubkey, best shots) as fetched
    sha256/ab/<hex>.jpg          a best shot of one of its objects, checked against its signed record(s)
    clips/<node>/<clip>.json     the index: {"node", "clip", "sha256", "stored_ts", "pubkey"}
    best/<node>/<id>.json        a best shot's index entry: {"node", "best", "clip", "sha256", "stored_ts"}

The store sits on ``ObjectStore`` (keys → immutable objects) so an S3-compatible backend can follow: it
needs only "create if absent", "read" and "exists", which S3 gives with ``If-None-Match: *``.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Protocol

from ..errors import UserError

_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,128}$")
_HEX = re.compile(r"^[0-9a-f]{64}$")
CHUNK = 1 << 20


class EvidenceError(UserError):
    """A clip the store refuses (its bytes do not match, or an index entry would change)."""


class ObjectStore(Protocol):
    """Immutable objects by key: what an evidence backend must offer (a directory today, S3 later)."""

    def create(self, key: str, src: Path) -> bool:
        """Store ``src`` under ``key`` unless the key exists; True if it was created. Never overwrites."""
        ...

    def exists(self, key: str) -> bool: ...

    def open(self, key: str) -> BinaryIO: ...

    def local_path(self, key: str) -> Path | None:
        """A path a player or a ZIP writer can read directly, or None for a remote backend."""
        ...

    def delete(self, key: str) -> bool:
        """Remove an object (retention only); True if it existed."""
        ...


class DirectoryObjectStore:
    """Objects as read-only files; ``os.link`` makes "create unless present" atomic (no check-then-write race)."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def _path(self, key: str) -> Path:
        parts = key.split("/")
        if not parts or any(not _NAME.match(p) or p in (".", "..") for p in parts):
            raise ValueError(f"bad object key {key!r}")
        return self.root.joinpath(*parts)

    def create(self, key: str, src: Path) -> bool:
        dst = self._path(key)
        dst.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=dst.parent, prefix=".in-", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as out, open(src, "rb") as f:
                while block := f.read(CHUNK):
                    out.write(block)
                out.flush()
                os.fsync(out.fileno())
            os.chmod(tmp, 0o444)
            try:
                os.link(tmp, dst)
            except FileExistsError:
                return False
            _fsync_dir(dst.parent)
            return True
        finally:
            Path(tmp).unlink(missing_ok=True)

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def open(self, key: str) -> BinaryIO:
        return self._path(key).open("rb")

    def local_path(self, key: str) -> Path | None:
        return self._path(key)

    def delete(self, key: str) -> bool:
        path = self._path(key)
        try:
            path.unlink()
        except FileNotFoundError:
            return False
        _fsync_dir(path.parent)
        return True


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@dataclass(frozen=True)
class StoredClip:
    node: str
    clip: str
    sha256: str
    stored_ts: float
    pubkey: str
    path: Path | None  # the clip's file when the backend is local


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(CHUNK):
            h.update(block)
    return h.hexdigest()


def blob_key(sha: str, suffix: str) -> str:
    if not _HEX.match(sha):
        raise ValueError(f"not a sha256: {sha!r}")
    return f"sha256/{sha[:2]}/{sha}{suffix}"


class EvidenceStore:
    """Clips by sha256 plus a (node, clip) index; an index entry, once written, never points elsewhere."""

    def __init__(self, objects: ObjectStore) -> None:
        self.objects = objects

    @classmethod
    def at(cls, path: Path) -> EvidenceStore:
        return cls(DirectoryObjectStore(Path(path)))

    def add(self, node: str, clip: str, file: Path, meta: dict[str, Any], pubkey: str) -> StoredClip:
        """Store a clip the caller has verified; the file's sha256 must be the signed record's."""
        for what, value in (("node", node), ("clip", clip)):
            if not _NAME.match(value):
                raise EvidenceError(f"bad {what} id {value!r}")
        sha = sha256_file(file)
        if sha != (meta.get("record") or {}).get("sha256"):
            raise EvidenceError(f"{clip}: file sha256 {sha} is not the signed record's")
        old = self.get(node, clip)
        if old is not None and old.sha256 != sha:
            raise EvidenceError(f"{node}/{clip} is already stored with sha256 {old.sha256}; a different file"
                                f" ({sha}) under the same clip id is refused (evidence is never replaced)")
        self.objects.create(blob_key(sha, ".mp4"), file)
        self._create_json(blob_key(sha, ".meta.json"), meta)
        entry = {"node": node, "clip": clip, "sha256": sha, "stored_ts": round(time.time(), 3), "pubkey": pubkey}
        self._create_json(f"clips/{node}/{clip}.json", entry)
        stored = self.get(node, clip)
        assert stored is not None
        return stored

    def _create_json(self, key: str, doc: dict[str, Any]) -> bool:
        fd, tmp = tempfile.mkstemp(prefix="edgecam-evidence-", suffix=".json")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(json.dumps(doc, indent=1, sort_keys=True).encode())
            return self.objects.create(key, Path(tmp))
        finally:
            Path(tmp).unlink(missing_ok=True)

    def get(self, node: str, clip: str) -> StoredClip | None:
        key = f"clips/{node}/{clip}.json"
        if not (_NAME.match(node) and _NAME.match(clip)) or not self.objects.exists(key):
            return None
        with self.objects.open(key) as f:
            e = json.loads(f.read())
        return StoredClip(e["node"], e["clip"], e["sha256"], e["stored_ts"], e["pubkey"],
                          self.objects.local_path(blob_key(e["sha256"], ".mp4")))

    def meta(self, sha: str) -> dict[str, Any]:
        with self.objects.open(blob_key(sha, ".meta.json")) as f:
            return json.loads(f.read())

    def open_clip(self, sha: str) -> BinaryIO:
        return self.objects.open(blob_key(sha, ".mp4"))

    def intact(self, sha: str) -> bool:
        """Re-hash the stored clip: False if a byte of it changed on disk."""
        h = hashlib.sha256()
        with self.open_clip(sha) as f:
            while block := f.read(CHUNK):
                h.update(block)
        return h.hexdigest() == sha

    def remove(self, node: str, clip: str) -> bool:
        """Retention's delete: the index entry, then the clip and meta unless another entry shares them;
        the clip's best shots go with it."""
        stored = self.get(node, clip)
        if stored is None:
            return False
        try:
            shots = [b for b in (self.meta(stored.sha256).get("best") or []) if isinstance(b, dict)]
        except (OSError, ValueError):  # a meta already gone must not stop the clip's removal
            shots = []
        self.objects.delete(f"clips/{node}/{clip}.json")
        if not any(e.sha256 == stored.sha256 for e in self.entries()):
            self.objects.delete(blob_key(stored.sha256, ".mp4"))
            self.objects.delete(blob_key(stored.sha256, ".meta.json"))
        for shot in shots:
            got = self.best(node, str(shot.get("id", "")))
            if got is not None and got["clip"] == clip:
                self.objects.delete(f"best/{node}/{got['best']}.json")
                self.objects.delete(blob_key(got["sha256"], ".jpg"))
        return True

    def add_best(self, node: str, best_id: str, clip: str, data: bytes) -> str:
        """Keep a best shot the caller has checked against its signed record(s); its sha256. Never replaced."""
        for what, value in (("node", node), ("best shot", best_id), ("clip", clip)):
            if not _NAME.match(value):
                raise EvidenceError(f"bad {what} id {value!r}")
        sha = hashlib.sha256(data).hexdigest()
        old = self.best(node, best_id)
        if old is not None:
            if old["sha256"] != sha:
                raise EvidenceError(f"best shot {node}/{best_id} is already stored with sha256 {old['sha256']}")
            return sha
        fd, tmp = tempfile.mkstemp(prefix="edgecam-best-", suffix=".jpg")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            self.objects.create(blob_key(sha, ".jpg"), Path(tmp))
        finally:
            Path(tmp).unlink(missing_ok=True)
        self._create_json(f"best/{node}/{best_id}.json", {"node": node, "best": best_id, "clip": clip, "sha256": sha,
                                                          "stored_ts": round(time.time(), 3)})
        return sha

    def best(self, node: str, best_id: str) -> dict[str, Any] | None:
        """A stored best shot's index entry plus ``path`` (its JPEG, local backends), or None."""
        key = f"best/{node}/{best_id}.json"
        if not (_NAME.match(node) and _NAME.match(best_id)) or not self.objects.exists(key):
            return None
        with self.objects.open(key) as f:
            entry = json.loads(f.read())
        return {**entry, "path": self.objects.local_path(blob_key(entry["sha256"], ".jpg"))}

    def entries(self) -> Iterator[StoredClip]:
        root = self.objects.local_path("clips")
        if root is None or not root.is_dir():
            return
        for p in sorted(root.glob("*/*.json")):
            got = self.get(p.parent.name, p.stem)
            if got is not None:
                yield got
