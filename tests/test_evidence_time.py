"""Signed clip records never claim a synchronised clock the node did not have (issue 13.1)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from support.assets import video_path  # noqa: E402
from support.packets import demux, event  # noqa: E402

from edge.clips import evidence  # noqa: E402
from edge.clips.evidence import NodeKey  # noqa: E402
from edge.clips.recorder import _STOP, ClipRecorder  # noqa: E402
from edge.clips.store import ClipStore  # noqa: E402
from edge.node.loops import AnalysisLoop, FrameSlot  # noqa: E402
from edge.types import Event  # noqa: E402


class _Sink:
    def __init__(self) -> None:
        self.events: list[Event] = []

    def submit(self, ev: Event) -> None:
        self.events.append(ev)


def _loop(recorder: ClipRecorder, synced: bool) -> tuple[AnalysisLoop, _Sink]:
    sink = _Sink()
    return AnalysisLoop("cam", FrameSlot(), None, recorder, sink, lambda: synced), sink  # type: ignore[arg-type]


def test_unsynchronised_clock_is_in_the_signed_record(tmp_path: Path) -> None:
    store = ClipStore(tmp_path / "s", NodeKey.load_or_create(tmp_path / "s" / "keys"), node="n1")
    rec = ClipRecorder("cam", store.writer, 1.0, 1.0, 300.0, lossless=True, thumbnails=False)
    rec.start()
    info, pk = demux(video_path("road"))
    rec.start_stream(info)
    loop, sink = _loop(rec, synced=False)
    for p in pk:
        rec.feed(p)
        if not sink.events and p.time >= 2.0:
            loop._route(event("start", p.time))
        elif len(sink.events) == 1 and p.time >= 4.0:
            loop._route(event("end", p.time))
    rec.close(30)
    assert [e.time_ok for e in sink.events] == [False, False]
    cid = sink.events[-1].clip
    assert cid is not None
    meta = store.catalog.meta(cid)
    assert meta is not None and meta["record"]["time_ok"] is False
    assert [e["time_ok"] for e in meta["events"]] == [False, False]
    assert store.catalog.get(cid).time_ok is False
    pub = evidence.parse_public_key(store.catalog.public_key())
    assert evidence.signature_ok(pub, meta["record"], meta["signature"])
    store.close()


def test_clip_recovered_after_a_crash_keeps_time_ok_false(tmp_path: Path) -> None:
    """The index row written before the first byte is what recover() signs: it must say unsynchronised."""
    root = tmp_path / "s"
    store = ClipStore(root, NodeKey.load_or_create(root / "keys"), node="n1")
    rec = ClipRecorder("cam", store.writer, 1.0, 1.0, 300.0, lossless=True, thumbnails=False)
    rec.start()
    info, pk = demux(video_path("road"))
    rec.start_stream(info)
    loop, sink = _loop(rec, synced=False)
    for p in pk:
        rec.feed(p)
        if not sink.events and p.time >= 1.0:
            loop._route(event("start", p.time))
    rec._q.put(_STOP)  # the writer stops after what is queued, the clip left open: a crash mid-clip
    rec._thread.join(30)
    with store.index.lock:
        row = store.index.db.execute("SELECT id, time_ok FROM clips WHERE status='recording'").fetchone()
    assert row is not None and row["time_ok"] == 0
    store.close()
    again = ClipStore(root, NodeKey.load_or_create(root / "keys"), node="n1")
    counts = again.recover()
    assert counts["finalised"] == 1
    meta = again.catalog.meta(row["id"])
    assert meta is not None and meta["record"]["time_ok"] is False
    assert json.loads(json.dumps(meta["record"]))["sha256"] == evidence.sha256_bytes(
        again.catalog.file_path(row["id"]).read_bytes())
    again.close()


def test_synchronised_clock_still_says_so(tmp_path: Path) -> None:
    store = ClipStore(tmp_path / "s", NodeKey.load_or_create(tmp_path / "s" / "keys"), node="n1")
    rec = ClipRecorder("cam", store.writer, 1.0, 1.0, 300.0, lossless=True, thumbnails=False)
    rec.start()
    info, pk = demux(video_path("road"))
    rec.start_stream(info)
    loop, sink = _loop(rec, synced=True)
    for p in pk[: len(pk) // 2]:
        rec.feed(p)
        if not sink.events and p.time >= 1.0:
            loop._route(event("start", p.time))
    loop._route(event("end", pk[len(pk) // 2].time))
    rec.close(30)
    meta = store.catalog.meta(sink.events[-1].clip)
    assert meta["record"]["time_ok"] is True and [e["time_ok"] for e in meta["events"]] == [True, True]
    store.close()


def test_clock_that_cannot_be_told_is_not_synchronised(monkeypatch) -> None:
    """INTERFACE: time_ok is false when the wall clock is not *known* to be synchronised."""
    from edge import clock
    from edge.node import status

    for answer, expected in ((None, False), (False, False), (True, True)):
        monkeypatch.setattr(clock, "clock_synchronised", lambda a=answer: a)
        assert status.ClockCache().ok() is expected
