"""How old a clip is, by a clock that cannot jump: monotonic time, persisted across restarts.

``end_ts`` is wall time, and wall time jumps: a Pi boots with its clock days
off and NTP steps it later, so "now - end_ts" could age out every clip at once.
The age clock instead adds ``time.monotonic()`` deltas while the node runs and
keeps its value in ``clips.db``. Downtime is added only when both ends of it are
trusted: the value was saved while the wall clock was synchronised, and the wall
clock is synchronised again now (then wall-now minus wall-at-save is the real
time that passed, whatever the RTC said at boot). A wall step seen while running
moves nothing. Age-based deletion is also withheld while the clock is known to
be unsynchronised and for ``STEP_GRACE_S`` after a step, so retention by age
never acts on a clock that just moved. Byte and free-space limits are unaffected.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable

STEP_S = 30.0  # wall and monotonic time drifting apart by more than this between ticks is a step
STEP_GRACE_S = 600.0  # no age-based deletion this long after a step
SYNC_CACHE_S = 60.0  # the sync state is asked at most this often (its fallbacks may start a subprocess)
PERSIST_S = 60.0  # written at most this often (SD card wear); a crash loses at most this much age: kept longer
MAX_DOWNTIME_S = 10 * 366 * 86400.0  # a larger gap is a bad clock, not downtime

SCHEMA = "CREATE TABLE IF NOT EXISTS age_clock (k TEXT PRIMARY KEY, v REAL NOT NULL)"


def _default_synced() -> bool | None:
    from ..clock import clock_synchronised

    return clock_synchronised()


class AgeClock:
    """Seconds of node time since the first start; persisted in the given SQLite db (caller serialises)."""

    def __init__(self, db: sqlite3.Connection, mono: Callable[[], float] = time.monotonic,
                 wall: Callable[[], float] = time.time,
                 synced: Callable[[], bool | None] = _default_synced) -> None:
        self._db, self._mono, self._wall, self._synced_fn = db, mono, wall, synced
        db.execute(SCHEMA)
        saved = dict(db.execute("SELECT k, v FROM age_clock").fetchall())
        self._base = float(saved.get("age", 0.0))
        self._m0 = mono()
        self._last_m, self._last_w = self._m0, wall()
        # the last wall time known to be right, and the monotonic time it was read at
        trusted = saved.get("wall") is not None and bool(saved.get("synced", 0.0))
        self._anchor: tuple[float, float] | None = (float(saved["wall"]), self._m0) if trusted else None
        self._downtime: float | None = None if trusted else 0.0  # None: to be measured once the clock is synced
        self._stepped_at: float | None = None
        self._sync_value: bool | None = None
        self._sync_checked = -1e18
        self.steps = 0
        self._persisted = -1e18

    def synced(self) -> bool | None:
        m = self._mono()
        if m - self._sync_checked >= SYNC_CACHE_S:
            self._sync_value, self._sync_checked = self._synced_fn(), m
        return self._sync_value

    def now(self) -> float:
        """Advance, persist and return the age clock."""
        m, w = self._mono(), self._wall()
        if abs((w - self._last_w) - (m - self._last_m)) > STEP_S:
            self._stepped_at = m
            self.steps += 1
        self._last_m, self._last_w = m, w
        if self.synced():
            if self._downtime is None and self._anchor is not None:  # both ends trusted: the node was off this long
                gap = (w - self._anchor[0]) - (m - self._anchor[1])
                self._downtime = gap if 0.0 <= gap <= MAX_DOWNTIME_S else 0.0
                self._stepped_at = m  # counting the downtime is itself a jump: let it settle first
            self._anchor = (w, m)
        age = self._base + (m - self._m0) + (self._downtime or 0.0)
        # persist the trusted wall carried forward by monotonic time, so a restart measures its downtime right
        saved_wall, synced = (self._anchor[0] + (m - self._anchor[1]), 1.0) if self._anchor else (w, 0.0)
        if m - self._persisted >= PERSIST_S:
            self._db.execute("INSERT OR REPLACE INTO age_clock (k, v) VALUES ('age', ?), ('wall', ?), ('synced', ?)",
                             (age, saved_wall, synced))
            self._persisted = m
        return age

    def flush(self) -> None:
        """Persist now (at close), whatever ``PERSIST_S`` says."""
        self._persisted = -1e18
        self.now()

    def ageing_allowed(self) -> tuple[bool, str]:
        """May clips be aged out now? Not while unsynchronised or just after a step (the reason says which)."""
        if self.synced() is False:
            return False, "wall clock not synchronised"
        if self._stepped_at is not None and self._mono() - self._stepped_at < STEP_GRACE_S:
            return False, "wall clock stepped recently"
        return True, ""
