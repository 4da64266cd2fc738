"""A node's real clip store with clips recorded by the real recorder (signed, chained), for central's tests."""

from __future__ import annotations

from pathlib import Path

import cv2

from edge.api.auth import hash_line
from edge.api.server import ApiServer
from edge.clips.evidence import NodeKey
from edge.clips.recorder import ClipRecorder
from edge.clips.store import ClipStore

from .apinode import TOKEN
from .assets import video_path
from .clipcat import StillView
from .packets import demux, event


def record_node(root: Path, node: str = "gate-node", video: str = "highway",
                best: bool = False) -> tuple[ClipStore, NodeKey]:
    """Two clips (a car, then a bus) from ``video`` through ClipRecorder into a ClipStore.

    ``best``: at each object's end, while its clip is still open (as the node's best-shot worker does), its
    best shot goes into the store: a JPEG crop of the video's frame at that moment, id = the object's id.
    """
    key = NodeKey.load_or_create(root / "keys")
    store = ClipStore(root, key, node=node)
    recorder = ClipRecorder("cam", store.writer, 2.0, 2.0, 60.0, lossless=True)
    recorder.start()
    info, packets = demux(video_path(video))
    recorder.start_stream(info)
    marks = {6.0: event("start", 6.0, "a"), 9.0: event("end", 9.0, "a"),
             16.0: event("start", 16.0, "b", "bus"), 18.0: event("end", 18.0, "b", "bus")}
    for p in packets:
        recorder.feed(p)
        for t in [t for t in marks if p.time >= t]:
            ev = marks.pop(t)
            clip = recorder.on_event(ev)
            if best and ev.type.value == "end":
                jpeg, box = best_jpeg(video, t)
                store.writer.add_best(ev.id, ev.id, ev.camera, clip, jpeg, box, ev.ts, ev.label)
    recorder.close(60)
    return store, key


def best_jpeg(video: str, t: float, box: tuple[float, float, float, float] = (0.3, 0.3, 0.7, 0.8),
              ) -> tuple[bytes, tuple[float, float, float, float]]:
    """A real picture: the video's frame at ``t`` s, cropped to ``box`` with a 15% margin, as the worker does."""
    from edge.vision.bestshot import crop_box

    cap = cv2.VideoCapture(str(video_path(video)))
    try:
        cap.set(cv2.CAP_PROP_POS_MSEC, t * 1000)
        ok, frame = cap.read()
    finally:
        cap.release()
    assert ok, f"no frame at {t} s in {video}"
    crop, inner = crop_box(frame, box)
    return cv2.imencode(".jpg", crop, [cv2.IMWRITE_JPEG_QUALITY, 88])[1].tobytes(), inner


def serve(store: ClipStore, port: int = 0) -> ApiServer:
    """The node's LAN API over the store, accepting ``TOKEN`` (named "central")."""
    server = ApiServer(store.catalog, StillView({}), "127.0.0.1", port, [hash_line(TOKEN, "central")])
    server.start()
    return server


def central_config(tmp: Path, db_url: str) -> Path:
    """``central.toml`` with the database and ``[evidence] path`` under ``tmp``, and ``tmp/token`` beside."""
    cfg = tmp / "central.toml"
    (tmp / "token").write_text(TOKEN + "\n")
    cfg.write_text(f'[database]\nurl = "{db_url}"\n\n[evidence]\npath = "{tmp / "evidence"}"\n')
    return cfg
