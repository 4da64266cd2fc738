"""The durable outbox: every event is stored (and given its ``seq``) before it is published.

SQLite in WAL mode with ``synchronous=FULL``: each commit fsyncs the WAL, so an
``enqueue_many`` that has returned survives a power cut (NORMAL would only
survive a process crash). Throughput comes from batching many events into one
transaction (one fsync per batch), not from weaker sync. The seq counter lives
in the same database and is bumped in the same transaction as the rows, so it
never repeats, even after a crash. Nothing here runs on a timer: an idle node
writes nothing (age eviction happens on enqueue and on open).
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..payload import fit_event_message

log = logging.getLogger("edge.outbox")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    seq INTEGER PRIMARY KEY,
    created REAL NOT NULL,
    msg BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS meta (
    key TEXT PRIMARY KEY,
    value INTEGER NOT NULL
);
"""


@dataclass(frozen=True)
class OutboxLimits:
    """Past any of these, the oldest rows are evicted (counted and logged)."""

    max_rows: int = 200_000
    max_bytes: int = 64 * 1024 * 1024
    max_age_s: float = 30 * 86400.0


def rows_to_evict(rows: int, nbytes: int, limits: OutboxLimits, sizes_oldest_first: Iterable[int]) -> int:
    """How many of the oldest rows must go so that both row and byte limits hold (pure)."""
    n = 0
    for size in sizes_oldest_first:
        if rows - n <= limits.max_rows and nbytes <= limits.max_bytes:
            break
        nbytes -= size
        n += 1
    return n


