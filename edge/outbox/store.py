"""The durable outbox: every event is stored (and given its ``seq``) before it is published.

SQLite in WAL mode with ``synchronous=FULL``: each commit fsyncs the WAL, so an
``enqueue_many`` that has returned survives a power cut (NORMAL would only
survive a process crash). Throughput comes from batching many events into one
transaction (one fsync per batch), not from weaker sync. The seq counter lives
in the same database and is bumped in the same transaction as the rows, so it
never repeats, even after a crash. Nothing here runs on a timer: an idle node
writes nothing (age eviction happens on enqueue and on open).

Ages are measured on the outbox's own clock (``age_clock``): monotonic seconds of
uptime, persisted with every write, so a step of the wall clock (NTP after a boot
with a slow RTC) never ages anything out. With end-to-end delivery a row acked by
the broker is only marked ``sent``; it is deleted once central's watermark
(``<prefix>/<node>/acks``) covers it. The seq high-water mark is also kept in
``<db>.seq`` (``edge.outbox.seqfile``), so a corrupt database that is set aside and
started afresh continues above every seq ever used.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from ..payload import fit_event_message
from ..signing import seal_event
from .seqfile import SeqFile

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

SEQ_BLOCK = 1000  # seqs reserved in the high-water file at a time (one small write per block, not per batch)
EndToEnd = bool | Literal["auto"]
_CORRUPT_CODES = {11, 26}  # SQLITE_CORRUPT, SQLITE_NOTADB


def is_corrupt(err: BaseException) -> bool:
    """A database that is damaged (not merely locked, full or unreadable for a while)."""
    code = getattr(err, "sqlite_errorcode", None)
    if code is not None:
        return code in _CORRUPT_CODES
    text = str(err)
    return isinstance(err, sqlite3.DatabaseError) and ("not a database" in text or "malformed" in text)


def set_aside(db_path: Path, stamp: str | None = None) -> Path:
    """Rename a damaged database (and its WAL and shm) to ``<name>.corrupt-<UTC time>``; returns the new name."""
    stamp = stamp or time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    target = db_path.with_name(f"{db_path.name}.corrupt-{stamp}")
    for suffix in ("", "-wal", "-shm"):
        src = db_path.with_name(db_path.name + suffix)
        if src.exists():
            os.replace(src, target.with_name(target.name + suffix))
    return target


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
                 max_age_s: float = 30 * 86400.0, end_to_end: EndToEnd = "auto", signer: Any = None) -> None:
        self.node = node
        self.signer = signer  # edge.signing.MessageSigner: the stored message is the signed one (#18.1)
        self.limits = OutboxLimits(max_rows, max_bytes, max_age_s)
        self.end_to_end = end_to_end
        self._lock = threading.Lock()
        db_path = Path(db_path)
        db_path.parent.mkdir(parents=True, exist_ok=True)
        self.seqfile = SeqFile(db_path.with_name(db_path.name + ".seq"))
        try:
            self._open(db_path)
        except sqlite3.DatabaseError as err:
            if not is_corrupt(err):
                raise
            try:
                self._db.close()
            except Exception:  # noqa: BLE001 - a half-open connection to a damaged file
                pass
            aside = set_aside(db_path)
            log.error("outbox: %s is damaged (%s); set aside as %s, starting a fresh outbox above seq %d",
                      db_path, err, aside.name, max(self.seqfile.marks.reserved, self.seqfile.marks.floor))
            self._open(db_path)
        self.enqueued_total = 0
        self.acked_total = 0
        self.confirmed_total = 0
        self.oversize_total = 0
        self.trimmed_total = 0  # events stored with optional fields cut to fit 1 KiB (never dropped)
        with self._lock:
            self._transaction(lambda: self._evict(self.clock()))

    def _open(self, db_path: Path) -> None:
        self._db = sqlite3.connect(str(db_path), check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute("PRAGMA journal_size_limit=4194304")
        self._db.executescript(_SCHEMA)
        cols = {row[1] for row in self._db.execute("PRAGMA table_info(outbox)")}
        if "sent" not in cols:
            self._db.execute("ALTER TABLE outbox ADD COLUMN sent INTEGER NOT NULL DEFAULT 0")
        if self._meta_row("age_clock_ms") is None:  # rows from before the age clock carry wall time: age from now
            self._db.execute("UPDATE outbox SET created = 0")
            self._set_meta("age_clock_ms", 0)
        self._clock_base = self._meta("age_clock_ms") / 1000.0
        self._clock_mono = time.monotonic()
        self._rows, self._bytes, self._unsent = self._db.execute(
            "SELECT COUNT(*), COALESCE(SUM(LENGTH(msg)), 0), COALESCE(SUM(sent = 0), 0) FROM outbox").fetchone()
        marks = self.seqfile.marks
        have = self._meta_row("last_seq")
        self._last_seq = max(int(have) if have is not None else marks.reserved, marks.floor)
        self._reserved = max(marks.reserved, self._last_seq)
        self.evicted_total = self._meta("evicted_total")
        self.unstored_total = marks.unstored
        self.watermark = self._meta("watermark")
        self.e2e_seen = bool(self._meta("e2e_seen"))

    @property
    def e2e_active(self) -> bool:
        """Rows are kept after the broker's PUBACK until central's watermark covers them."""
        return self.end_to_end is True or (self.end_to_end == "auto" and self.e2e_seen)

    def clock(self) -> float:
        """The age clock: monotonic seconds, continued across restarts (never steps with the wall clock)."""
        return self._clock_base + (time.monotonic() - self._clock_mono)

    # ---- writes -------------------------------------------------------------------------------

    def enqueue_many(self, bodies: list[dict[str, Any]], now: float | None = None) -> list[int]:
        """Store events in ONE durable transaction; returns their seqs (oversized bodies are trimmed, counted)."""
        if not bodies:
            return []
        now = self.clock() if now is None else now
        with self._lock:
            return self._transaction(lambda: self._insert(bodies, now))

    def ack(self, seqs: Iterable[int]) -> int:
        """The broker has these rows (PUBACK): delete them, or with end-to-end delivery mark them sent."""
        seqs = list(seqs)
        if not seqs:
            return 0
        with self._lock:
            if self.e2e_active:
                return self._transaction(lambda: self._mark_sent(seqs))
            return self._transaction(lambda: self._delete(seqs))

    def confirm(self, mark: dict[str, Any]) -> int:
        """Central's watermark: delete the rows it holds; returns how many went. Turns on end-to-end
        delivery in ``auto`` mode (remembered in the database). Raises ValueError on a malformed mark."""
        low, first, top, holes = _parse_mark(mark)
        with self._lock:
            return self._transaction(lambda: self._confirm(low, first, top, holes))

    def _confirm(self, low: int, first: int, top: int, holes: list[tuple[int, int]]) -> int:
        if not self.e2e_seen:
            self.e2e_seen = True
            self._set_meta("e2e_seen", 1)
            if self.end_to_end == "auto":
                log.info("outbox: central acknowledges what it stores; rows are now kept until central has them")
        if low > self.watermark:
            self.watermark = low
            self._set_meta("watermark", low)
        where = ["seq <= ?"]
        params: list[int] = [low]
        if top >= first > 0:
            skip = "".join(" AND seq NOT BETWEEN ? AND ?" for _ in holes)
            where.append(f"(seq BETWEEN ? AND ?{skip})")
            params += [first, top, *(n for hole in holes for n in hole)]
        cond = " OR ".join(where)
        n, nbytes, unsent = self._db.execute(
            f"SELECT COUNT(*), COALESCE(SUM(LENGTH(msg)), 0), COALESCE(SUM(sent = 0), 0) FROM outbox WHERE {cond}",
            params).fetchone()
        if n:
            self._db.execute(f"DELETE FROM outbox WHERE {cond}", params)
            self._rows -= n
            self._bytes -= nbytes
            self._unsent -= unsent
            self.confirmed_total += n
        return int(n)

    def _mark_sent(self, seqs: list[int]) -> int:
        marked = 0
        for i in range(0, len(seqs), 500):
            chunk = seqs[i:i + 500]
            marks = ",".join("?" * len(chunk))
            cur = self._db.execute(f"UPDATE outbox SET sent = 1 WHERE sent = 0 AND seq IN ({marks})", chunk)
            marked += max(cur.rowcount, 0)
        self._unsent -= marked
        self.acked_total += marked
        return marked

    def skip_unstored(self, n: int, quiet: bool = False) -> None:
        """``n`` events could not be stored: count them and skip their seqs, so central sees the loss as a gap.
        Written to the seq file in place, which needs no free disk space."""
        if n <= 0:
            return
        with self._lock:
            self._last_seq += n
            self._reserved = max(self._reserved, self._last_seq)
            self.unstored_total += n
            self.seqfile.write(reserved=self._reserved, floor=self._last_seq, unstored=self.unstored_total)
        if quiet:
            return
        log.error("outbox: %d events could not be stored (%d in total); their seqs up to %d are skipped",
                  n, self.unstored_total, self._last_seq)

    def _insert(self, bodies: list[dict[str, Any]], now: float) -> list[int]:
        seqs: list[int] = []
        seq = self._last_seq
        if seq + len(bodies) > self._reserved:
            self._reserve(seq + len(bodies) + SEQ_BLOCK)
        for body in bodies:
            if self.signer is not None:
                msg, trimmed = seal_event(body, self.node, seq + 1, self.signer)
            else:
                msg, trimmed = fit_event_message(body, self.node, seq + 1)
            if trimmed:
                self._count_trim(body, trimmed)
            seq += 1
            self._db.execute("INSERT INTO outbox (seq, created, msg) VALUES (?, ?, ?)", (seq, now, msg))
            self._rows += 1
            self._unsent += 1
            self._bytes += len(msg)
            seqs.append(seq)
        if seqs:
            self._set_meta("last_seq", seq)
            self._set_meta("age_clock_ms", int(self.clock() * 1000))
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
                f"SELECT COUNT(*), COALESCE(SUM(LENGTH(msg)), 0), COALESCE(SUM(sent = 0), 0) FROM outbox"
                f" WHERE seq IN ({marks})", chunk
            ).fetchone()
            self._db.execute(f"DELETE FROM outbox WHERE seq IN ({marks})", chunk)
            gone += row[0]
            self._rows -= row[0]
            self._bytes -= row[1]
            self._unsent -= row[2]
        self.acked_total += gone
        return gone

    def _evict(self, now: float) -> None:
        """Drop the oldest rows past the age, row and byte limits; one log line per batch."""
        old = self._db.execute(
            "SELECT COUNT(*), COALESCE(SUM(LENGTH(msg)), 0), MAX(seq), COALESCE(SUM(sent = 0), 0) FROM outbox"
            " WHERE seq <= (SELECT MAX(seq) FROM outbox WHERE created < ?)",
            (now - self.limits.max_age_s,),
        ).fetchone()
        n_age = old[0]
        if n_age:
            self._db.execute("DELETE FROM outbox WHERE seq <= ?", (old[2],))
            self._rows -= n_age
            self._bytes -= old[1]
            self._unsent -= old[3]
        n_size = 0
        if self._rows > self.limits.max_rows or self._bytes > self.limits.max_bytes:
            cur = self._db.execute("SELECT seq, LENGTH(msg) FROM outbox ORDER BY seq")
            victims: list[tuple[int, int]] = []
            need = rows_to_evict(self._rows, self._bytes, self.limits, _remember(cur, victims))
            victims = victims[:need]
            if victims:
                self._unsent -= self._db.execute("SELECT COALESCE(SUM(sent = 0), 0) FROM outbox WHERE seq <= ?",
                                                 (victims[-1][0],)).fetchone()[0]
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

    _STATE = ("_rows", "_bytes", "_unsent", "_last_seq", "evicted_total", "watermark", "e2e_seen",
              "enqueued_total", "acked_total", "confirmed_total", "oversize_total")

    def _transaction(self, work):
        """Run ``work`` in one transaction; on failure (a full disk at COMMIT) the counters roll back too."""
        saved = [getattr(self, name) for name in self._STATE]
        self._db.execute("BEGIN IMMEDIATE")
        try:
            result = work()
            self._db.execute("COMMIT")
        except BaseException:
            for name, value in zip(self._STATE, saved, strict=True):
                setattr(self, name, value)
            if self._db.in_transaction:
                self._db.execute("ROLLBACK")
            raise
        return result

    def _meta(self, key: str) -> int:
        value = self._meta_row(key)
        return int(value) if value is not None else 0

    def _meta_row(self, key: str) -> Any:
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return row[0] if row else None

    def _reserve(self, upto: int) -> None:
        """Record in the seq file, before any seq above the old mark is used, that seqs up to ``upto`` may be."""
        try:
            self.seqfile.write(reserved=upto)
            self._reserved = upto
        except OSError as err:  # events matter more than the gap after a corrupt db: store them anyway
            self._reserved = upto
            log.error("outbox: cannot update %s (%s); a damaged outbox could not continue above seq %d",
                      self.seqfile.path, err, upto)

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
        """Rows kept (not yet deleted: unsent, or sent and waiting for central's watermark)."""
        return self._rows

    def oldest_seq(self) -> int | None:
        """The lowest seq still kept, or None."""
        with self._lock:
            row = self._db.execute("SELECT MIN(seq) FROM outbox").fetchone()
        return None if row is None or row[0] is None else int(row[0])

    def unsent(self) -> int:
        """Rows the broker has not acked yet."""
        return self._unsent

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
        return max(0.0, (self.clock() if now is None else now) - float(row[0]))

    def close(self) -> None:
        with self._lock:
            try:
                self._transaction(lambda: self._set_meta("age_clock_ms", int(self.clock() * 1000)))
            except sqlite3.Error as err:  # a full disk: the clock only loses this run's idle tail (ages less)
                log.warning("outbox: cannot save the age clock at close: %s", err)
            self._db.close()
            self.seqfile.close()


def _remember(cur: sqlite3.Cursor, into: list[tuple[int, int]]) -> Iterable[int]:
    """Yield row sizes oldest first while keeping their seqs, so eviction reads only what it drops."""
    for seq, size in cur:
        into.append((int(seq), int(size)))
        yield int(size)


def _parse_mark(mark: dict[str, Any]) -> tuple[int, int, int, list[tuple[int, int]]]:
    """``(seq, from, max, missing)`` of central's acks message, checked (ValueError when malformed);
    ``from`` is 0 when the message states only the contiguous seq."""
    low, first, top = mark.get("seq"), mark.get("from", 0), mark.get("max", 0)
    missing: Sequence[Any] = mark.get("missing") or []
    if type(low) is not int or not 0 <= low < 2**63:
        raise ValueError("acks message needs an integer seq")
    if type(first) is not int or type(top) is not int or not isinstance(missing, list) or \
            (first and not 0 < first <= top < 2**63):
        raise ValueError("acks message needs integers from <= max")
    if len(missing) > 1000:
        raise ValueError("acks message lists more than 1000 missing ranges")
    holes: list[tuple[int, int]] = []
    for hole in missing:
        if (not isinstance(hole, list) or len(hole) != 2 or not all(type(x) is int for x in hole)
                or not first < hole[0] <= hole[1] < top):
            raise ValueError(f"acks message has a bad missing range {hole!r}")
        holes.append((hole[0], hole[1]))
    return low, first, top, holes
