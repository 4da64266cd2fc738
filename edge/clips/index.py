"""The clip store's shared core: the folder, the SQLite (WAL) index and its lock, the file names, the age clock.

Every role of the store (writer, catalog, keeper, recovery) works through one ``ClipIndex``, so there is one
connection, one lock and one place that names a clip's files. Order is the insertion sequence, never wall time.
"""

from __future__ import annotations

import json
import logging
import os
import re
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

from ..errors import UserError
from ..fsutil import regular_file_in
from ..types import ClipRecord
from . import sidecar
from .ageclock import AgeClock
from .bestshots import BestShotFiles
from .evidence import NodeKey

log = logging.getLogger("edge.clips.store")

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
CREATE TABLE IF NOT EXISTS chain_state (k TEXT PRIMARY KEY, v TEXT NOT NULL);
"""


class ClipIndex:
    """One node's clip folder and index (thread-safe; one writer process)."""

    def __init__(self, root: Path, signer: NodeKey | None, node: str = "",
                 clock: dict[str, Any] | None = None) -> None:
        """``clock`` (tests) overrides the age clock's ``mono``, ``wall`` and ``synced`` functions."""
        self.root = Path(root)
        self.dir = self.root / "clips"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.real_dir = self.dir.resolve()
        self.signer = signer
        self.node = node
        self.lock = threading.RLock()
        self.db_path = self.root / "clips.db"
        self.created = not self.db_path.exists()  # no index before: a fresh node, or a lost index (recover tells)
        self.set_aside: tuple[Path, str] | None = None  # (where a corrupt index went, why)
        try:
            self.db = self._open(check=signer is not None)
        except sqlite3.DatabaseError as err:
            if signer is None:  # a one-shot command never moves the daemon's files
                raise UserError(f"{self.db_path}: {err} (the daemon sets it aside and rebuilds it at start)") from None
            self.set_aside = (self._set_aside(err), str(err))
            self.db = self._open(check=False)
        self.best = BestShotFiles(self.root, self.db, self.lock, signer, node)
        with self.lock:
            self.age_clock = AgeClock(self.db, **(clock or {}))
            if signer is not None:  # rows from before the age clock start ageing now (never early)
                self.db.execute("UPDATE clips SET born_age = ? WHERE born_age IS NULL", (self.age_clock.now(),))

    def _open(self, check: bool) -> sqlite3.Connection:
        db = sqlite3.connect(self.db_path, check_same_thread=False, isolation_level=None, timeout=10.0)
        try:
            db.row_factory = sqlite3.Row
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=FULL")
            db.executescript(SCHEMA)
            if "born_age" not in {r[1] for r in db.execute("PRAGMA table_info(clips)")}:
                db.execute("ALTER TABLE clips ADD COLUMN born_age REAL")  # the age clock at storage
            if check and (res := db.execute("PRAGMA quick_check").fetchone()[0]) != "ok":
                raise sqlite3.DatabaseError(f"integrity check failed: {res}")
        except BaseException:
            db.close()
            raise
        return db

    def _set_aside(self, err: Exception) -> Path:
        """Move a corrupt index (and its WAL) out of the way, kept for forensics; one clear line."""
        dest = self.db_path.with_name(f"clips.db.corrupt-{time.strftime('%Y%m%dT%H%M%S')}")
        for suffix in ("", "-wal", "-shm"):
            src = self.db_path.with_name(self.db_path.name + suffix)
            if src.exists():
                os.replace(src, dest.with_name(dest.name + suffix))
        log.error("clips: %s is not a usable database (%s): set aside as %s; rebuilding the index from the"
                  " signed records beside the clips", self.db_path, err, dest.name)
        return dest

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

    def sidecar_path(self, clip_id: str) -> Path:
        """The clip's signed record beside its file: what rebuilds the index."""
        return self.dir / f"{clip_id}{sidecar.SIDECAR_SUFFIX}"

    def held_path(self, clip_id: str) -> Path:
        """Exists while the clip is held, so a rebuilt index keeps the hold."""
        return self.dir / f"{clip_id}{sidecar.HELD_SUFFIX}"

    def inside(self, path: Path) -> Path | None:
        """A regular file directly in the clip folder; symlinks are never followed."""
        return regular_file_in(self.real_dir, path)

    # ----- rows
    def row(self, clip_id: str) -> sqlite3.Row | None:
        if not isinstance(clip_id, str) or not CLIP_ID.match(clip_id):
            return None
        with self.lock:
            return self.db.execute("SELECT * FROM clips WHERE id = ?", (clip_id,)).fetchone()

    def count(self, where: str) -> int:
        with self.lock:
            return self.db.execute(f"SELECT COUNT(*) FROM clips WHERE {where}").fetchone()[0]

    def chain_state(self, key: str) -> Any:
        row = self.db.execute("SELECT v FROM chain_state WHERE k = ?", (key,)).fetchone()
        return json.loads(row[0]) if row else None

    def set_chain_state(self, key: str, value: Any) -> None:
        self.db.execute("INSERT OR REPLACE INTO chain_state (k, v) VALUES (?, ?)", (key, json.dumps(value)))

    def close(self) -> None:
        with self.lock:
            try:
                self.age_clock.flush()
            except sqlite3.Error as err:  # closing must not fail; a lost minute of age only keeps clips longer
                log.warning("clips: could not save the age clock at close (%s)", err)
            self.db.close()


def clip_record(row: sqlite3.Row) -> ClipRecord:
    return ClipRecord(
        id=row["id"], camera=row["camera"], start_ts=row["start_ts"], end_ts=row["end_ts"],
        labels=tuple(json.loads(row["labels"])), bytes=row["bytes"], sha256=row["sha256"],
        held=bool(row["held"]), status=row["status"], time_ok=bool(row["time_ok"]),
        events=tuple(sorted({e["id"] for e in json.loads(row["events"])})),
    )