class Outbox:
    """Event rows keyed by per-node seq; thread-safe (one connection behind a lock)."""

    def __init__(self, db_path: Path, node: str, max_rows: int = 200_000, max_bytes: int = 64 * 1024 * 1024,
                 max_age_s: float = 30 * 86400.0) -> None:
        self.node = node
        self.limits = OutboxLimits(max_rows, max_bytes, max_age_s)
        self._lock = threading.Lock()
        Path(db_path).parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(str(db_path), check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute("PRAGMA journal_size_limit=4194304")
        self._db.executescript(_SCHEMA)
        self._rows, self._bytes = self._db.execute(
            "SELECT COUNT(*), COALESCE(SUM(LENGTH(msg)), 0) FROM outbox").fetchone()
        self._last_seq = self._meta("last_seq")
        self.evicted_total = self._meta("evicted_total")
        self.enqueued_total = 0
        self.acked_total = 0
        self.oversize_total = 0
        self.trimmed_total = 0  # events stored with optional fields cut to fit 1 KiB (never dropped)
        with self._lock:
            self._transaction(lambda: self._evict(time.time()))

    # ---- writes -------------------------------------------------------------------------------

    def enqueue_many(self, bodies: list[dict[str, Any]], now: float | None = None) -> list[int]:
        """Store events in ONE durable transaction; returns their seqs (oversized bodies are trimmed, counted)."""
        if not bodies:
            return []
        now = time.time() if now is None else now
        with self._lock:
            return self._transaction(lambda: self._insert(bodies, now))

    def ack(self, seqs: Iterable[int]) -> int:
        """Delete delivered rows (PUBACK received); returns how many existed."""
        seqs = list(seqs)
        if not seqs:
            return 0
        with self._lock:
            return self._transaction(lambda: self._delete(seqs))

    def _insert(self, bodies: list[dict[str, Any]], now: float) -> list[int]:
        seqs: list[int] = []
        seq = self._last_seq
        for body in bodies:
            msg, trimmed = fit_event_message(body, self.node, seq + 1)
            if trimmed:
                self._count_trim(body, trimmed)
            seq += 1
            self._db.execute("INSERT INTO outbox (seq, created, msg) VALUES (?, ?, ?)", (seq, now, msg))
            self._rows += 1
            self._bytes += len(msg)
            seqs.append(seq)
        if seqs:
            self._set_meta("last_seq", seq)
            self._last_seq = seq
            self._evict(now)
            self.enqueued_total += len(seqs)
        return seqs

    def _count_trim(self, body: dict[str, Any], trimmed: tuple[str, ...]) -> None:
        """Count a trimmed event; log the first and then every 100th, so a bad config cannot flood the journal."""
        self.trimmed_total += 1
        if self.trimmed_total % 100 == 1:
            log.warning("outbox: event %s trimmed to fit 1 KiB (dropped %s); %d trimmed so far",
                        body.get("id"), ", ".join(trimmed), self.trimmed_total)

    def _delete(self, seqs: list[int]) -> int:
        gone = 0
        for i in range(0, len(seqs), 500):
            chunk = seqs[i:i + 500]
            marks = ",".join("?" * len(chunk))
            row = self._db.execute(
                f"SELECT COUNT(*), COALESCE(SUM(LENGTH(msg)), 0) FROM outbox WHERE seq IN ({marks})", chunk
            ).fetchone()
            self._db.execute(f"DELETE FROM outbox WHERE seq IN ({marks})", chunk)
            gone += row[0]
            self._rows -= row[0]
            self._bytes -= row[1]
        self.acked_total += gone
        return gone

    def _evict(self, now: float) -> None:
        """Drop the oldest rows past the age, row and byte limits; one log line per batch."""
        old = self._db.execute(
            "SELECT COUNT(*), COALESCE(SUM(LENGTH(msg)), 0), MAX(seq) FROM outbox WHERE created < ?",
            (now - self.limits.max_age_s,),
        ).fetchone()
        n_age = old[0]
        if n_age:
            self._db.execute("DELETE FROM outbox WHERE seq <= ?", (old[2],))
            self._rows -= n_age
            self._bytes -= old[1]
        n_size = 0
        if self._rows > self.limits.max_rows or self._bytes > self.limits.max_bytes:
            cur = self._db.execute("SELECT seq, LENGTH(msg) FROM outbox ORDER BY seq")
            victims: list[tuple[int, int]] = []
            need = rows_to_evict(self._rows, self._bytes, self.limits, _remember(cur, victims))
            victims = victims[:need]
            if victims:
                self._db.execute("DELETE FROM outbox WHERE seq <= ?", (victims[-1][0],))
                n_size = len(victims)
                self._rows -= n_size
                self._bytes -= sum(size for _, size in victims)
        if n_age or n_size:
            self.evicted_total += n_age + n_size
            self._set_meta("evicted_total", self.evicted_total)
            log.warning(
                "outbox: evicted %d oldest undelivered events (%d past %.0f s, %d past %d rows / %d bytes); "
                "%d evicted in total",
                n_age + n_size, n_age, self.limits.max_age_s, n_size, self.limits.max_rows, self.limits.max_bytes,
                self.evicted_total,
            )

    def _transaction(self, work):  # type: ignore[no-untyped-def]
        self._db.execute("BEGIN IMMEDIATE")
        try:
            result = work()
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")
        return result

    def _meta(self, key: str) -> int:
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return int(row[0]) if row else 0

    def _set_meta(self, key: str, value: int) -> None:
        self._db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, value))

    # ---- reads --------------------------------------------------------------------------------

    def pending(self, limit: int, after: int = 0) -> list[tuple[int, bytes]]:
        """Undelivered ``(seq, wire bytes)``, oldest first, with seq > ``after``."""
        with self._lock:
            rows = self._db.execute(
                "SELECT seq, msg FROM outbox WHERE seq > ? ORDER BY seq LIMIT ?", (after, limit)
            ).fetchall()
        return [(int(s), bytes(m)) for s, m in rows]

    def depth(self) -> int:
        return self._rows

    def bytes(self) -> int:
        return self._bytes

    def last_seq(self) -> int:
        return self._last_seq

    def oldest_age(self, now: float | None = None) -> float:
        """Seconds the oldest undelivered event has waited (0.0 when empty)."""
        if not self._rows:
            return 0.0
        with self._lock:
            row = self._db.execute("SELECT created FROM outbox ORDER BY seq LIMIT 1").fetchone()
        if row is None:
            return 0.0
        return max(0.0, (time.time() if now is None else now) - float(row[0]))

    def close(self) -> None:
        with self._lock:
            self._db.close()


def _remember(cur: sqlite3.Cursor, into: list[tuple[int, int]]) -> Iterable[int]:
    """Yield row sizes oldest first while keeping their seqs, so eviction reads only what it drops."""
    for seq, size in cur:
        into.append((int(seq), int(size)))
        yield int(size)
