"""H.264 stream copy into MP4 with PyAV: crash-tolerant while writing, faststart when done.

Facts this module is built on (``shared/NOTES.md``, re-measured here):
- ``add_stream_from_template`` segfaults once the template's input is closed, and
  ``add_mux_stream`` cannot carry avcC extradata, so each clip builds its own
  template: a tiny in-memory Annex-B stream (SPS/PPS + the first keyframe).
- With Annex-B extradata the MP4 muxer expects Annex-B packets and writes them
  back length-prefixed; MP4 sources (4-byte lengths) therefore come out
  byte-identical, RTSP sources (already Annex-B) come out clean.
- ``mux()`` rescales packets in place, so every write builds a fresh ``av.Packet``.
- Fragmented MP4 with ``flush_packets=1`` survives ``kill -9`` up to the last fragment.
"""

from __future__ import annotations

import io
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import av
import cv2

from ..types import Packet, StreamInfo

log = logging.getLogger(__name__)

FRAGMENTED = {
    "movflags": "frag_keyframe+empty_moov+default_base_moof",
    "flush_packets": "1",
    "frag_duration": "500000",
}
START_CODE = b"\x00\x00\x00\x01"


def is_annexb(data: bytes) -> bool:
    return data.startswith(START_CODE) or data.startswith(b"\x00\x00\x01")


def avcc_parameter_sets(extradata: bytes) -> tuple[bytes, int]:
    """SPS/PPS of an avcC record as Annex-B, and the NAL length size its packets use."""
    length_size = (extradata[4] & 3) + 1
    out = bytearray()
    pos = 5
    for count_mask in (0x1F, 0xFF):
        count = extradata[pos] & count_mask
        pos += 1
        for _ in range(count):
            n = int.from_bytes(extradata[pos:pos + 2], "big")
            out += START_CODE + extradata[pos + 2:pos + 2 + n]
            pos += 2 + n
    return bytes(out), length_size


def length_prefixed_to_annexb(data: bytes, length_size: int) -> bytes:
    """Rewrite one packet's NAL units with start codes (the muxer turns them back)."""
    out = bytearray()
    pos, end = 0, len(data)
    while pos + length_size <= end:
        n = int.from_bytes(data[pos:pos + length_size], "big")
        pos += length_size
        out += START_CODE + data[pos:pos + n]
        pos += n
    return bytes(out)


class Bitstream:
    """How one stream's packets become what the muxer wants (fixed per StreamInfo)."""

    def __init__(self, info: StreamInfo) -> None:
        if info.codec != "h264":
            raise ValueError(f"clips support H.264 only, not {info.codec}")
        ext = info.extradata or b""
        if ext and not is_annexb(ext):
            self.header, self.length_size = avcc_parameter_sets(ext)
        else:
            self.header, self.length_size = ext, 0  # Annex-B already (RTSP) or in-band parameter sets

    def convert(self, data: bytes) -> bytes:
        return length_prefixed_to_annexb(data, self.length_size) if self.length_size else data


@dataclass
class Span:
    """What a finished fragment file covers, from our own packet copies."""

    packets: int = 0
    first_time: float = 0.0
    last_time: float = 0.0
    first_wall: float = 0.0
    last_wall: float = 0.0
    first_mono: float = 0.0
    last_mono: float = 0.0
    bytes_in: int = 0


