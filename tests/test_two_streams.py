"""Two streams per camera (#20): the main stream is recorded (never decoded), the sub stream analysed.

Real parts: two gst-rtsp-server processes (one per stream, so a test can kill one alone) serving a 1920x1080
main and a 640x360 sub made from the road clip, the real model, the real recorder and clip store, the daemon
in-process (its own status is what the test reads).
"""

from __future__ import annotations

import json
import logging
import subprocess
import threading
import time
from pathlib import Path

import pytest
from support.assets import model_path, video_path
from support.rtsp import RtspServer, require_rtsp
from support.streams import GOP, make_streams, video_size

from edge.central.messages import stats_summary
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
    wait_until(lambda: cam.recorder.stats().recording, 30, "a clip being recorded")
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
    open_clip = cam.recorder.stats().recording
    packets_before = cam.recorder.stats().packets
    sub.kill()
    wait_until(lambda: camera_health(daemon)["blind"], 20, "status to say the camera is blind")
    health = camera_health(daemon)
    assert health["streams"]["detect"]["state"] == "reconnecting"
    assert health["streams"]["record"]["state"] == "running"
    # the station's fleet view reads the same from the stats payload the node publishes
    assert stats_summary(json.dumps(daemon.stats()))["cameras"] == {"road": ["blind"]}
    wait_until(lambda: cam.recorder.stats().recording != open_clip, 20, "the open clip to finish")
    assert cam.recorder.stats().packets > packets_before + 24  # a second of main stream went on
    record = daemon.clip_store.catalog.get(open_clip)
    assert record is not None and record.status == "ok" and record.bytes > 0
    path = daemon.clip_store.catalog.file_path(open_clip)
    assert path is not None and video_size(path) == (1920, 1080)
    # the ended tracks' best shots were cut from 1080p record-stream stills, and the stats payload says so
    wait_until(lambda: daemon.stats()["best_shots"]["from_record_stream"] >= 1, 20, "a record-stream best shot")
    shots = daemon.stats()["best_shots"]
    assert shots["stored"] >= shots["from_record_stream"] >= 1 and shots["still_cpu_s"] > 0
    # the sub comes back: analysis resumes, the camera sees again, and the next clip opens with its full
    # pre-roll (2 s) before its first event: the event's detect-stream time was carried over to the record
    # stream by arrival time (the first clip could not have it: it opened in the stream's first seconds)
    sub.start()
    wait_until(lambda: not camera_health(daemon)["blind"], 30, "the detect stream back")
    wait_until(lambda: cam.recorder.stats().recording not in (None, open_clip), 30, "a clip after the return")
    second = cam.recorder.stats().recording
    sub.kill()  # its tracks end; the clip finishes with its post-roll
    wait_until(lambda: daemon.clip_store.catalog.get(second) is not None, 20, "the second clip to finish")
    record, meta = daemon.clip_store.catalog.get(second), daemon.clip_store.catalog.meta(second)
    assert record is not None and meta is not None and meta["events"]
    covered = min(e["ts"] for e in meta["events"]) - record.start_ts  # wall clock: first event - first packet
    assert covered >= 1.5, f"the clip starts {covered:.2f} s before its first event: pre-roll is 2 s"


