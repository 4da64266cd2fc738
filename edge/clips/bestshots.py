"""Best-shot JPEGs in the clip store: one file per tracked object under ``<storage>/best``, indexed in SQLite.

A best shot belongs to the clip its object's ``end`` event names (or to none, when the camera records no
clip). It normally arrives while that clip is still open (the end comes a post-roll before the clip
closes), so the clip's signed record lists each of its best shots' id and sha256 (``ClipStore.add_finished``):
``edgecam clips verify`` and central check the JPEG against it. One that arrives after its clip was signed
stays unsigned (its row says so, ``signed = 0``). Retention deletes a clip's best shots with the clip;
clip-less ones age out by the clip budget's age. Files are written atomically (temp + fsync + rename).
"""

from __future__ import annotations

import json
import logging
import os
import re
import sqlite3
import stat
import threading
from pathlib import Path
from typing import Any

from ..fsutil import write_atomic
from . import evidence

log = logging.getLogger(__name__)

BEST_ID = re.compile(r"^[A-Za-z0-9_-][A-Za-z0-9_.-]{0,127}$")
SCHEMA = """
CREATE TABLE IF NOT EXISTS best_shots (
  id TEXT PRIMARY KEY, object_id TEXT NOT NULL, camera TEXT NOT NULL, clip_id TEXT,
  ts REAL NOT NULL, label TEXT NOT NULL, box TEXT NOT NULL, sha256 TEXT NOT NULL, bytes INTEGER NOT NULL,
  born_age REAL, signed INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS best_shots_clip ON best_shots (clip_id);
"""


class BestShotFiles:
    """The best-shot half of the clip store; shares its index connection and lock."""

    def __init__(self, root: Path, db: sqlite3.Connection, lock: threading.RLock) -> None:
        self.dir = Path(root) / "best"
        self.dir.mkdir(parents=True, exist_ok=True)
        self._real_dir = self.dir.resolve()
        self._db = db
        self._lock = lock
        with lock:
            db.executescript(SCHEMA)

    def path(self, best_id: str) -> Path:
        return self.dir / f"{best_id}.jpg"

    def add(self, best_id: str, object_id: str, camera: str, clip_id: str | None, jpeg: bytes,
            box: tuple[float, float, float, float], wall: float, label: str, born_age: float) -> str | None:
        """Write and index one best shot; its sha256, or None (logged) when the id is bad or the disk refuses."""
        if not BEST_ID.match(best_id) or not jpeg:
            log.warning("best shots: refused %r (bad id or empty image)", best_id[:64])
            return None
        digest = evidence.sha256_bytes(jpeg)
        try:
            write_atomic(self.path(best_id), jpeg)
        except OSError as err:
            log.warning("best shots: could not store %s: %s", best_id, err)
            return None
        with self._lock:
            self._db.execute(
                "INSERT OR REPLACE INTO best_shots (id, object_id, camera, clip_id, ts, label, box, sha256, bytes,"
                " born_age, signed) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0)",
                (best_id, object_id, camera, clip_id, float(wall), label, json.dumps([round(v, 4) for v in box]),
                 digest, len(jpeg), born_age))
        return digest

    def for_clip(self, clip_id: str) -> list[dict[str, Any]]:
        """The clip's best shots as its meta lists them (id order)."""
        with self._lock:
            rows = self._db.execute("SELECT * FROM best_shots WHERE clip_id = ? ORDER BY id", (clip_id,)).fetchall()
        return [_row_json(r) for r in rows]

    def by_clips(self, clip_ids: list[str]) -> dict[str, list[dict[str, Any]]]:
        """``{clip id: [{id, label, box}]}`` for the clips given (the clip list shows them)."""
        out: dict[str, list[dict[str, Any]]] = {}
        for i in range(0, len(clip_ids), 500):
            chunk = clip_ids[i:i + 500]
            with self._lock:
                rows = self._db.execute(
                    f"SELECT id, clip_id, label, box FROM best_shots WHERE clip_id IN ({','.join('?' * len(chunk))})"
                    " ORDER BY id", chunk).fetchall()
            for r in rows:
                out.setdefault(r["clip_id"], []).append({"id": r["id"], "label": r["label"],
                                                         "box": json.loads(r["box"])})
        return out

    def mark_signed(self, clip_id: str) -> None:
        with self._lock:
            self._db.execute("UPDATE best_shots SET signed = 1 WHERE clip_id = ?", (clip_id,))

    def get(self, best_id: str) -> dict[str, Any] | None:
        if not BEST_ID.match(best_id):
            return None
        with self._lock:
            row = self._db.execute("SELECT * FROM best_shots WHERE id = ?", (best_id,)).fetchone()
        return _row_json(row) if row is not None else None

    def file(self, best_id: str) -> Path | None:
        """The JPEG of an indexed best shot: a regular file directly in the folder; symlinks are never followed."""
        if self.get(best_id) is None:
            return None
        path = self.path(best_id)
        try:
            st = os.lstat(path)
        except OSError:
            return None
        if not stat.S_ISREG(st.st_mode) or path.resolve().parent != self._real_dir:
            return None
        return path.resolve()

    def delete_for_clips(self, clip_ids: list[str]) -> int:
        """Retention removed these clips: their best shots go with them (files first, then rows)."""
        gone = 0
        for cid in clip_ids:
            with self._lock:
                ids = [r["id"] for r in self._db.execute("SELECT id FROM best_shots WHERE clip_id = ?", (cid,))]
            gone += self._delete(ids)
        return gone

    def expire_clipless(self, now_age: float, max_age_s: float) -> int:
        """Best shots recorded without a clip, older than the clips' age limit on the store's age clock."""
        if max_age_s <= 0:
            return 0
        with self._lock:
            ids = [r["id"] for r in self._db.execute(
                "SELECT id FROM best_shots WHERE clip_id IS NULL AND born_age IS NOT NULL AND born_age < ?",
                (now_age - max_age_s,))]
        return self._delete(ids)

    def total_bytes(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT COALESCE(SUM(bytes), 0) FROM best_shots").fetchone()[0])

    def _delete(self, ids: list[str]) -> int:
        for best_id in ids:
            self.path(best_id).unlink(missing_ok=True)
            with self._lock:
                self._db.execute("DELETE FROM best_shots WHERE id = ?", (best_id,))
        return len(ids)


def _row_json(row: sqlite3.Row) -> dict[str, Any]:
    return {"id": row["id"], "object": row["object_id"], "camera": row["camera"], "clip": row["clip_id"],
            "ts": row["ts"], "label": row["label"], "box": json.loads(row["box"]), "sha256": row["sha256"],
            "bytes": row["bytes"], "signed": bool(row["signed"])}