class FragmentWriter:
    """One clip being written as fragmented MP4; skips packets until the first keyframe."""

    def __init__(self, path: Path, info: StreamInfo) -> None:
        self.path = path
        self.info = info
        self.bits = Bitstream(info)
        self.span = Span()
        self._out: av.container.OutputContainer | None = None
        self._template: av.container.InputContainer | None = None
        self._stream: av.video.stream.VideoStream | None = None
        self._base = 0
        self._last_dts: int | None = None

    def write(self, p: Packet) -> None:
        if self._out is None:
            if not p.keyframe:
                return
            self._open(p)
        out = self._out
        assert out is not None  # opened on the first keyframe, just above
        data = self.bits.convert(p.data)
        dts = p.dts if p.dts is not None else p.pts
        if dts is None:
            dts = round(p.time / self.info.time_base)
        pts = p.pts if p.pts is not None else dts
        if self._last_dts is not None and dts - self._base <= self._last_dts:
            # timestamps went back (a looped file, a camera reset): shift so time keeps moving forward
            self._base -= self._last_dts + max(1, p.duration) - (dts - self._base)
        dts -= self._base
        pts -= self._base
        pkt = av.Packet(data)
        pkt.dts, pkt.pts = dts, max(pts, dts)
        pkt.duration = p.duration
        pkt.time_base = self.info.time_base
        pkt.is_keyframe = p.keyframe
        pkt.stream = self._stream  # type: ignore[assignment]  # set with the output's stream, never None here
        out.mux(pkt)
        self._last_dts = dts
        self._note(p)

    def _open(self, key: Packet) -> None:
        first = self.bits.header + self.bits.convert(key.data)
        template = av.open(io.BytesIO(first), "r", format="h264")
        out = av.open(str(self.path), "w", format="mp4", options=dict(FRAGMENTED))
        self._template, self._out = template, out
        self._stream = out.add_stream_from_template(template.streams.video[0])
        self._base = key.dts if key.dts is not None else (key.pts or 0)
        s = self.span
        s.first_time, s.first_wall, s.first_mono = key.time, key.wall, key.mono

    def _note(self, p: Packet) -> None:
        s = self.span
        s.packets += 1
        s.bytes_in += len(p.data)
        s.last_time, s.last_wall, s.last_mono = p.time, p.wall, p.mono

    @property
    def started(self) -> bool:
        return self._out is not None

    def close(self) -> Span:
        """Close and fsync the fragment file (nothing to close if no keyframe ever came)."""
        if self._out is not None:
            self._out.close()
            self._out = None
            fsync_path(self.path)
        if self._template is not None:
            self._template.close()
            self._template = None
        return self.span

    def abort(self) -> None:
        try:
            self.close()
        except (av.error.FFmpegError, OSError):
            pass
        self.path.unlink(missing_ok=True)


def fsync_path(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_dir(path: Path) -> None:
    fsync_path(path)


def finalise(part: Path, final: Path) -> int:
    """Remux a fragment file into a faststart MP4 beside it, atomically; returns packets kept.

    Packets that reach past the end of the file (cut by a crash) are left out,
    and the result must start with a keyframe; 0 means nothing playable (no file made).
    """
    tmp = final.with_name(final.name + ".tmp")
    size = part.stat().st_size
    kept = 0
    try:
        with av.open(str(part)) as src:
            if not src.streams.video:
                return 0
            vin = src.streams.video[0]
            with av.open(str(tmp), "w", format="mp4", options={"movflags": "+faststart"}) as out:
                vout = out.add_stream_from_template(vin)
                kept = _copy(src, vin, vout, out, size)
    except av.error.FFmpegError as err:
        log.warning("clip %s: unreadable fragment file (%s)", part.name, err)
        kept = 0
    if kept == 0:
        tmp.unlink(missing_ok=True)
        return 0
    fsync_path(tmp)
    os.replace(tmp, final)
    fsync_dir(final.parent)
    return kept


def _copy(src, vin, vout, out, size: int) -> int:
    kept = 0
    try:
        for pkt in src.demux(vin):
            if pkt.dts is None or pkt.size == 0:
                continue
            if pkt.pos is not None and pkt.pos >= 0 and pkt.pos + pkt.size > size:
                break
            if kept == 0 and not pkt.is_keyframe:
                continue
            pkt.stream = vout
            out.mux(pkt)
            kept += 1
    except av.error.FFmpegError as err:  # a torn last fragment: keep what came before it
        log.info("fragment file ends early (%s); kept %d packets", err, kept)
    return kept


def probe_duration(path: Path) -> float:
    """Seconds of video in a finished MP4 (0.0 when it cannot be read)."""
    try:
        with av.open(str(path)) as src:
            if not src.streams.video:
                return 0.0
            s = src.streams.video[0]
            if s.duration and s.time_base:
                return float(s.duration * s.time_base)
            return float(src.duration or 0) / 1e6
    except av.error.FFmpegError:
        return 0.0


def first_frame_jpeg(path: Path, max_width: int = 640) -> bytes | None:
    """A thumbnail from the clip's first keyframe (one decode: cheap)."""
    try:
        with av.open(str(path)) as src:
            for frame in src.decode(video=0):
                img: Any = frame.to_ndarray(format="bgr24")  # BGR uint8; cv2.resize below keeps it so
                break
            else:
                return None
    except av.error.FFmpegError:
        return None
    h, w = img.shape[:2]
    if w > max_width:
        img = cv2.resize(img, (max_width, int(h * max_width / w)), interpolation=cv2.INTER_AREA)
    ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, 80])
    return buf.tobytes() if ok else None
