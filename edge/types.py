"""The small values passed between pipeline stages.

Every stage speaks only these types, so a stage can be tested alone on real
frames and swapped without touching its neighbours. One box convention
everywhere inside the node: full-frame pixel ``x1, y1, x2, y2`` (floats).
Normalised 0..1 boxes exist only in MQTT payloads (see ``edge.payload``).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Box:
    """Axis-aligned box in full-frame pixel coordinates."""

    x1: float
    y1: float
    x2: float
    y2: float

    @property
    def width(self) -> float:
        return max(0.0, self.x2 - self.x1)

    @property
    def height(self) -> float:
        return max(0.0, self.y2 - self.y1)

    @property
    def area(self) -> float:
        return self.width * self.height

    @property
    def center(self) -> tuple[float, float]:
        return ((self.x1 + self.x2) / 2.0, (self.y1 + self.y2) / 2.0)

    def iou(self, other: Box) -> float:
        ix = max(0.0, min(self.x2, other.x2) - max(self.x1, other.x1))
        iy = max(0.0, min(self.y2, other.y2) - max(self.y1, other.y1))
        inter = ix * iy
        union = self.area + other.area - inter
        return inter / union if union > 0 else 0.0

    def normalised(self, width: int, height: int) -> tuple[float, float, float, float]:
        """0..1 coordinates for payloads, clamped to the frame."""

        def clamp(v: float) -> float:
            return min(1.0, max(0.0, v))

        return (
            clamp(self.x1 / width),
            clamp(self.y1 / height),
            clamp(self.x2 / width),
            clamp(self.y2 / height),
        )

    @classmethod
    def from_normalised(cls, xyxy: tuple[float, float, float, float], width: int, height: int) -> Box:
        x1, y1, x2, y2 = xyxy
        return cls(x1 * width, y1 * height, x2 * width, y2 * height)


@dataclass(frozen=True)
class StreamInfo:
    """What a recorder needs to mux a source's packets without re-encoding."""

    codec: str  # e.g. "h264"
    width: int
    height: int
    time_base: Fraction  # unit of Packet.pts / Packet.dts
    fps: float  # nominal frame rate (0.0 when unknown)
    extradata: bytes | None = None  # SPS/PPS (avcC) when the container gives it


@dataclass(frozen=True)
class Packet:
    """One encoded video packet, copied out of the demuxer.

    ``pts``/``dts`` are in ``time_base`` units of the stream and are our own
    copy: muxers rescale packets in place, so the ring never hands out the
    demuxer's object.
    """

    data: bytes
    pts: int | None
    dts: int | None
    duration: int
    keyframe: bool
    time: float  # seconds of source time (pts * time_base, made monotonic)
    mono: float  # time.monotonic() when captured
    wall: float  # time.time() when captured


@dataclass
class Frame:
    """One decoded frame chosen for analysis."""

    camera: str
    index: int  # decoded frame number since the source opened
    time: float  # seconds of source time, same clock as Packet.time
    mono: float
    wall: float
    image: np.ndarray  # BGR, HxWx3, uint8


@dataclass(frozen=True)
class Detection:
    """A detector hit: label from the model's label list, score 0..1."""

    label: str
    score: float
    box: Box


@dataclass(frozen=True)
class LineCrossing:
    name: str
    direction: str  # "in" | "out"


class EventType(str, enum.Enum):
    START = "start"
    UPDATE = "update"
    END = "end"


@dataclass(frozen=True)
class Event:
    """One message about one tracked object; ``seq`` is given later by the outbox."""

    id: str
    type: EventType
    camera: str
    label: str
    score: float
    ts: float  # wall clock, UNIX seconds
    time: float  # source time (same clock as Packet.time): lines events up with video
    box: tuple[float, float, float, float]  # normalised 0..1
    zones: tuple[str, ...] = ()
    clip: str | None = None
    time_ok: bool = True
    line: LineCrossing | None = None
    duration: float | None = None
    color: str | None = None  # on end: one of edge.vision.attributes.COLORS
    color_score: float | None = None
    heading: str | None = None  # on end: up, up-right, ... (edge.vision.attributes.HEADINGS)
    best: str | None = None  # on end: id of the object's best-shot JPEG (GET /api/v1/best/<id>.jpg), or None
    plate: str | None = None  # on end (or a later update): normalised plate text, e.g. "29-B1 123.45"
    plate_score: float | None = None


@dataclass(frozen=True)
class BestShot:
    """The moment a tracked object was seen best, chosen by the analysis side (#16).

    ``image`` is the object's crop with its margin, copied out of the analysed
    frame by the analysis side (a few KB, at most ~2 a second a track), with
    ``inner`` the object's box normalised to that crop: a queue of candidates
    waiting for a busy worker then holds crops, never whole frames (64 queued
    1080p-analysed frames would be 400 MB, 640x360 ones 44 MB). The worker
    encodes it on its own thread, and asks a ``StillSource`` for the record
    stream's full-resolution frame at ``mono`` first (two-stream cameras, #20).
    ``box`` is normalised 0..1 to the analysed frame, so it holds on either stream.
    """

    object_id: str  # the tracked object's id (Event.id)
    camera: str
    label: str
    score: float
    quality: float  # what the choice ranked by (bigger is better)
    time: float  # source time of the analysed frame
    mono: float  # monotonic capture time: lines the two streams of one camera up
    wall: float
    box: tuple[float, float, float, float]  # normalised 0..1
    image: np.ndarray  # BGR, HxWx3, uint8: the object's crop with its margin (its own copy)
    inner: tuple[float, float, float, float]  # the object's box normalised to ``image``


