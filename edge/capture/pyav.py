"""Files and RTSP streams through PyAV: demux → packets (kept for clips) → decode.

Packets are copied out of the demuxer (muxers rescale timestamps in place), and
decoded frames stay PyAV frames until analysis asks for a BGR array: the
conversion costs more than the decode itself (NOTES.md).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from fractions import Fraction
from typing import Any

import av
import numpy as np

from ..types import Packet, StreamInfo
from . import LIVE_PREFIXES, SourceError
from .plain import plain_error

log = logging.getLogger(__name__)

TIME_BASE_FALLBACK = Fraction(1, 90000)  # a stream that states no time base: the MPEG clock
ONE_THREAD_PIXELS = 1024 * 576  # D1 / 640x360 sub streams and smaller: decoded on one thread
__all__ = ["LIVE_PREFIXES", "HardwareUnavailable", "PyavPicture", "PyavSource", "hardware_decoders",
           "open_hardware_decoder"]
# Hardware decoders FFmpeg names per codec, in the order "auto" tries them: V4L2 memory-to-memory (Raspberry
# Pi), NVDEC through cuvid (Jetson, NVIDIA), Quick Sync (Intel). PyAV's wheel has no VAAPI device; on Intel
# QSV is the named decoder that reaches the same hardware.
HARDWARE_SUFFIXES = ("v4l2m2m", "cuvid", "qsv")


def hardware_decoders(codec: str) -> list[str]:
    """The hardware decoders this PyAV's FFmpeg was built with for ``codec``, in the order "auto" tries them."""
    have = av.codecs_available
    return [f"{codec}_{suffix}" for suffix in HARDWARE_SUFFIXES if f"{codec}_{suffix}" in have]


class HardwareUnavailable(Exception):
    """A named hardware decoder that this FFmpeg or this machine cannot open; the message says why."""


def open_hardware_decoder(name: str, extradata: bytes | None) -> Any:
    """An opened decoder ``name`` (e.g. h264_v4l2m2m), or ``HardwareUnavailable`` with FFmpeg's reason."""
    try:
        ctx: Any = av.CodecContext.create(name, "r")
        if extradata:
            ctx.extradata = extradata
        ctx.open()
        return ctx
    except (av.error.FFmpegError, ValueError, KeyError, NotImplementedError) as err:
        raise HardwareUnavailable(f"{name}: {' '.join(str(err).split())[:80] or type(err).__name__}") from err


class PyavPicture:
    """A decoded frame; ``to_bgr`` converts on demand."""

    __slots__ = ("index", "time", "mono", "wall", "_frame")

    def __init__(self, frame: av.VideoFrame, index: int, time_s: float, mono: float, wall: float) -> None:
        self._frame = frame
        self.index = index
        self.time = time_s
        self.mono = mono
        self.wall = wall

    def to_bgr(self) -> np.ndarray:
        return self._frame.to_ndarray(format="bgr24")


