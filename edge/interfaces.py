"""The narrow contracts between the daemon and its stages.

The daemon only wires objects that satisfy these protocols; each stage's own
module implements one. Per-frame methods only, no constructors here: a stage
takes plain values in its own ``__init__``.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from .types import (
    AnalyzerStats,
    BestShot,
    ClipRecord,
    ClipStoreStats,
    Event,
    Finished,
    Frame,
    Packet,
    RecorderStats,
    StreamInfo,
)


class Picture(Protocol):
    """A decoded frame that is converted to a BGR array only when analysis wants it."""

    index: int
    time: float
    mono: float
    wall: float

    def to_bgr(self) -> np.ndarray: ...


class Source(Protocol):
    """A camera: open, then yield packets and pictures in capture order until the stream ends."""

    name: str

    def open(self) -> StreamInfo | None:
        """Connect; raise ``capture.SourceError`` with a one-line reason. None: no packets (raw source)."""

    def items(self) -> Iterator[Packet | Picture]:
        """Packets (compressed, for clips) and pictures (decoded); ends on end of stream or disconnect."""

    def close(self) -> None: ...


class Still(Protocol):
    """One decoded full-resolution frame, converted to BGR only where it is wanted: a best shot converts its
    crop, not the 1080p-4MP frame (a full BGR copy is 6-24 MB of peak memory per still)."""

    width: int
    height: int

    def crop(self, x1: int, y1: int, x2: int, y2: int) -> np.ndarray:
        """BGR pixels of ``[y1:y2, x1:x2]`` (a new array; the frame can be let go after)."""
        ...

    def to_bgr(self) -> np.ndarray:
        """The whole frame in BGR (snapshots)."""
        ...


class StillSource(Protocol):
    """Full-resolution stills of a camera's record stream, decoded on demand, never on the hot path.

    Implemented by the recorder (it holds the record stream's packet ring): it
    decodes from the keyframe at or before ``mono`` up to the frame nearest to
    it. Called from a worker thread (best shots, snapshots); may take tens to
    hundreds of ms; returns None when the ring no longer (or never) held it.
    """

    def still_at(self, mono: float) -> np.ndarray | None: ...

    def stills_at(self, monos: Sequence[float]) -> Iterator[tuple[int, Still]]:
        """``(k, still)`` for each ``monos[k]`` still held, one decoding pass per GOP; use each ``still``
        before asking for the next (the pass goes on decoding)."""
        ...


class BestShotSink(Protocol):
    """Where encoded best shots go (the clip store): kept, signed and deleted with their clip (#16)."""

    def add_best(self, best_id: str, object_id: str, camera: str, clip_id: str | None, jpeg: bytes,
                 box: tuple[float, float, float, float], wall: float, label: str) -> str | None:
        """Store atomically; return the JPEG's sha256, or None (logged) when it could not be stored.

        ``box`` is the object's box normalised to the JPEG (the crop has a margin around it).
        Called from a worker thread, never from the hot path.
        """


class Gate(Protocol):
    """Which decoded pictures capture converts and hands to analysis (``vision.pipeline.FrameGate``)."""

    def should_analyse(self, time: float) -> bool: ...


class Analyzer(Protocol):
    """The vision pipeline for one camera: frames in, events out; no I/O."""

    def process(self, frame: Frame) -> list[Event]: ...

    def flush(self, time: float, wall: float) -> list[Event]:
        """End every open track (end of file, shutdown) and return their ``end`` events."""

    def take_shots(self) -> list[BestShot]:
        """Best-shot candidates of the last ``process`` call (empty unless best shots are on)."""

    def stats(self) -> AnalyzerStats: ...


class BestShots(Protocol):
    """The node's best-shot worker as the analysis loop sees it (``vision.bestshot.BestShotWorker``)."""

    def offer(self, shot: BestShot) -> None:
        """A candidate (never blocks: dropped and counted when the worker is behind)."""

    def finish(self, end: Event) -> None:
        """The object's ``end`` event as routed (with its clip): store its best shot, read its plate."""


class ClipSink(Protocol):
    """The clip recorder for one camera; every call is cheap and never blocks on disk."""

    def start_stream(self, info: StreamInfo) -> None:
        """A (re)connected source: packets that follow belong to this stream."""

    def end_stream(self, reason: str) -> None:
        """The record stream is down (two-stream cameras): close the open clip; events get no clip until
        ``start_stream``; ``reason`` shows in ``stats``."""

    def feed(self, packet: Packet) -> None: ...

    def on_event(self, event: Event) -> str | None:
        """Tell the recorder about an event; returns the id of the clip covering it, or None."""

    def offer_thumbnail(self, clip_id: str, image: Any, box: tuple[float, float, float, float], label: str) -> None:
        """The analysed frame (BGR, not written to) of the clip's first detection, for its thumbnail."""

    def close(self, timeout: float) -> None:
        """Finish open clips (post-roll cut short) and stop the writer thread."""

    def stats(self) -> RecorderStats: ...


class EventSink(Protocol):
    """Where finished events go (the durable outbox); ``submit`` never blocks the caller for long."""

    def submit(self, event: Event) -> None: ...


class ClipWriter(Protocol):
    """What a clip recorder may do with the store: open, describe, finish, or give up a clip."""

    @property
    def paused(self) -> bool:
        """Recording is paused (disk full): events still flow, clips are not opened."""

    @property
    def pause_reason(self) -> str: ...

    def begin(self, clip_id: str, camera: str, start_ts: float, time_ok: bool, continues: str | None) -> Path:
        """Index a clip being recorded; returns the path to write its fragments to."""

    def update_events(self, clip_id: str, labels: list[str], events: list[dict[str, Any]],
                      time_ok: bool | None = None) -> None: ...

    def final_path(self, clip_id: str) -> Path:
        """Where the finalised MP4 goes (the recorder renames its fragment file there)."""

    def add_finished(self, clip_id: str, fin: Finished) -> ClipRecord | None:
        """Hash, sign and index a finalised clip."""

    def set_thumbnail(self, clip_id: str, jpeg: bytes) -> None: ...

    def mark_lost(self, clip_id: str, reason: str) -> None:
        """The clip could not be kept; its row stays so the gap is visible."""

    def discard(self, clip_id: str) -> None:
        """Drop the files of a clip whose write failed (the store owns its paths)."""

    def check_space(self) -> bool:
        """Apply retention, then say whether there is room to record."""

    def pause(self, reason: str, need_bytes: int = 0) -> None:
        """Stop recording until ``need_bytes`` more than the floor is free."""


class ClipRetention(Protocol):
    """What the supervisor does with the store: recover at start, keep within budget, report."""

    def recover(self) -> dict[str, int]: ...

    def enforce_retention(self) -> list[str]:
        """Delete the oldest unheld clips past the budget; returns their ids."""

    def check_space(self) -> bool: ...

    def stats(self) -> ClipStoreStats: ...

    def close(self) -> None: ...


class ClipCatalog(Protocol):
    """What the LAN API may do with the clip store: read, and hold/release. Nothing else."""

    def list_clips(
        self,
        since: float | None = None,
        until: float | None = None,
        label: str | None = None,
        camera: str | None = None,
        limit: int = 100,
        after: str | None = None,
    ) -> list[ClipRecord]:
        """Newest first; ``after`` is the id of the last clip of the previous page."""

    def get(self, clip_id: str) -> ClipRecord | None: ...

    def file_path(self, clip_id: str) -> Path | None:
        """The finished clip's file, guaranteed inside the store; None for unknown or lost ids."""

    def thumbnail_path(self, clip_id: str) -> Path | None: ...

    def best_path(self, best_id: str) -> Path | None:
        """A stored best shot's JPEG (``GET /api/v1/best/<id>.jpg``); None when unknown."""

    def best_by_clip(self, clip_ids: list[str]) -> dict[str, list[dict[str, Any]]]:
        """The best shots of each of these clips (``{id, label, box}``), for the clip list."""

    def meta(self, clip_id: str) -> dict[str, Any] | None:
        """The signed record (what ``edgecam clips verify --meta`` checks) plus the clip's events."""

    def hold(self, clip_id: str) -> bool: ...

    def release(self, clip_id: str) -> bool: ...

    def public_key(self) -> str:
        """The node's Ed25519 public key as text (what ``edgecam key show`` prints)."""


class NodeView(Protocol):
    """Live facts the LAN API shows: latest frames and health."""

    def latest_jpeg(self, camera: str) -> bytes | None: ...

    def health(self) -> dict[str, Any]: ...
