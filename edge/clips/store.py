"""The clip store: files under ``<storage>/clips``, an SQLite (WAL) index, signed records.

Index == disk: ``recover()`` at start finalises or removes what a crash left and
marks rows whose file is gone as ``lost`` (kept, so the gap stays visible).
Order is the insertion sequence, never wall time. The LAN API gets this object
as a read-mostly ``ClipCatalog``; the recorder's writer thread uses the node-side
methods (``begin``, ``update_events``, ``add_finished``, ``mark_lost``).
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import sqlite3
import stat
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..config import load_config
from ..errors import UserError
from ..fsutil import write_atomic
from ..types import ClipRecord
from . import evidence
from .evidence import NodeKey
from .mux import finalise, probe_duration
from .retention import Budget, Kept, choose_expired

log = logging.getLogger(__name__)

CLIP_ID = re.compile(r"^[A-Za-z0-9_-][A-Za-z0-9_.-]{0,127}$")
LISTED = ("ok", "lost")
SCHEMA = """
CREATE TABLE IF NOT EXISTS clips (
  seq INTEGER PRIMARY KEY AUTOINCREMENT,
  id TEXT NOT NULL UNIQUE,
  camera TEXT NOT NULL,
  status TEXT NOT NULL,
  start_ts REAL NOT NULL, end_ts REAL NOT NULL,
  start_mono REAL, end_mono REAL, duration REAL NOT NULL DEFAULT 0,
  time_ok INTEGER NOT NULL DEFAULT 1,
  labels TEXT NOT NULL DEFAULT '[]', events TEXT NOT NULL DEFAULT '[]',
  bytes INTEGER NOT NULL DEFAULT 0, sha256 TEXT NOT NULL DEFAULT '',
  held INTEGER NOT NULL DEFAULT 0, continues TEXT,
  chain_seq INTEGER UNIQUE, record TEXT, signature TEXT, record_hash TEXT, note TEXT
);
"""


@dataclass
class Finished:
    """What the writer knows about a clip it has finalised."""

    start_ts: float
    end_ts: float
    duration: float
    start_mono: float | None = None
    end_mono: float | None = None
    time_ok: bool = True
    labels: list[str] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)


class ClipStore:
    """Clip files + index + evidence chain for one node (thread-safe; one writer process)."""

    def __init__(self, root: Path, signer: NodeKey | None, max_bytes: int = 0, max_age_s: float = 0.0,
                 min_free_bytes: int = 0, node: str = "") -> None:
        self.root = Path(root)
        self.dir = self.root / "clips"
        self.dir.mkdir(parents=True, exist_ok=True)
        self._real_dir = self.dir.resolve()
        self.signer = signer
        self.budget = Budget(int(max_bytes), float(max_age_s), int(min_free_bytes))
        self.node = node
        self.paused = False
        self.pause_reason = ""
        self._need = 0  # bytes a resumed recording needs beyond the floor (set when a write hit ENOSPC)
        self._lock = threading.RLock()
        self._db = sqlite3.connect(self.root / "clips.db", check_same_thread=False, isolation_level=None,
                                   timeout=10.0)
        self._db.row_factory = sqlite3.Row
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(SCHEMA)

    # ----- paths: the one place that names clip files
    def part_path(self, clip_id: str) -> Path:
        return self.dir / f"{clip_id}.mp4.part"

    def final_path(self, clip_id: str) -> Path:
        return self.dir / f"{clip_id}.mp4"

    def tmp_path(self, clip_id: str) -> Path:
        """Where ``mux.finalise`` writes before its atomic rename (final name + ``.tmp``)."""
        final = self.final_path(clip_id)
        return final.with_name(final.name + ".tmp")

    def thumb_path(self, clip_id: str) -> Path:
        return self.dir / f"{clip_id}.jpg"

    # ----- node side
    def begin(self, clip_id: str, camera: str, start_ts: float, time_ok: bool, continues: str | None) -> Path:
        """Index a clip before its first byte is written, so a crash leaves a row to recover."""
        with self._lock:
            self._db.execute(
                "INSERT INTO clips (id, camera, status, start_ts, end_ts, time_ok, continues)"
                " VALUES (?, ?, 'recording', ?, ?, ?, ?)",
                (clip_id, camera, start_ts, start_ts, int(time_ok), continues))
        return self.part_path(clip_id)

    def update_events(self, clip_id: str, labels: list[str], events: list[dict[str, Any]],
                      time_ok: bool | None = None) -> None:
        with self._lock:
            self._db.execute("UPDATE clips SET labels = ?, events = ? WHERE id = ?",
                             (json.dumps(labels), json.dumps(events), clip_id))
            if time_ok is False:  # a clip recovered after a crash must not claim a synced clock either
                self._db.execute("UPDATE clips SET time_ok = 0 WHERE id = ?", (clip_id,))

    def add_finished(self, clip_id: str, fin: Finished) -> ClipRecord | None:
        """Hash, sign and chain a clip whose final file is in place; then apply retention."""
        path = self.final_path(clip_id)
        digest = evidence.sha256_bytes(path.read_bytes())
        size = path.stat().st_size
        with self._lock:
            row = self._row(clip_id)
            if row is None or self.signer is None:
                raise RuntimeError(f"clip {clip_id}: no index row or no signing key")
            self._db.execute("BEGIN IMMEDIATE")
            try:
                head = self._db.execute(
                    "SELECT chain_seq, record_hash FROM clips WHERE chain_seq IS NOT NULL"
                    " ORDER BY chain_seq DESC LIMIT 1").fetchone()
                seq = (head["chain_seq"] + 1) if head else 1
                record = {
                    "v": 1, "seq": seq, "node": self.node, "clip": clip_id, "camera": row["camera"],
                    "start_ts": round(fin.start_ts, 3), "end_ts": round(fin.end_ts, 3),
                    "time_ok": bool(fin.time_ok), "duration": round(fin.duration, 3), "bytes": size,
                    "sha256": digest, "labels": sorted(set(fin.labels)),
                    "events": sorted({e["id"] for e in fin.events}), "continues": row["continues"],
                    "prev_hash": head["record_hash"] if head else None,
                }
                self._db.execute(
                    "UPDATE clips SET status='ok', start_ts=?, end_ts=?, start_mono=?, end_mono=?, duration=?,"
                    " time_ok=?, labels=?, events=?, bytes=?, sha256=?, chain_seq=?, record=?, signature=?,"
                    " record_hash=? WHERE id=?",
                    (fin.start_ts, fin.end_ts, fin.start_mono, fin.end_mono, fin.duration, int(fin.time_ok),
                     json.dumps(record["labels"]), json.dumps(fin.events), size, digest, seq,
                     json.dumps(record), self.signer.sign(record), evidence.record_hash(record), clip_id))
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        self.enforce_retention()
        return self.get(clip_id)

    def mark_lost(self, clip_id: str, reason: str) -> None:
        """The clip could not be kept (crash, disk full): the row stays so the gap is visible."""
        self.part_path(clip_id).unlink(missing_ok=True)
        self.tmp_path(clip_id).unlink(missing_ok=True)
        with self._lock:
            self._db.execute("UPDATE clips SET status='lost', note=? WHERE id=?", (reason, clip_id))

    def set_thumbnail(self, clip_id: str, jpeg: bytes) -> None:
        if not CLIP_ID.match(clip_id):
            return
        write_atomic(self.thumb_path(clip_id), jpeg)

    # ----- retention and disk space
    def free_bytes(self) -> int:
        return shutil.disk_usage(self.root).free

    def enforce_retention(self, now: float | None = None) -> list[str]:
        """Delete the oldest unheld clips past the budget; held clips are never deleted."""
        with self._lock:
            rows = self._db.execute("SELECT id, seq, bytes, end_ts, held FROM clips WHERE status='ok'").fetchall()
            kept = [Kept(r["id"], r["seq"], r["bytes"], r["end_ts"], bool(r["held"])) for r in rows]
            victims = choose_expired(kept, self.free_bytes(), time.time() if now is None else now, self.budget)
            for cid in victims:
                self.final_path(cid).unlink(missing_ok=True)
                self.thumb_path(cid).unlink(missing_ok=True)
                self._db.execute("UPDATE clips SET status='expired' WHERE id=?", (cid,))
        if victims:
            log.info("retention: removed %d clip(s), oldest %s", len(victims), victims[0])
        return victims

    def check_space(self) -> bool:
        """Apply retention, then pause recording while free space stays under the floor."""
        self.enforce_retention()
        free = self.free_bytes()
        floor = self.budget.min_free_bytes + self._need
        if free < floor:
            self.pause(f"free space {free // 1024} KiB is under the floor of {floor // 1024} KiB")
            return False
        if self.paused:
            log.warning("clips: recording resumed (%d KiB free)", free // 1024)
        self.paused, self.pause_reason, self._need = False, "", 0
        return True

    def pause(self, reason: str, need_bytes: int = 0) -> None:
        """Stop recording (disk full); it resumes once ``need_bytes`` more than the floor is free."""
        self._need = max(self._need, need_bytes)
        if not self.paused:
            held = self._count("held = 1 AND status = 'ok'")
            log.error("clips: recording PAUSED: %s (%d held clip(s) kept); events still flow", reason, held)
        self.paused, self.pause_reason = True, reason

    # ----- crash recovery
    def recover(self) -> dict[str, int]:
        """Make index == disk after a crash; returns counts of what was done."""
        counts = {"finalised": 0, "removed": 0, "lost": 0}
        with self._lock:
            rows = self._db.execute("SELECT * FROM clips WHERE status IN ('recording', 'ok')").fetchall()
        for row in rows:
            cid, part, final = row["id"], self.part_path(row["id"]), self.final_path(row["id"])
            if row["status"] == "ok":
                if not final.is_file():
                    self.mark_lost(cid, "file missing at start")
                    log.warning("clip %s: file missing, marked lost", cid)
                    counts["lost"] += 1
                continue
            kept = 0
            if part.is_file():
                kept = finalise(part, final)
                part.unlink(missing_ok=True)
            if final.is_file() and (kept or probe_duration(final) > 0):
                dur = probe_duration(final)
                fin = Finished(row["start_ts"], row["start_ts"] + dur, dur, time_ok=bool(row["time_ok"]),
                               labels=json.loads(row["labels"]), events=json.loads(row["events"]))
                self.add_finished(cid, fin)
                log.warning("clip %s: recovered after a crash (%.1f s kept)", cid, dur)
                counts["finalised"] += 1
            else:
                final.unlink(missing_ok=True)
                self.mark_lost(cid, "unreadable after a crash")
                log.warning("clip %s: nothing playable after a crash, removed and marked lost", cid)
                counts["lost"] += 1
        counts["removed"] = self._remove_strays()
        return counts

    def _remove_strays(self) -> int:
        with self._lock:
            known = {r["id"] for r in self._db.execute("SELECT id FROM clips WHERE status='ok'")}
        removed = 0
        for p in self.dir.iterdir():
            cid = p.name.split(".", 1)[0]
            keep = cid in known and p.name in (f"{cid}.mp4", f"{cid}.jpg")
            if not keep and (p.is_file() or p.is_symlink()):
                p.unlink()
                log.warning("clips: removed stray file %s (not in the index)", p.name)
                removed += 1
        return removed

    # ----- ClipCatalog (what the LAN API may do)
    def list_clips(self, since: float | None = None, until: float | None = None, label: str | None = None,
                   camera: str | None = None, limit: int = 100, after: str | None = None) -> list[ClipRecord]:
        sql = f"SELECT * FROM clips WHERE status IN {LISTED!r}"
        args: list[Any] = []
        for cond, value in (("end_ts >= ?", since), ("start_ts <= ?", until), ("camera = ?", camera),
                            ("labels LIKE ?", None if label is None else f'%{json.dumps(label)}%')):
            if value is not None:
                sql += f" AND {cond}"
                args.append(value)
        if after is not None:
            sql += " AND seq < COALESCE((SELECT seq FROM clips WHERE id = ?), -1)"
            args.append(after)
        sql += " ORDER BY seq DESC LIMIT ?"
        args.append(max(0, int(limit)))
        with self._lock:
            return [_record(r) for r in self._db.execute(sql, args).fetchall()]

    def get(self, clip_id: str) -> ClipRecord | None:
        row = self._row(clip_id)
        return _record(row) if row is not None and row["status"] in LISTED else None

    def file_path(self, clip_id: str) -> Path | None:
        row = self._row(clip_id)
        if row is None or row["status"] != "ok":
            return None
        return self._inside(self.final_path(clip_id))

    def thumbnail_path(self, clip_id: str) -> Path | None:
        row = self._row(clip_id)
        if row is None or row["status"] != "ok":
            return None
        return self._inside(self.thumb_path(clip_id))

    def _inside(self, path: Path) -> Path | None:
        """A regular file directly in the clip folder; symlinks are never followed."""
        try:
            st = os.lstat(path)
        except OSError:
            return None
        if not stat.S_ISREG(st.st_mode) or path.resolve().parent != self._real_dir:
            return None
        return path.resolve()

    def meta(self, clip_id: str) -> dict[str, Any] | None:
        row = self._row(clip_id)
        if row is None or row["record"] is None:
            return None
        with self._lock:
            prev = self._db.execute("SELECT record, signature FROM clips WHERE chain_seq = ?",
                                    (row["chain_seq"] - 1,)).fetchone()
        return {
            "format": evidence.META_FORMAT,
            "record": json.loads(row["record"]),
            "signature": row["signature"],
            "record_hash": row["record_hash"],
            "pubkey": self.public_key(),
            "prev": {"record": json.loads(prev["record"]), "signature": prev["signature"]} if prev else None,
            "events": json.loads(row["events"]),
            "held": bool(row["held"]),
            "status": row["status"],
        }

    def hold(self, clip_id: str) -> bool:
        return self._set_held(clip_id, True)

    def release(self, clip_id: str) -> bool:
        return self._set_held(clip_id, False)

    def public_key(self) -> str:
        return self.signer.public_text() if self.signer is not None else ""

    # ----- helpers
    def _set_held(self, clip_id: str, held: bool) -> bool:
        if not CLIP_ID.match(clip_id):
            return False
        with self._lock:
            cur = self._db.execute("UPDATE clips SET held=? WHERE id=? AND status IN ('ok', 'recording')",
                                   (int(held), clip_id))
        return cur.rowcount == 1

    def _row(self, clip_id: str) -> sqlite3.Row | None:
        if not isinstance(clip_id, str) or not CLIP_ID.match(clip_id):
            return None
        with self._lock:
            return self._db.execute("SELECT * FROM clips WHERE id = ?", (clip_id,)).fetchone()

    def _count(self, where: str) -> int:
        with self._lock:
            return self._db.execute(f"SELECT COUNT(*) FROM clips WHERE {where}").fetchone()[0]

    def stats(self) -> dict[str, Any]:
        with self._lock:
            r = self._db.execute("SELECT COUNT(*), COALESCE(SUM(bytes), 0), COALESCE(SUM(held), 0)"
                                 " FROM clips WHERE status='ok'").fetchone()
        return {"clips": r[0], "bytes": r[1], "held": r[2], "lost": self._count("status='lost'"),
                "paused": self.paused, "pause_reason": self.pause_reason, "free_bytes": self.free_bytes()}

    def close(self) -> None:
        with self._lock:
            self._db.close()


def _record(row: sqlite3.Row) -> ClipRecord:
    return ClipRecord(
        id=row["id"], camera=row["camera"], start_ts=row["start_ts"], end_ts=row["end_ts"],
        labels=tuple(json.loads(row["labels"])), bytes=row["bytes"], sha256=row["sha256"],
        held=bool(row["held"]), status=row["status"], time_ok=bool(row["time_ok"]),
        events=tuple(sorted({e["id"] for e in json.loads(row["events"])})),
    )


def _cli_store(args) -> ClipStore:
    cfg = load_config(args.config)
    root = Path(cfg.storage.path)
    if not (root / "clips.db").exists():
        raise UserError(f"no clip index at {root / 'clips.db'} (has the node run?)")
    return ClipStore(root, None)


def hold_command(args) -> int:
    """``edgecam clips hold ID -c CONFIG``: keep a clip past retention."""
    return _set_held(args, True)


def release_command(args) -> int:
    """``edgecam clips release ID -c CONFIG``: let retention remove the clip again."""
    return _set_held(args, False)


def _set_held(args, held: bool) -> int:
    store = _cli_store(args)
    try:
        found = store.hold(args.id) if held else store.release(args.id)
    finally:
        store.close()
    if not found:
        raise UserError(f"no clip {args.id!r}")
    print(f"{'held' if held else 'released'} {args.id}")
    return 0
