"""The clip recorder for one camera: a ``ClipSink`` (ring + planner + writer thread).

The capture and analysis threads only take a lock, ask the planner (pure) and
put small values on a queue; nothing they call touches the disk. One writer
thread owns the pre-roll ring and the open clip's file: it muxes packets into a
fragmented ``.part`` MP4, then on close fsyncs it, remuxes to a faststart MP4,
renames it into place and hands it to the store (sha256, signed record).
If the writer falls behind, packets are dropped and counted, and the queue
resumes at the next keyframe so every clip stays decodable.
"""

from __future__ import annotations

import errno
import logging
import queue
import secrets
import sqlite3
import threading
import time
from collections.abc import Callable, Generator, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import av
import numpy as np

from ..interfaces import ClipWriter
from ..types import Event, EventType, Finished, Packet, RecorderStats, StreamInfo
from .eventmeta import clip_event
from .mux import FragmentWriter, finalise, first_frame_jpeg
from .planner import Action, Attach, ClipPlanner, Close, Open
from .ring import PacketRing
from .still import FrameStill, HardwareChoice, StillDecoderUnavailable, decode_stills
from .thumbs import shot_jpeg

log = logging.getLogger(__name__)
_STOP = object()
HOUSEKEEPING_S = 600.0  # retention by age while nothing is recorded (deletes only; no writes when idle)
PAUSED_CHECK_S = 10.0  # how often a paused store looks for free space again
STILL_SLACK_S = 1.0  # a still asked for up to this long after the newest packet gets the newest frame


@dataclass
class _Thumb:
    clip_id: str
    jpeg: bytes


@dataclass
class _Shot:
    """The analysed frame of a clip's first detection (a reference; never written to)."""

    clip_id: str
    image: Any
    box: tuple[float, float, float, float]
    label: str


@dataclass
class _Open:
    """The clip the writer is writing."""

    id: str
    writer: FragmentWriter
    events: list[dict[str, Any]] = field(default_factory=list)
    labels: set[str] = field(default_factory=set)
    time_ok: bool = True
    thumb: bool = False


