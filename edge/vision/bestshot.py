"""Best shots off the hot path: crop, encode and store each tracked object's best view, then read its plate.

The event builder (``vision.events``) picks the candidates: a few per track, each a ``BestShot`` holding the
analysed frame by reference. This worker, on its own thread behind a bounded queue, keeps a small copy of the
newest candidate's crop per live object (never the frame). At the object's ``end`` it makes the JPEG: from
the record stream's full-resolution still when the camera has one and its pre-roll ring still holds the
moment (``interfaces.StillSource``: a two-stream camera analyses its small stream), else from the analysed
crop. Stills are the costly part (a 1080p GOP is 48 frames to decode): ends are gathered for ``BATCH_S`` so
the objects whose best moments share a GOP share its decoding pass, and the decoding is held to
``clips.still_max_cpu`` of a core (a token bucket; over it, the analysed crop, counted). The JPEG is stored
(``BestShotSink``, the clip store: signed with its clip, deleted with it) and, for vehicles, handed with
the earlier candidates' crops to the plate reader; a plate read after the ``end`` comes back as an
``update`` event of the same object (consumers keep the latest).

Nothing here blocks the caller: a full queue drops the candidate (counted); the end of an object that was
dropped is still handled with whatever candidate got through.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import cv2
import numpy as np

from ..interfaces import BestShotSink, EventSink, Still
from ..types import BestShot, Event, EventType, IdentificationStats

log = logging.getLogger(__name__)

Box = tuple[float, float, float, float]
StillsAt = Callable[[str, Sequence[float]], Iterable[tuple[int, Still]]]  # StillSource.stills_at, by camera

PLATE_LABELS = frozenset({"car", "motorcycle", "truck", "bus"})
MARGIN = 0.15  # of the box's size on each side: the object whole, a little context, the plate not cut off
MAX_SIDE = 1280  # px on the long side of the stored JPEG (a plate must stay readable)
JPEG_QUALITY = 88
BATCH_S = 1.0  # ends wait this long for others whose best moments share a GOP (one decoding pass for all)
STILL_BURST_S = 1.0  # CPU-seconds of stills the budget can lend at once (after a quiet spell)
_STOP = object()


@dataclass
class BestShotCounts:
    """The worker's live counters (``BestShotWorker.stats`` hands out a frozen copy with the plates' own)."""

    offered: int = 0
    dropped: int = 0  # candidates or ends refused because the queue was full
    encoded: int = 0  # candidates whose crop was kept
    from_record_stream: int = 0  # stored shots cropped from the record stream's still (two-stream cameras)
    stills_over_budget: int = 0  # shots cut from the analysed frame because stills were over still_max_cpu
    still_cpu_s: float = 0.0  # CPU spent decoding stills
    stored: int = 0
    store_failed: int = 0
    plates_submitted: int = 0
    plates_found: int = 0


RUNNER_UPS = 2  # earlier candidates kept for the plate reader, tried only while the best shot is unreadable


@dataclass
class _Latest:
    """An object's best candidate so far: a small copy of its crop, never the frame it came from."""

    camera: str
    mono: float
    wall: float
    box: tuple[float, float, float, float]  # normalised to the analysed frame
    crop: np.ndarray  # BGR crop of the analysed frame (with its margin)
    inner: tuple[float, float, float, float]  # the object's box normalised to that crop
    runner_ups: tuple[np.ndarray, ...] = ()  # the crops it replaced, newest first


def _crop_rect(w: int, h: int, box: tuple[float, float, float, float],
               margin: float) -> tuple[tuple[int, int, int, int], tuple[float, float, float, float]]:
    """Pixel rectangle of the object with ``margin`` around it (clamped to the frame), and the object's box
    normalised to that rectangle."""
    x1, y1, x2, y2 = box[0] * w, box[1] * h, box[2] * w, box[3] * h
    mx, my = (x2 - x1) * margin, (y2 - y1) * margin
    cx1, cy1 = max(0, int(x1 - mx)), max(0, int(y1 - my))
    cx2, cy2 = min(w, int(round(x2 + mx))), min(h, int(round(y2 + my)))
    cw, ch = max(1, cx2 - cx1), max(1, cy2 - cy1)

    def norm(v: float) -> float:
        return round(min(1.0, max(0.0, v)), 4)

    return (cx1, cy1, cx2, cy2), (norm((x1 - cx1) / cw), norm((y1 - cy1) / ch), norm((x2 - cx1) / cw),
                                  norm((y2 - cy1) / ch))


