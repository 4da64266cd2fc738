"""The clip store's writer role (``interfaces.ClipWriter``): what the recorder's thread does with the store.

A clip is indexed before its first byte is written (a crash leaves a row to recover), hashed, signed and
chained when its final file is in place, and its signed record goes beside the file before the index row
commits, so a lost index loses nothing (``sidecar.py``).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from ..fsutil import write_atomic
from ..types import ClipRecord, Finished
from . import evidence, sidecar
from .index import CLIP_ID, LISTED, ClipIndex, clip_record
from .keeper import ClipKeeper

log = logging.getLogger("edge.clips.store")


class StoreWriter:
    """Open, describe, finish or give up clips; store best shots; ask the keeper for room."""

    def __init__(self, index: ClipIndex, keeper: ClipKeeper) -> None:
        self._index = index
        self._keeper = keeper

    @property
    def paused(self) -> bool:
        return self._keeper.paused

    @property
    def pause_reason(self) -> str:
        return self._keeper.pause_reason

    def begin(self, clip_id: str, camera: str, start_ts: float, time_ok: bool, continues: str | None) -> Path:
        """Index a clip before its first byte is written, so a crash leaves a row to recover."""
        ix = self._index
        with ix.lock:
            ix.db.execute(
                "INSERT INTO clips (id, camera, status, start_ts, end_ts, time_ok, continues)"
                " VALUES (?, ?, 'recording', ?, ?, ?, ?)",
                (clip_id, camera, start_ts, start_ts, int(time_ok), continues))
        return ix.part_path(clip_id)

    def update_events(self, clip_id: str, labels: list[str], events: list[dict[str, Any]],
                      time_ok: bool | None = None) -> None:
        ix = self._index
        with ix.lock:
            ix.db.execute("UPDATE clips SET labels = ?, events = ? WHERE id = ?",
                          (json.dumps(labels), json.dumps(events), clip_id))
            if time_ok is False:  # a clip recovered after a crash must not claim a synced clock either
                ix.db.execute("UPDATE clips SET time_ok = 0 WHERE id = ?", (clip_id,))

    def final_path(self, clip_id: str) -> Path:
        return self._index.final_path(clip_id)

    def add_finished(self, clip_id: str, fin: Finished) -> ClipRecord | None:
        """Hash, sign and chain a clip whose final file is in place; then apply retention."""
        ix = self._index
        path = ix.final_path(clip_id)
        digest = evidence.sha256_bytes(path.read_bytes())
        size = path.stat().st_size
        with ix.lock:
            row = ix.row(clip_id)
            if row is None or ix.signer is None:
                raise RuntimeError(f"clip {clip_id}: no index row or no signing key")
            ix.db.execute("BEGIN IMMEDIATE")
            try:
                seq, prev_hash, brk = self._link()
                record = {
                    "v": 1, "seq": seq, "node": ix.node, "clip": clip_id, "camera": row["camera"],
                    "start_ts": round(fin.start_ts, 3), "end_ts": round(fin.end_ts, 3),
                    "time_ok": bool(fin.time_ok), "duration": round(fin.duration, 3), "bytes": size,
                    "sha256": digest, "labels": sorted(set(fin.labels)),
                    "events": sorted({e["id"] for e in fin.events}), "continues": row["continues"],
                    "prev_hash": prev_hash,
                }
                if brk is not None:
                    record["break"] = brk
                shots = ix.best.for_clip(clip_id)
                if shots:  # best shots that arrived while the clip was open are signed with it
                    record["best"] = [{"id": b["id"], "sha256": b["sha256"]} for b in shots]
                signature = ix.signer.sign(record)
                # the signed record goes beside the file before the index row commits: a lost index loses nothing
                sidecar.write_sidecar(ix.sidecar_path(clip_id), sidecar.sidecar_bytes(
                    record, signature, fin.events, fin.start_mono, fin.end_mono))
                sidecar.write_head(ix.dir, record, signature)
                ix.db.execute(
                    "UPDATE clips SET status='ok', start_ts=?, end_ts=?, start_mono=?, end_mono=?, duration=?,"
                    " time_ok=?, labels=?, events=?, bytes=?, sha256=?, chain_seq=?, record=?, signature=?,"
                    " record_hash=?, born_age=? WHERE id=?",
                    (fin.start_ts, fin.end_ts, fin.start_mono, fin.end_mono, fin.duration, int(fin.time_ok),
                     json.dumps(record["labels"]), json.dumps(fin.events), size, digest, seq,
                     json.dumps(record), signature, evidence.record_hash(record), ix.age_clock.now(), clip_id))
                if shots:
                    ix.best.mark_signed(clip_id)
                if brk is not None:
                    ix.db.execute("DELETE FROM chain_state WHERE k = 'pending_break'")
                    log.warning("clips: chain break recorded in seq %d (%s)", seq, brk["reason"])
                ix.db.execute("COMMIT")
            except BaseException:
                ix.db.execute("ROLLBACK")
                raise
        self._keeper.enforce_retention()
        row = ix.row(clip_id)
        return clip_record(row) if row is not None and row["status"] in LISTED else None

    def _link(self) -> tuple[int, str | None, dict[str, Any] | None]:
        """The next record's seq and prev_hash, and the chain break it must record (None: unbroken).

        The head is the newest signed record known to the index or to ``chain-head.json``
        (which outlives expired clips), so a seq is never signed twice. A head this key
        cannot verify means the key changed; a pending break comes from a lost index.
        """
        ix = self._index
        pub = ix.signer.public_key() if ix.signer is not None else None
        heads = []
        row = ix.db.execute("SELECT record, signature FROM clips WHERE chain_seq IS NOT NULL"
                            " ORDER BY chain_seq DESC LIMIT 1").fetchone()
        if row is not None:
            rec = json.loads(row["record"])
            ok = pub is not None and evidence.signature_ok(pub, rec, row["signature"])  # no key here: not verified
            heads.append(sidecar.Head(rec, row["signature"], ok))
        on_file, _why = sidecar.read_head(ix.dir, pub)
        if on_file is not None:
            heads.append(on_file)
        head = max(heads, key=lambda h: h.seq) if heads else None
        pending = ix.chain_state("pending_break")
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

    def mark_lost(self, clip_id: str, reason: str) -> None:
        """The clip could not be kept (crash, disk full): the row stays so the gap is visible."""
        ix = self._index
        ix.part_path(clip_id).unlink(missing_ok=True)
        ix.tmp_path(clip_id).unlink(missing_ok=True)
        with ix.lock:
            ix.db.execute("UPDATE clips SET status='lost', note=? WHERE id=?", (reason, clip_id))

    def discard(self, clip_id: str) -> None:
        """Drop the files of a clip whose write failed (the caller marks it lost): the store owns its paths."""
        if not CLIP_ID.match(clip_id):
            return
        for path in (self._index.tmp_path(clip_id), self._index.final_path(clip_id)):
            path.unlink(missing_ok=True)

    def set_thumbnail(self, clip_id: str, jpeg: bytes) -> None:
        if not CLIP_ID.match(clip_id):
            return
        write_atomic(self._index.thumb_path(clip_id), jpeg)

    def add_best(self, best_id: str, object_id: str, camera: str, clip_id: str | None, jpeg: bytes,
                 box: tuple[float, float, float, float], wall: float, label: str) -> str | None:
        """``BestShotSink``: one object's best shot, kept and signed with its clip (``bestshots.py``)."""
        ix = self._index
        with ix.lock:
            born = ix.age_clock.now()
        return ix.best.add(best_id, object_id, camera, clip_id, jpeg, box, wall, label, born)

    def check_space(self) -> bool:
        return self._keeper.check_space()

    def pause(self, reason: str, need_bytes: int = 0) -> None:
        self._keeper.pause(reason, need_bytes)
