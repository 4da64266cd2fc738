"""The two loops that move one camera's data: capture and analysis.

Capture reads the source and never waits on analysis: packets go to the clip
recorder (cheap, queued), and only frames chosen by the gate it is built with
(``vision.pipeline.FrameGate``, by source time) are converted
and handed over through a small ``FrameSlot``. A live camera drops the oldest
waiting frame when analysis is slow (counted); a file read flat out waits
instead, so results are the same on any machine.
"""

from __future__ import annotations

import logging
import queue
import random
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from ..capture import SourceError
from ..interfaces import Analyzer, BestShots, ClipSink, EventSink, Gate, Source
from ..types import CameraState, Event, EventType, Frame, Packet
from .status import AnalysisStatus, CaptureStatus

log = logging.getLogger("edge.camera")  # the name the journal has always shown for these lines


END = object()  # put in a FrameSlot when capture is finished for good
GAP = object()  # put in a FrameSlot when a two-stream camera's detect stream drops: analysis ends its tracks
CLOCK_DECAY = 0.02  # per observation: how fast a StreamClock follows a stream that arrives later than before


class StreamClock:
    """One stream's source time against monotonic arrival time: lines a camera's two streams up.

    The offset is ``time - mono`` of the least-delayed arrivals (a packet held up in the network only makes
    it smaller), following slowly when the stream as a whole arrives later (a reconnect). Two floats, no
    allocation: ``observe`` runs per packet on the capture thread, the others read it from analysis.
    """

    def __init__(self) -> None:
        self.offset: float | None = None

    def observe(self, time_s: float, mono: float) -> None:
        d = time_s - mono
        off = self.offset
        self.offset = d if off is None or d > off else off + (d - off) * CLOCK_DECAY

    def to_mono(self, time_s: float) -> float | None:
        off = self.offset
        return None if off is None else time_s - off

    def to_time(self, mono: float) -> float | None:
        off = self.offset
        return None if off is None else mono + off


def translate(detect: StreamClock, record: StreamClock) -> Callable[[float], float]:
    """Detect-stream source time → record-stream source time, through monotonic arrival time."""
    def to_record(time_s: float) -> float:
        mono = detect.to_mono(time_s)
        out = record.to_time(mono) if mono is not None else None
        return time_s if out is None else out
    return to_record


class FrameSlot:
    """A bounded hand-over of frames from capture to analysis."""

    def __init__(self, size: int = 2, block: bool = False) -> None:
        self._queue: queue.Queue = queue.Queue(maxsize=size)
        self.block = block
        self.dropped = 0

    def put(self, item: object, stop: threading.Event) -> None:
        if self.block or item is END:
            while not stop.is_set() or item is END:
                try:
                    self._queue.put(item, timeout=0.5)
                    return
                except queue.Full:
                    if item is END:
                        self._drop_one()
            return
        try:
            self._queue.put_nowait(item)
        except queue.Full:
            self._drop_one()
            self._queue.put_nowait(item)

    def _drop_one(self) -> None:
        try:
            self._queue.get_nowait()
            self.dropped += 1
        except queue.Empty:
            pass

    def get(self, timeout: float) -> object | None:
        try:
            return self._queue.get(timeout=timeout)
        except queue.Empty:
            return None


