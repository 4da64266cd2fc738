"""The vision pipeline for one camera, top to bottom: motion → regions → detector → tracker → events.

``CameraAnalyzer.process(frame)`` is called by the capture thread for each
frame ``FrameGate`` lets through (``detect_fps``, chosen by source time so a
file gives the same result on any machine). No motion and no stationary
object due for a re-check means no detector call. No I/O, no logging here.
"""

from __future__ import annotations

import math
import time as _time
from collections.abc import Sequence
from typing import Protocol

import numpy as np

from ..types import AnalyzerStats, BestShot, Box, Detection, Event, Frame, StageTimings
from .events import EventBuilder
from .motion import MotionDetector
from .regions import filter_area, inside_any, merge_detections, plan_regions, to_frame
from .settings import AnalyzerSettings, EventSettings, MotionSettings, Point, TrackerSettings
from .tracker import Tracker

__all__ = ["AnalyzerSettings", "CameraAnalyzer", "EventSettings", "FrameGate", "MotionSettings", "ObjectDetector",
           "Point", "TrackerSettings"]  # the settings live in .settings; imported from here too

NEW_OBJECT_MOTION_COVER = 0.3  # a new object must have this much of its box inside a motion box
# (not tracker.TRACK_MOTION_COVER, 0.1: a track already known needs less to count as still moving)


class ObjectDetector(Protocol):
    """What the pipeline needs from ``edge.vision.detector.Detector``."""

    input_size: int

    def detect(self, image: np.ndarray) -> list[Detection]: ...


def _grow(box: Box, width: int, height: int) -> Box:
    """A motion box with a margin of half its size: motion often covers only part of an object."""
    mx, my = box.width / 2, box.height / 2
    return Box(max(0.0, box.x1 - mx), max(0.0, box.y1 - my), min(width, box.x2 + mx), min(height, box.y2 + my))


class FrameGate:
    """Which frames to analyse for ``detect_fps``: the first frame of each 1/fps slot of source time."""

    def __init__(self, detect_fps: float) -> None:
        self.detect_fps = detect_fps
        self._slot: int | None = None

    def should_analyse(self, time: float) -> bool:
        slot = math.floor(time * self.detect_fps + 1e-6)
        if self._slot is not None and self._slot == slot:
            return False
        self._slot = slot  # a jump back (loop, reconnect) starts again
        return True


class CameraAnalyzer:
    """``edge.interfaces.Analyzer`` for one camera; the detector may be shared between cameras."""

    def __init__(self, camera: str, detector: ObjectDetector, settings: AnalyzerSettings = AnalyzerSettings()) -> None:
        self.camera = camera
        self.detector = detector
        self.settings = settings
        self.timings = StageTimings()
        self.frames = 0
        self.motion_frames = 0
        self.detector_calls = 0
        self._size: tuple[int, int] | None = None
        self._motion: MotionDetector | None = None
        self._tracker: Tracker | None = None
        self._events: EventBuilder | None = None

    def process(self, frame: Frame) -> list[Event]:
        image = frame.image
        h, w = image.shape[:2]
        flushed: list[Event] = []
        if self._size != (w, h):
            if self._size is not None:
                flushed = self.flush(frame.time, frame.wall)
            self._build((w, h))
        assert self._motion is not None and self._tracker is not None and self._events is not None
        self.frames += 1
        t0 = _time.perf_counter()
        moving = self._motion.detect(image)
        t1 = _time.perf_counter()
        self.timings.add("motion", (t1 - t0) * 1000)
        self.motion_frames += bool(moving)
        recheck = self._tracker.due_for_check(frame.time)
        regions: list[Box] = []
        detections: list[Detection] = []
        if moving or recheck:
            wanted = [*(_grow(b, w, h) for b in moving), *recheck]
            if moving:  # moving tracks too: a motion box is often only part of a car
                wanted += [b for b in self._tracker.expected(frame.time) if inside_any(b, moving, 0.05)]
            regions = plan_regions(wanted, (w, h), self.detector.input_size)
            detections = self._detect(image, regions, moving)
            t2 = _time.perf_counter()
            self.timings.add("detect", (t2 - t1) * 1000)
            t1 = t2
        self._tracker.dark = self._motion.gain > 1.0  # the scene fact the tracker's start rule needs
        ended = self._tracker.update(detections, frame.time, regions, moving)
        events = self._events.process(self._tracker.tracks, ended, frame.time, frame.wall, image, frame.mono)
        self.timings.add("track", (_time.perf_counter() - t1) * 1000)
        return flushed + events if flushed else events

    def take_shots(self) -> list[BestShot]:
        """Best-shot candidates of the last ``process`` call (``edge.types.BestShot``, frame by reference)."""
        return self._events.take_shots() if self._events is not None else []

    def flush(self, time: float, wall: float) -> list[Event]:
        """End every open track (end of file, shutdown, frame size change)."""
        if self._tracker is None or self._events is None:
            return []
        return self._events.process([], self._tracker.end_all(), time, wall)

    def stats(self) -> AnalyzerStats:
        track = self._tracker.stats() if self._tracker else None
        ev = self._events
        return AnalyzerStats(
            frames=self.frames,
            motion_frames=self.motion_frames,
            detector_calls=self.detector_calls,
            ms={k: round(v, 3) for k, v in self.timings.mean_ms().items()},  # per frame that ran the stage
            ms_total={k: round(v, 1) for k, v in self.timings.totals_ms.items()},
            tracks=track.tracks if track else 0,
            short_tracks=track.short if track else 0,
            median_track_s=round(track.median_life, 2) if track else 0.0,
            ghosts=track.ghosts if track else 0,
            live_tracks=len(self._tracker.tracks) if self._tracker else 0,
            started=dict(ev.started) if ev else {},
            events=dict(ev.sent) if ev else {},
            lines={k: dict(v) for k, v in ev.line_counts.items()} if ev else {},
            lightning_resets=self._motion.resets if self._motion else 0,
            best_shots_offered=ev.shots_offered if ev else 0,
        )

    def _build(self, size: tuple[int, int]) -> None:
        s = self.settings
        m = s.motion
        self._size = size
        self._motion = MotionDetector(size, m.analysis_height, m.threshold, m.min_area, m.lightning_threshold,
                                      m.frame_alpha, m.persist_frames, m.mask, low_light=m.low_light)
        tr = s.tracker
        self._tracker = Tracker(size, tr.min_hits, tr.max_lost, tr.match_iou, tr.stationary_recheck)
        ev = s.events
        self._events = EventBuilder(self.camera, size, ev.zones, ev.lines, ev.update_interval, ev.score_step,
                                    best_shots=ev.best_shots)

    def _detect(self, image: np.ndarray, regions: Sequence[Box], moving: Sequence[Box]) -> list[Detection]:
        """Run the detector on each crop; keep objects in motion or already tracked."""
        groups = []
        for r in regions:
            crop = image[int(r.y1):int(r.y2), int(r.x1):int(r.x2)]
            groups.append(to_frame(self.detector.detect(crop), r))
            self.detector_calls += 1
        w, h = self._size or (1, 1)
        kept = []
        known = [t.box for t in self._tracker.tracks] if self._tracker else []
        for d in filter_area(merge_detections(groups), w, h, self.settings.min_area, self.settings.max_area):
            # Parked cars inside a crop are not news: a detection must be moving or match a known track.
            if inside_any(d.box, moving, NEW_OBJECT_MOTION_COVER) or any(d.box.iou(k) > 0.3 for k in known):
                kept.append(d)
        return kept
