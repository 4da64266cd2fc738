"""Encode raw frames once (USB cameras) into H.264 Packets, so clips work like any other source.

libx264 ``ultrafast``/``zerolatency`` on a PC, ``h264_v4l2m2m`` on a Pi: one
encode per frame at the configured size and bitrate; no B-frames, a keyframe
every two seconds (the pre-roll ring starts at one).
"""

from __future__ import annotations

from fractions import Fraction
from typing import cast

import av
import numpy as np

from ..types import Packet, StreamInfo

TIME_BASE = Fraction(1, 90000)


class FrameEncoder:
    """BGR frames in, Packets out; ``info()`` describes the stream for ``ClipSink.start_stream``."""

    def __init__(self, width: int, height: int, fps: float, bitrate: int, encoder: str = "libx264") -> None:
        self.width, self.height, self.fps = int(width), int(height), float(fps)
        ctx = cast(av.VideoCodecContext, av.CodecContext.create(encoder, "w"))  # a video encoder, by name
        ctx.width, ctx.height = self.width, self.height
        ctx.pix_fmt = "yuv420p"
        ctx.time_base = TIME_BASE
        ctx.framerate = Fraction(self.fps).limit_denominator(1001)
        ctx.bit_rate = int(bitrate)
        ctx.gop_size = max(1, round(2 * self.fps))
        ctx.max_b_frames = 0
        if encoder == "libx264":
            ctx.options = {"preset": "ultrafast", "tune": "zerolatency"}
        ctx.open()
        self._ctx = ctx
        self._times: dict[int, tuple[float, float, float]] = {}
        self._last_pts = -1

    def info(self) -> StreamInfo:
        return StreamInfo("h264", self.width, self.height, TIME_BASE, self.fps, self._ctx.extradata or None)

    def encode(self, image: np.ndarray, time: float, mono: float, wall: float) -> list[Packet]:
        """Encode one frame taken at source ``time`` (seconds); resizes when the camera differs."""
        frame = av.VideoFrame.from_ndarray(image, format="bgr24")
        if image.shape[1] != self.width or image.shape[0] != self.height:
            frame = frame.reformat(width=self.width, height=self.height)
        pts = max(self._last_pts + 1, round(time / TIME_BASE))
        self._last_pts = pts
        frame.pts, frame.time_base = pts, TIME_BASE
        self._times[pts] = (time, mono, wall)
        return self._packets(self._ctx.encode(frame))

    def flush(self) -> list[Packet]:
        return self._packets(self._ctx.encode(None))

    def _packets(self, encoded) -> list[Packet]:
        out = []
        for p in encoded:
            time, mono, wall = self._times.pop(p.pts, (float(p.pts * TIME_BASE), 0.0, 0.0))
            dur = round(TIME_BASE.denominator / self.fps)
            out.append(Packet(bytes(p), p.pts, p.dts, p.duration or dur, bool(p.is_keyframe), time, mono, wall))
        return out
