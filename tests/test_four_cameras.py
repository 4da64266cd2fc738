"""Four two-stream cameras on one node (#20): one detector shared fairly, every camera analysed and recorded.

Real parts: the RTSP test server (one process, /main 1920x1080 and /sub 640x360 of the road clip, every camera
opening both mounts), the real daemon in-process with the real model, recorder and clip store.
"""

from __future__ import annotations

import time

import pytest
from support.assets import model_path, video_path
from support.rtsp import RtspServer, require_rtsp
from support.streams import make_streams, video_size

from edge.config import parse_config
from edge.node.daemon import Daemon

CAMERAS = [f"cam{i}" for i in range(4)]


@pytest.fixture(scope="module")
def node(tmp_path_factory):
    require_rtsp()
    model = model_path()
    tmp = tmp_path_factory.mktemp("four")
    main_video, sub_video = make_streams(video_path("road"), tmp / "streams")
    server = RtspServer(mounts={"/main": main_video, "/sub": sub_video}).start()
    cfg = parse_config({
        "node": {"id": "four"}, "storage": {"path": str(tmp / "state")}, "api": {"enabled": False},
        "mqtt": {"port": 1, "drain_timeout": 0}, "detector": {"model": str(model)},
        "clips": {"pre_roll": 2, "post_roll": 1, "max_clip": 8},
        "cameras": {name: {"source": server.url_of("/main"), "detect_source": server.url_of("/sub"),
                           "detect_fps": 4, "open_timeout": 10, "read_timeout": 5} for name in CAMERAS},
    })
    daemon = Daemon(cfg)
    daemon.start()
    try:
        yield daemon
    finally:
        daemon.request_stop()
        daemon.shutdown()
        server.kill()


def finished_clips(daemon: Daemon, camera: str) -> list:
    return [c for c in daemon.clip_store.catalog.list_clips(camera=camera) if c.status == "ok"]


def test_four_two_stream_cameras_share_one_detector_and_each_records_the_main_stream(node) -> None:
    daemon = node
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if all(finished_clips(daemon, name) for name in CAMERAS):
            break
        time.sleep(0.5)
    stats = daemon.stats()
    for name in CAMERAS:
        cam = daemon.cameras[name]
        clips = finished_clips(daemon, name)
        assert clips, f"{name}: no finished clip in 90 s ({cam.recorder.stats()})"
        path = daemon.clip_store.catalog.file_path(clips[0].id)
        assert path is not None and video_size(path) == (1920, 1080)  # the main stream, remuxed
        rec = stats["cameras"][name]["recorder"]
        assert rec["packets"] > 100 and rec["dropped"] == 0 and rec["lost"] == 0, rec  # recording never gave way
        assert stats["cameras"][name]["streams"]["detect"]["resolution"] in ([640, 360], (640, 360))
    # one session for all four: each camera's analysis thread called it, and none was starved
    calls = {name: stats["detector"]["cameras"][name]["calls"] for name in CAMERAS}
    assert min(calls.values()) >= 10, calls
    assert min(calls.values()) >= 0.5 * max(calls.values()), calls
    frames = [daemon.cameras[name].analysis.analysed for name in CAMERAS]
    assert min(frames) >= 0.5 * max(frames) and min(frames) >= 10, frames
