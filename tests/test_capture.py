"""Capture from real files: counts match ffprobe, packets are copied, time only moves forward."""

from __future__ import annotations

import json
import subprocess
import threading
from pathlib import Path

import pytest
from support.assets import VIDEOS, video_path

from edge.capture import SourceError, open_source, source_kind
from edge.capture.pyav import PyavSource
from edge.node.loops import END, FrameSlot
from edge.types import Packet


def ffprobe_counts(path: Path) -> dict:
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-count_packets", "-count_frames", "-select_streams", "v:0",
         "-show_entries", "stream=nb_read_packets,nb_read_frames,width,height", "-of", "json", str(path)],
        capture_output=True, text=True, check=True, timeout=120,
    )
    return json.loads(out.stdout)["streams"][0]


def read_all(source) -> tuple[list[Packet], list]:
    source.open()
    packets, pictures = [], []
    for item in source.items():
        (packets if isinstance(item, Packet) else pictures).append(item)
    source.close()
    return packets, pictures


@pytest.mark.parametrize("key", sorted(VIDEOS))
def test_file_counts_match_ffprobe(key: str) -> None:
    path = video_path(key)
    expected = ffprobe_counts(path)
    source = open_source("cam", str(path))
    info = source.open()
    assert (info.width, info.height) == (expected["width"], expected["height"])
    assert info.codec == "h264" and info.fps > 0 and info.extradata
    packets, pictures = read_all(source)
    assert len(packets) == int(expected["nb_read_packets"])
    assert len(pictures) == int(expected["nb_read_frames"])
    assert sum(p.keyframe for p in packets) >= 1
    assert packets[0].data and all(isinstance(p.data, bytes) for p in packets[:10])
    first = pictures[0].to_bgr()
    assert first.shape == (expected["height"], expected["width"], 3)
    times = [p.time for p in pictures]
    assert times == sorted(times)


def test_loop_keeps_time_increasing() -> None:
    path = video_path("road")
    source = PyavSource("cam", str(path), loop=True)
    source.open()
    packet_times, pts = [], []
    for item in source.items():
        if isinstance(item, Packet):
            packet_times.append(item.time)
            pts.append(item.pts)
            if len(packet_times) >= 1100:  # more than two passes of a 480-packet file
                break
    source.close()
    dts_ok = all(b > a for a, b in zip(packet_times[::50], packet_times[50::50], strict=False))
    assert dts_ok
    assert max(packet_times) > 2 * 480 / 24.0 * 0.9
    assert pts[500] > pts[400]


def test_realtime_file_is_paced() -> None:
    import time

    source = PyavSource("cam", str(video_path("street")), realtime=True)
    source.open()
    start = time.monotonic()
    pictures = 0
    for item in source.items():
        if not isinstance(item, Packet):
            pictures += 1
            if pictures == 12:
                break
    source.close()
    # 12 frames of a 10 fps file take about a second in real time, far more than flat-out decode
    assert time.monotonic() - start > 0.7


def test_missing_file_is_a_clear_non_retryable_error(tmp_path: Path) -> None:
    with pytest.raises(SourceError) as info:
        open_source("cam", str(tmp_path / "nope.mp4")).open()
    assert "no such file" in str(info.value) and not info.value.retryable


def test_garbage_file_is_a_clear_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"\x00\x01not a video" * 1000)
    with pytest.raises(SourceError) as info:
        source = open_source("cam", str(bad))
        source.open()
        read_all(source)
    assert str(info.value).startswith(str(bad))
    assert "\n" not in str(info.value)


def test_truncated_file_gives_what_it_has_or_a_clear_error(tmp_path: Path) -> None:
    original = video_path("road")
    cut = tmp_path / "cut.mp4"
    data = original.read_bytes()
    cut.write_bytes(data[: len(data) // 2])
    source = open_source("cam", str(cut))
    try:
        packets, _ = read_all(source)
    except SourceError as err:
        assert str(cut) in str(err)
    else:  # moov at the front: the first half is readable up to the cut
        assert 0 < len(packets) < 480


def test_missing_device_is_retryable() -> None:
    assert source_kind("/dev/video99") == "usb"
    with pytest.raises(SourceError) as info:
        open_source("cam", "/dev/video99").open()
    assert "no such device" in str(info.value) and info.value.retryable


def test_picamera_without_picamera2_is_a_clear_error() -> None:
    assert source_kind("picamera2:0") == "picamera2"
    source = open_source("cam", "picamera2:0")
    try:
        import picamera2  # noqa: F401
    except ImportError:
        with pytest.raises(SourceError, match="picamera2 is not installed"):
            source.open()


def test_frame_slot_drops_oldest_when_live_and_never_blocks() -> None:
    slot = FrameSlot(size=2, block=False)
    stop = threading.Event()
    for i in range(5):
        slot.put(i, stop)
    assert slot.dropped == 3
    assert [slot.get(0.1), slot.get(0.1)] == [3, 4]
    slot.put(END, stop)
    assert slot.get(0.1) is END


def corrupt_copy(src: Path, dst: Path, n: int = 20_000) -> Path:
    """A copy of ``src`` with ``n`` bytes in its middle overwritten (seeded: the same bytes every run)."""
    import random

    data = bytearray(src.read_bytes())
    mid = len(data) // 2
    data[mid:mid + n] = random.Random(7).randbytes(n)
    dst.write_bytes(bytes(data))
    return dst


def test_a_corrupt_packet_in_a_file_is_skipped_and_counted(tmp_path: Path) -> None:
    """#14.13: one bad packet used to end a file camera ("corrupt video"); now it reads on to the end."""
    src = video_path("road")
    expected = ffprobe_counts(src)
    bad = corrupt_copy(src, tmp_path / "road-corrupt.mp4")
    source = PyavSource("cam", str(bad))
    packets, pictures = read_all(source)
    assert len(packets) == int(expected["nb_read_packets"])  # every packet still goes to the recorder
    assert 0 < source.bad_packets < 50
    assert int(expected["nb_read_frames"]) - 50 < len(pictures) < int(expected["nb_read_frames"])
    assert pictures[-1].time > 19.0  # the 20 s file was read to its end


@pytest.mark.parametrize("decode", ["auto", "h264_v4l2m2m", "h264_nonexistent"])
def test_hardware_decode_falls_back_to_software_with_one_line(decode: str, caplog) -> None:
    """No decoder hardware here: whatever is asked for, every frame still decodes, in software, said once."""
    path = video_path("street")
    plain_packets, plain_pictures = read_all(PyavSource("plain", str(path)))
    with caplog.at_level("WARNING", logger="edge.capture.pyav"):
        source = PyavSource("gate", str(path), decode=decode)
        packets, pictures = read_all(source)
        source.open()  # a reconnect: the fallback is remembered, not tried and said again
        source.close()
    assert source.decoder == "software"
    assert len(packets) == len(plain_packets) and len(pictures) == len(plain_pictures) > 0
    lines = [r.getMessage() for r in caplog.records if "hardware decode unavailable" in r.getMessage()]
    assert len(lines) == 1 and "\n" not in lines[0] and lines[0].startswith("gate: "), lines


def test_a_record_stream_is_never_decoded() -> None:
    """``pictures=False`` (a two-stream camera's record stream): every packet, no picture, decoder "none"."""
    path = video_path("street")
    plain_packets, _ = read_all(PyavSource("plain", str(path)))
    source = PyavSource("main", str(path), pictures=False)
    packets, pictures = read_all(source)
    assert source.decoder == "none" and pictures == []
    assert [p.data for p in packets] == [p.data for p in plain_packets]
