"""Which clip covers which event: pure decisions, no threads, no files.

Events and packet times go in; small action values come out, in the order the
writer must carry them out. Overlapping events share one clip; a clip ends at
the first packet later than ``post_roll`` after the last of its events ended;
``max_clip`` splits a long one at a keyframe into a continuation.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from ..types import Event, EventType


@dataclass(frozen=True)
class Open:
    clip_id: str
    since: float | None  # source time the pre-roll reaches back to; None: start at the next keyframe
    wall: float  # wall clock of the opening event (names the clip)
    continues: str | None = None  # the clip this one continues (max_clip split, stream restart)
    time_ok: bool = True  # the wall clock was synchronised when it opened (indexed before the first byte)


@dataclass(frozen=True)
class Attach:
    clip_id: str
    event: Event


@dataclass(frozen=True)
class Close:
    clip_id: str


Action = Open | Attach | Close
NOTHING: tuple[Action, ...] = ()


class ClipPlanner:
    """State of the one clip a camera may have open."""

    def __init__(self, pre_roll: float, post_roll: float, max_clip: float, new_id: Callable[[float], str]) -> None:
        self.pre_roll = pre_roll
        self.post_roll = post_roll
        self.max_clip = max_clip
        self._new_id = new_id
        self.clip_id: str | None = None
        self._start: float | None = None  # source time the open clip started (None: its first packet)
        self._until: float | None = None  # end of post-roll once no event is active
        self._active: dict[str, Event] = {}
        self._last_time = 0.0

    def on_event(self, ev: Event, allowed: bool = True) -> tuple[str | None, tuple[Action, ...]]:
        """The clip id covering ``ev`` (None when none is or can be recorded) and what to do."""
        actions: list[Action] = []
        if ev.type is EventType.END:
            self._active.pop(ev.id, None)
            if self.clip_id is None:
                return None, NOTHING
            if not self._active:
                end = ev.time + self.post_roll
                self._until = end if self._until is None else max(self._until, end)
            return self.clip_id, (Attach(self.clip_id, ev),)
        if self.clip_id is None:
            if not allowed:
                return None, NOTHING
            self.clip_id = self._new_id(ev.ts)
            self._start = ev.time - self.pre_roll
            actions.append(Open(self.clip_id, self._start, ev.ts, time_ok=ev.time_ok))
        self._active[ev.id] = ev
        self._until = None
        actions.append(Attach(self.clip_id, ev))
        return self.clip_id, tuple(actions)

    def on_packet(self, time: float, keyframe: bool, wall: float) -> tuple[Action, ...]:
        """Called for every packet before it is written: closes or splits the open clip."""
        self._last_time = time
        if self.clip_id is None:
            return NOTHING
        if not self._active and self._until is not None and time > self._until:
            return self._close()
        if self._start is None:
            self._start = time
        if keyframe and time - self._start >= self.max_clip:
            return self._split(since=time, wall=wall)
        return NOTHING

    def on_stream(self, wall: float) -> tuple[Action, ...]:
        """A new stream (reconnect): timestamps restart, so close the clip; continue it if events are active."""
        if self.clip_id is None:
            return NOTHING
        if not self._active:
            return self._close()
        return self._split(since=None, wall=wall)

    def finish(self) -> tuple[Action, ...]:
        """Shutdown or end of file: close whatever is open, post-roll cut short."""
        self._active.clear()
        return self._close() if self.clip_id is not None else NOTHING

    def abandon(self, clip_id: str) -> None:
        """The writer could not keep this clip (disk full): later events must not join it."""
        if self.clip_id == clip_id:
            self.clip_id, self._until = None, None

    def _close(self) -> tuple[Action, ...]:
        old = self.clip_id
        self.clip_id, self._until = None, None
        return (Close(old),) if old else NOTHING

    def _split(self, since: float | None, wall: float) -> tuple[Action, ...]:
        old = self.clip_id
        self.clip_id = self._new_id(wall)
        self._start = since
        time_ok = all(ev.time_ok for ev in self._active.values())
        assert old is not None, "a split needs an open clip"
        actions: list[Action] = [Close(old), Open(self.clip_id, None, wall, continues=old, time_ok=time_ok)]
        actions += [Attach(self.clip_id, ev) for ev in self._active.values()]
        return tuple(actions)
