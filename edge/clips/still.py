"""One full-resolution still from a GOP of recorded packets, decoded on demand (never on the hot path).

A two-stream camera analyses its small stream; snapshots and best shots want
the record stream's resolution. Its packets are already in the pre-roll ring:
decode from the GOP's keyframe up to the packet captured nearest to the wanted
moment, with a decoder that lives for this one call. Several moments of one GOP
(the best shots of objects that ended together) cost one pass to the last of
them, not one pass each: at 1080p a frame costs ~5 ms here, ~25 ms on a Pi 4.
A wanted frame is handed out as a ``FrameStill``: the decoder's own YUV planes,
converted to BGR only for the crop a best shot wants.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import av
import cv2
import numpy as np

from ..capture.pyav import HardwareUnavailable, open_hardware_decoder
from ..types import Packet, StreamInfo

log = logging.getLogger(__name__)

_PLANAR_420 = ("yuv420p", "yuvj420p")


class FrameStill:
    """``edge.interfaces.Still`` over a decoded ``av.VideoFrame``: crops are cut from its planes and only
    they are converted (4:2:0 planar or NV12; any other format through a whole-frame conversion)."""

    def __init__(self, frame: av.VideoFrame) -> None:
        self._frame = frame
        self.width, self.height = frame.width, frame.height

    def to_bgr(self) -> np.ndarray:
        return self._frame.to_ndarray(format="bgr24")

    def crop(self, x1: int, y1: int, x2: int, y2: int) -> np.ndarray:
        fmt = self._frame.format.name
        # 4:2:0 chroma covers 2x2 pixels: cut on even lines and columns, then trim to what was asked
        ex1, ey1 = x1 & ~1, y1 & ~1
        ex2, ey2 = min(self.width & ~1, (x2 + 1) & ~1), min(self.height & ~1, (y2 + 1) & ~1)
        if fmt not in (*_PLANAR_420, "nv12") or ex2 <= ex1 or ey2 <= ey1:
            return self.to_bgr()[y1:y2, x1:x2].copy()
        planes = [self._plane(i) for i in range(len(self._frame.planes))]
        luma = planes[0][ey1:ey2, ex1:ex2]
        if fmt == "nv12":  # one interleaved UV plane: its bytes are columns x1..x2 of half the rows
            yuv = np.concatenate([luma.ravel(), planes[1][ey1 // 2:ey2 // 2, ex1:ex2].ravel()])
            code = cv2.COLOR_YUV2BGR_NV12
        else:
            u = planes[1][ey1 // 2:ey2 // 2, ex1 // 2:ex2 // 2]
            v = planes[2][ey1 // 2:ey2 // 2, ex1 // 2:ex2 // 2]
            yuv = np.concatenate([luma.ravel(), u.ravel(), v.ravel()])
            code = cv2.COLOR_YUV2BGR_I420
        bgr = cv2.cvtColor(yuv.reshape((ey2 - ey1) * 3 // 2, ex2 - ex1), code)
        return bgr[y1 - ey1:y2 - ey1, x1 - ex1:x2 - ex1].copy()

    def _plane(self, i: int) -> np.ndarray:
        """Plane ``i`` as a (rows, line bytes) view of the frame's own buffer, no copy (callers cut columns)."""
        plane = self._frame.planes[i]
        return np.frombuffer(memoryview(plane), np.uint8).reshape(-1, plane.line_size)


def nearest_packet(gop: list[Packet], mono: float) -> int:
    """Index of the packet of ``gop`` captured nearest to ``mono``."""
    return min(range(len(gop)), key=lambda i: abs(gop[i].mono - mono))


class StillDecoderUnavailable(Exception):
    """The named (hardware) decoder does not open, or fails on the stream: decode in software instead."""


