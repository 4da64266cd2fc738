"""OutboxService: the daemon's EventSink. Events in, durable rows, MQTT out.

Two threads behind one bounded queue: the writer batches whatever is queued
into one durable transaction (one fsync for many events), and the publisher
sends rows and deletes them on PUBACK (end to end: on central's watermark).
When the queue is full ``submit`` blocks (events are rare, so this means the
disk is slow) and counts it; while the disk refuses writes even after the
reserve was released it does not block the camera but counts the event as
unstorable. A full disk first releases the outbox's disk reserve
(``edge.outbox.reserve``); events that still cannot be stored by shutdown are
counted and their seqs skipped, so central sees the loss as a gap.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .. import __version__
from ..payload import SCHEMA_VERSION, dumps, event_body
from ..types import Event, OutboxStats
from .publisher import MqttSettings, Publisher
from .reserve import DEFAULT_RESERVE_BYTES, Reserve, is_disk_full
from .store import Outbox, OutboxLimits

log = logging.getLogger("edge.outbox")

_BATCH = 500
_STOP = object()
RESERVE_RETRY_S = 60.0  # how often a released reserve is tried again while the disk stays full


class OutboxService:
    """Implements ``edge.interfaces.EventSink``; ``start()`` the threads, ``stop(drain_timeout)`` them."""

    def __init__(self, db_path: Path, node: str, settings: MqttSettings, limits: OutboxLimits = OutboxLimits(),
                 version: str = __version__, queue_size: int = 1000,
                 reserve_bytes: int = DEFAULT_RESERVE_BYTES, signer: Any = None) -> None:
        self.node = node
        self.signer = signer  # edge.signing.MessageSigner: events, status and stats signed (#18.1)
        self.outbox = Outbox(db_path, node, limits.max_rows, limits.max_bytes, limits.max_age_s,
                             end_to_end=settings.end_to_end, signer=signer)
        self.reserve = Reserve(Path(db_path).with_name("outbox.reserve"), reserve_bytes)
        self._reserve_retry_at = 0.0
        self._give_up = threading.Event()
        self._disk_stuck = threading.Event()  # the disk refuses even after the reserve was released
        self._dropped = 0  # submitted while stuck with a full queue: counted, seqs skipped by the writer
        self.publisher = Publisher(settings, node, self.outbox, version, signer=signer)
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
        self.reserve.ensure()
        self._writer = threading.Thread(target=self._write_loop, name="outbox-writer", daemon=True)
        self._writer.start()
        self.publisher.start()

    def submit(self, event: Event) -> None:
        """Queue one event for durable storage; blocks (counted) only when the queue is full."""
        self._put(event_body(event))

    def _put(self, item: Any) -> None:
        with self._submit_lock:
            self._submitted += 1
        try:
            self._queue.put_nowait(item)
        except queue.Full:
            if self._disk_stuck.is_set():  # waiting would stall the camera for nothing: count it as lost
                with self._submit_lock:
                    self._dropped += 1
                return
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
            if not self._write(batch):
                self._lose_queued()
                return
            if stop:
                return

    def _write(self, batch: list[dict[str, Any]]) -> bool:
        """Store the batch, retrying while the disk refuses; False when shutdown gave up (batch counted lost)."""
        while True:
            try:
                self.outbox.enqueue_many(batch)
                break
            except Exception as err:  # noqa: BLE001 - disk full / I/O error: keep the events, retry, say so
                if is_disk_full(err) and self.reserve.release():
                    self._reserve_retry_at = time.monotonic() + RESERVE_RETRY_S
                    continue
                self.write_errors += 1
                self._disk_stuck.set()
                self._lose_dropped(quiet=True)
                if self.write_errors == 1 or self.write_errors % 60 == 0:
                    log.error("outbox: cannot store %d events (%s); retrying; %d events could not be stored at all",
                              len(batch), err, self.outbox.unstored_total)
                if self._give_up.wait(1.0):
                    self._lost(len(batch))
                    return False
        self._disk_stuck.clear()
        self._lose_dropped()
        if time.monotonic() >= self._reserve_retry_at and not self.reserve.present:
            self.reserve.ensure()  # the disk has room again: keep space for the next time it fills
            self._reserve_retry_at = time.monotonic() + RESERVE_RETRY_S
        self.publisher.wake()
        self._done(len(batch))
        return True

    def _lose_dropped(self, quiet: bool = False) -> None:
        with self._submit_lock:
            n, self._dropped = self._dropped, 0
        if n:
            self._lost(n, quiet)

    def _lost(self, n: int, quiet: bool = False) -> None:
        try:
            self.outbox.skip_unstored(n, quiet)
        except OSError as err:
            log.error("outbox: %d events could not be stored and the loss could not be recorded: %s", n, err)
        self._done(n)

    def _lose_queued(self) -> None:
        """Shutdown with the disk still refusing: count what is left in the queue as lost (one line)."""
        n = 0
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            n += item is not _STOP
        with self._submit_lock:
            n, self._dropped = n + self._dropped, 0
        if n:
            self._lost(n)

    def _done(self, n: int) -> None:
        with self._written_cv:
            self._written += n
            self._written_cv.notify_all()

    def depth(self) -> int:
        """Events kept (stored, not yet confirmed by the broker or, end to end, by central) plus still queued."""
        return self.outbox.depth() + self._queue.qsize()

    def stats(self) -> OutboxStats:
        return OutboxStats(
            depth=self.depth(),
            oldest_age_s=round(self.outbox.oldest_age(), 1),
            evicted=self.outbox.evicted_total,
            trimmed=self.outbox.trimmed_total,
            published=self.publisher.published_total,
            replayed=self.publisher.replayed_total,
            connected=self.publisher.connected,
            blocked_submits=self.blocked_total,
            last_seq=self.outbox.last_seq(),
            unsent=self.outbox.unsent(),
            end_to_end=self.outbox.e2e_active,
            central_seq=self.outbox.watermark,
            resent=self.publisher.resent_total,
            unstored=self.outbox.unstored_total,
            disk_reserve=self.reserve.present,
        )

    def publish_stats(self, stats: Mapping[str, Any]) -> None:
        """Send the daemon's stats (QoS 0, not stored), v, node, ts and uptime added in front.

        ``stats`` carries this outbox's own figures as its ``outbox`` part, last (``stats()`` as
        ``edge.node.status.stats_body`` writes it: that module alone turns the node's reports into payloads).
        """
        if "outbox" not in stats:
            raise ValueError("stats without their outbox part (edge.node.status.stats_body writes it)")
        msg = {"v": SCHEMA_VERSION, "node": self.node, "ts": round(time.time(), 3),
               "uptime_s": round(time.monotonic() - self._started, 1), **stats}
        self.publisher.send_stats(self.signer.seal("stats", msg) if self.signer is not None else dumps(msg))

    def stop(self, drain_timeout: float = 30.0) -> bool:
        """Store what is queued, wait up to ``drain_timeout`` for delivery, say ``offline``, disconnect.

        Returns True when the broker has every stored event (end to end, rows stay until central confirms
        them); what is left goes out on the next start.
        """
        deadline = time.monotonic() + drain_timeout
        writer_done = True
        if self._writer is not None:
            try:
                self._queue.put(_STOP, timeout=max(1.0, drain_timeout))
            except queue.Full:
                pass
            self._writer.join(max(1.0, deadline - time.monotonic()))
            if self._writer.is_alive():  # the disk still refuses: count what is left, skip its seqs
                self._give_up.set()
                self._writer.join(5.0)
            writer_done = not self._writer.is_alive()
        while (self.outbox.unsent() or self.publisher.replay_pending) and time.monotonic() < deadline:
            time.sleep(0.05)
        drained = self.outbox.unsent() == 0
        stopped = self.publisher.stop()
        if not drained:
            log.info("outbox: %d events not delivered yet; they go out on the next start", self.outbox.unsent())
        if stopped and writer_done:
            self.outbox.close()
        return drained