class PyavSource:
    """A video file or a network stream.

    Files: ``realtime`` paces output at the file's own rate; otherwise as fast as
    the consumer takes it, deterministic. ``loop`` restarts the file with source
    time continuing, so clips and tracks never see time run backwards.
    Live streams: the iterator simply ends when the server goes away (PyAV ends
    the demux loop without an exception); the caller reconnects.
    """

    def __init__(
        self,
        name: str,
        url: str,
        realtime: bool = False,
        loop: bool = False,
        open_timeout: float = 10.0,
        read_timeout: float = 5.0,
        *,
        packets: bool = True,
        pictures: bool = True,
        decode: str = "software",
    ) -> None:
        self.name = name
        self.packets = packets  # False: a detect stream whose packets nobody records (not copied out)
        self.pictures = pictures  # False: a record stream, never decoded on the hot path
        self.decode = decode  # "software", "auto" (hardware where FFmpeg has one) or an FFmpeg decoder name
        self.decoder = "none" if not pictures else "software"  # the decoder in use (``check`` names it)
        self._hw: Any = None  # the hardware decoder context (the stubs type create() as the base class)
        self._hw_failed = False  # a hardware decoder failed once: software from then on, said once
        self.url = url
        self.live = url.startswith(LIVE_PREFIXES)
        self.realtime = realtime and not self.live
        self.loop = loop and not self.live
        self.open_timeout = open_timeout
        self.read_timeout = read_timeout
        self._container: av.container.InputContainer | None = None
        self._stream: av.video.stream.VideoStream | None = None
        self.info: StreamInfo | None = None
        self._time_offset = 0.0  # added to source time after each loop of a file
        self._pts_offset = 0  # same, in time_base units, for packets
        self._last_time = 0.0
        self._last_pts = 0
        self._last_mono: float | None = None  # when the last item was read: a reconnect's outage shows in time
        self._last_frame_time = -1.0
        self._floor = -1.0  # live: the last session's latest time; the next session's times stay above it
        self._frames = 0
        self.bad_packets = 0  # packets the decoder refused: skipped for analysis, still recorded

    def open(self) -> StreamInfo:
        self._open_container()
        if self.live and self._last_mono is not None:
            self._continue_after_reconnect()
        return self.info  # type: ignore[return-value]

    def _continue_after_reconnect(self) -> None:
        """A reopened live stream restarts its timestamps: shift them past the last session by the outage.

        Without this, source time ran backwards after a camera reconnect: tracks that spanned it ended with a
        negative ``duration`` (refused by central), and the recorder saw pts go back within one stream.
        """
        assert self.info is not None and self._last_mono is not None  # called only after a read (see open)
        gap = max(time.monotonic() - self._last_mono, 1.0 / self.info.fps if self.info.fps else 0.04)
        self._time_offset = self._last_time + gap
        self._pts_offset = self._last_pts + int(round(gap / self.info.time_base))
        self._floor = self._last_time  # a first frame timed before its session's start_time must not go back

    def _open_container(self) -> None:
        options = {}
        if self.live:
            # No "timeout" option: with PyAV 18's FFmpeg it makes every RTSP open fail
            # ("Invalid data"); PyAV's own (open, read) timeout below catches frozen servers.
            options = {"rtsp_transport": "tcp", "probesize": "65536", "analyzeduration": "500000"}
        try:
            container = av.open(self.url, options=options, timeout=(self.open_timeout, self.read_timeout))
        except FileNotFoundError:
            raise SourceError(f"{self.url}: no such file", retryable=False) from None
        except av.error.FFmpegError as err:
            raise SourceError(f"{self.url}: cannot open ({_reason(err, self.url)})", retryable=self.live) from None
        if not container.streams.video:
            container.close()
            raise SourceError(f"{self.url}: no video stream", retryable=self.live)
        stream = container.streams.video[0]
        ctx = stream.codec_context
        if (stream.width or 0) * (stream.height or 0) <= ONE_THREAD_PIXELS:
            # A sub stream decodes far faster than real time on one core; frame threads would each hold their
            # own frames (and a frame of latency each), per camera, for nothing.
            ctx.thread_count = 1
        else:
            stream.thread_type = "AUTO"
        if not stream.width or not stream.height:
            container.close()
            raise SourceError(f"{self.url}: video stream has no size (corrupt or unsupported)", retryable=self.live)
        rate = stream.average_rate or stream.guessed_rate or 0
        self.info = StreamInfo(
            codec=ctx.name,
            width=stream.width,
            height=stream.height,
            time_base=Fraction(stream.time_base) if stream.time_base else TIME_BASE_FALLBACK,
            fps=float(rate),
            extradata=bytes(ctx.extradata) if ctx.extradata else None,
        )
        self._container, self._stream = container, stream
        if self.pictures:
            self._choose_decoder(ctx)

    def _choose_decoder(self, stream_ctx: av.CodecContext) -> None:
        """Open the configured hardware decoder, or fall back to software with one log line per source."""
        self._hw, self.decoder = None, "software"
        if self.decode == "software" or self._hw_failed:
            return
        names = hardware_decoders(stream_ctx.name) if self.decode == "auto" else [self.decode]
        tried: list[str] = []
        for name in names:
            try:
                hw = open_hardware_decoder(name, stream_ctx.extradata)
            except HardwareUnavailable as err:
                tried.append(str(err))
                continue
            self._hw, self.decoder = hw, name
            log.info("%s: decoding with %s (hardware)", self.name, name)
            return
        why = "; ".join(tried) if tried else f"this FFmpeg has no hardware decoder for {stream_ctx.name}"
        self._fall_back(f"decode = {self.decode!r}: {why}")

    def _fall_back(self, why: str) -> None:
        """Software decoding from now on; the one line that says so (not repeated at each reconnect)."""
        self._hw, self.decoder = None, "software"
        if not self._hw_failed:
            self._hw_failed = True
            log.warning("%s: hardware decode unavailable, decoding in software (%s)", self.name, why)

    def items(self) -> Iterator[Packet | PyavPicture]:
        while True:
            yield from self._items_once()
            if not self.loop:
                return
            self._rewind()

    def _rewind(self) -> None:
        """Loop a file: reopen it and shift time so it keeps increasing."""
        assert self.info is not None
        step = 1.0 / self.info.fps if self.info.fps else 0.04
        self._time_offset = self._last_time + step
        self._pts_offset = self._last_pts + int(round(step / self.info.time_base))
        self.close()
        self._open_container()

    def _items_once(self) -> Iterator[Packet | PyavPicture]:
        container, stream = self._container, self._stream
        if container is None or stream is None:
            raise SourceError(f"{self.url}: not open")
        tb = float(stream.time_base or TIME_BASE_FALLBACK)
        start_pts = stream.start_time or 0
        open_mono, open_wall = time.monotonic(), time.time()
        first_time: float | None = None
        try:
            for pkt in container.demux(stream):
                if pkt.size == 0:
                    continue
                mono, wall = time.monotonic(), time.time()
                ts = pkt.pts if pkt.pts is not None else pkt.dts
                # no timestamp (the first RTSP packets): the last known time, never the offset added twice
                t = self._time_offset + (ts - start_pts) * tb if ts is not None else self._last_time
                if t <= self._floor:
                    t = self._floor + 1e-3
                if first_time is None:
                    first_time = t
                if self.realtime:
                    delay = (t - first_time) - (mono - open_mono)
                    if delay > 0:
                        time.sleep(delay)
                        mono, wall = time.monotonic(), time.time()
                if not self.live:
                    wall = open_wall + (t - (first_time or 0.0))
                self._last_time = max(self._last_time, t)
                self._last_mono = mono
                if self.packets:
                    yield self._packet(pkt, t, mono, wall)  # recorded as received, even if it will not decode
                elif pkt.pts is not None:
                    self._last_pts = max(self._last_pts, pkt.pts + self._pts_offset)
                if not self.pictures:
                    continue
                for frame in self._decode(pkt):
                    yield self._picture(frame, tb, start_pts, mono, wall)
            if self.pictures:
                for frame in (self._hw or stream.codec_context).decode(None):
                    yield self._picture(frame, tb, start_pts, time.monotonic(), open_wall + self._last_time)
        except av.error.FFmpegError as err:
            if self.live:
                log.warning("%s: stream read failed (%s)", self.name, _reason(err, self.url))
                return
            raise SourceError(f"{self.url}: corrupt video ({_reason(err, self.url)})", retryable=False) from None

    def _decode(self, pkt: av.Packet) -> list[av.VideoFrame]:
        """The packet's frames; a packet the decoder refuses is skipped and counted, never the end of the camera."""
        if self._hw is not None:
            try:
                return self._hw.decode(pkt)
            except av.error.FFmpegError as err:
                # a decoder that opened but cannot decode this stream (size, profile): software, said once
                self._fall_back(f"{self.decoder} failed on the stream: {_reason(err, self.url)}")
        try:
            return pkt.decode()
        except av.error.FFmpegError as err:
            self.bad_packets += 1
            if self.bad_packets % 100 == 1:  # the first, then every 100th: a broken stream cannot flood the log
                log.warning("%s: skipped an undecodable packet (%s); %d so far", self.name,
                            _reason(err, self.url), self.bad_packets)
            return []

    def _packet(self, pkt: av.Packet, t: float, mono: float, wall: float) -> Packet:
        pts = None if pkt.pts is None else pkt.pts + self._pts_offset
        dts = None if pkt.dts is None else pkt.dts + self._pts_offset
        if pts is not None:
            self._last_pts = max(self._last_pts, pts)
        return Packet(
            data=bytes(pkt),
            pts=pts,
            dts=dts,
            duration=int(pkt.duration or 0),
            keyframe=bool(pkt.is_keyframe),
            time=t,
            mono=mono,
            wall=wall,
        )

    def _picture(self, frame: av.VideoFrame, tb: float, start_pts: int, mono: float, wall: float) -> PyavPicture:
        t = self._time_offset + (frame.pts - start_pts) * tb if frame.pts is not None else self._last_time
        # frames come in display order: a frame without pts (timed by the packets, which run ahead) or one
        # timed before its session's start must not make analysis time go back
        floor = max(self._floor, self._last_frame_time)
        if t <= floor:
            t = floor + 1e-3
        self._last_frame_time = t
        self._frames += 1
        return PyavPicture(frame, self._frames - 1, t, mono, wall)

    def close(self) -> None:
        if self._container is not None:
            try:
                self._container.close()
            except av.error.FFmpegError:
                pass
        self._container = None
        self._stream = None


def _reason(err: Exception, url: str = "") -> str:
    return plain_error(err, url)  # "the camera answered 404 Not Found: check the stream path", no FFmpeg errno
