"""Tracker: one stable id per object from the frames' detections.

Written here rather than taken from norfair or supervision: both pull in
extra dependencies for a Pi (norfair: rich, filterpy; supervision: matplotlib,
pillow, scipy, opencv-python and more) while the job is ~200 lines over
numpy and a Hungarian solver (``assignment.py``: scipy's cost the node 40 MB of memory).

Each track predicts its box with a constant-velocity model, so fast cars
still overlap their prediction; assignment is Hungarian on a cost mixing IoU
with the predicted box and centre distance (a gate for cars that move more
than their own length between analysed frames). A track is real after
``min_hits`` detections (no one-frame ghosts) once it has moved (or grown)
by a quarter of its size away from its first positions: parked cars that a
crop happens to cover are tracked but never reported. Its label is a
score-weighted vote over its life. A track that stops moving becomes *stationary*: it is
kept without detections and re-checked every ``stationary_recheck`` seconds.
A track ends when it was looked at (inside a detector crop) and missed for
``max_lost`` seconds, or left the frame.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from ..types import Box, Detection
from .assignment import min_cost_assignment
from .regions import inside_any
from .settings import TrackerSettings

VEHICLES = frozenset({"car", "truck", "bus", "motorcycle", "bicycle", "train", "boat"})
_NO_MATCH = 1e6
_VELOCITY_GAIN = 0.5  # how much a new measurement moves the velocity estimate
_STILL_SECONDS = 2.0  # a track that moved less than its own size/8 over this long is stationary
_STILL_FRACTION = 0.125
_MOVED_FRACTION = 0.25  # an object is news once its centre moved this much of its size
_GATE = 0.75  # centre distance (in object sizes) within which a non-overlapping detection may match
# share of a known track's box inside a motion box for it to count as moving (dark cars move in fragments);
# a new object needs pipeline.NEW_OBJECT_MOTION_COVER (0.3)
TRACK_MOTION_COVER = 0.1
_TENTATIVE_GRACE = 0.5  # seconds a not-yet-real track survives being looked at and missed


def label_group(label: str) -> str:
    """Labels that one object may flip between (car/truck/bus) share a group; person stays apart."""
    return "vehicle" if label in VEHICLES else label


@dataclass
class Track:
    """A tracked object; owned and changed by ``Tracker`` only, read by the event builder."""

    id: int
    box: Box
    first_time: float
    last_time: float  # last time a detection matched
    score: float
    best_score: float
    votes: dict[str, float] = field(default_factory=dict)
    hits: int = 1
    confirmed: bool = False
    stationary: bool = False
    vx: float = 0.0  # centre velocity, px/s
    vy: float = 0.0
    predicted: Box | None = None
    anchor: tuple[float, float, float] = (0.0, 0.0, 0.0)  # x, y, time where it last moved
    ended: bool = False
    early: list[Box] = field(default_factory=list)  # first boxes: it must move away from all of them

    @property
    def label(self) -> str:
        return max(self.votes.items(), key=lambda kv: kv[1])[0]

    @property
    def lifetime(self) -> float:
        return self.last_time - self.first_time


@dataclass(frozen=True)
class TrackerStats:
    tracks: int  # confirmed tracks that ended
    short: int  # of those, lived < 1 s (fragmentation)
    median_life: float
    ghosts: int  # tracks dropped before they were confirmed


def _moved(early: Sequence[Box], box: Box, growth_counts: bool = True) -> bool:
    """Whether the box is far from (or much larger or smaller than) every early one: parked cars never are.

    All early boxes, not the first: a parked car's first box may be merged
    with a car passing in front of it, and then it seems to have moved. Size
    counts too: people walking towards the camera mostly grow.
    """
    limit = _MOVED_FRACTION * max(box.width, box.height, 1.0)
    cx, cy = box.center
    for e in early:
        ex, ey = e.center
        grown = growth_counts and abs(box.height / max(e.height, 1.0) - 1.0) >= _MOVED_FRACTION
        if not grown and ((cx - ex) ** 2 + (cy - ey) ** 2) ** 0.5 < limit:
            return False
    return True


def _xyxy(box: Box) -> tuple[float, float, float, float]:
    return (box.x1, box.y1, box.x2, box.y2)


def _shift(box: Box, dx: float, dy: float) -> Box:
    return Box(box.x1 + dx, box.y1 + dy, box.x2 + dx, box.y2 + dy)


class Tracker:
    """Hungarian IoU + centre-distance tracker with a constant-velocity motion model."""

    def __init__(
        self,
        frame_size: tuple[int, int],
        min_hits: int = TrackerSettings.min_hits,
        max_lost: float = TrackerSettings.max_lost,
        match_iou: float = TrackerSettings.match_iou,
        stationary_recheck: float = TrackerSettings.stationary_recheck,
    ) -> None:
        self.frame_size = frame_size
        self.min_hits = min_hits
        self.max_lost = max_lost
        self.match_iou = match_iou
        self.stationary_recheck = stationary_recheck
        self.tracks: list[Track] = []
        self._next_id = 1
        self._lives: list[float] = []
        self._ghosts = 0
        # Set per frame by the analyzer from the motion stage's scene statistics: in a dark scene a box that
        # only grows is a headlight's glow on a parked car far more often than someone walking up, so a new
        # object must have moved its centre there (issue #19: headlight sweeps start no event).
        self.dark = False

    def due_for_check(self, time: float) -> list[Box]:
        """Boxes of tracks the detector should look at even without motion (stationary re-checks)."""
        return [
            t.box for t in self.tracks
            if t.confirmed and time - t.last_time >= self.stationary_recheck
        ]

    def expected(self, time: float) -> list[Box]:
        """Where moving tracks should be now: crops must hold whole objects, not the motion fragments."""
        out = []
        for t in self.tracks:
            if not t.stationary:
                dt = max(0.0, time - t.last_time)
                out.append(_shift(t.box, t.vx * dt, t.vy * dt))
        return out

    def update(
        self, detections: Sequence[Detection], time: float, looked: Sequence[Box], moving: Sequence[Box] | None = None
    ) -> list[Track]:
        """Match this frame's detections; returns tracks that ended now.

        ``looked``: the crops the detector ran on. ``moving``: motion boxes (None: treat all as moving);
        a track becomes real only on a detection that is in motion, so a parked car whose box was
        distorted while a car passed in front of it does not turn real once the passer has gone.
        """
        for t in self.tracks:
            dt = max(0.0, time - t.last_time)
            t.predicted = t.box if t.stationary else _shift(t.box, t.vx * dt, t.vy * dt)
        matches, unmatched = self._assign(detections)
        for ti, di in matches:
            d = detections[di]
            self._absorb(self.tracks[ti], d, time, moving is None or inside_any(d.box, moving, TRACK_MOTION_COVER))
        ended = self._expire(time, looked, {ti for ti, _ in matches})
        for di in unmatched:
            d = detections[di]
            self.tracks.append(Track(self._next_id, d.box, time, time, d.score, d.score, {d.label: d.score},
                                     anchor=(*d.box.center, time), early=[d.box]))
            self._next_id += 1
        return ended

    def end_all(self) -> list[Track]:
        """End every track (end of stream); returns the confirmed ones."""
        ended = [t for t in self.tracks if t.confirmed]
        for t in ended:
            t.ended = True
            self._lives.append(t.lifetime)
        self.tracks = []
        return ended

    def reset(self) -> None:
        self.tracks = []

    def stats(self) -> TrackerStats:
        lives = sorted(self._lives)
        median = lives[len(lives) // 2] if lives else 0.0
        return TrackerStats(len(lives), sum(1 for v in lives if v < 1.0), median, self._ghosts)

    def _cost(self, detections: Sequence[Detection]) -> np.ndarray:
        """Tracks x detections: 1 - IoU with the prediction; else 1 + centre distance within the gate."""
        p = np.array([_xyxy(t.predicted or t.box) for t in self.tracks])
        d = np.array([_xyxy(x.box) for x in detections])
        ix = np.clip(np.minimum(p[:, None, 2], d[None, :, 2]) - np.maximum(p[:, None, 0], d[None, :, 0]), 0, None)
        iy = np.clip(np.minimum(p[:, None, 3], d[None, :, 3]) - np.maximum(p[:, None, 1], d[None, :, 1]), 0, None)
        pa = (p[:, 2] - p[:, 0]) * (p[:, 3] - p[:, 1])
        da = (d[:, 2] - d[:, 0]) * (d[:, 3] - d[:, 1])
        inter = ix * iy
        iou = inter / np.maximum(pa[:, None] + da[None, :] - inter, 1e-9)
        pc = (p[:, :2] + p[:, 2:]) / 2
        dc = (d[:, :2] + d[:, 2:]) / 2
        p_side = (p[:, 2:] - p[:, :2]).max(axis=1)[:, None]
        size = np.maximum(np.maximum(p_side, (d[:, 2:] - d[:, :2]).max(axis=1)[None, :]), 1.0)
        dist = np.hypot(pc[:, None, 0] - dc[None, :, 0], pc[:, None, 1] - dc[None, :, 1]) / size
        ratio = da[None, :] / np.maximum(pa[:, None], 1.0)
        gate = np.array([_GATE if t.hits > 1 else 2 * _GATE for t in self.tracks])[:, None]  # no velocity yet
        near = (dist <= gate) & (ratio >= 0.33) & (ratio <= 3.0)  # near its prediction, similar size
        cost = np.where(iou >= self.match_iou, 1.0 - iou, np.where(near, 1.0 + dist, _NO_MATCH))
        groups_t = np.array([label_group(t.label) for t in self.tracks])
        groups_d = np.array([label_group(x.label) for x in detections])
        cost[groups_t[:, None] != groups_d[None, :]] = _NO_MATCH  # a person never becomes a car
        return cost

    def _assign(self, detections: Sequence[Detection]) -> tuple[list[tuple[int, int]], list[int]]:
        if not self.tracks or not detections:
            return [], list(range(len(detections)))
        cost = self._cost(detections)
        rows, cols = min_cost_assignment(cost)
        matches = [(int(r), int(c)) for r, c in zip(rows, cols, strict=True) if cost[r, c] < _NO_MATCH]
        used = {c for _, c in matches}
        return matches, [i for i in range(len(detections)) if i not in used]

    def _absorb(self, t: Track, d: Detection, time: float, in_motion: bool) -> None:
        dt = time - t.last_time
        if dt > 0:
            (ox, oy), (nx, ny) = t.box.center, d.box.center
            g = _VELOCITY_GAIN if t.hits > 1 else 1.0
            t.vx += g * ((nx - ox) / dt - t.vx)
            t.vy += g * ((ny - oy) / dt - t.vy)
        t.box = d.box
        t.last_time = time
        t.score = d.score
        t.best_score = max(t.best_score, d.score)
        t.votes[d.label] = t.votes.get(d.label, 0.0) + d.score
        t.hits += 1
        if len(t.early) < self.min_hits:
            t.early.append(d.box)
        t.confirmed = t.confirmed or (t.hits >= self.min_hits and in_motion
                                      and _moved(t.early, d.box, growth_counts=not self.dark))
        ax, ay, at = t.anchor
        cx, cy = d.box.center
        if abs(cx - ax) + abs(cy - ay) > _STILL_FRACTION * max(d.box.width, d.box.height):
            t.anchor = (cx, cy, time)
            t.stationary = False
        elif time - at >= _STILL_SECONDS:
            t.stationary = True
            t.vx = t.vy = 0.0

    def _expire(self, time: float, looked: Sequence[Box], matched: set[int]) -> list[Track]:
        ended: list[Track] = []
        keep: list[Track] = []
        w, h = self.frame_size
        for i, t in enumerate(self.tracks):
            gone = False
            if i not in matched:
                pred = t.predicted or t.box
                cx, cy = pred.center
                left_frame = not (0 <= cx < w and 0 <= cy < h)
                missed = inside_any(pred, looked)
                if not t.confirmed:
                    gone = left_frame or time - t.last_time > (_TENTATIVE_GRACE if missed else self.max_lost)
                elif left_frame:
                    gone = True
                elif missed or not t.stationary:
                    # Looked at and not found, or a mover nobody looked at: lost after max_lost.
                    gone = time - t.last_time > self.max_lost and (missed or not t.stationary)
                if not t.stationary and not missed:
                    t.vx *= 0.5  # unseen movers are probably stopping: do not fly them off
                    t.vy *= 0.5
            if gone:
                if t.confirmed:
                    t.ended = True
                    self._lives.append(t.lifetime)
                    ended.append(t)
                else:
                    self._ghosts += 1
            else:
                keep.append(t)
        self.tracks = keep
        return ended