class CameraState(str, enum.Enum):
    STARTING = "starting"
    RUNNING = "running"
    RECONNECTING = "reconnecting"
    FAILED = "failed"
    FINISHED = "finished"


@dataclass
class StageTimings:
    """Accumulated per-stage cost, read by stats and the benchmark."""

    totals_ms: dict[str, float] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)

    def add(self, stage: str, ms: float) -> None:
        self.totals_ms[stage] = self.totals_ms.get(stage, 0.0) + ms
        self.counts[stage] = self.counts.get(stage, 0) + 1

    def mean_ms(self) -> dict[str, float]:
        return {k: self.totals_ms[k] / max(1, self.counts.get(k, 1)) for k in self.totals_ms}


@dataclass(frozen=True)
class ClipRecord:
    """One finished clip as the index knows it (what the LAN API lists)."""

    id: str
    camera: str
    start_ts: float  # wall clock of the first packet
    end_ts: float
    labels: tuple[str, ...]
    bytes: int
    sha256: str
    held: bool = False
    status: str = "ok"  # "ok" | "lost" (file vanished; kept so the gap is visible)
    time_ok: bool = True
    events: tuple[str, ...] = ()  # ids of the tracked objects this clip covers


@dataclass
class Finished:
    """What the writer knows about a clip it has finalised."""

    start_ts: float
    end_ts: float
    duration: float
    start_mono: float | None = None
    end_mono: float | None = None
    time_ok: bool = True
    labels: list[str] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)


# ---- stage reports -------------------------------------------------------------------------------
# What each stage's ``stats()`` hands out: frozen snapshots, read by the node (``edge.node.status`` alone
# turns them into the MQTT ``stats`` payload and ``/api/v1/health``, with the published key names).
# They live here, not next to their stage, because the protocols in ``edge.interfaces`` name them and
# the camera loops see stages only through those protocols.


@dataclass(frozen=True, slots=True)
class RecorderStats:
    """A clip recorder (``ClipRecorder.stats``) at one moment."""

    packets: int  # fed
    dropped: int  # not queued: the writer was behind
    clips: int  # finished
    lost: int
    errors: int
    queued: int  # waiting for the writer thread
    ring_s: float  # pre-roll held in memory (seconds, 2 decimals)
    ring_bytes: int
    recording: str | None  # the open clip's id
    paused: bool  # the store's pause (a full disk)
    streaming: bool  # a record stream is connected
    down: str | None  # why there is no record stream now; None while streaming or before the first


@dataclass(frozen=True, slots=True)
class ClipStoreStats:
    """The clip store (``ClipStore.stats``) at one moment."""

    clips: int  # finished ("ok") clips
    bytes: int  # their size
    held: int
    lost: int
    best_bytes: int  # the best-shot JPEGs
    quarantined: int
    paused: bool
    pause_reason: str
    free_bytes: int


@dataclass(frozen=True, slots=True)
class OutboxStats:
    """The event outbox (``OutboxService.stats``) at one moment."""

    depth: int  # kept plus still queued
    oldest_age_s: float  # 1 decimal
    evicted: int
    trimmed: int
    published: int
    replayed: int
    connected: bool
    blocked_submits: int
    last_seq: int
    unsent: int
    end_to_end: bool
    central_seq: int
    resent: int
    unstored: int
    disk_reserve: bool


@dataclass(frozen=True, slots=True)
class DetectorStats:
    """The shared detector's load (``SharedDetector.stats``), per calling thread (``analysis-<camera>``)."""

    calls: Mapping[str, int]
    waited_s: Mapping[str, float]  # seconds waited for the detector (3 decimals)
    busy_s: float  # the detector's busy seconds (3 decimals)


@dataclass(frozen=True, slots=True)
class IdentificationStats:
    """The best-shot worker and the plate reader behind it (``BestShotWorker.stats``) at one moment."""

    offered: int  # candidates the analysis loops offered
    dropped: int  # candidates or ends refused because the worker's queue was full
    stored: int  # best shots in the clip store
    store_failed: int
    from_record_stream: int  # of those, cropped from a full-resolution record-stream still
    stills_over_budget: int  # cut from the analysed frame because stills were over still_max_cpu
    still_cpu_s: float  # CPU spent decoding record-stream stills (3 decimals)
    plates_submitted: int  # vehicles handed to the plate reader (0 with [plates] off)
    plates_read: int
    plates_found: int
    plates_dropped: int  # refused: the reader's queue was full or over its max_cpu
    plates_cpu_s: float  # CPU spent reading plates (3 decimals)


@dataclass(frozen=True, slots=True)
class AnalyzerStats:
    """One camera's vision pipeline (``CameraAnalyzer.stats``) at one moment."""

    frames: int
    motion_frames: int
    detector_calls: int
    ms: Mapping[str, float]  # mean per frame that ran the stage (3 decimals)
    ms_total: Mapping[str, float]  # total per stage (1 decimal)
    tracks: int  # confirmed tracks that ended
    short_tracks: int  # of those, lived < 1 s
    median_track_s: float
    ghosts: int
    live_tracks: int
    started: Mapping[str, int]  # start events per label
    events: Mapping[str, int]  # events sent per type
    lines: Mapping[str, Mapping[str, int]]  # crossings per line and direction
    lightning_resets: int
    best_shots_offered: int
