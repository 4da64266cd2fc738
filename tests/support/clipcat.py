"""A small real clip catalog for API tests: real MP4 files (stream-copied from the shared videos), real sha256s.

It implements ``edge.interfaces.ClipCatalog`` over a dict, with the same
"paths stay inside the store" promise the real ClipStore makes, and META in the
store's documented shape (``edgecam-clip-meta/1``: an Ed25519-signed record with
seq and prev_hash chain). It stands in for the store (written in parallel), not
for any network part.
"""

from __future__ import annotations

import base64
import hashlib
import json
import subprocess
import threading
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from edge.types import ClipRecord


def remux(source: Path, out: Path, start: float, seconds: float) -> None:
    """Cut ``seconds`` of ``source`` without re-encoding (``-c copy``)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        ["ffmpeg", "-v", "error", "-y", "-ss", str(start), "-i", str(source), "-t", str(seconds),
         "-map", "0:v:0", "-c", "copy", "-movflags", "+faststart", str(out)],
        check=True, capture_output=True, timeout=60,
    )


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _canonical(obj: Any) -> bytes:
    """Sorted-key compact UTF-8 JSON: the bytes a record's signature covers."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


@dataclass(frozen=True)
class HeldRecord(ClipRecord):
    held: bool = False


class DictCatalog:
    """ClipCatalog over real files under ``root``; ids map to records, files, thumbnails and meta."""

    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        self._records: dict[str, HeldRecord] = {}
        self._files: dict[str, str] = {}
        self._signed: dict[str, dict[str, Any]] = {}
        self._chain: list[dict[str, Any]] = []
        self._key = Ed25519PrivateKey.generate()
        self._lock = threading.Lock()

    def add_file(self, clip_id: str, rel: str, camera: str, start_ts: float, end_ts: float,
                 labels: tuple[str, ...]) -> HeldRecord:
        path = self.root / rel
        rec = HeldRecord(clip_id, camera, start_ts, end_ts, labels, path.stat().st_size, sha256_file(path))
        with self._lock:
            self._records[clip_id] = rec
            self._files[clip_id] = rel
            self._sign(rec)
        return rec

    def _sign(self, rec: ClipRecord) -> None:
        prev = self._chain[-1] if self._chain else None
        record = {
            "v": 1, "seq": len(self._chain) + 1, "node": "test-node", "clip": rec.id, "camera": rec.camera,
            "start_ts": rec.start_ts, "end_ts": rec.end_ts, "time_ok": True, "duration": rec.end_ts - rec.start_ts,
            "bytes": rec.bytes, "sha256": rec.sha256, "labels": list(rec.labels), "events": [], "continues": None,
            "prev_hash": hashlib.sha256(_canonical(prev["record"])).hexdigest() if prev else None,
        }
        signed = {"record": record, "signature": base64.b64encode(self._key.sign(_canonical(record))).decode()}
        self._signed[rec.id] = {**signed, "prev": prev}
        self._chain.append(signed)

    def add_clip(self, clip_id: str, source: Path, camera: str, start_ts: float, seconds: float,
                 labels: tuple[str, ...], offset: float = 0.0) -> HeldRecord:
        rel = f"{camera}/{clip_id}.mp4"
        remux(source, self.root / rel, offset, seconds)
        return self.add_file(clip_id, rel, camera, start_ts, start_ts + seconds, labels)

    def _inside(self, rel: str | None) -> Path | None:
        if rel is None:
            return None
        path = (self.root / rel).resolve()
        root = self.root.resolve()
        if root not in path.parents or not path.is_file():
            return None
        return path

    def list_clips(self, since: float | None = None, until: float | None = None, label: str | None = None,
                   camera: str | None = None, limit: int = 100, after: str | None = None) -> list[ClipRecord]:
        with self._lock:
            recs = sorted(self._records.values(), key=lambda r: (r.start_ts, r.id), reverse=True)
        if after is not None:
            ids = [r.id for r in recs]
            recs = recs[ids.index(after) + 1:] if after in ids else []
        out = [r for r in recs
               if (since is None or r.end_ts >= since) and (until is None or r.start_ts <= until)
               and (label is None or label in r.labels) and (camera is None or r.camera == camera)]
        return list(out[:limit])

    def get(self, clip_id: str) -> ClipRecord | None:
        return self._records.get(clip_id)

    def file_path(self, clip_id: str) -> Path | None:
        return self._inside(self._files.get(clip_id))

    def thumbnail_path(self, clip_id: str) -> Path | None:
        rel = self._files.get(clip_id)
        return self._inside(rel[:-4] + ".jpg") if rel else None

    def best_path(self, best_id: str) -> Path | None:
        return None  # this catalog holds remuxed clips only; best shots are tested on the real store

    def best_by_clip(self, clip_ids: list[str]) -> dict[str, list[dict[str, Any]]]:
        return {}

    def meta(self, clip_id: str) -> dict[str, Any] | None:
        rec, signed = self._records.get(clip_id), self._signed.get(clip_id)
        if rec is None or signed is None:
            return None
        return {
            "format": "edgecam-clip-meta/1", "record": signed["record"], "signature": signed["signature"],
            "record_hash": hashlib.sha256(_canonical(signed["record"])).hexdigest(), "pubkey": self.public_key(),
            "prev": signed["prev"], "events": [], "held": rec.held, "status": "ok",
        }

    def hold(self, clip_id: str) -> bool:
        return self._set_held(clip_id, True)

    def release(self, clip_id: str) -> bool:
        return self._set_held(clip_id, False)

    def _set_held(self, clip_id: str, held: bool) -> bool:
        with self._lock:
            rec = self._records.get(clip_id)
            if rec is None:
                return False
            self._records[clip_id] = HeldRecord(**{**asdict(rec), "labels": rec.labels, "held": held})
        return True

    def public_key(self) -> str:
        return "ed25519:" + base64.b64encode(self._key.public_key().public_bytes_raw()).decode()


class StillView:
    """NodeView with one fixed JPEG per camera."""

    def __init__(self, jpegs: dict[str, bytes]) -> None:
        self.jpegs = jpegs

    def latest_jpeg(self, camera: str) -> bytes | None:
        return self.jpegs.get(camera)

    def health(self) -> dict[str, Any]:
        return {"state": "running", "cameras": {name: "running" for name in self.jpegs}}
