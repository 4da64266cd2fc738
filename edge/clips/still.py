"""One full-resolution still from a GOP of recorded packets, decoded on demand (never on the hot path).

A two-stream camera analyses its small stream; snapshots and best shots want
the record stream's resolution. Its packets are already in the pre-roll ring:
decode from the GOP's keyframe up to the packet captured nearest to the wanted
moment, with a decoder that lives for this one call. Several moments of one GOP
(the best shots of objects that ended together) cost one pass to the last of
them, not one pass each: at 1080p a frame costs ~5 ms here, ~25 ms on a Pi 4.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from typing import Any

import av
import numpy as np

from ..types import Packet, StreamInfo

log = logging.getLogger(__name__)


def decode_still(info: StreamInfo, gop: list[Packet], mono: float) -> np.ndarray | None:
    """The frame of ``gop`` (keyframe first) captured nearest to ``mono``, as BGR; None if it does not decode."""
    return next((image for _, image in decode_stills(info, gop, [mono])), None)


def nearest_packet(gop: list[Packet], mono: float) -> int:
    """Index of the packet of ``gop`` captured nearest to ``mono``."""
    return min(range(len(gop)), key=lambda i: abs(gop[i].mono - mono))


class StillDecoderUnavailable(Exception):
    """The named (hardware) decoder cannot be opened here: decode in software instead."""


def open_decoder(info: StreamInfo, name: str | None) -> Any:
    """A decoder for one pass: FFmpeg's software one for ``info.codec``, or the one named (a hardware decoder
    such as h264_v4l2m2m); ``StillDecoderUnavailable`` when the named one does not open."""
    try:
        ctx: Any = av.CodecContext.create(name or info.codec, "r")  # a video decoder (stubs type the base)
        ctx.thread_count = 1  # one GOP off the hot path: frame threads would each hold 1080p buffers
        if info.extradata:
            ctx.extradata = info.extradata
        if name:
            ctx.open()
        return ctx
    except (av.error.FFmpegError, ValueError, KeyError, NotImplementedError) as err:
        if not name:
            raise
        raise StillDecoderUnavailable(f"{name}: {' '.join(str(err).split())[:80] or type(err).__name__}") from err


def decode_stills(info: StreamInfo, gop: list[Packet], monos: Sequence[float],
                  decoder: str | None = None) -> Iterator[tuple[int, np.ndarray]]:
    """``(k, image)`` for each ``monos[k]`` that decodes, in decoding order: one pass from the keyframe to the
    last wanted packet. A frame is converted to BGR only when it is wanted, and handed out at once (the
    caller crops it and lets it go), so the pass holds one full-size image at a time. ``decoder``: a
    hardware decoder's name (``StillDecoderUnavailable`` before anything is yielded when it does not open)."""
    if not gop or not monos:
        return
    targets = [nearest_packet(gop, m) for m in monos]
    wanted: dict[Any, list[int]] = {}  # pts -> the moments that want that frame
    for k, t in enumerate(targets):
        wanted.setdefault(gop[t].pts, []).append(k)
    last = max(targets)
    try:
        ctx = open_decoder(info, decoder)
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
                    yield k, frame.to_ndarray(format="bgr24")
            if not wanted:
                return
        if latest is not None:  # timestamps the decoder rewrote: the last frame is the nearest there is
            image = latest.to_ndarray(format="bgr24")
            for k in [k for ks in wanted.values() for k in ks]:
                yield k, image
    except av.error.FFmpegError as err:
        if decoder:  # a hardware decoder that opens and then fails on the stream (h264_qsv without a GPU)
            raise StillDecoderUnavailable(f"{decoder} failed on the stream: {' '.join(str(err).split())[:80]}") from err
        log.warning("still: could not decode the record stream at %.2f: %s", monos[0], err)
