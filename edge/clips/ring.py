"""Pre-roll in RAM as encoded packets.

A ring of compressed packets sized by time, not by count, so a 10 s pre-roll
of 1080p H.264 costs a few MB (raw frames would cost gigabytes). It always
starts at a keyframe, so whatever it hands out can be decoded on its own:
it holds ``pre_roll`` seconds plus up to one GOP. No files, no threads.

It is bounded by bytes as well: a camera with a long GOP (some send a keyframe every 10 s) or a high bit rate
would otherwise hold far more than its pre-roll in RAM. Past ``max_bytes`` the oldest GOP goes even when the
pre-roll then covers less time (the newest GOP always stays); ``trimmed_by_bytes`` counts those.
"""

from __future__ import annotations

from collections import deque

from ..types import Packet

RING_BYTES_PER_S = 2 * 1024 * 1024  # a 16 Mbit/s stream: far above a 1080p-4MP IP camera's main stream
RING_MIN_BYTES = 8 * 1024 * 1024


def ring_bytes_for(pre_roll_s: float) -> int:
    """The byte bound for a pre-roll: twice what ``pre_roll_s`` of a 16 Mbit/s stream needs, at least 8 MiB."""
    return max(RING_MIN_BYTES, int(2 * pre_roll_s * RING_BYTES_PER_S))


class PacketRing:
    """The last ``pre_roll_s`` seconds of packets, kept as whole GOPs."""

    def __init__(self, pre_roll_s: float, max_bytes: int | None = None) -> None:
        self.pre_roll_s = float(pre_roll_s)
        self.max_bytes = ring_bytes_for(pre_roll_s) if max_bytes is None else int(max_bytes)
        self.trimmed_by_bytes = 0  # GOPs dropped for the byte bound while still inside the pre-roll
        self._gops: deque[list[Packet]] = deque()
        self._bytes = 0

    def push(self, packet: Packet) -> None:
        """Add one packet; packets before the first keyframe cannot be decoded and are not kept."""
        if packet.keyframe:
            self._gops.append([packet])
        elif self._gops:
            self._gops[-1].append(packet)
        else:
            return
        self._bytes += len(packet.data)
        self._trim(packet.time)

    def _trim(self, newest: float) -> None:
        # Drop the oldest GOP while the next one alone still reaches back pre_roll seconds.
        while len(self._gops) >= 2 and newest - self._gops[1][0].time >= self.pre_roll_s:
            old = self._gops.popleft()
            self._bytes -= sum(len(p.data) for p in old)
        while len(self._gops) >= 2 and self._bytes > self.max_bytes:
            old = self._gops.popleft()
            self._bytes -= sum(len(p.data) for p in old)
            self.trimmed_by_bytes += 1

    def since(self, time: float) -> list[Packet]:
        """Packets from the last keyframe at or before ``time`` (or the oldest kept) to now."""
        if not self._gops:
            return []
        start = 0
        for i, gop in enumerate(self._gops):
            if gop[0].time <= time:
                start = i
            else:
                break
        out: list[Packet] = []
        for i in range(start, len(self._gops)):
            out.extend(self._gops[i])
        return out

    def gop_at(self, mono: float) -> list[Packet]:
        """A copy of the packets from the last keyframe captured at or before ``mono`` (monotonic arrival
        time) to the end of its GOP; empty when ``mono`` is older than the ring."""
        found: list[Packet] | None = None
        for gop in self._gops:
            if gop[0].mono <= mono:
                found = gop
            else:
                break
        return list(found) if found is not None else []

    def clear(self) -> None:
        """Forget everything (a new stream: old packets belong to other parameter sets)."""
        self._gops.clear()
        self._bytes = 0

    @property
    def bytes(self) -> int:
        return self._bytes

    @property
    def seconds(self) -> float:
        """Source seconds covered, first keyframe to newest packet."""
        if not self._gops:
            return 0.0
        return self._gops[-1][-1].time - self._gops[0][0].time

    def __len__(self) -> int:
        return sum(len(g) for g in self._gops)