def test_record_stream_down_keeps_events_flowing_with_no_clip(node, caplog) -> None:
    daemon, main, sub, tap = node
    cam = daemon.cameras["road"]
    assert cam.record is not None and cam.recorder is not None
    wait_until(lambda: cam.recorder.stats().recording, 30, "a clip being recorded")
    with caplog.at_level(logging.WARNING, logger="edge.clips.recorder"):
        main.kill()
        wait_until(lambda: camera_health(daemon).get("record_down"), 20, "status to say the record stream is down")
        down = time.monotonic()
        assert cam.record.state is CameraState.RECONNECTING
        assert not camera_health(daemon)["blind"]
        assert cam.recorder.stats().streaming is False and cam.recorder.stats().down
        assert stats_summary(json.dumps(daemon.stats()))["cameras"] == {"road": ["no clips"]}  # the fleet view
        # tracks that start while the record stream is down end with clip = null; events keep coming
        wait_until(lambda: any(e.type is EventType.START for e in tap.since(down)), 40, "a start with main down")
        started_after = {e.id for e in tap.since(down) if e.type is EventType.START}
        wait_until(lambda: any(e.id in started_after for e in tap.since(down) if e.type is EventType.END), 40,
                   "a track that began while the record stream was down to end")
        ended = [e for e in tap.since(down) if e.type is EventType.END and e.id in started_after]
        assert ended and all(e.clip is None for e in ended)
    assert any("record stream down" in r.getMessage() for r in caplog.records)
    assert camera_health(daemon)["streams"]["detect"]["state"] == "running"
    # the main stream comes back on its own: clips again
    main.start()
    wait_until(lambda: camera_health(daemon).get("record_down") is None, 30, "the record stream back")
    wait_until(lambda: cam.recorder.stats().recording, 30, "a clip once the record stream is back")


def test_a_bad_detect_source_is_one_line_naming_the_key() -> None:
    for bad in ("rstp://cam/sub", "", "usb:/dev/video0", "rtsp://cam/main"):
        with pytest.raises(ConfigError) as err:
            parse_config({"cameras": {"gate": {"source": "rtsp://cam/main", "detect_source": bad}}})
        line = str(err.value)
        assert "\n" not in line and line.startswith("cameras.gate.detect_source: "), line
    ok = parse_config({"cameras": {"gate": {"source": "rtsp://cam/main", "detect_source": "rtsp://cam/sub"}}})
    assert ok.cameras["gate"].detect_source == "rtsp://cam/sub"
    assert parse_config({"cameras": {"gate": {"source": "a.mp4"}}}).cameras["gate"].detect_source is None


def two_stream_config(tmp_path: Path, streams, extra: str = "") -> Path:
    main_video, sub_video = streams
    cfg = tmp_path / "edgecam.toml"
    cfg.write_text(f"""
[node]
id = "two"
[mqtt]
port = 1
connect_timeout = 1
[storage]
path = "{tmp_path / 'state'}"
[api]
enabled = false
[cameras.road]
source = "{main_video}"
detect_source = "{sub_video}"
{extra}
""")
    return cfg


def test_check_and_snapshot_report_both_streams(tmp_path: Path, streams, capsys) -> None:
    from edge.cli import main

    cfg = two_stream_config(tmp_path, streams)
    main(["check", "-c", str(cfg), "--timeout", "5", "--json"])
    import json

    checks = {c["name"]: c for c in json.loads(capsys.readouterr().out)["checks"]}
    record, detect, decoder = checks["camera road"], checks["camera road detect"], checks["decoder road"]
    assert record["status"] == "ok" and (record["width"], record["height"]) == (1920, 1080)
    assert record["stream"] == "record" and record["codec"] == "h264"
    assert detect["status"] == "ok" and (detect["width"], detect["height"]) == (640, 360)
    assert abs(detect["fps"] - 23.98) < 0.01 and detect["codec"] == "h264"
    assert decoder["status"] == "ok" and decoder["decoder"] == "software"
    assert (checks["scene road"]["status"]) in ("ok", "warn")
    # what one full-resolution best shot costs: the record stream's GOP read undecoded, then decoded whole here
    shots = checks["best shots road"]
    assert shots["status"] == "ok" and (shots["width"], shots["height"]) == (1920, 1080), shots
    assert shots["gop_whole"] and shots["gop_frames"] == GOP and shots["still_cpu_s"] > 0
    assert shots["shots_per_min"] == round(60 * 0.15 / shots["still_cpu_s"])  # at the default still_max_cpu
    assert f"GOP {GOP / 23.976:.1f} s, {GOP} frames" in shots["detail"]

    out = tmp_path / "snap.jpg"
    assert main(["snapshot", "-c", str(cfg), "-o", str(out)]) == 0
    said = capsys.readouterr().out
    assert "record stream 1920x1080 23.98 fps h264" in said and "detect stream 640x360 23.98 fps h264" in said
    assert video_size(out) == (1920, 1080)  # the snapshot is the recorded stream's full size