def crop_box(image: np.ndarray, box: tuple[float, float, float, float],
             margin: float = MARGIN) -> tuple[np.ndarray, tuple[float, float, float, float]]:
    """The object with ``margin`` around it (clamped to the frame), and its box normalised to that crop."""
    (x1, y1, x2, y2), inner = _crop_rect(image.shape[1], image.shape[0], box, margin)
    return image[y1:y2, x1:x2], inner


def crop_still(still: Still, box: tuple[float, float, float, float],
               margin: float = MARGIN) -> tuple[np.ndarray, tuple[float, float, float, float]]:
    """``crop_box`` of a record-stream still: only the crop is converted to BGR, never the whole frame."""
    rect, inner = _crop_rect(still.width, still.height, box, margin)
    return still.crop(*rect), inner


def encode_jpeg(crop: np.ndarray, max_side: int = MAX_SIDE, quality: int = JPEG_QUALITY) -> bytes | None:
    h, w = crop.shape[:2]
    if h == 0 or w == 0:
        return None
    scale = max_side / max(h, w)
    if scale < 1:
        crop = cv2.resize(crop, (max(1, int(w * scale)), max(1, int(h * scale))), interpolation=cv2.INTER_AREA)
    ok, buf = cv2.imencode(".jpg", crop, [cv2.IMWRITE_JPEG_QUALITY, quality])
    return buf.tobytes() if ok else None