class CaptureLoop:
    """Open, read, reconnect with capped exponential backoff and jitter; never raise."""

    def __init__(self, name: str, source: Source, slot: FrameSlot | None, recorder: ClipSink | None,
                 live: bool, reconnect_max: float, encoder_factory: Callable[[], Any] | None = None, *,
                 gate: Gate | None, role: str = "both", clock: StreamClock | None = None) -> None:
        """``role``: "both" (a one-stream camera), "record" (a two-stream camera's record stream: packets to
        the recorder, no slot, no gate) or "detect" (its detect stream: frames to the slot, nothing recorded).
        ``clock`` observes this stream's source time against arrival time (two-stream cameras)."""
        self.name = name
        self.role = role
        self.clock = clock
        self.encoder_factory = encoder_factory  # for raw sources (USB): encode once so clips still work
        self._encoder: Any = None
        self.source = source
        self.slot = slot
        self.recorder = recorder
        self.live = live
        self.reconnect_max = reconnect_max
        self.gate = gate
        self.state = CameraState.STARTING
        self.heartbeat = time.monotonic()
        self.opened = threading.Event()  # first open attempt done (ok or not)
        self.frames = 0
        self.packets = 0
        self.reconnects = 0
        self.last_error = ""
        self.resolution: tuple[int, int] | None = None
        self.fps = 0.0
        self.codec: str | None = None

    def run(self, stop: threading.Event) -> None:
        backoff = 1.0
        try:
            while not stop.is_set():
                if not self._open():
                    if self.state is CameraState.FAILED:
                        break
                    stop.wait(backoff * random.uniform(0.8, 1.2))
                    backoff = min(backoff * 2, self.reconnect_max)
                    continue
                began = time.monotonic()
                finished = self._read(stop)
                if finished or stop.is_set():
                    break
                if time.monotonic() - began > 10:
                    backoff = 1.0
                self.reconnects += 1
                self._set_state(CameraState.RECONNECTING, "stream ended; reconnecting")
                self._lost("stream ended", stop)
        finally:
            self.opened.set()
            if self.slot is not None:
                self.slot.put(END, stop)

    def _lost(self, why: str, stop: threading.Event) -> None:
        """Two-stream cameras: the other stream goes on alone. The recorder closes its clip and refuses new
        ones; analysis ends its tracks (their clips finish with their post-roll while recording goes on)."""
        if self.role == "record" and self.recorder is not None:
            self.recorder.end_stream(why)
        elif self.role == "detect" and self.slot is not None:
            self.slot.put(GAP, stop)

    def snapshot(self) -> CaptureStatus:
        """This loop's counters now (read from another thread: each field is one atomic read)."""
        return CaptureStatus(state=self.state, reconnects=self.reconnects,
                             bad_packets=getattr(self.source, "bad_packets", 0),
                             dropped=self.slot.dropped if self.slot is not None else 0,
                             last_error=self.last_error, resolution=self.resolution,
                             decoder=getattr(self.source, "decoder", None), fps=self.fps, codec=self.codec)

    def _open(self) -> bool:
        try:
            info = self.source.open()
        except SourceError as err:
            self.last_error = str(err)
            self._set_state(CameraState.RECONNECTING if err.retryable else CameraState.FAILED, str(err))
            if self.role == "record" and self.recorder is not None:
                self.recorder.end_stream(str(err))
            self.opened.set()
            return False
        if info is None and self.recorder is not None and self.encoder_factory is not None:
            self._encoder = self.encoder_factory()
            info = self._encoder.info()
        if info is not None:
            self.resolution = (info.width, info.height)
            self.fps, self.codec = info.fps, info.codec
            if self.recorder is not None:
                self.recorder.start_stream(info)
        detail = f" {info.width}x{info.height} {info.fps:.2f} fps" if info else ""
        self._set_state(CameraState.RUNNING, "open" + detail)
        self.opened.set()
        return True

    def _read(self, stop: threading.Event) -> bool:
        """Pump one connection; True when the source is finished for good (end of file)."""
        gate, slot, name, clock = self.gate, self.slot, self.name, self.clock
        recorder = self.recorder if self.role != "detect" else None
        try:
            for item in self.source.items():
                self.heartbeat = time.monotonic()
                if isinstance(item, Packet):
                    self.packets += 1
                    if clock is not None:
                        clock.observe(item.time, item.mono)
                    if recorder is not None:
                        recorder.feed(item)
                elif slot is not None and gate is not None:
                    if clock is not None:
                        clock.observe(item.time, item.mono)
                    if self._encoder is not None:
                        self._record_raw(item)
                    if gate.should_analyse(item.time):
                        self.frames += 1
                        image = item.to_bgr()
                        frame = Frame(name, item.index, item.time, item.mono, item.wall, image)
                        slot.put(frame, stop)
                if stop.is_set():
                    return True
        except SourceError as err:
            self.last_error = str(err)
            self._set_state(CameraState.FAILED, str(err))
            self._lost(str(err), stop)
            return True
        finally:
            self.source.close()
        if not self.live:
            bad = getattr(self.source, "bad_packets", 0)
            skipped = f", {bad} undecodable packet{'s' if bad != 1 else ''} skipped" if bad else ""
            self._set_state(CameraState.FINISHED, f"end of file after {self.frames} analysed frames{skipped}")
            return True
        return False

    def _record_raw(self, picture: Any) -> None:
        """Raw sources only: every frame goes through the encoder so the recorder gets packets."""
        assert self.recorder is not None
        for packet in self._encoder.encode(picture.to_bgr(), picture.time, picture.mono, picture.wall):
            self.packets += 1
            self.recorder.feed(packet)

    def _set_state(self, state: CameraState, why: str) -> None:
        if state is not self.state:
            level = logging.INFO if state in (CameraState.RUNNING, CameraState.FINISHED) else logging.WARNING
            if state is CameraState.FAILED:
                level = logging.ERROR
            log.log(level, "camera %s: %s: %s", self.name, state.value, why)
        self.state = state


