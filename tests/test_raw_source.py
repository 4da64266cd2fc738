"""A raw-frame camera (what a USB webcam gives) still gets clips: frames are encoded once for the recorder."""

from __future__ import annotations

import json
import subprocess
import threading
import time
from pathlib import Path

from support.assets import video_path

from edge.capture.pyav import PyavSource
from edge.capture.usb import ArrayPicture
from edge.clips.encoder import FrameEncoder
from edge.clips.evidence import NodeKey
from edge.clips.recorder import ClipRecorder
from edge.clips.store import ClipStore
from edge.node.loops import END, CaptureLoop, FrameSlot
from edge.types import Event, EventType, Packet
from edge.vision.pipeline import FrameGate


class RawFrames:
    """Decoded frames of a real video handed out as arrays with no packets, like ``UsbSource``."""

    name = "usb"

    def __init__(self, path: Path, seconds: float) -> None:
        self.path, self.seconds = path, seconds

    def open(self) -> None:
        return None

    def items(self):
        source = PyavSource("decode", str(self.path))
        source.open()
        for item in source.items():
            if isinstance(item, Packet):
                continue
            if item.time > self.seconds:
                break
            yield ArrayPicture(item.to_bgr(), item.index, item.time, time.monotonic(), 1_000_000 + item.time)
        source.close()

    def close(self) -> None:
        pass


def event(kind: EventType, t: float) -> Event:
    return Event("usb-obj-1", kind, "usb", "car", 0.9, 1_000_000 + t, t, (0.1, 0.1, 0.3, 0.3))


def test_raw_camera_frames_are_encoded_into_a_playable_clip(tmp_path: Path) -> None:
    store = ClipStore(tmp_path, NodeKey.load_or_create(tmp_path / "keys"), node="n")
    recorder = ClipRecorder("usb", store.writer, 1.0, 1.0, 60.0, lossless=True)
    recorder.start()
    slot = FrameSlot(size=2, block=True)
    loop = CaptureLoop("usb", RawFrames(video_path("highway"), 8.0), slot, recorder, live=False, reconnect_max=1,
                       encoder_factory=lambda: FrameEncoder(640, 360, 30.0, 1_000_000), gate=FrameGate(5.0))
    stop = threading.Event()
    frames: list = []

    def drain() -> None:
        while (item := slot.get(1.0)) is not END:
            if item is not None:
                frames.append(item)
                if len(frames) == 10:  # t = 2 s: an object appears
                    assert recorder.on_event(event(EventType.START, item.time))
                if len(frames) == 25:  # t = 5 s: it leaves
                    recorder.on_event(event(EventType.END, item.time))

    consumer = threading.Thread(target=drain)
    consumer.start()
    loop.run(stop)
    consumer.join(30)
    recorder.close(30)
    clips = store.catalog.list_clips()
    assert loop.packets > 200 and len(clips) == 1
    path = store.catalog.file_path(clips[0].id)
    probe = subprocess.run(["ffprobe", "-v", "error", "-show_entries", "stream=codec_name,width,height",
                            "-show_entries", "format=duration", "-of", "json", str(path)],
                           capture_output=True, text=True, check=True)
    assert probe.stderr == ""
    info = json.loads(probe.stdout)
    assert info["streams"][0]["codec_name"] == "h264" and info["streams"][0]["width"] == 640
    assert 3.0 <= float(info["format"]["duration"]) <= 6.5  # 1 s pre-roll (keyframe-aligned) + 3 s + 1 s post
    store.close()