class HardwareChoice:
    """Which hardware decoder a camera's stills use: the candidates in order (asked once, for the stream's
    codec), the first that works is kept, one that fails is dropped for good; when none is left, one line
    says so and stills decode in software from then on."""

    def __init__(self, camera: str, candidates: Callable[[str], list[str]] | None) -> None:
        self.camera = camera
        self._candidates = candidates
        self._left: list[str] | None = None  # not yet asked; then the ones that have not failed
        self._failed: list[str] = []  # why each dropped one failed
        self._said = False

    def current(self, codec: str) -> str | None:
        """The decoder to try now; None: software."""
        if self._candidates is None:
            return None
        if self._left is None:
            self._left = list(self._candidates(codec))
            if not self._left:
                self._give_up(codec)
        return self._left[0] if self._left else None

    def failed(self, codec: str, err: StillDecoderUnavailable) -> None:
        assert self._left
        self._left.pop(0)
        self._failed.append(str(err))
        if not self._left:
            self._give_up(codec)

    def worked(self, decoder: str) -> None:
        if not self._said:
            self._said = True
            log.info("camera %s: record-stream stills decode with %s (hardware)", self.camera, decoder)

    def _give_up(self, codec: str) -> None:
        why = "; ".join(self._failed) or f"no hardware decoder for {codec} here"
        log.warning("camera %s: record-stream stills decode in software (%s)", self.camera, why)


def _open(info: StreamInfo, decoder: str | None) -> Any:
    """A decoder for one pass: FFmpeg's software one for ``info.codec``, or the hardware one named."""
    if decoder:
        try:
            return open_hardware_decoder(decoder, info.extradata)
        except HardwareUnavailable as err:
            raise StillDecoderUnavailable(str(err)) from err
    ctx: Any = av.CodecContext.create(info.codec, "r")  # a video decoder (the stubs type it as the base)
    ctx.thread_count = 1  # one GOP off the hot path: frame threads would each hold 1080p buffers
    if info.extradata:
        ctx.extradata = info.extradata
    return ctx


def decode_stills(info: StreamInfo, gop: list[Packet], monos: Sequence[float],
                  decoder: str | None = None) -> Iterator[tuple[int, FrameStill]]:
    """``(k, image)`` for each ``monos[k]`` that decodes, in decoding order: one pass from the keyframe to the
    last wanted packet. A wanted frame is handed out at once as a ``FrameStill`` (the caller converts the crop
    it wants and lets it go), so the pass holds no full-size BGR image at all. ``decoder``: a
    hardware decoder's name (``StillDecoderUnavailable`` before anything is yielded when it does not open)."""
    if not gop or not monos:
        return
    targets = [nearest_packet(gop, m) for m in monos]
    wanted: dict[Any, list[int]] = {}  # pts -> the moments that want that frame
    for k, t in enumerate(targets):
        wanted.setdefault(gop[t].pts, []).append(k)
    last = max(targets)
    try:
        ctx = _open(info, decoder)
    except av.error.FFmpegError as err:  # software: this FFmpeg cannot decode the codec at all
        log.warning("still: no decoder for %s: %s", info.codec, err)
        return
    try:
        latest: av.VideoFrame | None = None
        for packet in [*gop[:last + 1], None]:
            if packet is None:
                frames = ctx.decode(None)
            else:
                pkt = av.Packet(packet.data)
                pkt.pts, pkt.dts, pkt.time_base = packet.pts, packet.dts, info.time_base
                frames = ctx.decode(pkt)
            for frame in frames:
                latest = frame
                # display order may differ from decode order (B-frames): match on pts, not on position
                for k in wanted.pop(frame.pts, ()):
                    yield k, FrameStill(frame)
            if not wanted:
                return
        if latest is not None:  # timestamps the decoder rewrote: the last frame is the nearest there is
            last_still = FrameStill(latest)
            for k in [k for ks in wanted.values() for k in ks]:
                yield k, last_still
    except av.error.FFmpegError as err:
        if decoder:  # a hardware decoder that opens and then fails on the stream (h264_qsv without a GPU)
            raise StillDecoderUnavailable(f"{decoder} failed on the stream: {' '.join(str(err).split())[:80]}") from err
        log.warning("still: could not decode the record stream at %.2f: %s", monos[0], err)