class AnalysisLoop:
    """Frames → analyzer → events, each event told to the recorder, then handed to the outbox."""

    def __init__(self, name: str, slot: FrameSlot, analyzer: Analyzer, recorder: ClipSink | None,
                 events: EventSink, clock_ok: Callable[[], bool],
                 record_time: Callable[[float], float] | None = None, shots: BestShots | None = None) -> None:
        """``record_time`` (two-stream cameras): an event's source time on the detect stream → the record
        stream's, so the recorder's pre-roll and the clip's event times refer to the video it records."""
        self.name = name
        self.record_time = record_time
        self.shots = shots  # the node's best-shot worker: candidates in, each object's end
        self.slot = slot
        self.analyzer = analyzer
        self.recorder = recorder
        self.events = events
        self.clock_ok = clock_ok
        self.heartbeat = time.monotonic()
        self.latest: Frame | None = None
        self.analysed = 0
        self.event_counts: dict[str, int] = {}
        self._thumbed: str | None = None  # the last clip given its first detection's frame

    def run(self, stop: threading.Event) -> None:
        last_time, last_wall = 0.0, time.time()
        while True:
            item = self.slot.get(timeout=0.5)
            self.heartbeat = time.monotonic()
            if item is None:
                continue
            if item is END:
                break
            if item is GAP:  # the detect stream dropped: end its tracks, so open clips end with their post-roll
                for event in self.analyzer.flush(last_time, last_wall):
                    self._route(event)
                self.latest = None
                continue
            frame: Frame = item  # type: ignore[assignment]
            self.latest = frame
            self.analysed += 1
            last_time, last_wall = frame.time, frame.wall
            for event in self.analyzer.process(frame):
                self._route(event, frame.image)
            if self.shots is not None:
                for shot in self.analyzer.take_shots():
                    self.shots.offer(shot)
        for event in self.analyzer.flush(last_time, last_wall):
            self._route(event)

    def snapshot(self) -> AnalysisStatus:
        """This loop's counters and its analyzer's stage timings and line counts, now."""
        analyzer = self.analyzer.stats()
        return AnalysisStatus(analysed=self.analysed, events=sum(self.event_counts.values()),
                              stage_ms=analyzer.ms, lines=analyzer.lines)

    def _route(self, event: Event, image: Any = None) -> None:
        # time facts first: the recorder copies the event into the clip's signed record, which must never
        # claim a synchronised clock the node did not have (an event built with time_ok=False stays False)
        event = replace(event, time_ok=event.time_ok and self.clock_ok())
        clip = None
        if self.recorder is not None:
            told = event if self.record_time is None else replace(event, time=self.record_time(event.time))
            clip = self.recorder.on_event(told)
        if event.type is EventType.END and clip:
            event = replace(event, clip=clip)
        if event.type is EventType.END and self.shots is not None and event.best is not None:
            self.shots.finish(event)  # after the clip is known: the best shot is stored with it
        if clip and clip != self._thumbed and image is not None and event.type is not EventType.END:
            self._thumbed = clip  # once per clip: a reference to a frame already decoded, no copy, no I/O
            self.recorder.offer_thumbnail(clip, image, event.box, event.label)  # type: ignore[union-attr]
        key = f"{event.type.value}:{event.label}"
        self.event_counts[key] = self.event_counts.get(key, 0) + 1
        log.info(
            "event %-6s %-10s %s score=%.2f zones=%s%s%s",
            event.type.value, event.label, event.id, event.score, ",".join(event.zones) or "-",
            f" line={event.line.name}:{event.line.direction}" if event.line else "",
            f" clip={event.clip}" if event.clip else "",
        )
        self.events.submit(event)
