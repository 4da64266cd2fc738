"""The clip store's retention role: keep the clips within their budget and recording within free space.

Held clips are never deleted. Age is the age clock's (monotonic, persisted), and no clip ages out while the
wall clock is unsynchronised or has just stepped; bytes and free space still apply.
"""

from __future__ import annotations

import logging
import shutil

from .bestshots import LOOSE
from .index import ClipIndex
from .retention import Budget, Kept, choose_expired

log = logging.getLogger("edge.clips.store")


class ClipKeeper:
    """Retention and the free-space floor; pauses recording (events still flow) when the disk is full."""

    def __init__(self, index: ClipIndex, budget: Budget) -> None:
        self._index = index
        self.budget = budget
        self.paused = False
        self.pause_reason = ""
        self._need = 0  # bytes a resumed recording needs beyond the floor (set when a write hit ENOSPC)
        self._age_hold = ""  # why age-based retention is withheld ("" when it is not), logged on change

    def free_bytes(self) -> int:
        return shutil.disk_usage(self._index.root).free

    def enforce_retention(self) -> list[str]:
        """Delete the oldest unheld clips past the budget (their best shots with them); returns their ids."""
        ix = self._index
        with ix.lock:
            now = ix.age_clock.now()
            age_ok, why = ix.age_clock.ageing_allowed()
            rows = ix.db.execute("SELECT id, seq, bytes, born_age, held FROM clips WHERE status='ok'").fetchall()
            shots = ix.best.bytes_by_clip()  # a clip's best shots count with it; clip-less ones on their own
            kept = [Kept(r["id"], r["seq"], r["bytes"] + shots.get(r["id"], 0),
                         now if r["born_age"] is None else r["born_age"], bool(r["held"])) for r in rows]
            victims = choose_expired(kept + ix.best.loose(now), self.free_bytes(), now, self.budget, age_ok)
            loose = [v[len(LOOSE):] for v in victims if v.startswith(LOOSE)]
            victims = [v for v in victims if not v.startswith(LOOSE)]
            if not age_ok and self.budget.max_age_s > 0 and why != self._age_hold:
                log.warning("clips: age-based retention paused (%s); byte and free-space limits still apply", why)
            self._age_hold = why
            removed = []
            for cid in victims:
                # held=0 in the same statement: a `clips hold` from another process wins the race
                cur = ix.db.execute("UPDATE clips SET status='expired' WHERE id=? AND held=0", (cid,))
                if cur.rowcount != 1:
                    continue
                for path in (ix.final_path(cid), ix.thumb_path(cid), ix.sidecar_path(cid)):
                    path.unlink(missing_ok=True)
                removed.append(cid)
            ix.best.delete_for_clips(removed)
            ix.best.delete(loose)
        if loose:
            log.info("retention: removed %d best shot(s) of no clip", len(loose))
        if removed:
            log.info("retention: removed %d clip(s), oldest %s", len(removed), removed[0])
        return removed

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
            held = self._index.count("held = 1 AND status = 'ok'")
            log.error("clips: recording PAUSED: %s (%d held clip(s) kept); events still flow", reason, held)
        self.paused, self.pause_reason = True, reason
