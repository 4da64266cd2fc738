"""Crash recovery for the clip store: make index == disk at start, losing nothing that was captured.

Signed records beside the files are adopted first (a missing, emptied or corrupt index is rebuilt from them),
then half-finished clips are finalised, then whatever is left unexplained is quarantined, never deleted.
Rows whose file is gone are marked ``lost`` and kept, so the gap stays visible.
"""

from __future__ import annotations

import json
import logging

from ..fsutil import write_atomic
from ..types import Finished
from . import evidence, sidecar
from .index import CLIP_ID, ClipIndex
from .mux import finalise, probe_duration
from .writer import StoreWriter

log = logging.getLogger("edge.clips.store")


class ClipRecovery:
    """One pass at start (``run``); the writer finishes the clips a crash left half-written."""

    def __init__(self, index: ClipIndex, writer: StoreWriter) -> None:
        self._index = index
        self._writer = writer

    def run(self) -> dict[str, int]:
        """Returns counts of what was done (finalised, removed, lost, rebuilt, quarantined, best_*)."""
        ix = self._index
        counts = {"finalised": 0, "removed": 0, "lost": 0, "rebuilt": 0, "quarantined": 0}
        lost_reason = self._index_loss()
        claimed = max([sidecar.any_seq(p) for p in ix.dir.glob(f"*{sidecar.SIDECAR_SUFFIX}")] or [0])
        self._adopt_sidecars(counts)
        if lost_reason:
            self._after_lost_index(lost_reason, claimed, counts)
        with ix.lock:
            rows = ix.db.execute("SELECT * FROM clips WHERE status IN ('recording', 'ok')").fetchall()
        for row in rows:
            cid, part, final = row["id"], ix.part_path(row["id"]), ix.final_path(row["id"])
            if row["status"] == "ok":
                if not final.is_file():
                    self._writer.mark_lost(cid, "file missing at start")
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
                self._writer.add_finished(cid, fin)
                log.warning("clip %s: recovered after a crash (%.1f s kept)", cid, dur)
                counts["finalised"] += 1
            else:
                final.unlink(missing_ok=True)
                self._writer.mark_lost(cid, "unreadable after a crash")
                log.warning("clip %s: nothing playable after a crash, removed and marked lost", cid)
                counts["lost"] += 1
        self._backfill()
        removed, quarantined = self._sweep_strays()
        counts["removed"] += removed
        counts["quarantined"] += quarantined
        if ix.signer is not None:  # after the clips: a best shot's clip is known by now
            with ix.lock:
                now = ix.age_clock.now()
            for k, n in ix.best.recover([ix.signer.public_key(), *ix.signer.retired], now).items():
                if n:
                    counts[f"best_{k}"] = n
        return counts

    def _index_loss(self) -> str:
        """Why the index cannot be trusted to know the chain ("" when it can): corrupt, missing or emptied."""
        ix = self._index
        if ix.set_aside is not None:
            return f"clip index was corrupt ({ix.set_aside[1]}); set aside as {ix.set_aside[0].name}"
        has_files = any(True for _ in ix.dir.iterdir())
        if not has_files:
            return ""
        if ix.created:
            return "clip index was missing"
        if ix.count("1") == 0:
            return "clip index was empty"
        return ""

    def _adopt_sidecars(self, counts: dict[str, int]) -> None:
        """Index every clip whose signed record verifies and matches its file but has no 'ok' row."""
        ix = self._index
        pub = [ix.signer.public_key(), *ix.signer.retired] if ix.signer is not None else []
        found = []
        for meta in ix.dir.glob(f"*{sidecar.SIDECAR_SUFFIX}"):
            cid = meta.name[: -len(sidecar.SIDECAR_SUFFIX)]
            if not CLIP_ID.match(cid):
                self._quarantine_clip(cid, "not a clip id", counts)
                continue
            row = ix.row(cid)
            if row is not None and row["status"] == "ok" and row["chain_seq"] is not None:
                continue  # indexed already
            if row is not None and row["status"] == "expired":
                continue  # retention chose it; the sweep finishes the removal
            adopted, why = sidecar.check_sidecar(ix.dir, cid, pub)
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
        ix = self._index
        r = a.record
        labels = [str(x) for x in r.get("labels") or []]
        held = int(ix.held_path(a.clip_id).exists())
        with ix.lock:
            if ix.db.execute("SELECT 1 FROM clips WHERE chain_seq = ? AND id != ?",
                             (r["seq"], a.clip_id)).fetchone():
                return False
            ix.db.execute("BEGIN IMMEDIATE")
            try:
                ix.db.execute("DELETE FROM clips WHERE id = ?", (a.clip_id,))
                ix.db.execute(
                    "INSERT INTO clips (id, camera, status, start_ts, end_ts, start_mono, end_mono, duration, time_ok,"
                    " labels, events, bytes, sha256, held, continues, chain_seq, record, signature, record_hash, note,"
                    " born_age) VALUES (?, ?, 'ok', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (a.clip_id, str(r.get("camera", "")), float(r.get("start_ts", 0)), float(r.get("end_ts", 0)),
                     a.start_mono, a.end_mono, float(r.get("duration", 0)), int(bool(r.get("time_ok", True))),
                     json.dumps(labels), json.dumps(a.events), int(r["bytes"]), str(r["sha256"]), held,
                     r.get("continues"), r["seq"], json.dumps(r), a.signature, evidence.record_hash(r),
                     "re-indexed from its signed record", ix.age_clock.now()))
                ix.db.execute("COMMIT")
            except BaseException:
                ix.db.execute("ROLLBACK")
                raise
        return True

    def _after_lost_index(self, reason: str, claimed: int, counts: dict[str, int]) -> None:
        """Continue the chain from the head file when it verifies; otherwise the next record names a break."""
        ix = self._index
        pub = ix.signer.public_key() if ix.signer is not None else None
        head, why = sidecar.read_head(ix.dir, pub)
        with ix.lock:
            row = ix.db.execute("SELECT chain_seq, record_hash FROM clips WHERE chain_seq IS NOT NULL"
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
            ix.set_chain_state("pending_break", pending)
        log.warning("clips: %s; index rebuilt (%d clip(s), %d quarantined); %s: the next record notes a chain"
                    " break", reason, counts["rebuilt"], counts["quarantined"], why)

    def _backfill(self) -> None:
        """Indexes from before sidecars existed: write each signed clip's sidecar, hold marker and the head."""
        ix = self._index
        with ix.lock:
            rows = ix.db.execute("SELECT id, record, signature, events, start_mono, end_mono, held FROM clips"
                                 " WHERE status='ok' AND record IS NOT NULL").fetchall()
            top = ix.db.execute("SELECT record, signature FROM clips WHERE chain_seq IS NOT NULL"
                                " ORDER BY chain_seq DESC LIMIT 1").fetchone()
        for r in rows:
            if not ix.sidecar_path(r["id"]).exists():
                sidecar.write_sidecar(ix.sidecar_path(r["id"]), sidecar.sidecar_bytes(
                    json.loads(r["record"]), r["signature"], json.loads(r["events"]), r["start_mono"], r["end_mono"]))
            if r["held"] and not ix.held_path(r["id"]).exists():
                write_atomic(ix.held_path(r["id"]), b"")
        if top is not None and not (ix.dir / sidecar.HEAD_FILE).exists():
            sidecar.write_head(ix.dir, json.loads(top["record"]), top["signature"])

    def _quarantine_clip(self, cid: str, reason: str, counts: dict[str, int]) -> None:
        for suffix in (".mp4", ".jpg", sidecar.SIDECAR_SUFFIX, sidecar.HELD_SUFFIX):
            path = self._index.dir / f"{cid}{suffix}"
            if path.exists() or path.is_symlink():
                sidecar.quarantine(self._index.root, path, reason)
                counts["quarantined"] += 1

    def _sweep_strays(self) -> tuple[int, int]:
        """Files the index does not explain: our own half-written temp copies go, anything else is quarantined."""
        ix = self._index
        with ix.lock:
            status = {r["id"]: r["status"] for r in ix.db.execute("SELECT id, status FROM clips")}
        kinds = (".mp4", ".jpg", sidecar.SIDECAR_SUFFIX, sidecar.HELD_SUFFIX)
        removed = quarantined = 0
        for p in sorted(ix.dir.iterdir()):
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
            sidecar.quarantine(ix.root, p, "not in the index")
            quarantined += 1
        return removed, quarantined
