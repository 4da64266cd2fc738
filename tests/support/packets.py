"""Packets and StreamInfo from a real video, the way capture produces them (for clip tests)."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import av

from edge.types import Event, EventType, Packet, StreamInfo


def demux(path: Path, start_wall: float = 1_800_000_000.0) -> tuple[StreamInfo, list[Packet]]:
    """Every video packet, copied out (bytes, our own pts/dts), with source/mono/wall times."""
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        tb = s.time_base
        info = StreamInfo("h264", s.codec_context.width, s.codec_context.height, tb,
                          float(s.average_rate or 0), s.codec_context.extradata)
        out: list[Packet] = []
        last = -1.0
        mono0 = time.monotonic()
        for p in c.demux(s):
            if p.size == 0 or (p.pts is None and p.dts is None):
                continue
            t = float((p.pts if p.pts is not None else p.dts) * tb)
            last = max(last, t)
            out.append(Packet(bytes(p), p.pts, p.dts, p.duration or 0, bool(p.is_keyframe), last,
                              mono0 + last, start_wall + last))
    return info, out


def event(kind: str, t: float, oid: str = "obj-1", label: str = "car", wall0: float = 1_800_000_000.0) -> Event:
    return Event(id=oid, type=EventType(kind), camera="cam", label=label, score=0.8, ts=wall0 + t, time=t,
                 box=(0.1, 0.1, 0.3, 0.3))


def ffprobe(path: Path) -> tuple[str, dict]:
    """(stderr of ``ffprobe -v error``, stream/format facts)."""
    r = subprocess.run(["ffprobe", "-v", "error", "-count_packets", "-show_entries",
                        "stream=codec_name,nb_read_packets,duration:format=duration", "-of", "json", str(path)],
                       capture_output=True, text=True, timeout=60)
    return r.stderr.strip(), json.loads(r.stdout or "{}")


def clip_packets(path: Path) -> list[tuple[bytes, bool]]:
    with av.open(str(path)) as c:
        return [(bytes(p), bool(p.is_keyframe)) for p in c.demux(c.streams.video[0]) if p.size]
