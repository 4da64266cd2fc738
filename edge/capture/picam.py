"""Raspberry Pi camera through picamera2: a thin adapter, imported lazily.

picamera2 comes from apt (``python3-picamera2``) on a Pi; PyPI's copy cannot load
libcamera. The main stream feeds the hardware H.264 encoder (packets for
clips); the low-resolution ``lores`` stream feeds analysis. Untestable off a
Pi, so it holds no logic: time stamps and rate choice live in the caller.
"""

from __future__ import annotations

import queue
import time
from collections.abc import Iterator
from fractions import Fraction
from typing import TYPE_CHECKING

import numpy as np

from ..types import Packet, StreamInfo
from . import SourceError

if TYPE_CHECKING:
    from .usb import ArrayPicture

MICROSECONDS = Fraction(1, 1_000_000)


class _PacketOutput:
    """picamera2 Output that copies each encoded frame into our queue."""

    def __init__(self, sink: queue.Queue) -> None:
        self.sink = sink

    # picamera2 calls outputframe(frame, keyframe, timestamp, packet, audio) on its encoder thread.
    def outputframe(self, frame, keyframe=True, timestamp=None, packet=None, audio=False) -> None:  # noqa: ANN001
        if audio:
            return
        try:
            self.sink.put_nowait((bytes(frame), bool(keyframe), int(timestamp or 0)))
        except queue.Full:
            pass

    def start(self) -> None: ...

    def stop(self) -> None: ...


class PicameraSource:
    def __init__(self, name: str, index: int = 0, width: int = 1280, height: int = 720, fps: float = 15.0,
                 bitrate: int = 2_000_000, **_: object) -> None:
        self.name = name
        self.index = index
        self.size = (width, height)
        self.fps = fps
        self.bitrate = bitrate
        self._cam = None
        self._packets: queue.Queue = queue.Queue(maxsize=256)

    def open(self) -> StreamInfo:
        try:
            from picamera2 import Picamera2  # lazy: only on a Pi
            from picamera2.encoders import H264Encoder
        except ImportError:
            raise SourceError("picamera2 is not installed (apt install python3-picamera2)", retryable=False) from None
        try:
            cam = Picamera2(self.index)
            lores = (self.size[0] // 2 // 2 * 2, self.size[1] // 2 // 2 * 2)
            config = cam.create_video_configuration(
                main={"size": self.size}, lores={"size": lores, "format": "YUV420"},
                controls={"FrameRate": self.fps},
            )
            cam.configure(config)
            encoder = H264Encoder(bitrate=self.bitrate, repeat=True, iperiod=int(self.fps * 2))
            encoder.output = _PacketOutput(self._packets)
            cam.start_encoder(encoder)
            cam.start()
        except Exception as err:  # picamera2 raises many kinds; one line is what matters
            raise SourceError(f"picamera2:{self.index}: cannot start camera ({err})", retryable=True) from None
        self._cam = cam
        return StreamInfo("h264", self.size[0], self.size[1], MICROSECONDS, self.fps, None)

    def items(self) -> Iterator[Packet | ArrayPicture]:
        import cv2

        from .usb import ArrayPicture

        cam = self._cam
        count = 0
        start = time.monotonic()
        while cam is not None:
            while not self._packets.empty():
                data, key, ts_us = self._packets.get_nowait()
                mono = time.monotonic()
                # one clock for packets and pictures: seconds since open (the sensor clock differs)
                yield Packet(data, ts_us, ts_us, 0, key, mono - start, mono, time.time())
            yuv = cam.capture_array("lores")
            image = cv2.cvtColor(np.asarray(yuv), cv2.COLOR_YUV420p2BGR)
            mono = time.monotonic()
            yield ArrayPicture(image, count, mono - start, mono, time.time())
            count += 1

    def close(self) -> None:
        if self._cam is not None:
            try:
                self._cam.stop_encoder()
                self._cam.stop()
                self._cam.close()
            finally:
                self._cam = None
