"""OutboxService: the daemon's EventSink. Events in, durable rows, MQTT out.

Two threads behind one bounded queue: the writer batches whatever is queued
into one durable transaction (one fsync for many events), and the publisher
sends rows and deletes them on PUBACK. ``submit`` never drops an event: when
the queue is full it blocks (events are rare, so this means the disk is stuck)
and counts it.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from pathlib import Path
from typing import Any

from .. import __version__
from ..payload import SCHEMA_VERSION, dumps, event_body
from ..types import Event
from .publisher import MqttSettings, Publisher
from .store import Outbox, OutboxLimits

log = logging.getLogger("edge.outbox")

_BATCH = 500
_STOP = object()


class OutboxService:
    """Implements ``edge.interfaces.EventSink``; ``start()`` the threads, ``stop(drain_timeout)`` them."""

    def __init__(self, db_path: Path, node: str, settings: MqttSettings, limits: OutboxLimits = OutboxLimits(),
                 version: str = __version__, queue_size: int = 1000) -> None:
        self.node = node
        self.outbox = Outbox(db_path, node, limits.max_rows, limits.max_bytes, limits.max_age_s)
        self.publisher = Publisher(settings, node, self.outbox, version)
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=queue_size)
        self._writer: threading.Thread | None = None
        self._submitted = 0
        self._submit_lock = threading.Lock()
        self._written = 0
        self._written_cv = threading.Condition()
        self.blocked_total = 0
        self.write_errors = 0
        self._started = time.monotonic()

    def start(self) -> None:
        self._writer = threading.Thread(target=self._write_loop, name="outbox-writer", daemon=True)
        self._writer.start()
        self.publisher.start()

    def submit(self, event: Event) -> None:
        """Queue one event for durable storage; blocks (counted) only when the queue is full."""
        self._put(event_body(event))

    def submit_body(self, body: dict[str, Any]) -> None:
        """Same as ``submit`` for an already built payload body (``edge.payload.event_body``)."""
        self._put(body)

    def _put(self, item: Any) -> None:
        with self._submit_lock:
            self._submitted += 1
        try:
            self._queue.put_nowait(item)
        except queue.Full:
            self.blocked_total += 1
            if self.blocked_total == 1 or self.blocked_total % 1000 == 0:
                log.warning("outbox: writer queue full, submit waits for the disk (%d times)", self.blocked_total)
            self._queue.put(item)

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until everything submitted so far is durable in SQLite."""
        target = self._submitted
        with self._written_cv:
            return self._written_cv.wait_for(lambda: self._written >= target, timeout)

    def _write_loop(self) -> None:
        while True:
            first = self._queue.get()
            if first is _STOP:
                return
            batch = [first]
            stop = False
            while len(batch) < _BATCH:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is _STOP:
                    stop = True
                    break
                batch.append(item)
            self._write(batch)
            if stop:
                return

    def _write(self, batch: list[dict[str, Any]]) -> None:
        while True:
            try:
                self.outbox.enqueue_many(batch)
                break
            except Exception as err:  # noqa: BLE001 - disk full / I/O error: keep the events, retry, say so
                self.write_errors += 1
                if self.write_errors == 1 or self.write_errors % 60 == 0:
                    log.error("outbox: cannot store %d events (%s); retrying", len(batch), err)
                time.sleep(1.0)
        self.publisher.wake()
        with self._written_cv:
            self._written += len(batch)
            self._written_cv.notify_all()

    def depth(self) -> int:
        """Events not yet acknowledged by the broker (stored plus still queued for the disk)."""
        return self.outbox.depth() + self._queue.qsize()

    def stats(self) -> dict[str, Any]:
        return {
            "depth": self.depth(),
            "oldest_age_s": round(self.outbox.oldest_age(), 1),
            "evicted": self.outbox.evicted_total,
            "trimmed": self.outbox.trimmed_total,
            "published": self.publisher.published_total,
            "replayed": self.publisher.replayed_total,
            "connected": self.publisher.connected,
            "blocked_submits": self.blocked_total,
            "last_seq": self.outbox.last_seq(),
        }

    def publish_stats(self, stats: dict[str, Any]) -> None:
        """Send the daemon's stats (QoS 0, not stored) with this node's outbox figures added."""
        msg = {"v": SCHEMA_VERSION, "node": self.node, "ts": round(time.time(), 3),
               "uptime_s": round(time.monotonic() - self._started, 1), **stats, "outbox": self.stats()}
        self.publisher.send_stats(dumps(msg))

    def stop(self, drain_timeout: float = 30.0) -> bool:
        """Store what is queued, wait up to ``drain_timeout`` for delivery, say ``offline``, disconnect.

        Returns True when the outbox is empty; what is left goes out on the next start.
        """
        deadline = time.monotonic() + drain_timeout
        writer_done = True
        if self._writer is not None:
            try:
                self._queue.put(_STOP, timeout=max(1.0, drain_timeout))
            except queue.Full:
                pass
            self._writer.join(max(1.0, deadline - time.monotonic()))
            writer_done = not self._writer.is_alive()
            if not writer_done:
                log.error("outbox: %d events still waiting for the disk at shutdown", self._queue.qsize())
        while (self.outbox.depth() or self.publisher.replay_pending) and time.monotonic() < deadline:
            time.sleep(0.05)
        drained = self.outbox.depth() == 0
        stopped = self.publisher.stop()
        if not drained:
            log.info("outbox: %d events not delivered yet; they go out on the next start", self.outbox.depth())
        if stopped and writer_done:
            self.outbox.close()
        return drained
