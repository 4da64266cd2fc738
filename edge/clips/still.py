"""One full-resolution still from a GOP of recorded packets, decoded on demand (never on the hot path).

A two-stream camera analyses its small stream; snapshots and best shots want
the record stream's resolution. Its packets are already in the pre-roll ring:
decode from the GOP's keyframe up to the packet captured nearest to the wanted
moment, with a decoder that lives for this one call.
"""

from __future__ import annotations

import logging
from typing import Any

import av
import numpy as np

from ..types import Packet, StreamInfo

log = logging.getLogger(__name__)


def decode_still(info: StreamInfo, gop: list[Packet], mono: float) -> np.ndarray | None:
    """The frame of ``gop`` (keyframe first) captured nearest to ``mono``, as BGR; None if it does not decode."""
    target = min(range(len(gop)), key=lambda i: abs(gop[i].mono - mono))
    wanted = gop[target].pts
    try:
        ctx: Any = av.CodecContext.create(info.codec, "r")  # a video decoder (the stubs type it as the base)
        ctx.thread_count = 1  # one GOP off the hot path: frame threads would each hold 1080p buffers
        if info.extradata:
            ctx.extradata = info.extradata
        best: av.VideoFrame | None = None
        best_gap: float | None = None
        for packet in [*gop[:target + 1], None]:
            if packet is None:
                frames = ctx.decode(None)
            else:
                pkt = av.Packet(packet.data)
                pkt.pts, pkt.dts, pkt.time_base = packet.pts, packet.dts, info.time_base
                frames = ctx.decode(pkt)
            for frame in frames:
                # display order may differ from decode order (B-frames): keep the one nearest the target's pts
                gap = abs(frame.pts - wanted) if frame.pts is not None and wanted is not None else 0.0
                if best is None or best_gap is None or gap <= best_gap:
                    best, best_gap = frame, gap
        return best.to_ndarray(format="bgr24") if best is not None else None
    except av.error.FFmpegError as err:
        log.warning("still: could not decode the record stream at %.2f: %s", mono, err)
        return None