def test_a_decoder_that_is_missing_or_cannot_open_falls_back_to_software_once(streams, caplog) -> None:
    from edge.capture import open_source
    from edge.types import Packet

    _, sub_video = streams
    for asked in ("no_such_decoder", "h264_v4l2m2m", "auto"):
        source = open_source("cam", str(sub_video), decode=asked)
        caplog.clear()
        with caplog.at_level(logging.INFO, logger="edge.capture.pyav"):
            frames = 0
            for _ in range(2):  # a reconnect does not say it again
                source.open()
                frames += sum(1 for item in source.items() if not isinstance(item, Packet))
                source.close()
        if source.decoder != "software":  # "auto" on a machine with working hardware: nothing to test
            assert asked == "auto"
            continue
        assert frames == 2 * 480, f"{asked}: {frames} frames"  # the road clip's 480 frames, twice
        lines = [r.getMessage() for r in caplog.records if "decoding in software" in r.getMessage()]
        if asked == "auto" and not lines:  # no hardware decoder in this FFmpeg at all: software without a word
            continue
        assert len(lines) == 1, (asked, lines)
        assert asked in lines[0] or asked == "auto"


def test_check_names_the_fallback_decoder(tmp_path: Path, streams, capsys) -> None:
    from edge.cli import main

    cfg = two_stream_config(tmp_path, streams, 'decode = "no_such_decoder"')
    main(["check", "-c", str(cfg), "--timeout", "5", "--json"])
    import json

    decoder = {c["name"]: c for c in json.loads(capsys.readouterr().out)["checks"]}["decoder road"]
    assert decoder["status"] == "warn" and decoder["decoder"] == "software"
    assert "no_such_decoder" in decoder["detail"]


def test_a_bad_detect_source_stops_check_with_one_line(tmp_path: Path, streams, capsys) -> None:
    from edge.cli import main

    cfg = two_stream_config(tmp_path, streams)
    cfg.write_text(cfg.read_text().replace(f'detect_source = "{streams[1]}"', 'detect_source = "rstp://cam/sub"'))
    assert main(["check", "-c", str(cfg)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "cameras.road.detect_source" in err[0], err


def test_check_warns_of_a_long_record_stream_gop_and_says_when_stills_are_off(tmp_path: Path) -> None:
    """A camera left at a 10 s I-frame interval makes every still decode up to 10 s of video: check says so."""
    from edge.check.shots import probe_best_shots

    long_gop = tmp_path / "long-gop.mp4"  # 7 s at 24 fps, one keyframe: longer than the probe's 5 s window
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-i", str(video_path("road")), "-t", "7", "-an", "-vf",
                    "scale=320:180", "-c:v", "libx264", "-preset", "ultrafast", "-g", "1000", "-pix_fmt", "yuv420p",
                    str(long_gop)], check=True, timeout=120)
    result = probe_best_shots("gate", str(long_gop), 0.15, True, timeout=5)
    assert result.status == "warn" and not result.data["gop_whole"], result
    assert result.data["gop_frames"] >= 5 * 23 and (result.data["width"], result.data["height"]) == (320, 180)
    assert "GOP longer than 5 s" in result.detail and "I-frame interval" in result.advice
    off = probe_best_shots("gate", str(long_gop), 0.0, True, timeout=5)
    assert off.status == "ok" and "still_max_cpu = 0" in off.detail
    assert probe_best_shots("gate", str(long_gop), 0.15, False, timeout=5).status == "skip"
    missing = probe_best_shots("gate", str(tmp_path / "nope.mp4"), 0.15, True, timeout=2)
    assert missing.status == "warn" and missing.detail.startswith("record stream: ")
