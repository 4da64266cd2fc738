"""A node's real clip store with clips recorded by the real recorder (signed, chained), for central's tests."""

from __future__ import annotations

from pathlib import Path

from edge.api.auth import hash_line
from edge.api.server import ApiServer
from edge.clips.evidence import NodeKey
from edge.clips.recorder import ClipRecorder
from edge.clips.store import ClipStore

from .apinode import TOKEN
from .assets import video_path
from .clipcat import StillView
from .packets import demux, event


def record_node(root: Path, node: str = "gate-node", video: str = "highway") -> tuple[ClipStore, NodeKey]:
    """Two clips (a car, then a bus) from ``video`` through ClipRecorder into a ClipStore."""
    key = NodeKey.load_or_create(root / "keys")
    store = ClipStore(root, key, node=node)
    recorder = ClipRecorder("cam", store, 2.0, 2.0, 60.0, lossless=True)
    recorder.start()
    info, packets = demux(video_path(video))
    recorder.start_stream(info)
    marks = {6.0: event("start", 6.0, "a"), 9.0: event("end", 9.0, "a"),
             16.0: event("start", 16.0, "b", "bus"), 18.0: event("end", 18.0, "b", "bus")}
    for p in packets:
        recorder.feed(p)
        for t in [t for t in marks if p.time >= t]:
            recorder.on_event(marks.pop(t))
    recorder.close(60)
    return store, key


def serve(store: ClipStore, port: int = 0) -> ApiServer:
    """The node's LAN API over the store, accepting ``TOKEN`` (named "central")."""
    server = ApiServer(store, StillView({}), "127.0.0.1", port, [hash_line(TOKEN, "central")])
    server.start()
    return server


def central_config(tmp: Path, db_url: str) -> Path:
    """``central.toml`` with the database and ``[evidence] path`` under ``tmp``, and ``tmp/token`` beside."""
    cfg = tmp / "central.toml"
    (tmp / "token").write_text(TOKEN + "\n")
    cfg.write_text(f'[database]\nurl = "{db_url}"\n\n[evidence]\npath = "{tmp / "evidence"}"\n')
    return cfg
