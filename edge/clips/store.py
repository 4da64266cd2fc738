"""The clip store: files under ``<storage>/clips``, an SQLite (WAL) index, signed records.

Index == disk: ``recover()`` at start finalises or removes what a crash left and
marks rows whose file is gone as ``lost`` (kept, so the gap stays visible).
Order is the insertion sequence, never wall time. The index can be lost
without losing evidence: each signed clip's record lies beside its file
(``sidecar.py``), so a missing, emptied or corrupt ``clips.db`` is rebuilt from
those, and files nothing explains are quarantined, never deleted. The LAN API gets this object
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
from pathlib import Path
from typing import Any

from ..errors import UserError
from ..fsutil import write_atomic
from ..types import ClipRecord, ClipStoreStats, Finished
from . import evidence, sidecar
from .ageclock import AgeClock
from .bestshots import LOOSE, BestShotFiles
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
CREATE TABLE IF NOT EXISTS chain_state (k TEXT PRIMARY KEY, v TEXT NOT NULL);
"""


class ClipStore:
    """Clip files + index + evidence chain for one node (thread-safe; one writer process).

    One object, three roles, each behind its own protocol in ``edge.interfaces``:
    the recorder writes through ``ClipWriter``, the LAN API reads through
    ``ClipCatalog``, the daemon runs ``ClipRetention`` (recovery, retention,
    free space). Nothing outside this module deletes the store's files.
    """

    def __init__(self, root: Path, signer: NodeKey | None, max_bytes: int = 0, max_age_s: float = 0.0,
                 min_free_bytes: int = 0, node: str = "", clock: dict[str, Any] | None = None) -> None:
        """``clock`` (tests) overrides the age clock's ``mono``, ``wall`` and ``synced`` functions."""
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
        self.db_path = self.root / "clips.db"
        self.created = not self.db_path.exists()  # no index before: a fresh node, or a lost index (recover tells)
        self.set_aside: tuple[Path, str] | None = None  # (where a corrupt index went, why)
        self.quarantined = 0
        self._age_hold = ""  # why age-based retention is withheld ("" when it is not), logged on change
        try:
            self._db = self._open(check=signer is not None)
        except sqlite3.DatabaseError as err:
            if signer is None:  # a one-shot command never moves the daemon's files
                raise UserError(f"{self.db_path}: {err} (the daemon sets it aside and rebuilds it at start)") from None
            self.set_aside = (self._set_aside(err), str(err))
            self._db = self._open(check=False)
        self.best = BestShotFiles(self.root, self._db, self._lock, signer, node)
        with self._lock:
            self.age_clock = AgeClock(self._db, **(clock or {}))
            if signer is not None:  # rows from before the age clock start ageing now (never early)
                self._db.execute("UPDATE clips SET born_age = ? WHERE born_age IS NULL", (self.age_clock.now(),))

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
                seq, prev_hash, brk = self._link()
                record = {
                    "v": 1, "seq": seq, "node": self.node, "clip": clip_id, "camera": row["camera"],
                    "start_ts": round(fin.start_ts, 3), "end_ts": round(fin.end_ts, 3),
                    "time_ok": bool(fin.time_ok), "duration": round(fin.duration, 3), "bytes": size,
                    "sha256": digest, "labels": sorted(set(fin.labels)),
                    "events": sorted({e["id"] for e in fin.events}), "continues": row["continues"],
                    "prev_hash": prev_hash,
                }
                if brk is not None:
                    record["break"] = brk
                shots = self.best.for_clip(clip_id)
                if shots:  # best shots that arrived while the clip was open are signed with it
                    record["best"] = [{"id": b["id"], "sha256": b["sha256"]} for b in shots]
                signature = self.signer.sign(record)
                # the signed record goes beside the file before the index row commits: a lost index loses nothing
                sidecar.write_sidecar(self.sidecar_path(clip_id), sidecar.sidecar_bytes(
                    record, signature, fin.events, fin.start_mono, fin.end_mono))
                sidecar.write_head(self.dir, record, signature)
                self._db.execute(
                    "UPDATE clips SET status='ok', start_ts=?, end_ts=?, start_mono=?, end_mono=?, duration=?,"
                    " time_ok=?, labels=?, events=?, bytes=?, sha256=?, chain_seq=?, record=?, signature=?,"
                    " record_hash=?, born_age=? WHERE id=?",
                    (fin.start_ts, fin.end_ts, fin.start_mono, fin.end_mono, fin.duration, int(fin.time_ok),
                     json.dumps(record["labels"]), json.dumps(fin.events), size, digest, seq,
                     json.dumps(record), signature, evidence.record_hash(record), self.age_clock.now(), clip_id))
                if shots:
                    self.best.mark_signed(clip_id)
                if brk is not None:
                    self._db.execute("DELETE FROM chain_state WHERE k = 'pending_break'")
                    log.warning("clips: chain break recorded in seq %d (%s)", seq, brk["reason"])
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        self.enforce_retention()
        return self.get(clip_id)

    def _link(self) -> tuple[int, str | None, dict[str, Any] | None]:
        """The next record's seq and prev_hash, and the chain break it must record (None: unbroken).

        The head is the newest signed record known to the index or to ``chain-head.json``
        (which outlives expired clips), so a seq is never signed twice. A head this key
        cannot verify means the key changed; a pending break comes from a lost index.
        """
        pub = self.signer.public_key() if self.signer is not None else None
        heads = []
        row = self._db.execute("SELECT record, signature FROM clips WHERE chain_seq IS NOT NULL"
                               " ORDER BY chain_seq DESC LIMIT 1").fetchone()
        if row is not None:
            rec = json.loads(row["record"])
            ok = pub is not None and evidence.signature_ok(pub, rec, row["signature"])  # no key here: not verified
            heads.append(sidecar.Head(rec, row["signature"], ok))
        on_file, _why = sidecar.read_head(self.dir, pub)
        if on_file is not None:
            heads.append(on_file)
        head = max(heads, key=lambda h: h.seq) if heads else None
        pending = self._state("pending_break")
        brk: dict[str, Any] | None = None
        floor = 1
        if pending is not None:
            brk = {"reason": pending["reason"], "prev_seq": head.seq if head else pending.get("prev_seq"),
                   "prev_hash": head.hash if head else pending.get("prev_hash")}
            floor = int(pending.get("min_seq") or 1)
        elif head is not None and not head.ok:
            brk = {"reason": "signing key changed: the previous record does not verify with this node's key",
                   "prev_seq": head.seq, "prev_hash": head.hash}
        seq = max(head.seq + 1 if head else 1, floor)
        return seq, (head.hash if head else (brk or {}).get("prev_hash")), brk

    def _state(self, key: str) -> Any:
        row = self._db.execute("SELECT v FROM chain_state WHERE k = ?", (key,)).fetchone()
        return json.loads(row[0]) if row else None

    def _set_state(self, key: str, value: Any) -> None:
        self._db.execute("INSERT OR REPLACE INTO chain_state (k, v) VALUES (?, ?)", (key, json.dumps(value)))

    def mark_lost(self, clip_id: str, reason: str) -> None:
        """The clip could not be kept (crash, disk full): the row stays so the gap is visible."""
        self.part_path(clip_id).unlink(missing_ok=True)
        self.tmp_path(clip_id).unlink(missing_ok=True)
        with self._lock:
            self._db.execute("UPDATE clips SET status='lost', note=? WHERE id=?", (reason, clip_id))

    def discard(self, clip_id: str) -> None:
        """Drop the files of a clip whose write failed (the caller marks it lost): the store owns its paths."""
        if not CLIP_ID.match(clip_id):
            return
        for path in (self.tmp_path(clip_id), self.final_path(clip_id)):
            path.unlink(missing_ok=True)

    def add_best(self, best_id: str, object_id: str, camera: str, clip_id: str | None, jpeg: bytes,
                 box: tuple[float, float, float, float], wall: float, label: str) -> str | None:
        """``BestShotSink``: one object's best shot, kept and signed with its clip (``bestshots.py``)."""
        with self._lock:
            born = self.age_clock.now()
        return self.best.add(best_id, object_id, camera, clip_id, jpeg, box, wall, label, born)

    def best_path(self, best_id: str) -> Path | None:
        """The JPEG of a stored best shot (``GET /api/v1/best/<id>.jpg``), None when unknown."""
        return self.best.file(best_id)

    def best_by_clip(self, clip_ids: list[str]) -> dict[str, list[dict[str, Any]]]:
        """``ClipCatalog``: each clip's best shots (id, label, box in the JPEG), one query for the list page."""
        return self.best.by_clips(clip_ids)

    def set_thumbnail(self, clip_id: str, jpeg: bytes) -> None:
        if not CLIP_ID.match(clip_id):
            return
        write_atomic(self.thumb_path(clip_id), jpeg)

    # ----- retention and disk space
    def free_bytes(self) -> int:
        return shutil.disk_usage(self.root).free

    def enforce_retention(self) -> list[str]:
        """Delete the oldest unheld clips past the budget; held clips are never deleted.

        Age is the age clock's (monotonic, persisted), and no clip ages out while the
        wall clock is unsynchronised or has just stepped; bytes and free space still apply.
        """
        with self._lock:
            now = self.age_clock.now()
            age_ok, why = self.age_clock.ageing_allowed()
            rows = self._db.execute("SELECT id, seq, bytes, born_age, held FROM clips WHERE status='ok'").fetchall()
            shots = self.best.bytes_by_clip()  # a clip's best shots count with it; clip-less ones on their own
            kept = [Kept(r["id"], r["seq"], r["bytes"] + shots.get(r["id"], 0),
                         now if r["born_age"] is None else r["born_age"], bool(r["held"])) for r in rows]
            victims = choose_expired(kept + self.best.loose(now), self.free_bytes(), now, self.budget, age_ok)
            loose = [v[len(LOOSE):] for v in victims if v.startswith(LOOSE)]
            victims = [v for v in victims if not v.startswith(LOOSE)]
            if not age_ok and self.budget.max_age_s > 0 and why != self._age_hold:
                log.warning("clips: age-based retention paused (%s); byte and free-space limits still apply", why)
            self._age_hold = why
            removed = []
            for cid in victims:
                # held=0 in the same statement: a `clips hold` from another process wins the race
                cur = self._db.execute("UPDATE clips SET status='expired' WHERE id=? AND held=0", (cid,))
                if cur.rowcount != 1:
                    continue
                for path in (self.final_path(cid), self.thumb_path(cid), self.sidecar_path(cid)):
                    path.unlink(missing_ok=True)
                removed.append(cid)
            victims = removed
            self.best.delete_for_clips(victims)
            self.best.delete(loose)
        if loose:
            log.info("retention: removed %d best shot(s) of no clip", len(loose))
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
        """Make index == disk after a crash or a lost index; returns counts of what was done.

        Signed records beside the files are adopted first (a lost or emptied index is
        rebuilt from them), then half-finished clips are finalised, then whatever is
        left unexplained is quarantined. Nothing that was captured is deleted.
        """
        counts = {"finalised": 0, "removed": 0, "lost": 0, "rebuilt": 0, "quarantined": 0}
        lost_reason = self._index_loss()
        claimed = max([sidecar.any_seq(p) for p in self.dir.glob(f"*{sidecar.SIDECAR_SUFFIX}")] or [0])
        self._adopt_sidecars(counts)
        if lost_reason:
            self._after_lost_index(lost_reason, claimed, counts)
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
        self._backfill()
        removed, quarantined = self._sweep_strays()
        counts["removed"] += removed
        counts["quarantined"] += quarantined
        if self.signer is not None:  # after the clips: a best shot's clip is known by now
            with self._lock:
                now = self.age_clock.now()
            for k, n in self.best.recover([self.signer.public_key(), *self.signer.retired], now).items():
                if n:
                    counts[f"best_{k}"] = n
        self.quarantined = sidecar.quarantined_count(self.root)
        return counts

    def _index_loss(self) -> str:
        """Why the index cannot be trusted to know the chain ("" when it can): corrupt, missing or emptied."""
        if self.set_aside is not None:
            return f"clip index was corrupt ({self.set_aside[1]}); set aside as {self.set_aside[0].name}"
        has_files = any(True for _ in self.dir.iterdir())
        if not has_files:
            return ""
        if self.created:
            return "clip index was missing"
        if self._count("1") == 0:
            return "clip index was empty"
        return ""

    def _adopt_sidecars(self, counts: dict[str, int]) -> None:
        """Index every clip whose signed record verifies and matches its file but has no 'ok' row."""
        pub = [self.signer.public_key(), *self.signer.retired] if self.signer is not None else []
        found = []
        for meta in self.dir.glob(f"*{sidecar.SIDECAR_SUFFIX}"):
            cid = meta.name[: -len(sidecar.SIDECAR_SUFFIX)]
            if not CLIP_ID.match(cid):
                self._quarantine_clip(cid, "not a clip id", counts)
                continue
            row = self._row(cid)
            if row is not None and row["status"] == "ok" and row["chain_seq"] is not None:
                continue  # indexed already
            if row is not None and row["status"] == "expired":
                continue  # retention chose it; the sweep finishes the removal
            adopted, why = sidecar.check_sidecar(self.dir, cid, pub)
            if adopted is None:
                self._quarantine_clip(cid, why, counts)
                continue
            found.append(adopted)
        for a in sorted(found, key=lambda a: a.record["seq"]):
            if self._insert_adopted(a):
                counts["rebuilt"] += 1
            else:
                self._quarantine_clip(a.clip_id, f"chain seq {a.record['seq']} is already indexed for another clip",
                                      counts)
        if counts["rebuilt"]:
            log.warning("clips: re-indexed %d clip(s) from their signed records", counts["rebuilt"])

    def _insert_adopted(self, a: sidecar.Adoptable) -> bool:
        r = a.record
        labels = [str(x) for x in r.get("labels") or []]
        held = int(self.held_path(a.clip_id).exists())
        with self._lock:
            if self._db.execute("SELECT 1 FROM clips WHERE chain_seq = ? AND id != ?",
                                (r["seq"], a.clip_id)).fetchone():
                return False
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.execute("DELETE FROM clips WHERE id = ?", (a.clip_id,))
                self._db.execute(
                    "INSERT INTO clips (id, camera, status, start_ts, end_ts, start_mono, end_mono, duration, time_ok,"
                    " labels, events, bytes, sha256, held, continues, chain_seq, record, signature, record_hash, note,"
                    " born_age) VALUES (?, ?, 'ok', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (a.clip_id, str(r.get("camera", "")), float(r.get("start_ts", 0)), float(r.get("end_ts", 0)),
                     a.start_mono, a.end_mono, float(r.get("duration", 0)), int(bool(r.get("time_ok", True))),
                     json.dumps(labels), json.dumps(a.events), int(r["bytes"]), str(r["sha256"]), held,
                     r.get("continues"), r["seq"], json.dumps(r), a.signature, evidence.record_hash(r),
                     "re-indexed from its signed record", self.age_clock.now()))
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        return True

    def _after_lost_index(self, reason: str, claimed: int, counts: dict[str, int]) -> None:
        """Continue the chain from the head file when it verifies; otherwise the next record names a break."""
        pub = self.signer.public_key() if self.signer is not None else None
        head, why = sidecar.read_head(self.dir, pub)
        with self._lock:
            row = self._db.execute("SELECT chain_seq, record_hash FROM clips WHERE chain_seq IS NOT NULL"
                                   " ORDER BY chain_seq DESC LIMIT 1").fetchone()
            best = (row["chain_seq"], row["record_hash"]) if row else (None, None)
            if head is not None and head.ok and head.seq >= (best[0] or 0):
                log.warning("clips: %s; index rebuilt (%d clip(s), %d quarantined), chain continues after seq %d",
                            reason, counts["rebuilt"], counts["quarantined"], head.seq)
                return
            if head is not None:
                claimed = max(claimed, head.seq)
            if not why:
                why = ("chain head file missing" if head is None else "chain head file does not verify with this key"
                       if not head.ok else f"chain head file (seq {head.seq}) is older than the records found")
            pending = {"reason": f"{reason}; {why}", "prev_seq": best[0], "prev_hash": best[1],
                       "min_seq": max(claimed, best[0] or 0) + 1}
            self._set_state("pending_break", pending)
        log.warning("clips: %s; index rebuilt (%d clip(s), %d quarantined); %s: the next record notes a chain"
                    " break", reason, counts["rebuilt"], counts["quarantined"], why)

    def _backfill(self) -> None:
        """Indexes from before sidecars existed: write each signed clip's sidecar, hold marker and the head."""
        with self._lock:
            rows = self._db.execute("SELECT id, record, signature, events, start_mono, end_mono, held FROM clips"
                                    " WHERE status='ok' AND record IS NOT NULL").fetchall()
            top = self._db.execute("SELECT record, signature FROM clips WHERE chain_seq IS NOT NULL"
                                   " ORDER BY chain_seq DESC LIMIT 1").fetchone()
        for r in rows:
            if not self.sidecar_path(r["id"]).exists():
                sidecar.write_sidecar(self.sidecar_path(r["id"]), sidecar.sidecar_bytes(
                    json.loads(r["record"]), r["signature"], json.loads(r["events"]), r["start_mono"], r["end_mono"]))
            if r["held"] and not self.held_path(r["id"]).exists():
                write_atomic(self.held_path(r["id"]), b"")
        if top is not None and not (self.dir / sidecar.HEAD_FILE).exists():
            sidecar.write_head(self.dir, json.loads(top["record"]), top["signature"])

    def _quarantine_clip(self, cid: str, reason: str, counts: dict[str, int]) -> None:
        for suffix in (".mp4", ".jpg", sidecar.SIDECAR_SUFFIX, sidecar.HELD_SUFFIX):
            path = self.dir / f"{cid}{suffix}"
            if path.exists() or path.is_symlink():
                sidecar.quarantine(self.root, path, reason)
                counts["quarantined"] += 1

    def _sweep_strays(self) -> tuple[int, int]:
        """Files the index does not explain: our own half-written temp copies go, anything else is quarantined."""
        with self._lock:
            status = {r["id"]: r["status"] for r in self._db.execute("SELECT id, status FROM clips")}
        kinds = (".mp4", ".jpg", sidecar.SIDECAR_SUFFIX, sidecar.HELD_SUFFIX)
        removed = quarantined = 0
        for p in sorted(self.dir.iterdir()):
            if p.name == sidecar.HEAD_FILE or not (p.is_file() or p.is_symlink()):
                continue
            cid = next((p.name[: -len(k)] for k in kinds if p.name.endswith(k)), p.name.split(".", 1)[0])
            if status.get(cid) == "ok" and p.name in {cid + k for k in kinds}:
                continue
            leftover = status.get(cid) == "lost" and p.name in (f"{cid}.jpg", f"{cid}{sidecar.HELD_SUFFIX}")
            if (p.name.startswith(".") and p.name.endswith(".tmp")) or status.get(cid) == "expired" or leftover:
                # a write_atomic temp (the real file is intact), the rest of an expired clip, a lost clip's thumbnail
                p.unlink()
                log.warning("clips: removed leftover %s", p.name)
                removed += 1
                continue
            sidecar.quarantine(self.root, p, "not in the index")
            quarantined += 1
        return removed, quarantined

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
            "pubkey": self._signed_by(json.loads(row["record"]), row["signature"]),
            "prev": {"record": json.loads(prev["record"]), "signature": prev["signature"]} if prev else None,
            "events": json.loads(row["events"]),
            "held": bool(row["held"]),
            "status": row["status"],
            "best": self.best.for_clip(clip_id),
        }

    def hold(self, clip_id: str) -> bool:
        return self._set_held(clip_id, True)

    def release(self, clip_id: str) -> bool:
        return self._set_held(clip_id, False)

    def _signed_by(self, record: dict[str, Any], signature: str) -> str:
        """The key a record verifies with: the node's, or a key `key new` replaced (older clips)."""
        if self.signer is not None and self.signer.retired and \
                not evidence.signature_ok(self.signer.public_key(), record, signature):
            for pub in self.signer.retired:
                if evidence.signature_ok(pub, record, signature):
                    return evidence.public_text(pub)
        return self.public_key()

    def public_key(self) -> str:
        return self.signer.public_text() if self.signer is not None else ""

    # ----- helpers
    def _set_held(self, clip_id: str, held: bool) -> bool:
        if not CLIP_ID.match(clip_id):
            return False
        with self._lock:
            cur = self._db.execute("UPDATE clips SET held=? WHERE id=? AND status IN ('ok', 'recording')",
                                   (int(held), clip_id))
            if cur.rowcount == 1:
                if held:
                    write_atomic(self.held_path(clip_id), b"")
                else:
                    self.held_path(clip_id).unlink(missing_ok=True)
        return cur.rowcount == 1

    def _row(self, clip_id: str) -> sqlite3.Row | None:
        if not isinstance(clip_id, str) or not CLIP_ID.match(clip_id):
            return None
        with self._lock:
            return self._db.execute("SELECT * FROM clips WHERE id = ?", (clip_id,)).fetchone()

    def _count(self, where: str) -> int:
        with self._lock:
            return self._db.execute(f"SELECT COUNT(*) FROM clips WHERE {where}").fetchone()[0]

    def stats(self) -> ClipStoreStats:
        with self._lock:
            r = self._db.execute("SELECT COUNT(*), COALESCE(SUM(bytes), 0), COALESCE(SUM(held), 0)"
                                 " FROM clips WHERE status='ok'").fetchone()
        return ClipStoreStats(clips=r[0], bytes=r[1], held=r[2], lost=self._count("status='lost'"),
                              best_bytes=self.best.total_bytes(),
                              quarantined=self.quarantined,
                              paused=self.paused, pause_reason=self.pause_reason, free_bytes=self.free_bytes())

    def close(self) -> None:
        with self._lock:
            try:
                self.age_clock.flush()
            except sqlite3.Error as err:  # closing must not fail; a lost minute of age only keeps clips longer
                log.warning("clips: could not save the age clock at close (%s)", err)
            self._db.close()


def _record(row: sqlite3.Row) -> ClipRecord:
    return ClipRecord(
        id=row["id"], camera=row["camera"], start_ts=row["start_ts"], end_ts=row["end_ts"],
        labels=tuple(json.loads(row["labels"])), bytes=row["bytes"], sha256=row["sha256"],
        held=bool(row["held"]), status=row["status"], time_ok=bool(row["time_ok"]),
        events=tuple(sorted({e["id"] for e in json.loads(row["events"])})),
    )


