"""Two streams per camera (#20): the main stream is recorded (never decoded), the sub stream analysed.

Real parts: two gst-rtsp-server processes (one per stream, so a test can kill one alone) serving a 1920x1080
main and a 640x360 sub made from the road clip, the real model, the real recorder and clip store, the daemon
in-process (its own status is what the test reads).
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path

import pytest
from support.assets import model_path, video_path
from support.rtsp import RtspServer, require_rtsp
from support.streams import make_streams, video_size

from edge.config import ConfigError, parse_config
from edge.node.daemon import Daemon
from edge.node.status import health_body
from edge.types import CameraState, Event, EventType


@pytest.fixture(scope="module")
def streams(tmp_path_factory) -> tuple[Path, Path]:
    return make_streams(video_path("road"), tmp_path_factory.mktemp("streams"))


class Tap:
    """Sits between the analysis loop and the outbox: every event, as the outbox got it."""

    def __init__(self, sink) -> None:
        self.sink = sink
        self.events: list[tuple[float, Event]] = []
        self._lock = threading.Lock()

    def submit(self, event: Event) -> None:
        with self._lock:
            self.events.append((time.monotonic(), event))
        self.sink.submit(event)

    def since(self, mono: float) -> list[Event]:
        with self._lock:
            return [e for t, e in self.events if t >= mono]


def wait_until(cond, timeout: float, what: str, step: float = 0.2) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return
        time.sleep(step)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


@pytest.fixture
def node(tmp_path: Path, streams):
    """Main and sub each on their own server; a daemon whose camera records main and analyses sub."""
    require_rtsp()
    model = model_path()
    main_video, sub_video = streams
    main = RtspServer(mounts={"/main": main_video}).start()
    sub = RtspServer(mounts={"/sub": sub_video}).start()
    cfg = parse_config({
        "node": {"id": "two"}, "storage": {"path": str(tmp_path / "state")}, "api": {"enabled": False},
        "mqtt": {"port": 1, "drain_timeout": 0}, "detector": {"model": str(model)},
        "clips": {"pre_roll": 2, "post_roll": 2, "max_clip": 60},
        "cameras": {"road": {"source": main.url, "detect_source": sub.url, "detect_fps": 5, "open_timeout": 10,
                             "read_timeout": 2, "reconnect_max": 2}},
    })
    daemon = Daemon(cfg)
    daemon.start()
    cam = daemon.cameras["road"]
    tap = Tap(cam.analysis.events)
    cam.analysis.events = tap
    try:
        yield daemon, main, sub, tap
    finally:
        daemon.request_stop()
        daemon.shutdown()
        main.kill()
        sub.kill()


def camera_health(daemon: Daemon) -> dict:
    return health_body(daemon.status())["cameras"]["road"]


def test_clips_are_the_main_stream_events_come_from_the_sub_and_recording_outlives_the_sub(node) -> None:
    daemon, main, sub, tap = node
    cam = daemon.cameras["road"]
    assert cam.record is not None and cam.recorder is not None
    wait_until(lambda: cam.recorder.stats()["recording"], 30, "a clip being recorded")
    # analysis runs on the sub stream: every analysed frame is 640x360; the record loop decodes nothing
    assert cam.analysis.latest is not None and cam.analysis.latest.image.shape == (360, 640, 3)
    health = camera_health(daemon)
    assert health["streams"]["record"]["resolution"] == [1920, 1080] or \
        tuple(health["streams"]["record"]["resolution"]) == (1920, 1080)
    assert tuple(health["streams"]["detect"]["resolution"]) == (640, 360)
    assert health["streams"]["record"]["decoder"] == "none" and health["blind"] is False
    assert [e for e in tap.since(0) if e.type is EventType.START], "no event from the sub stream"

    # still_at: the record stream's full size for a recent moment, None for one older than the ring
    still = cam.recorder.still_at(time.monotonic() - 0.3)
    assert still is not None and still.shape == (1080, 1920, 3)
    assert cam.recorder.still_at(time.monotonic() - 120) is None

    # the sub stream's server goes away: the camera is blind, its tracks end, the open clip finishes with its
    # post-roll while recording goes on (the record stream's packets keep arriving)
    open_clip = cam.recorder.stats()["recording"]
    packets_before = cam.recorder.stats()["packets"]
    sub.kill()
    wait_until(lambda: camera_health(daemon)["blind"], 20, "status to say the camera is blind")
    health = camera_health(daemon)
    assert health["streams"]["detect"]["state"] == "reconnecting"
    assert health["streams"]["record"]["state"] == "running"
    wait_until(lambda: cam.recorder.stats()["recording"] != open_clip, 20, "the open clip to finish")
    assert cam.recorder.stats()["packets"] > packets_before + 24  # a second of main stream went on
    record = daemon.clip_store.get(open_clip)
    assert record is not None and record.status == "ok" and record.bytes > 0
    path = daemon.clip_store.file_path(open_clip)
    assert path is not None and video_size(path) == (1920, 1080)
    # the first clip began with the record stream itself (an event came ~1 s after start: no more pre-roll
    # existed), so its first event lies inside it
    meta = daemon.clip_store.meta(open_clip)
    assert meta is not None and min(e["time"] for e in meta["events"]) > 0

    # the sub comes back: analysis resumes, the camera sees again, and a new clip opens on the first event
    sub.start()
    wait_until(lambda: not camera_health(daemon)["blind"], 30, "the detect stream back")
    wait_until(lambda: cam.recorder.stats()["recording"] not in (None, open_clip), 30, "a clip after the sub is back")
    second = cam.recorder.stats()["recording"]
    sub.kill()  # its tracks end; the clip finishes with its post-roll
    wait_until(lambda: daemon.clip_store.get(second) is not None, 20, "the second clip to finish")
    # the ring had many seconds of the main stream: the event, translated from the sub's clock to the main's
    # through arrival time, is covered by the 2 s pre-roll
    meta = daemon.clip_store.meta(second)
    assert meta is not None
    first = min(e["time"] for e in meta["events"])
    assert first >= 1.5, f"first event {first:.2f} s into the clip: pre-roll did not cover it"


def test_record_stream_down_keeps_events_flowing_with_no_clip(node, caplog) -> None:
    daemon, main, sub, tap = node
    cam = daemon.cameras["road"]
    assert cam.record is not None and cam.recorder is not None
    wait_until(lambda: cam.recorder.stats()["recording"], 30, "a clip being recorded")
    with caplog.at_level(logging.WARNING, logger="edge.clips.recorder"):
        main.kill()
        wait_until(lambda: camera_health(daemon).get("record_down"), 20, "status to say the record stream is down")
        down = time.monotonic()
        assert cam.record.state is CameraState.RECONNECTING
        assert not camera_health(daemon)["blind"]
        assert cam.recorder.stats()["streaming"] is False and cam.recorder.stats()["down"]
        # tracks that start while the record stream is down end with clip = null; events keep coming
        wait_until(lambda: any(e.type is EventType.START for e in tap.since(down)), 40, "a start with main down")
        started_after = {e.id for e in tap.since(down) if e.type is EventType.START}
        wait_until(lambda: any(e.id in started_after for e in tap.since(down) if e.type is EventType.END), 40,
                   "a track that began while the record stream was down to end")
        ended = [e for e in tap.since(down) if e.type is EventType.END and e.id in started_after]
        assert ended and all(e.clip is None for e in ended)
    assert any("record stream down" in r.getMessage() for r in caplog.records)
    assert camera_health(daemon)["streams"]["detect"]["state"] == "running"


def test_a_bad_detect_source_is_one_line_naming_the_key() -> None:
    for bad in ("rstp://cam/sub", "", "usb:/dev/video0", "rtsp://cam/main"):
        with pytest.raises(ConfigError) as err:
            parse_config({"cameras": {"gate": {"source": "rtsp://cam/main", "detect_source": bad}}})
        line = str(err.value)
        assert "\n" not in line and line.startswith("cameras.gate.detect_source: "), line
    ok = parse_config({"cameras": {"gate": {"source": "rtsp://cam/main", "detect_source": "rtsp://cam/sub"}}})
    assert ok.cameras["gate"].detect_source == "rtsp://cam/sub"
    assert parse_config({"cameras": {"gate": {"source": "a.mp4"}}}).cameras["gate"].detect_source is None