class ClipRecorder:
    """Records event clips for one camera. ``start()`` the writer thread, ``close()`` to finish.

    ``lossless=True`` (file sources read as fast as possible) makes ``feed`` wait for
    the writer instead of dropping; live sources keep the default and never block.
    """

    def __init__(self, camera: str, store: ClipWriter, pre_roll: float, post_roll: float, max_clip: float,
                 queue_packets: int = 600, *, thumbnails: bool = True, lossless: bool = False,
                 still_decoders: Callable[[str], list[str]] | None = None) -> None:
        """``still_decoders(codec)``: the hardware decoders to try for stills, in order (the camera's
        ``decode``); software when none opens (said once)."""
        self.camera = camera
        self._hardware = HardwareChoice(camera, still_decoders)
        self._store = store
        self._thumbnails = thumbnails
        self._lossless = lossless  # files played as fast as possible: wait for the writer, never drop
        self._planner = ClipPlanner(pre_roll, post_roll, max_clip, self._new_id)
        self._ring = PacketRing(pre_roll)
        self._q: queue.Queue[Any] = queue.Queue()
        self._max_queued = max(8, int(queue_packets))
        self._lock = threading.Lock()
        self._ring_lock = threading.Lock()  # the writer pushes, ``still_at`` (another thread) copies a GOP out
        self._thread: threading.Thread | None = None
        self._streaming = False
        self._said_ring_cap = False
        self._down_reason = ""  # why there is no record stream now ("" while streaming or before the first)
        self._waiting_key = False
        self._info: StreamInfo | None = None
        self._cur: _Open | None = None
        self._counts = {"packets": 0, "dropped": 0, "clips": 0, "lost": 0, "errors": 0}

    def _new_id(self, wall: float) -> str:
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(wall))
        return f"{self.camera}-{stamp}-{secrets.token_hex(3)}"

    # ----- ClipSink: called from capture / analysis threads; cheap, never touch the disk
    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name=f"clips-{self.camera}", daemon=True)
        self._thread.start()

    def start_stream(self, info: StreamInfo) -> None:
        with self._lock:
            self._streaming = True
            self._down_reason = ""
            self._q.put(info)  # first: the writer switches stream; the open clip keeps its own
            self._put(self._planner.on_stream(time.time()))

    def end_stream(self, reason: str) -> None:
        """The record stream is gone (a two-stream camera's record loop lost it): close the open clip, refuse
        new ones (their events get ``clip = null``) until ``start_stream``; the reason goes in ``stats``."""
        with self._lock:
            if self._streaming:
                log.warning("clips %s: record stream down (%s): events get no clip until it is back",
                            self.camera, reason)
            self._streaming = False
            self._down_reason = reason
            self._put(self._planner.finish())

    def feed(self, packet: Packet) -> None:
        while self._lossless and self._q.qsize() >= self._max_queued and self._writer_alive():
            time.sleep(0.002)  # outside the lock: the writer may need it to report a lost clip
        with self._lock:
            self._put(self._planner.on_packet(packet.time, packet.keyframe, packet.wall))
            if self._waiting_key and not packet.keyframe:
                self._counts["dropped"] += 1
                return
            if self._q.qsize() >= self._max_queued:
                self._counts["dropped"] += 1
                if not self._waiting_key:
                    log.warning("clips %s: writer is behind, dropping packets until the next keyframe "
                                "(%d dropped so far)", self.camera, self._counts["dropped"])
                self._waiting_key = True
                return
            self._waiting_key = False
            self._q.put(packet)

    def on_event(self, event: Event) -> str | None:
        with self._lock:
            allowed = self._streaming and not self._store.paused
            clip_id, actions = self._planner.on_event(event, allowed)
            self._put(actions)
        return clip_id

    def offer_thumbnail(self, clip_id: str, image: Any, box: tuple[float, float, float, float], label: str) -> None:
        """The frame of the clip's first detection: the writer draws the box and makes it the thumbnail."""
        if self._thumbnails:
            self._q.put(_Shot(clip_id, image, box, label))

    def set_thumbnail(self, clip_id: str, jpeg: bytes) -> None:
        """A better thumbnail (e.g. the best detection frame) than the first keyframe."""
        self._q.put(_Thumb(clip_id, jpeg))

    def close(self, timeout: float) -> None:
        with self._lock:
            self._put(self._planner.finish())
            self._q.put(_STOP)
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                log.error("clips %s: writer did not finish in %.0f s; recover() will finish the clip at next start",
                          self.camera, timeout)

    def stats(self) -> RecorderStats:
        cur = self._cur
        n = self._counts
        return RecorderStats(packets=n["packets"], dropped=n["dropped"], clips=n["clips"], lost=n["lost"],
                             errors=n["errors"], queued=self._q.qsize(), ring_s=round(self._ring.seconds, 2),
                             ring_bytes=self._ring.bytes, recording=cur.id if cur else None,
                             paused=self._store.paused, streaming=self._streaming, down=self._down_reason or None)

    def still_at(self, mono: float) -> np.ndarray | None:
        """``StillSource``: the record stream's frame nearest to ``mono`` (BGR, full size), from the ring.

        Called from worker threads, never the hot path: the GOP is copied out under a lock the writer holds
        only to push, then decoded here with a short-lived decoder. None when the ring does not hold ``mono``.
        """
        return next((still.to_bgr() for _, still in self.stills_at([mono])), None)

    def stills_at(self, monos: Sequence[float]) -> Iterator[tuple[int, FrameStill]]:
        """``StillSource``: ``(k, still)`` for each ``monos[k]`` the ring holds, one decoding pass per GOP
        (moments in one GOP share it); moments it no longer holds are left out."""
        groups: dict[int, tuple[list[Packet], list[int]]] = {}
        with self._ring_lock:
            info = self._info
            for k, mono in enumerate(monos):
                gop = self._ring.gop_at(mono)
                if gop and mono <= gop[-1].mono + STILL_SLACK_S:
                    groups.setdefault(id(gop[0]), (gop, []))[1].append(k)  # one GOP, one key
        if info is None:
            return
        for gop, ks in groups.values():
            rest = yield from self._hardware_pass(info, gop, monos, ks)
            for i, image in decode_stills(info, gop, [monos[k] for k in rest]):  # software: what is left
                yield rest[i], image

    def _hardware_pass(self, info: StreamInfo, gop: list[Packet], monos: Sequence[float],
                       ks: list[int]) -> Generator[tuple[int, FrameStill], None, list[int]]:
        """Yields what the camera's hardware decoder gives of ``monos[k]`` for ``k`` in ``ks`` (the next one
        when it fails); returns the ``ks`` it did not give (all of them when there is none)."""
        rest = ks
        while rest and (decoder := self._hardware.current(info.codec)) is not None:
            done: set[int] = set()
            try:
                for i, image in decode_stills(info, gop, [monos[k] for k in rest], decoder):
                    done.add(rest[i])
                    yield rest[i], image
            except StillDecoderUnavailable as err:
                self._hardware.failed(info.codec, err)
                rest = [k for k in rest if k not in done]
                continue
            self._hardware.worked(decoder)
            return [k for k in rest if k not in done]
        return rest

    def _writer_alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _put(self, actions: tuple[Action, ...]) -> None:
        for a in actions:
            self._q.put(a)

    # ----- writer thread
    def _run(self) -> None:
        last_check = time.monotonic()
        while True:
            try:
                item = self._q.get(timeout=PAUSED_CHECK_S)
            except queue.Empty:
                item = None
            if item is _STOP:
                return
            try:
                if item is not None:
                    self._handle(item)
                now = time.monotonic()
                if now - last_check >= (PAUSED_CHECK_S if self._store.paused else HOUSEKEEPING_S):
                    last_check = now
                    self._store.check_space()  # age-based retention; resumes a paused store
            except Exception as err:  # one bad clip must not stop recording
                self._failed(err)

    def _handle(self, item: Any) -> None:
        if isinstance(item, Packet):
            self._counts["packets"] += 1
            with self._ring_lock:
                self._ring.push(item)
            if self._ring.trimmed_by_bytes and not self._said_ring_cap:  # once: a GOP or bit rate far too big
                self._said_ring_cap = True
                log.warning("clips %s: pre-roll cut to %.1f s by its %d MiB memory bound (long GOP or high bit"
                            " rate)", self.camera, self._ring.seconds, self._ring.max_bytes // (1024 * 1024))
            if self._cur is not None:
                self._cur.writer.write(item)
        elif isinstance(item, StreamInfo):
            with self._ring_lock:
                self._info = item
                self._ring.clear()
        elif isinstance(item, Attach):
            self._attach(item)
        elif isinstance(item, Open):
            self._open(item)
        elif isinstance(item, Close):
            self._finish(item.clip_id)
        elif isinstance(item, _Shot):
            cur = self._cur
            if cur is not None and cur.id == item.clip_id and not cur.thumb:
                jpeg = shot_jpeg(item.image, item.box, item.label)
                if jpeg:
                    self._store.set_thumbnail(cur.id, jpeg)
                    cur.thumb = True
        elif isinstance(item, _Thumb):
            if self._cur is not None and self._cur.id == item.clip_id:
                self._cur.thumb = True
            self._store.set_thumbnail(item.clip_id, item.jpeg)

    def _open(self, op: Open) -> None:
        if self._cur is not None:  # never expected: the planner closes first
            self._finish(self._cur.id)
        if self._info is None:
            return
        start_ts = op.wall
        pre = self._ring.since(op.since) if op.since is not None else []
        if pre:
            start_ts = pre[0].wall
        part = self._store.begin(op.clip_id, self.camera, start_ts, op.time_ok, op.continues)
        if not self._store.check_space():
            with self._lock:
                self._planner.abandon(op.clip_id)
            self._store.mark_lost(op.clip_id, f"not recorded: {self._store.pause_reason}")
            self._counts["lost"] += 1
            return
        self._cur = _Open(op.clip_id, FragmentWriter(part, self._info), time_ok=op.time_ok)
        for p in pre:
            self._cur.writer.write(p)
        log.info("clips %s: recording %s%s", self.camera, op.clip_id,
                 f" (continues {op.continues})" if op.continues else "")

    def _attach(self, at: Attach) -> None:
        cur = self._cur
        if cur is None or cur.id != at.clip_id:
            return
        body = clip_event(at.event, cur.id)
        last = cur.events[-1] if cur.events else None
        if last and last["id"] == body["id"] and last["type"] == body["type"] == "update":
            cur.events[-1] = body
        else:
            cur.events.append(body)
        cur.labels.add(at.event.label)
        lost_sync = cur.time_ok and not at.event.time_ok
        cur.time_ok = cur.time_ok and at.event.time_ok
        if at.event.type is not EventType.UPDATE or lost_sync:  # the index row is what recover() signs
            self._store.update_events(cur.id, sorted(cur.labels), cur.events, time_ok=cur.time_ok)

    def _finish(self, clip_id: str) -> None:
        cur = self._cur
        if cur is None or cur.id != clip_id:
            return
        span = cur.writer.close()
        part, final = cur.writer.path, self._store.final_path(clip_id)
        kept = finalise(part, final) if span.packets else 0
        part.unlink(missing_ok=True)
        if not kept:
            self._cur = None
            self._store.mark_lost(clip_id, "no decodable packets")
            self._counts["lost"] += 1
            return
        if self._thumbnails and not cur.thumb:
            jpeg = first_frame_jpeg(final)
            if jpeg:
                self._store.set_thumbnail(clip_id, jpeg)
        fin = Finished(span.first_wall, span.last_wall, span.last_time - span.first_time, span.first_mono,
                       span.last_mono, cur.time_ok, sorted(cur.labels), cur.events)
        self._store.add_finished(clip_id, fin)
        self._cur = None
        self._counts["clips"] += 1
        log.info("clips %s: finished %s (%.1f s, %d packets)", self.camera, clip_id, fin.duration, kept)

    def _failed(self, err: Exception) -> None:
        """A write failed: drop the open clip (marked lost), pause on a full disk, keep running."""
        self._counts["errors"] += 1
        cur, self._cur = self._cur, None
        if cur is not None:
            with self._lock:
                self._planner.abandon(cur.id)
        full = _disk_full(err)
        if not full:
            log.error("clips %s: %s: %s", self.camera, type(err).__name__, err)
        if cur is None:
            return
        path = cur.writer.path
        written = path.stat().st_size if path.exists() else 0
        cur.writer.abort()
        self._store.discard(cur.id)
        self._counts["lost"] += 1
        if full:
            self._store.pause("disk full while writing a clip", need_bytes=2 * written)
        try:
            self._store.mark_lost(cur.id, "disk full" if full else f"write failed: {err}")
        except sqlite3.Error as db_err:
            log.error("clips %s: cannot mark %s lost (%s); recover() will at next start", self.camera, cur.id, db_err)


def _disk_full(err: BaseException) -> bool:
    if getattr(err, "errno", None) == errno.ENOSPC:
        return True
    text = str(err).lower()
    return "no space left" in text or "disk is full" in text or isinstance(err, av.error.FFmpegError) and (
        "space" in text)
