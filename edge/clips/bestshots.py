"""Best-shot JPEGs in the clip store: one file per tracked object under ``<storage>/best``, indexed in SQLite.

A best shot belongs to the clip its object's ``end`` event names (or to none, when the camera records no
clip). Two signatures cover it:

- its own signed record, made when it is stored (``best/<id>.json`` beside the JPEG, and in the index)::

      {"v": 1, "kind": "best", "node": N, "best": ID, "object": OBJECT_ID, "camera": C, "clip": ID | null,
       "ts": UNIX, "label": L, "box": [x1, y1, x2, y2], "sha256": HEX, "bytes": N,
       "after": {"seq": N, "hash": HEX} | null}

  ``after`` names the newest record of the node's clip chain at that moment (it was signed after it). This
  covers every best shot, also one that arrives after its clip was signed and one that has no clip;
- the signed record of its clip, when it arrived while the clip was still open (the normal case: the
  ``end`` comes a post-roll before the clip closes): ``record.best: [{id, sha256}]`` (``ClipStore.add_finished``).

``edgecam clips verify`` and central check the JPEG against both (``evidence.check_best``). Retention
counts a best shot's bytes with its clip and deletes it with the clip; one with no clip (or whose clip is
gone) is retained on its own by the same age and byte limits, in storage order. Files are written
atomically (temp + fsync + rename); ``recover`` makes the index match the folder at start (re-indexing a
JPEG from its verified signed record, quarantining what nothing explains).
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
from pathlib import Path
from typing import Any

from ..fsutil import regular_file_in, write_atomic
from . import evidence, sidecar
from .bundle import BEST_NAME
from .retention import Kept

log = logging.getLogger(__name__)

BEST_ID = BEST_NAME
BEST_FORMAT = "edgecam-best/1"
LOOSE = "best:"  # prefix of a clip-less best shot's id among retention's candidates (clip ids have no ':')
SCHEMA = """
CREATE TABLE IF NOT EXISTS best_shots (
  id TEXT PRIMARY KEY, object_id TEXT NOT NULL, camera TEXT NOT NULL, clip_id TEXT,
  ts REAL NOT NULL, label TEXT NOT NULL, box TEXT NOT NULL, sha256 TEXT NOT NULL, bytes INTEGER NOT NULL,
  born_age REAL, signed INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS best_shots_clip ON best_shots (clip_id);
"""
# added after the first release of the table: the shot's own signed record, and where it sits in storage order
COLUMNS = {"record": "TEXT", "signature": "TEXT", "pos": "INTEGER NOT NULL DEFAULT 0"}


class BestShotFiles:
    """The best-shot half of the clip store; shares its index connection, lock and signing key."""

    def __init__(self, root: Path, db: sqlite3.Connection, lock: threading.RLock,
                 signer: evidence.NodeKey | None = None, node: str = "") -> None:
        self.root = Path(root)
        self.dir = self.root / "best"
        self.dir.mkdir(parents=True, exist_ok=True)
        self._real_dir = self.dir.resolve()
        self._db = db
        self._lock = lock
        self._signer = signer
        self._node = node
        with lock:
            db.executescript(SCHEMA)
            have = {r[1] for r in db.execute("PRAGMA table_info(best_shots)")}
            for name, kind in COLUMNS.items():
                if name not in have:
                    db.execute(f"ALTER TABLE best_shots ADD COLUMN {name} {kind}")

    def path(self, best_id: str) -> Path:
        return self.dir / f"{best_id}.jpg"

    def record_path(self, best_id: str) -> Path:
        """The shot's signed record beside its JPEG: what re-indexes it after a lost index."""
        return self.dir / f"{best_id}.json"

    def add(self, best_id: str, object_id: str, camera: str, clip_id: str | None, jpeg: bytes,
            box: tuple[float, float, float, float], wall: float, label: str, born_age: float) -> str | None:
        """Write, sign and index one best shot; its sha256, or None (logged) when refused or the disk refuses."""
        if not isinstance(best_id, str) or not BEST_ID.match(best_id) or not jpeg or \
                (clip_id is not None and not BEST_ID.match(clip_id)):
            log.warning("best shots: refused %r (bad id or empty image)", str(best_id)[:64])
            return None
        digest = evidence.sha256_bytes(jpeg)
        with self._lock:
            old = self._db.execute("SELECT sha256 FROM best_shots WHERE id = ?", (best_id,)).fetchone()
        if old is not None:  # a stored (maybe signed) best shot is never replaced
            if old["sha256"] != digest:
                log.warning("best shots: %s is stored already with another image; the new one is refused", best_id)
                return None
            return digest
        record: dict[str, Any] = {
            "v": 1, "kind": "best", "node": self._node, "best": best_id, "object": object_id, "camera": camera,
            "clip": clip_id, "ts": round(float(wall), 3), "label": label, "box": [round(float(v), 4) for v in box],
            "sha256": digest, "bytes": len(jpeg), "after": None,
        }
        with self._lock:
            pos, record["after"] = self._position()
        signature = self._signer.sign(record) if self._signer is not None else None
        try:
            write_atomic(self.path(best_id), jpeg)
            if signature is not None:
                write_atomic(self.record_path(best_id), _record_file(record, signature))
        except OSError as err:
            log.warning("best shots: could not store %s: %s", best_id, err)
            self.path(best_id).unlink(missing_ok=True)
            return None
        with self._lock:
            self._insert(record, signature, born_age, pos)
        return digest

    def _position(self) -> tuple[int, dict[str, Any] | None]:
        """(the newest clip's insertion seq: retention's order; the newest chain record: the ``after`` link)."""
        pos = int(self._db.execute("SELECT COALESCE(MAX(seq), 0) FROM clips").fetchone()[0])
        row = self._db.execute("SELECT chain_seq, record_hash FROM clips WHERE chain_seq IS NOT NULL"
                               " ORDER BY chain_seq DESC LIMIT 1").fetchone()
        return pos, ({"seq": row["chain_seq"], "hash": row["record_hash"]} if row is not None else None)

    def _insert(self, record: dict[str, Any], signature: str | None, born_age: float, pos: int) -> None:
        self._db.execute(
            "INSERT OR REPLACE INTO best_shots (id, object_id, camera, clip_id, ts, label, box, sha256, bytes,"
            " born_age, signed, record, signature, pos) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (record["best"], str(record["object"]), str(record["camera"]), record["clip"], float(record["ts"]),
             str(record["label"]), json.dumps(record["box"]), record["sha256"], int(record["bytes"]), born_age,
             int(self._in_clip_record(record["clip"], record["best"])),
             json.dumps(record) if signature is not None else None, signature, pos))

    def _in_clip_record(self, clip_id: str | None, best_id: str) -> bool:
        """Whether the clip's signed record already lists this best shot (a re-indexed one)."""
        if clip_id is None:
            return False
        row = self._db.execute("SELECT record FROM clips WHERE id = ? AND record IS NOT NULL", (clip_id,)).fetchone()
        return row is not None and best_id in {b.get("id") for b in json.loads(row["record"]).get("best", [])}

    def for_clip(self, clip_id: str) -> list[dict[str, Any]]:
        """The clip's best shots as its meta lists them (id order), each with its own signed record."""
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
        if not isinstance(best_id, str) or not BEST_ID.match(best_id):
            return None
        with self._lock:
            row = self._db.execute("SELECT * FROM best_shots WHERE id = ?", (best_id,)).fetchone()
        return _row_json(row) if row is not None else None

    def file(self, best_id: str) -> Path | None:
        """The JPEG of an indexed best shot: a regular file directly in the folder; symlinks are never followed."""
        if self.get(best_id) is None:
            return None
        return regular_file_in(self._real_dir, self.path(best_id))

    # ----- retention (the store's ``enforce_retention`` decides, with clips, in one ``choose_expired``)
    def bytes_by_clip(self) -> dict[str, int]:
        """Each finished clip's best-shot bytes: retention counts them with the clip."""
        with self._lock:
            rows = self._db.execute("SELECT clip_id, SUM(bytes) AS n FROM best_shots WHERE clip_id IS NOT NULL"
                                    " GROUP BY clip_id").fetchall()
        return {r["clip_id"]: int(r["n"]) for r in rows}

    def loose(self, now_age: float) -> list[Kept]:
        """Best shots with no clip, or whose clip is gone (expired, lost, never finished): retained on their
        own, in storage order (just after the clip that was newest when each was stored)."""
        with self._lock:
            rows = self._db.execute(
                "SELECT b.id, b.pos, b.bytes, b.born_age FROM best_shots b WHERE b.clip_id IS NULL OR NOT EXISTS"
                " (SELECT 1 FROM clips c WHERE c.id = b.clip_id AND c.status IN ('ok', 'recording'))").fetchall()
        return [Kept(LOOSE + r["id"], int(r["pos"] or 0), int(r["bytes"]),
                     now_age if r["born_age"] is None else float(r["born_age"]), False) for r in rows]

    def delete_for_clips(self, clip_ids: list[str]) -> int:
        """Retention removed these clips: their best shots go with them (files first, then rows)."""
        gone = 0
        for cid in clip_ids:
            with self._lock:
                ids = [r["id"] for r in self._db.execute("SELECT id FROM best_shots WHERE clip_id = ?", (cid,))]
            gone += self.delete(ids)
        return gone

    def total_bytes(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT COALESCE(SUM(bytes), 0) FROM best_shots").fetchone()[0])

    def delete(self, ids: list[str]) -> int:
        for best_id in ids:
            self.path(best_id).unlink(missing_ok=True)
            self.record_path(best_id).unlink(missing_ok=True)
            with self._lock:
                self._db.execute("DELETE FROM best_shots WHERE id = ?", (best_id,))
        return len(ids)

    # ----- crash recovery (``ClipStore.recover``)
    def recover(self, keys: list[Any], now_age: float) -> dict[str, int]:
        """Make the index match the folder: rows whose JPEG is gone are dropped, a JPEG with no row is
        re-indexed from its signed record when that verifies with one of ``keys`` and matches the bytes,
        and anything else is quarantined (never deleted). Counts: removed, rebuilt, quarantined."""
        counts = {"removed": 0, "rebuilt": 0, "quarantined": 0}
        with self._lock:
            indexed = {r["id"] for r in self._db.execute("SELECT id FROM best_shots")}
        for best_id in sorted(indexed):
            if not self.path(best_id).is_file():
                self.delete([best_id])
                log.warning("best shot %s: file missing at start, row removed", best_id)
                counts["removed"] += 1
        explained = {f"{i}.jpg" for i in indexed} | {f"{i}.json" for i in indexed}
        for p in sorted(self.dir.iterdir()):
            if p.name in explained or not (p.is_file() or p.is_symlink()):
                continue
            if p.name.startswith(".") and p.name.endswith(".tmp"):
                p.unlink()  # a write_atomic temp: the real file is intact or was never named
                counts["removed"] += 1
                continue
            best_id = p.name.rsplit(".", 1)[0]
            if p.suffix == ".jpg" and BEST_ID.match(best_id):
                why = self._adopt(best_id, keys, now_age)
                if not why:
                    explained |= {p.name, f"{best_id}.json"}
                    counts["rebuilt"] += 1
                    continue
            elif p.suffix == ".json" and self.path(best_id).is_file() and not p.is_symlink():
                continue  # judged with its JPEG
            else:
                why = "no JPEG beside it" if p.suffix == ".json" else "not a best shot"
            for q in (p, self.record_path(best_id)) if p.suffix == ".jpg" else (p,):
                if q.exists() or q.is_symlink():
                    sidecar.quarantine(self.root, q, f"best shot: {why}")
                    counts["quarantined"] += 1
        if counts["rebuilt"]:
            log.warning("best shots: re-indexed %d from their signed records", counts["rebuilt"])
        return counts

    def _adopt(self, best_id: str, keys: list[Any], now_age: float) -> str:
        """Index a JPEG from its signed record; "" when done, else why not."""
        jpg = self.path(best_id)
        if jpg.is_symlink():
            return "a symlink"
        try:
            doc = json.loads(self.record_path(best_id).read_bytes())
            record, signature = doc["record"], str(doc["signature"])
            if not isinstance(record, dict):
                raise ValueError("malformed")
        except FileNotFoundError:
            return "no signed record beside it"
        except (OSError, ValueError, KeyError, TypeError) as err:
            return f"unreadable signed record ({err})"
        if not any(k is not None and evidence.signature_ok(k, record, signature) for k in keys):
            return "signed record does not verify with this node's key (nor a replaced one)"
        data = jpg.read_bytes()
        if record.get("best") != best_id or record.get("sha256") != evidence.sha256_bytes(data):
            return "the JPEG does not match its signed record"
        with self._lock:
            pos, _after = self._position()
            self._insert(record, signature, now_age, pos)  # it starts ageing now, never early
        return ""


def _record_file(record: dict[str, Any], signature: str) -> bytes:
    return json.dumps({"format": BEST_FORMAT, "record": record, "signature": signature},
                      sort_keys=True, separators=(",", ":")).encode()


def _row_json(row: sqlite3.Row) -> dict[str, Any]:
    return {"id": row["id"], "object": row["object_id"], "camera": row["camera"], "clip": row["clip_id"],
            "ts": row["ts"], "label": row["label"], "box": json.loads(row["box"]), "sha256": row["sha256"],
            "bytes": row["bytes"], "signed": bool(row["signed"]),
            "record": json.loads(row["record"]) if row["record"] else None, "signature": row["signature"]}
