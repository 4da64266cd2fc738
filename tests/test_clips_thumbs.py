"""Thumbnails tell clips apart (#13.2): the analysed frame of the first detection with its box drawn,
not the first pre-roll frame."""

from __future__ import annotations

import sys
from pathlib import Path

import av
import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from support.assets import video_path  # noqa: E402
from support.packets import demux  # noqa: E402

from edge.clips.evidence import NodeKey  # noqa: E402
from edge.clips.recorder import ClipRecorder  # noqa: E402
from edge.clips.store import ClipStore  # noqa: E402
from edge.clips.thumbs import BOX_BGR  # noqa: E402
from edge.node.loops import AnalysisLoop, FrameSlot  # noqa: E402
from edge.types import Event, EventType  # noqa: E402

BOX = (0.30, 0.35, 0.55, 0.80)


def _frames(path: Path) -> list[tuple[float, np.ndarray]]:
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        return [(float(f.time), f.to_ndarray(format="bgr24")) for f in c.decode(s)]


def _ev(kind: str, t: float, oid: str = "o1", box=BOX) -> Event:
    return Event(id=oid, type=EventType(kind), camera="cam", label="car", score=0.9, ts=1.8e9 + t, time=t, box=box)


class _Sink:
    def submit(self, ev: Event) -> None:
        pass


def test_thumbnail_is_the_first_detection_with_its_box(tmp_path: Path):
    video = video_path("road")
    frames = _frames(video)
    store = ClipStore(tmp_path / "s", NodeKey.load_or_create(tmp_path / "s" / "keys"), node="n1")
    rec = ClipRecorder("cam", store.writer, 3.0, 1.0, 300.0, lossless=True)
    rec.start()
    loop = AnalysisLoop("cam", FrameSlot(), None, rec, _Sink(), lambda: True)  # type: ignore[arg-type]
    info, pk = demux(video)
    rec.start_stream(info)
    shown = None
    for p in pk:
        rec.feed(p)
        if shown is None and p.time >= 7.0:
            shown = next(img for t, img in frames if t >= p.time - 0.02)  # what analysis decoded at that moment
            loop._route(_ev("start", p.time), shown)
            loop._route(_ev("start", p.time + 0.1, "o2", (0.0, 0.0, 0.1, 0.1)), frames[0][1])  # not the first
        elif shown is not None and 10.0 <= p.time < 10.1:
            loop._route(_ev("end", p.time), frames[-1][1])
    rec.close(30)
    cid = store.catalog.list_clips(limit=1)[0].id
    thumb = cv2.imdecode(np.frombuffer(store.catalog.thumbnail_path(cid).read_bytes(), np.uint8), cv2.IMREAD_COLOR)
    h, w = thumb.shape[:2]
    at_event = cv2.resize(shown, (w, h), interpolation=cv2.INTER_AREA).astype(np.int16)
    with av.open(str(store.catalog.file_path(cid))) as c:
        first = next(c.decode(video=0)).to_ndarray(format="bgr24")
    first = cv2.resize(first, (w, h), interpolation=cv2.INTER_AREA).astype(np.int16)
    assert np.abs(at_event - first).mean() > 5, "the test needs a video that moves between pre-roll and event"
    outside = np.ones((h, w), bool)
    outside[int(BOX[1] * h) - 30:int(BOX[3] * h) + 30, int(BOX[0] * w) - 30:int(BOX[2] * w) + 30] = False
    diff_event = np.abs(thumb.astype(np.int16) - at_event)[outside].mean()
    diff_first = np.abs(thumb.astype(np.int16) - first)[outside].mean()
    assert diff_event < 4 < diff_first, (diff_event, diff_first)  # the event's frame (JPEG noise), not pre-roll
    edge = thumb[int(BOX[1] * h) + 10:int(BOX[3] * h) - 10, int(BOX[0] * w) - 1:int(BOX[0] * w) + 2]
    amber = np.abs(edge.astype(np.int16) - np.array(BOX_BGR)).sum(axis=2) < 90
    assert amber.any(axis=1).mean() > 0.9  # the box's left edge is drawn, row after row
    store.close()


def test_clip_without_a_detection_frame_falls_back_to_its_first_frame(tmp_path: Path):
    store = ClipStore(tmp_path / "s", NodeKey.load_or_create(tmp_path / "s" / "keys"), node="n1")
    rec = ClipRecorder("cam", store.writer, 1.0, 1.0, 300.0, lossless=True)
    rec.start()
    info, pk = demux(video_path("road"))
    rec.start_stream(info)
    cid = None
    for p in pk[:120]:
        rec.feed(p)
        if cid is None and p.time >= 2.0:
            cid = rec.on_event(_ev("start", p.time))  # e.g. an event flushed at end of file: no frame
    rec.close(30)
    assert store.catalog.thumbnail_path(cid).read_bytes()[:2] == b"\xff\xd8"
    store.close()
