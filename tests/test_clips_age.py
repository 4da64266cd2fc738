"""Clip retention by age uses a clock that cannot jump: a 40-day wall-clock step deletes nothing (#14.6)."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from support.assets import video_path  # noqa: E402

from edge.clips.evidence import NodeKey  # noqa: E402
from edge.clips.store import ClipStore  # noqa: E402
from edge.types import Finished  # noqa: E402

DAY = 86400.0
MAX_AGE = 30 * DAY


class FakeClock:
    """Monotonic time, wall time and sync state the test moves by hand."""

    def __init__(self) -> None:
        self.m, self.w, self.sync = 100.0, 1_790_000_000.0, True

    def fns(self) -> dict:
        return {"mono": lambda: self.m, "wall": lambda: self.w, "synced": lambda: self.sync}

    def run(self, seconds: float) -> None:
        self.m += seconds
        self.w += seconds

    def reboot(self, wall: float, sync: bool) -> None:
        self.m, self.w, self.sync = 5.0, wall, sync


def _store(root: Path, clock: FakeClock, **kw) -> ClipStore:
    return ClipStore(root, NodeKey.load_or_create(root / "keys"), node="n1", max_age_s=MAX_AGE,
                     clock=clock.fns(), **kw)


def _clips(store: ClipStore, clock: FakeClock, n: int) -> None:
    for _ in range(n):
        cid = f"c{store.index.count('1') + 1}"
        store.writer.begin(cid, "cam", clock.w, True, None)
        shutil.copyfile(video_path("road"), store.index.final_path(cid))
        store.writer.add_finished(cid, Finished(clock.w, clock.w + 10, 10.0))
        clock.run(60)


def test_forty_day_forward_step_deletes_nothing_by_age(tmp_path: Path):
    clock = FakeClock()
    store = _store(tmp_path, clock)
    _clips(store, clock, 5)
    clock.w += 40 * DAY  # NTP steps the wall clock 40 days forward
    clock.run(1)
    assert store.enforce_retention() == []
    clock.run(11 * 60)  # past the step's grace period: age is still minutes, not 40 days
    assert store.enforce_retention() == [] and len(store.catalog.list_clips()) == 5
    clock.run(MAX_AGE)  # 30 days of real (monotonic) time later they do age out, oldest first
    assert store.enforce_retention() == ["c1", "c2", "c3", "c4", "c5"]
    store.close()


def test_boot_with_rtc_40_days_slow_then_ntp(tmp_path: Path):
    clock = FakeClock()
    store = _store(tmp_path, clock)
    _clips(store, clock, 3)
    true_now = clock.w
    store.close()
    clock.reboot(true_now - 40 * DAY + 30, sync=False)  # one minute of real downtime, RTC 40 days slow
    store = _store(tmp_path, clock)
    assert store.enforce_retention() == []
    clock.m += 61
    clock.w, clock.sync = true_now + 91, True  # NTP steps the clock to the true time
    assert store.enforce_retention() == []
    clock.run(11 * 60)
    assert store.enforce_retention() == [] and len(store.catalog.list_clips()) == 3
    store.close()


def test_real_downtime_counts_once_both_ends_are_synchronised(tmp_path: Path):
    clock = FakeClock()
    store = _store(tmp_path, clock)
    _clips(store, clock, 2)
    assert store.catalog.hold("c2")
    off = clock.w
    store.close()
    clock.reboot(off + 31 * DAY, sync=True)  # really off for 31 days
    store = _store(tmp_path, clock)
    assert store.enforce_retention() == []  # the downtime was just counted: let it settle
    clock.run(11 * 60)
    assert store.enforce_retention() == ["c1"]  # c2 is held
    store.close()


def test_unsynchronised_clock_pauses_ageing_but_not_byte_limits(tmp_path: Path):
    clock = FakeClock()
    clock.sync = False
    store = _store(tmp_path, clock)
    _clips(store, clock, 3)
    clock.run(MAX_AGE + DAY)  # old enough by the age clock, but the wall clock is not trusted
    assert store.enforce_retention() == []
    store.keeper.budget = type(store.keeper.budget)(store.stats().bytes - 1, MAX_AGE, 0)
    assert store.enforce_retention() == ["c1"]  # the byte limit still applies
    clock.sync = True
    clock.run(61)
    assert store.enforce_retention() == ["c2", "c3"]
    store.close()


def test_age_clock_carries_trusted_time_across_an_unsynchronised_run(tmp_path: Path):
    """Downtime is measured from the last trusted wall time carried forward, never counted twice."""
    import sqlite3

    from edge.clips.ageclock import AgeClock

    clock = FakeClock()
    db = sqlite3.connect(tmp_path / "age.db", isolation_level=None)
    w0 = clock.w
    ac = AgeClock(db, **clock.fns())
    assert ac.now() == 0.0
    clock.run(100)
    ac.flush()
    clock.reboot(w0 - 40 * DAY, sync=False)  # off 0 s, but the RTC says 40 days ago
    ac = AgeClock(db, **clock.fns())
    clock.run(1000)
    ac.flush()
    assert ac.now() == 1100.0  # no downtime counted while it cannot be trusted
    clock.reboot(w0 + 100 + 1000 + 500, sync=True)  # really off for 500 s, clock right again
    ac = AgeClock(db, **clock.fns())
    assert ac.now() == 1600.0
    assert ac.ageing_allowed() == (False, "wall clock stepped recently")  # counting downtime is a jump
    clock.run(601)
    assert ac.now() == 2201.0 and ac.ageing_allowed() == (True, "")
    db.close()
