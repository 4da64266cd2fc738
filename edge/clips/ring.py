"""Pre-roll in RAM as encoded packets.

A ring of compressed packets sized by time, not by count, so a 10 s pre-roll
of 1080p H.264 costs a few MB (raw frames would cost gigabytes). It always
starts at a keyframe, so whatever it hands out can be decoded on its own:
it holds ``pre_roll`` seconds plus up to one GOP. No files, no threads.
"""

from __future__ import annotations

from collections import deque

from ..types import Packet


class PacketRing:
    """The last ``pre_roll_s`` seconds of packets, kept as whole GOPs."""

    def __init__(self, pre_roll_s: float) -> None:
        self.pre_roll_s = float(pre_roll_s)
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