class BestShotWorker:
    """``offer(shot)`` per candidate, ``finish(end_event)`` per object; the work happens on one thread."""

    def __init__(self, sink: BestShotSink | None, stills_at: StillsAt | None = None,
                 events: EventSink | None = None, plates: Any = None, queue_size: int = 64,
                 clock: Callable[[], float] = time.time, still_max_cpu: float = 0.15,
                 batch_s: float = BATCH_S) -> None:
        """``stills_at(camera, monos)``: the camera's record-stream stills (``StillSource.stills_at``), nothing
        where it has one stream; ``still_max_cpu``: CPU-s per s (of one core) the stills may take, 0 = never;
        ``plates``: a ``PlateWorker``-like object (``submit(key, shots) -> bool``) or None;
        ``events`` gets the ``update`` events that carry a plate read after its object's ``end``."""
        self.sink = sink
        self.stills_at = stills_at
        self.still_max_cpu = still_max_cpu
        self.batch_s = batch_s
        self._budget = STILL_BURST_S  # CPU-seconds the stills may spend now; refilled at still_max_cpu
        self._budget_at = time.monotonic()
        self._pending: list[Event] = []  # ends waiting for their batch (worker thread only)
        self._pending_since = 0.0
        self.events = events
        self.plates = plates
        self.counts = BestShotCounts()
        self._clock = clock
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=queue_size)
        self._latest: dict[str, _Latest] = {}
        self._thread = threading.Thread(target=self._run, name="best-shots", daemon=True)
        self._thread.start()

    def offer(self, shot: BestShot) -> None:
        """A candidate from the analysis thread; never blocks (dropped and counted when the queue is full)."""
        self.counts.offered += 1
        try:
            self._queue.put_nowait(shot)
        except queue.Full:
            self.counts.dropped += 1

    def finish(self, end: Event) -> None:
        """The object's ``end`` event, as routed (with its clip): store its best shot, read its plate."""
        try:
            self._queue.put_nowait(end)
        except queue.Full:
            self.counts.dropped += 1
            self._latest.pop(end.id, None)  # the worker thread alone writes it; a pop of a missing key is harmless

    def stats(self) -> IdentificationStats:
        """Counters at this moment, the plate reader's with them (zeros where plates are off)."""
        c = self.counts
        p = getattr(self.plates, "stats", None)
        return IdentificationStats(
            offered=c.offered, dropped=c.dropped, stored=c.stored, store_failed=c.store_failed,
            from_record_stream=c.from_record_stream, stills_over_budget=c.stills_over_budget,
            still_cpu_s=round(c.still_cpu_s, 3), plates_submitted=c.plates_submitted,
            plates_read=int(getattr(p, "read", 0)), plates_found=c.plates_found,
            plates_dropped=int(getattr(p, "dropped", 0)), plates_cpu_s=round(float(getattr(p, "cpu_s", 0.0)), 3))

    def stop(self, timeout: float = 10.0) -> None:
        """Finish what is queued (within ``timeout``), then end the thread."""
        try:
            self._queue.put(_STOP, timeout=timeout)
        except queue.Full:
            log.warning("best shots: queue still full at stop")
        self._thread.join(timeout)

    def on_plate(self, key: Any, plate: Any) -> None:
        """``PlateWorker`` result handler: a plate read after the ``end`` goes out as an ``update``."""
        end: Event = key
        if plate is None or self.events is None:
            return
        self.counts.plates_found += 1
        self.events.submit(replace(end, type=EventType.UPDATE, ts=self._clock(), duration=None,
                                   plate=plate.text, plate_score=round(float(plate.score), 3)))

    def _run(self) -> None:
        while True:
            timeout = None if not self._pending else max(0.0, self._pending_since + self.batch_s - time.monotonic())
            try:
                item = self._queue.get(timeout=timeout)
            except queue.Empty:
                item = None
            if item is _STOP:
                self._flush()
                return
            try:
                if isinstance(item, BestShot):
                    self._encode(item)
                elif isinstance(item, Event):
                    if not self._pending:
                        self._pending_since = time.monotonic()
                    self._pending.append(item)
            except Exception:  # one bad frame must not end the thread
                log.exception("best shots: failed for %s", getattr(item, "object_id", getattr(item, "id", "?")))
            if self._pending and time.monotonic() >= self._pending_since + self.batch_s:
                self._flush()

    def _flush(self) -> None:
        """Store the waiting ends' best shots: one still pass per camera and GOP, then crop, encode, store."""
        ends, self._pending = self._pending, []
        batch = [(end, latest) for end in ends
                 if (latest := self._latest.pop(end.id, None)) is not None and end.best is not None]
        try:
            stills = self._stills(batch)
        except Exception:  # a decoder fault: every shot of the batch falls back to its analysed crop
            log.exception("best shots: record-stream stills failed")
            stills = {}
        for i, (end, latest) in enumerate(batch):
            try:
                self._store(end, latest, stills.get(i))
            except Exception:  # one store fault must not end the thread, nor lose the rest of the batch
                log.exception("best shots: failed for %s", end.id)

    def _encode(self, shot: BestShot) -> None:
        """Keep the candidate's crop (the analysis side copied it out of its frame)."""
        self.counts.encoded += 1
        before = self._latest.get(shot.object_id)
        runner_ups = (before.crop, *before.runner_ups)[:RUNNER_UPS] if before is not None else ()
        self._latest[shot.object_id] = _Latest(shot.camera, shot.mono, shot.wall, shot.box, shot.image, shot.inner,
                                               runner_ups)

    def _stills(self, batch: list[tuple[Event, _Latest]]) -> dict[int, tuple[np.ndarray, Box]]:
        """Index in ``batch`` -> the full-resolution crop, for the shots whose camera's record stream still
        holds their moment, while the CPU budget lasts (checked per camera's pass; a pass may overdraw it)."""
        crops: dict[int, tuple[np.ndarray, Box]] = {}
        if self.stills_at is None or not batch or self.still_max_cpu <= 0:
            return crops
        by_camera: dict[str, list[int]] = {}
        for i, (_, latest) in enumerate(batch):
            by_camera.setdefault(latest.camera, []).append(i)
        for camera, idx in by_camera.items():
            if not self._budget_left():
                self.counts.stills_over_budget += len(idx)
                continue
            began = time.thread_time()
            for k, still in self.stills_at(camera, [batch[i][1].mono for i in idx]):
                crops[idx[k]] = crop_still(still, batch[idx[k]][1].box)  # a new array: the frame is let go
            spent = time.thread_time() - began
            self.counts.still_cpu_s += spent
            self._budget -= spent
        return crops

    def _budget_left(self) -> bool:
        now = time.monotonic()
        self._budget = min(STILL_BURST_S, self._budget + (now - self._budget_at) * self.still_max_cpu)
        self._budget_at = now
        return self._budget > 0

    def _store(self, end: Event, latest: _Latest, still: tuple[np.ndarray, Box] | None) -> None:
        if end.best is None:
            return
        if still is not None:
            self.counts.from_record_stream += 1
            crop, box = still
        else:
            crop, box = latest.crop, latest.inner
        jpeg = encode_jpeg(crop)
        if jpeg is None:
            return
        if self.sink is not None:
            digest = self.sink.add_best(end.best, end.id, end.camera, end.clip, jpeg, box, latest.wall, end.label)
            if digest is None:
                self.counts.store_failed += 1
            else:
                self.counts.stored += 1
        if self.plates is not None and end.label in PLATE_LABELS:
            self.counts.plates_submitted += 1
            self.plates.submit(end, [crop, *latest.runner_ups])
