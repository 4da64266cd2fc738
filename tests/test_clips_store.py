"""The clip store: crash recovery (kill -9), retention and holds, a full disk, the hold CLI."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from support.assets import video_path  # noqa: E402
from support.packets import demux, event, ffprobe  # noqa: E402

from edge import cli  # noqa: E402
from edge.clips.evidence import NodeKey  # noqa: E402
from edge.clips.recorder import ClipRecorder  # noqa: E402
from edge.clips.retention import Budget, Kept, choose_expired  # noqa: E402
from edge.clips.store import ClipStore  # noqa: E402
from edge.types import Finished  # noqa: E402

HERE = Path(__file__).resolve().parent


def _store(root: Path, **kw) -> ClipStore:
    return ClipStore(root, NodeKey.load_or_create(root / "keys"), node="n1", **kw)


def _fake_clip(store: ClipStore, cid: str, source: Path, wall: float) -> None:
    """A finished clip (a real MP4) indexed the way the recorder does it."""
    store.writer.begin(cid, "cam", wall, True, None)
    shutil.copyfile(source, store.index.final_path(cid))
    store.writer.add_finished(cid, Finished(wall, wall + 10, 10.0, labels=["car"], events=[{"id": cid + "-o"}]))


def test_retention_decision_is_oldest_unheld_first():
    clips = [Kept("a", 1, 100, 1000.0, False), Kept("b", 2, 100, 900.0, True), Kept("c", 3, 100, 2000.0, False),
             Kept("d", 4, 100, 3000.0, False)]
    assert choose_expired(clips, 10**9, 3000.0, Budget(250, 0, 0)) == ["a", "c"]  # b is held
    assert choose_expired(clips, 10**9, 3000.0, Budget(0, 1500, 0)) == ["a"]  # only a is too old (b held)
    assert choose_expired(clips, 50, 3000.0, Budget(0, 0, 200)) == ["a", "c"]  # free-space floor
    assert choose_expired(clips, 10**9, 3000.0, Budget(10, 0, 0)) == ["a", "c", "d"]  # held stays even if over


def test_retention_and_holds_on_disk(tmp_path: Path):
    src = video_path("road")
    size = src.stat().st_size
    store = _store(tmp_path, max_bytes=int(size * 3.5))
    _fake_clip(store, "c1", src, 1000.0)
    _fake_clip(store, "c2", src, 999.0)  # an NTP step back: order is by insertion, not wall time
    assert store.catalog.hold("c2")
    _fake_clip(store, "c3", src, 1002.0)
    assert [c.id for c in store.catalog.list_clips()] == ["c3", "c2", "c1"]
    _fake_clip(store, "c4", src, 1003.0)  # 4 clips > 3.5: the oldest unheld (c1) goes
    assert [c.id for c in store.catalog.list_clips()] == ["c4", "c3", "c2"]
    assert not store.index.final_path("c1").exists() and store.catalog.file_path("c1") is None
    _fake_clip(store, "c5", src, 1004.0)
    assert [c.id for c in store.catalog.list_clips()] == ["c5", "c4", "c2"]  # c3 went, held c2 stays
    assert store.catalog.get("c2").held and store.catalog.file_path("c2").is_file()
    assert [c.id for c in store.catalog.list_clips(limit=2)] == ["c5", "c4"]
    assert [c.id for c in store.catalog.list_clips(after="c4")] == ["c2"]
    assert store.catalog.list_clips(label="person") == []
    assert len(store.catalog.list_clips(label="car", camera="cam")) == 3
    assert store.catalog.file_path("../clips.db") is None and store.catalog.get("nope") is None
    os.symlink("/etc/passwd", store.dir / "evil.mp4")
    assert store.catalog.file_path("evil") is None
    store.close()


def test_hold_and_release_commands(tmp_path: Path):
    store = _store(tmp_path / "storage")
    _fake_clip(store, "c1", video_path("road"), 1000.0)
    cfg = tmp_path / "edgecam.toml"
    cfg.write_text(f'[storage]\npath = "{tmp_path / "storage"}"\n')
    assert cli.main(["clips", "hold", "-c", str(cfg), "c1"]) == 0
    assert store.catalog.get("c1").held
    assert cli.main(["clips", "release", "-c", str(cfg), "c1"]) == 0
    assert not store.catalog.get("c1").held
    assert cli.main(["clips", "hold", "-c", str(cfg), "nope"]) == 1
    store.close()


def test_kill_9_mid_clip_then_recover(tmp_path: Path):
    root = tmp_path / "storage"
    child = subprocess.Popen([sys.executable, str(HERE / "support" / "record_child.py"), str(root),
                              str(video_path("street"))], stdout=subprocess.PIPE, text=True,
                             env={**os.environ, "PYTHONPATH": str(HERE.parent)})
    try:
        line = child.stdout.readline().split()
        assert line and line[0] == "clip", "child did not start a clip"
        cid = line[1]
        part = root / "clips" / f"{cid}.mp4.part"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and (not part.exists() or part.stat().st_size < 200_000):
            time.sleep(0.05)
        assert part.exists(), "no .part file while recording"
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
    (root / "clips" / "junk.mp4.part").write_bytes(b"\x00" * 5000)  # an unreadable leftover
    store = _store(root)
    assert store.catalog.get(cid) is None  # still "recording" in the index until recovered
    counts = store.recover()
    assert counts["finalised"] == 1 and counts["quarantined"] == 1  # the unexplained file is kept aside
    assert (root / "quarantine" / "junk.mp4.part").read_bytes() == b"\x00" * 5000
    rec = store.catalog.get(cid)
    assert rec is not None and rec.status == "ok"
    _assert_index_matches_disk(store)
    errors, facts = ffprobe(store.catalog.file_path(cid))
    assert errors == "" and float(facts["format"]["duration"]) > 1.0
    store.close()


def _assert_index_matches_disk(store: ClipStore) -> None:
    on_disk = sorted(p.name for p in store.dir.iterdir() if p.suffix == ".mp4" or ".part" in p.name)
    indexed = sorted(f"{c.id}.mp4" for c in store.catalog.list_clips(limit=1000) if c.status == "ok")
    assert on_disk == indexed
    for name in on_disk:
        assert ffprobe(store.dir / name)[0] == ""


def _mount_tmpfs(path: Path, size: str) -> bool:
    path.mkdir(parents=True, exist_ok=True)
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], capture_output=True)
    return r.returncode == 0


def test_full_disk_pauses_recording_and_keeps_held_clips(tmp_path: Path):
    root = tmp_path / "small"
    if not _mount_tmpfs(root, "6m"):
        pytest.skip("cannot mount a tmpfs here (not root?)")
    try:
        _full_disk(root)
    finally:
        subprocess.run(["umount", "-l", str(root)], capture_output=True)


def _full_disk(root: Path) -> None:
    store = _store(root)
    _fake_clip(store, "held1", video_path("road"), 1000.0)
    assert store.catalog.hold("held1")
    free = store.keeper.free_bytes()
    filler = root / "filler"
    filler.write_bytes(b"\x00" * max(0, free - 700_000))  # leave ~0.7 MB: one clip cannot fit
    info, pk = demux(video_path("highway"))
    rec = ClipRecorder("cam", store.writer, 2.0, 2.0, 300.0, lossless=True)
    rec.start()
    rec.start_stream(info)
    ids = []
    for p in pk:
        rec.feed(p)
        if not ids and p.time >= 3.0:
            ids.append(rec.on_event(event("start", p.time)))
    deadline = time.monotonic() + 30
    while not store.keeper.paused and time.monotonic() < deadline:
        time.sleep(0.05)
    assert store.keeper.paused and rec.stats().paused, "recording must pause on a full disk"
    assert rec.on_event(event("start", 30.0, "o2")) is None  # no clip while paused; events still flow
    assert rec._writer_alive()
    assert store.catalog.file_path("held1") is not None and ffprobe(store.catalog.file_path("held1"))[0] == ""
    assert not list(store.dir.glob("*.part"))  # nothing half-written kept
    filler.unlink()
    assert store.check_space() and not store.keeper.paused
    rec.close(30)
    assert store.catalog.get(ids[0]).status == "lost"
    store.close()


def test_free_space_floor_pauses_recording(tmp_path: Path):
    """Runs everywhere (no mount needed): a floor above the disk's free space behaves like a full disk."""
    store = _store(tmp_path / "storage")
    _fake_clip(store, "held1", video_path("road"), 1000.0)
    store.catalog.hold("held1")
    store.keeper.budget = type(store.keeper.budget)(0, 0, store.keeper.free_bytes() + 10**12)
    info, pk = demux(video_path("road"))
    rec = ClipRecorder("cam", store.writer, 2.0, 2.0, 300.0, lossless=True)
    rec.start()
    rec.start_stream(info)
    first = None
    for p in pk:
        rec.feed(p)
        if first is None and p.time >= 3.0:
            first = rec.on_event(event("start", p.time))
    deadline = time.monotonic() + 30
    while not store.keeper.paused and time.monotonic() < deadline:
        time.sleep(0.05)
    assert store.keeper.paused and "floor" in store.keeper.pause_reason
    assert rec.on_event(event("start", 15.0, "o2")) is None
    rec.close(30)
    assert store.catalog.get(first).status == "lost" and store.catalog.file_path("held1") is not None
    assert not list(store.dir.glob("*.part")) and store.stats().paused
    store.close()


def test_discard_drops_only_the_failed_clips_files(tmp_path: Path):
    """The recorder gives up a clip through the store (ClipWriter.discard), which alone knows the paths."""
    store = _store(tmp_path)
    for cid in ("c1", "c2"):
        store.writer.begin(cid, "cam", 1000.0, True, None)
        store.index.tmp_path(cid).write_bytes(b"half")
        store.index.final_path(cid).write_bytes(b"mp4")
    store.writer.discard("c1")
    store.writer.discard("../c2")  # not a clip id: nothing outside the store is touched, nothing of c2 either
    assert not store.index.tmp_path("c1").exists() and not store.index.final_path("c1").exists()
    assert store.index.tmp_path("c2").read_bytes() == b"half" and store.index.final_path("c2").read_bytes() == b"mp4"
    store.close()
