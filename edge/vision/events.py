"""Events: turn tracks into start / update / end messages, with zones and counting lines.

Zones and lines are in normalised 0..1 coordinates (what the config holds);
an object's position is the bottom centre of its box (where it touches the
ground). A line runs from ``a`` to ``b``; seen on the image as displayed,
someone walking from ``a`` to ``b`` has a left and a right hand: crossing
from the left side to the right side is ``in``, the other way ``out``. For a
line drawn left to right across the image (a=(0, .5), b=(1, .5)) the left
side is the upper half, so an object moving down the image goes ``in``.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from ..types import BestShot, Event, EventType, LineCrossing
from .attributes import color_of, heading_of, shot_quality
from .bestshot import crop_box
from .settings import EventSettings
from .tracker import Track

SHOT_INTERVAL = 0.5  # s of source time between two best-shot candidates of one track
SHOT_GAIN = 1.15  # a new candidate must beat the best so far by this factor
EDGE_PENALTY = 0.3  # quality factor of a view cut by the frame edge
PATH_POINTS = 8  # box centres kept from a track's start and from its end, for its heading
COLOR_GROWTH = 1.2  # re-measure colour only when the object's box is this much larger than when last measured

Point = tuple[float, float]


def side(a: Point, b: Point, p: Point) -> float:
    """Image coordinates (y down): < 0 when p is on the left of a→b as seen on screen, > 0 on the right."""
    return (b[0] - a[0]) * (p[1] - a[1]) - (b[1] - a[1]) * (p[0] - a[0])


def crossing(a: Point, b: Point, p0: Point, p1: Point) -> str | None:
    """``in`` / ``out`` when the move p0→p1 crosses the segment a-b, else None."""
    left0, left1 = side(a, b, p0) < 0, side(a, b, p1) < 0  # a point on the line counts as right
    if left0 == left1:
        return None
    t0, t1 = side(p0, p1, a), side(p0, p1, b)
    if (t0 < 0) == (t1 < 0) and t0 != 0 and t1 != 0:
        return None  # the move passes beside the segment, not through it
    return "in" if left0 else "out"


def in_polygon(p: Point, polygon: Sequence[Point]) -> bool:
    """Even-odd rule; points on an edge may fall either way."""
    x, y = p
    inside = False
    n = len(polygon)
    for i in range(n):
        x1, y1 = polygon[i]
        x2, y2 = polygon[(i + 1) % n]
        if (y1 > y) != (y2 > y) and x < x1 + (y - y1) * (x2 - x1) / (y2 - y1):
            inside = not inside
    return inside


@dataclass
class _State:
    """What the builder remembers about one track."""

    event_id: str = ""
    point: Point | None = None
    started: bool = False
    zones: tuple[str, ...] = ()
    reported_zones: tuple[str, ...] = ()
    reported_score: float = 0.0
    last_emit: float = float("-inf")
    pending: list[LineCrossing] = field(default_factory=list)
    head: list[tuple[float, float]] = field(default_factory=list)  # first box centres (px)
    tail: deque[tuple[float, float]] = field(default_factory=lambda: deque(maxlen=PATH_POINTS))
    sides: deque[float] = field(default_factory=lambda: deque(maxlen=PATH_POINTS))  # sqrt(box area), px
    color: tuple[str, float] | None = None
    color_area: float = 0.0
    best_quality: float = 0.0  # of the best shot offered so far (0: none)
    best_time: float = float("-inf")


class EventBuilder:
    """Start/update/end per tracked object; per-line in/out counts."""

    def __init__(
        self,
        camera: str,
        frame_size: tuple[int, int],
        zones: Mapping[str, Sequence[Point]] | None = None,
        lines: Mapping[str, tuple[Point, Point]] | None = None,
        update_interval: float = EventSettings.update_interval,
        score_step: float = EventSettings.score_step,
        best_shots: bool = EventSettings.best_shots,
    ) -> None:
        """``best_shots``: offer best-shot candidates (``take_shots``) and name them in ``end`` events."""
        self.camera = camera
        self.best_shots = best_shots
        self.frame_size = frame_size
        self.zones = {k: [(p[0], p[1]) for p in v] for k, v in (zones or {}).items()}
        self.lines = {k: ((a[0], a[1]), (b[0], b[1])) for k, (a, b) in (lines or {}).items()}
        self.update_interval = update_interval
        self.score_step = score_step
        self.line_counts: dict[str, dict[str, int]] = {k: {"in": 0, "out": 0} for k in self.lines}
        self.started: dict[str, int] = {}  # start events per label
        self.sent: dict[str, int] = {"start": 0, "update": 0, "end": 0}
        self.shots: list[BestShot] = []  # best-shot candidates of this frame; the caller takes them
        self.shots_offered = 0
        self._states: dict[int, _State] = {}

    def process(
        self, tracks: Sequence[Track], ended: Sequence[Track], time: float, wall: float,
        image: np.ndarray | None = None, mono: float = 0.0,
    ) -> list[Event]:
        """Events for this frame: ``tracks`` are the live ones, ``ended`` those the tracker closed now.

        ``image`` (the analysed frame, optional) lets the builder measure each object's colour when it is
        seen larger than before and not cut by the frame edge; the ``end`` event carries it.
        """
        events: list[Event] = []
        for t in tracks:
            st = self._states.get(t.id)
            if st is None:
                st = self._states[t.id] = _State(event_id=f"{self.camera}-{int(wall * 1000):x}-{t.id}")
            self._move(t, st)
            if image is not None and t.last_time == time:
                self._measure_color(t, st, image)
            if not t.confirmed:
                continue
            if self.best_shots and image is not None and t.last_time == time:
                self._offer_shot(t, st, image, time, mono, wall)
            if not st.started:
                st.started = True
                st.reported_zones = st.zones
                st.reported_score = t.best_score
                st.last_emit = time
                self.started[t.label] = self.started.get(t.label, 0) + 1
                for c in st.pending:
                    self.line_counts[c.name][c.direction] += 1
                events.append(self._event(t, st, EventType.START, time, wall))
            elif time - st.last_emit >= self.update_interval and self._wants_update(t, st):
                events.append(self._update(t, st, time, wall))
        for t in ended:
            st = self._states.pop(t.id, None)
            if st is None or not st.started:
                continue
            while st.pending:  # crossings not yet reported: never lose a count at the end
                events.append(self._update(t, st, time, wall))
            events.append(self._event(t, st, EventType.END, time, wall, duration=t.lifetime,
                                      best=st.event_id if st.best_quality > 0 else None, **self._attributes(st)))
        self._forget(tracks)
        return events

    def _move(self, t: Track, st: _State) -> None:
        """New position: zone membership and line crossings since the last frame."""
        w, h = self.frame_size
        p = ((t.box.x1 + t.box.x2) / 2 / w, t.box.y2 / h)
        if st.point is not None and p != st.point:
            for name, (a, b) in self.lines.items():
                direction = crossing(a, b, st.point, p)
                if direction is not None:
                    st.pending.append(LineCrossing(name, direction))
                    if st.started:
                        self.line_counts[name][direction] += 1
        st.point = p
        c = ((t.box.x1 + t.box.x2) / 2, (t.box.y1 + t.box.y2) / 2)
        if len(st.head) < PATH_POINTS:
            st.head.append(c)
        else:
            st.tail.append(c)
        st.sides.append(t.box.area ** 0.5)
        st.zones = tuple(name for name, poly in self.zones.items() if in_polygon(p, poly))

    def _measure_color(self, t: Track, st: _State, image: np.ndarray) -> None:
        """Colour on the largest whole view so far (bounded work: only when the box grew by COLOR_GROWTH)."""
        b = t.box
        h, w = image.shape[:2]
        if b.area < COLOR_GROWTH * st.color_area or b.x1 <= 1 or b.y1 <= 1 or b.x2 >= w - 1 or b.y2 >= h - 1:
            return
        got = color_of(image[int(b.y1) : int(b.y2), int(b.x1) : int(b.x2)])
        if got is not None:
            st.color, st.color_area = got, b.area

    def _offer_shot(self, t: Track, st: _State, image: np.ndarray, time: float, mono: float, wall: float) -> None:
        """A best-shot candidate when this view beats the best so far (bounded: at most ~2 a second a track).

        Only the quality is computed here (on a 64 px crop), and the object's crop (with its margin) copied
        out of the frame: a few KB, so candidates queued behind a busy worker never hold whole frames. The
        worker encodes and stores it on its own thread.
        """
        b = t.box
        h, w = image.shape[:2]
        if st.best_quality > 0 and time - st.best_time < SHOT_INTERVAL:
            return
        # cut by the frame edge: part of the object is missing; such a view wins only when there is no other
        whole = 1.0 if b.x1 > 1 and b.y1 > 1 and b.x2 < w - 1 and b.y2 < h - 1 else EDGE_PENALTY
        side = b.area ** 0.5
        if side * t.score * whole <= st.best_quality * SHOT_GAIN:  # cannot win even if perfectly sharp
            return
        q = shot_quality(image, int(b.x1), int(b.y1), int(b.x2), int(b.y2), t.score) * whole
        if q <= st.best_quality * SHOT_GAIN:
            return
        box = b.normalised(w, h)
        crop, inner = crop_box(image, box)
        if crop.size == 0:
            return
        st.best_quality, st.best_time = q, time
        self.shots_offered += 1
        self.shots.append(BestShot(
            object_id=st.event_id, camera=self.camera, label=t.label, score=round(t.score, 3), quality=q,
            time=time, mono=mono, wall=wall, box=box, image=crop.copy(), inner=inner))

    def take_shots(self) -> list[BestShot]:
        """This frame's best-shot candidates (the list is handed over, a new one starts)."""
        shots, self.shots = self.shots, []
        return shots

    @staticmethod
    def _attributes(st: _State) -> dict:
        """``color``, ``color_score`` and ``heading`` for the end event (None when unknown)."""
        path = st.head + list(st.tail)
        side = sorted(st.sides)[len(st.sides) // 2] if st.sides else 0.0
        heading = heading_of(path, side) if side > 0 else None
        color, score = st.color if st.color else (None, None)
        return {"color": color, "color_score": score, "heading": heading}

    def _wants_update(self, t: Track, st: _State) -> bool:
        return bool(st.pending) or st.zones != st.reported_zones or t.best_score >= st.reported_score + self.score_step

    def _update(self, t: Track, st: _State, time: float, wall: float) -> Event:
        line = st.pending.pop(0) if st.pending else None
        st.reported_zones = st.zones
        st.reported_score = max(st.reported_score, t.best_score)
        st.last_emit = time
        return self._event(t, st, EventType.UPDATE, time, wall, line=line)

    def _event(self, t: Track, st: _State, kind: EventType, time: float, wall: float, **extra) -> Event:
        self.sent[kind.value] += 1
        score = t.score if kind is EventType.START else t.best_score
        return Event(
            id=st.event_id, type=kind, camera=self.camera, label=t.label, score=round(score, 3), ts=wall,
            time=time, box=t.box.normalised(*self.frame_size), zones=st.zones, **extra,
        )

    def _forget(self, tracks: Sequence[Track]) -> None:
        """Drop state of tracks the tracker dropped without ending (ghosts)."""
        if len(self._states) > len(tracks):
            live = {t.id for t in tracks}
            for tid in [k for k in self._states if k not in live]:
                del self._states[tid]
