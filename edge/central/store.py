"""The central event store: one schema on SQLite (WAL) and PostgreSQL, idempotent on (node, seq).

Plain SQL with a ``schema_version`` table, not SQLAlchemy: the store needs a
dozen statements that are already portable (``ON CONFLICT``, window functions,
``LAG``), so a two-entry dialect shim (placeholder style, hour bucketing) costs
less than a 3 MB dependency and a second query language to learn; migrations are
numbered lists of DDL run once under a lock (an advisory lock on PostgreSQL,
``BEGIN IMMEDIATE`` on SQLite) so several consumers may start together.

Gaps are derived from the seqs themselves: ``LAG(seq)`` finds each hole, and the
smallest ``received_at`` at or after it says since when the hole was known. A
per-node watermark (``nodes.contiguous_seq``) bounds that scan to the rows after
the first hole, so a status query does not re-read a node's whole history.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote

from ..redact import redact_url
from . import scale
from .messages import EventRow, StatsRow, StatusRow

MIGRATIONS: list[list[str]] = [
    [
        """CREATE TABLE IF NOT EXISTS events (
            node TEXT NOT NULL, seq BIGINT NOT NULL, id TEXT NOT NULL, type TEXT NOT NULL,
            camera TEXT NOT NULL, label TEXT NOT NULL, score DOUBLE PRECISION NOT NULL,
            ts DOUBLE PRECISION NOT NULL, box TEXT NOT NULL, zones TEXT NOT NULL, clip TEXT,
            line_name TEXT, line_dir TEXT, duration DOUBLE PRECISION, time_ok BOOLEAN NOT NULL,
            received_at DOUBLE PRECISION NOT NULL, raw TEXT NOT NULL,
            PRIMARY KEY (node, seq))""",
        "CREATE INDEX IF NOT EXISTS events_ts ON events (ts)",
        "CREATE INDEX IF NOT EXISTS events_label_ts ON events (label, ts)",
        """CREATE TABLE IF NOT EXISTS nodes (
            node TEXT PRIMARY KEY, status TEXT, status_ts DOUBLE PRECISION, last_seen DOUBLE PRECISION,
            version TEXT, pubkey TEXT, api_url TEXT, stats TEXT, stats_ts DOUBLE PRECISION,
            time_ok BOOLEAN, contiguous_seq BIGINT NOT NULL DEFAULT 0)""",
    ],
    [  # 2: quarantine (#14.1), gap baseline and acknowledgements (#13.11), one row per tracked object (#13.12)
        """CREATE TABLE IF NOT EXISTS quarantine (
            received_at DOUBLE PRECISION NOT NULL, node TEXT, topic TEXT NOT NULL, reason TEXT NOT NULL,
            payload TEXT NOT NULL)""",
        "CREATE INDEX IF NOT EXISTS quarantine_received ON quarantine (received_at)",
        "ALTER TABLE nodes ADD COLUMN quarantined BIGINT NOT NULL DEFAULT 0",
        "ALTER TABLE nodes ADD COLUMN baseline_seq BIGINT",
        """CREATE TABLE IF NOT EXISTS gap_acks (
            node TEXT NOT NULL, first_seq BIGINT NOT NULL, last_seq BIGINT NOT NULL, reason TEXT NOT NULL,
            who TEXT NOT NULL, at DOUBLE PRECISION NOT NULL)""",
        "CREATE INDEX IF NOT EXISTS events_node_id ON events (node, id)",
        # A database from before baselines: the lowest seq stored is the first one central saw, so a hole
        # already known above it stays a hole (only seqs before it stop being a gap).
        "UPDATE nodes SET baseline_seq = (SELECT MIN(seq) - 1 FROM events WHERE events.node = nodes.node)",
    ],
    [  # 3: signed messages (#18.1): each node's keys with their start times, why a message was refused,
        # an operator's acknowledgement of trust faults
        """CREATE TABLE IF NOT EXISTS node_keys (
            node TEXT NOT NULL, pubkey TEXT NOT NULL, valid_from DOUBLE PRECISION NOT NULL,
            added_at DOUBLE PRECISION NOT NULL, PRIMARY KEY (node, pubkey))""",
        "INSERT INTO node_keys (node, pubkey, valid_from, added_at)"
        " SELECT node, pubkey, 0, 0 FROM nodes WHERE substr(pubkey, 1, 8) = 'ed25519:'",
        "ALTER TABLE quarantine ADD COLUMN kind TEXT",
        "CREATE INDEX IF NOT EXISTS quarantine_kind ON quarantine (kind, received_at)",
        """CREATE TABLE IF NOT EXISTS trust_acks (
            at DOUBLE PRECISION NOT NULL, who TEXT NOT NULL, reason TEXT NOT NULL)""",
    ],
]

# Quarantine kinds that are trust faults (raised by `central status` until `central ack-trust`).
TRUST_KINDS = ("unsigned", "bad-signature", "unregistered", "conflict")

QUARANTINE_KEEP = 10_000  # newest quarantined messages kept for inspection; the per-node count keeps counting
QUARANTINE_PAYLOAD = 2048  # characters of a quarantined payload kept

_EVENT_COLUMNS = ("node", "seq", "id", "type", "camera", "label", "score", "ts", "box", "zones", "clip",
                  "line_name", "line_dir", "duration", "time_ok", "raw")


class StoreError(Exception):
    """The database cannot be opened or migrated; one line for the user."""


@dataclass(frozen=True)
class Quarantined:
    """One message that was this message's fault: kept (bounded) with the reason, then acknowledged."""

    node: str | None
    topic: str
    reason: str
    payload: str  # printable text, at most QUARANTINE_PAYLOAD characters
    kind: str | None = None  # one of TRUST_KINDS for a message that was not verified or conflicts; else None


def quarantine_text(data: bytes) -> str:
    """A payload as storable text: no NUL (PostgreSQL refuses it in text), invalid UTF-8 escaped, bounded."""
    text = data[: QUARANTINE_PAYLOAD * 4].decode("utf-8", errors="backslashreplace").replace("\x00", "\\x00")
    return text[:QUARANTINE_PAYLOAD]


def is_row_fault(err: BaseException) -> bool:
    """True when the database refused a value (this row's fault), False when it refused to write at all.

    Integrity and data errors (a constraint, a trigger, a value out of the column's range) and values the
    driver cannot bind belong to the row: quarantine it. Anything else (disk full, read-only, connection
    lost, permission revoked, lock timeout) is the database's state: keep the messages unacked and retry.
    """
    if isinstance(err, (OverflowError, ValueError, TypeError)):
        return True
    if isinstance(err, (sqlite3.IntegrityError, sqlite3.DataError, sqlite3.InterfaceError)):
        return True
    if type(err).__module__.startswith("psycopg"):
        import psycopg

        return isinstance(err, (psycopg.IntegrityError, psycopg.DataError))
    return False


@dataclass(frozen=True)
class Gap:
    first: int  # first missing seq
    last: int  # last missing seq
    since: float  # central wall clock when the hole was first known (a later seq arrived)


@dataclass(frozen=True)
class GapReport:
    node: str
    max_seq: int  # highest seq stored
    contiguous: int  # every seq after the baseline up to this one is stored
    gaps: tuple[Gap, ...]


@dataclass(frozen=True)
class GapAck:
    """An operator's acknowledgement of a missing range: no alarm for it any more."""

    node: str
    first: int
    last: int
    reason: str
    who: str
    at: float


@dataclass(frozen=True)
class SearchFilter:
    since: float | None = None
    until: float | None = None
    label: str | None = None
    node: str | None = None
    camera: str | None = None
    zone: str | None = None
    limit: int = 1000
    color: str | None = None  # identification fields (#16.4)
    heading: str | None = None
    plate: str | None = None  # letters, digits and the wildcards * and ?; punctuation ignored
    fuzzy: bool = False  # plate within one edit, best match first


class Store:
    """One connection; not shared between threads (each thread or command opens its own)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.postgres = url.startswith(("postgresql://", "postgres://"))
        self.partitioned = False  # PostgreSQL events partitioned by month (set by scale.migrate)
        try:
            self._conn: Any = self._connect_pg(url) if self.postgres else self._connect_sqlite(url)
            self._migrate()
        except (sqlite3.Error, OSError) as err:
            raise StoreError(f"database {url}: {err}") from None
        except Exception as err:  # psycopg.Error, imported lazily
            if type(err).__module__.startswith("psycopg"):
                raise StoreError(f"database {safe_url(url)}: {error_line(err, url)}") from None
            raise

    # -- connection and dialect shim ---------------------------------------------------------------

    @staticmethod
    def _connect_sqlite(url: str) -> sqlite3.Connection:
        path = Path(url[len("sqlite:///"):])
        path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(str(path), timeout=30.0, check_same_thread=False, isolation_level=None)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")  # a commit we ack on must survive power loss
        conn.execute("PRAGMA busy_timeout=30000")
        return conn

    @staticmethod
    def _connect_pg(url: str) -> Any:
        try:
            import psycopg
        except ImportError:
            raise StoreError("PostgreSQL needs psycopg: pip install 'psycopg[binary]'") from None
        return psycopg.connect(pg_conninfo(url), autocommit=True, connect_timeout=10)

    @property
    def seq_table(self) -> str:
        """Where (node, seq, received_at) are read from: ``event_keys`` on partitioned PostgreSQL (one index, not
        one probe per month partition), else ``events`` itself."""
        return "event_keys" if self.partitioned else "events"

    def _sql(self, sql: str) -> str:
        return sql.replace("?", "%s") if self.postgres else sql

    def _hour(self, col: str) -> str:
        """The UTC hour start of a time; NULL for a time outside years 1..9999 (an old row from before #14.11)."""
        sane = f"{col} > -62135596800 AND {col} < 253402300800"
        if self.postgres:
            return f"CASE WHEN {sane} THEN CAST(FLOOR({col} / 3600) AS BIGINT) * 3600 END"
        return f"CASE WHEN {sane} THEN CAST({col} / 3600 AS INTEGER) * 3600 END"

    def _execute(self, sql: str, params: Sequence[Any] = ()) -> Any:
        return self._conn.execute(self._sql(sql), tuple(params))

    def _executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> int:
        cur = self._conn.cursor()
        cur.executemany(self._sql(sql), list(rows))
        return max(cur.rowcount, 0)

    def _begin(self) -> None:
        self._conn.execute("BEGIN" if self.postgres else "BEGIN IMMEDIATE")

    def _commit(self) -> None:
        self._conn.execute("COMMIT")

    def _rollback(self) -> None:
        try:
            self._conn.execute("ROLLBACK")
        except Exception:  # noqa: BLE001 - nothing open to roll back
            pass

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    # -- schema ------------------------------------------------------------------------------------

    def _migrate(self) -> None:
        self._begin()
        try:
            if self.postgres:
                self._execute("SELECT pg_advisory_xact_lock(4242017)")
            self._execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
            row = self._execute("SELECT MAX(version) FROM schema_version").fetchone()
            have = int(row[0] or 0)
            if have > len(MIGRATIONS):
                raise StoreError(f"database schema version {have} is newer than this edgecam ({len(MIGRATIONS)})")
            for version in range(have + 1, len(MIGRATIONS) + 1):
                for ddl in MIGRATIONS[version - 1]:
                    self._execute(ddl)
                self._execute("INSERT INTO schema_version (version) VALUES (?)", (version,))
            scale.migrate(self)  # named features after the numbered ones (#18.4, #16.4)
            self._commit()
        except BaseException:
            self._rollback()
            raise

    def schema_version(self) -> int:
        return int(self._execute("SELECT MAX(version) FROM schema_version").fetchone()[0])

    # -- writes (the consumer) ---------------------------------------------------------------------

    def write_batch(self, events: Sequence[EventRow], statuses: Sequence[StatusRow],
                    stats: Sequence[StatsRow], now: float | None = None,
                    quarantined: Sequence[Quarantined] = ()) -> int:
        """Store one batch in one transaction; returns how many events were new. Redeliveries change nothing."""
        now = time.time() if now is None else now
        self.last_conflicts: list[Quarantined] = []
        self._begin()
        try:
            if self.postgres:  # several consumers: take every node row this batch touches in one order (#18.3)
                self._lock_nodes(events, statuses, stats, quarantined)
            inserted = self._insert_events(events, now)
            if inserted < len(events):  # some (node, seq) were stored already: the same message, or a conflict
                conflicts = self._conflicts(events)
                if conflicts:
                    self.last_conflicts = conflicts
                    quarantined = [*quarantined, *conflicts]
            for node in sorted({e.node for e in events}):
                mine = [e for e in events if e.node == node]
                latest = max(mine, key=lambda e: e.seq)
                self._upsert_node(node, {"last_seen": now, "time_ok": latest.time_ok})
                # The first seq central ever sees for a node sets its baseline: earlier seqs are no gap.
                self._execute("UPDATE nodes SET baseline_seq = ? WHERE node = ? AND baseline_seq IS NULL",
                              (min(e.seq for e in mine) - 1, node))
            if quarantined:
                self._quarantine(quarantined, now)
            for st in statuses:
                seen = min(now, st.ts) if st.retained and st.ts is not None else now
                self._upsert_node(st.node, {"status": st.state, "status_ts": st.ts, "version": st.version,
                                            "last_seen": seen}, overwrite=("status", "status_ts", "version"))
            for sr in stats:
                fields: dict[str, Any] = {"stats": sr.raw, "stats_ts": now, "last_seen": now}
                if sr.time_ok is not None:
                    fields["time_ok"] = sr.time_ok
                self._upsert_node(sr.node, fields)
            self._commit()
        except BaseException:
            self._rollback()
            raise
        return inserted

    def _conflicts(self, events: Sequence[EventRow]) -> list[Quarantined]:
        """Events whose (node, seq) is stored with other bytes: never dropped silently, quarantined as conflicts.

        A redelivery is byte-identical (the node's outbox keeps the signed bytes it sent), so any difference is
        a second message claiming the same seq.
        """
        stored: dict[tuple[str, int], str] = {}
        keys = sorted({(e.node, e.seq) for e in events})
        for i in range(0, len(keys), 200):
            chunk = keys[i:i + 200]
            cond = " OR ".join("(node = ? AND seq = ?)" for _ in chunk)
            for node, seq, raw in self._execute(f"SELECT node, seq, raw FROM events WHERE {cond}",
                                                [v for k in chunk for v in k]).fetchall():
                stored[(node, int(seq))] = raw
        out = []
        for e in events:
            raw = stored.get((e.node, e.seq))
            if raw is not None and raw != e.raw:
                out.append(Quarantined(e.node, f"events of {e.node}", f"conflict: seq {e.seq} is stored with"
                                       " different content; this second message is kept here, not stored",
                                       quarantine_text(e.raw.encode()), kind="conflict"))
        return out
    def _lock_nodes(self, events: Sequence[EventRow], statuses: Sequence[StatusRow], stats: Sequence[StatsRow],
                    quarantined: Sequence[Quarantined]) -> None:
        """Lock the batch's node rows in node order before touching any: a batch updates them for its events,
        then its statuses and stats, and two ``$share`` consumers doing that in crossing orders deadlocked
        (seen in benchmarks/fleet.py with 4 consumers)."""
        touched = sorted({*(e.node for e in events), *(st.node for st in statuses), *(sr.node for sr in stats),
                          *(q.node for q in quarantined if q.node is not None)})
        if touched:
            self._execute("SELECT node FROM nodes WHERE node = ANY(?) ORDER BY node FOR UPDATE", (touched,))

    def _quarantine(self, items: Sequence[Quarantined], now: float) -> None:
        self._executemany("INSERT INTO quarantine (received_at, node, topic, reason, payload, kind)"
                          " VALUES (?, ?, ?, ?, ?, ?)",
                          ((now, q.node, q.topic, q.reason[:500], q.payload[:QUARANTINE_PAYLOAD], q.kind)
                           for q in items))
        per_node: dict[str, int] = {}
        known_only: set[str] = set()
        for q in items:
            if q.node is not None:
                per_node[q.node] = per_node.get(q.node, 0) + 1
                if q.kind in ("unsigned", "unregistered"):
                    known_only.add(q.node)
        for node, n in sorted(per_node.items()):
            if node in known_only:  # a name nobody registered gets no fleet row from a rogue's messages
                self._execute("UPDATE nodes SET quarantined = quarantined + ? WHERE node = ?", (n, node))
                continue
            self._execute("INSERT INTO nodes (node, quarantined) VALUES (?, ?) ON CONFLICT (node) DO UPDATE"
                          " SET quarantined = nodes.quarantined + excluded.quarantined", (node, n))
        cut = self._execute("SELECT received_at FROM quarantine ORDER BY received_at DESC LIMIT 1 OFFSET ?",
                            (QUARANTINE_KEEP,)).fetchone()
        if cut is not None:
            self._execute("DELETE FROM quarantine WHERE received_at <= ?", (cut[0],))

    def quarantine(self, limit: int = 100) -> list[dict[str, Any]]:
        """The newest quarantined messages, newest first."""
        cur = self._execute("SELECT received_at, node, topic, reason, payload, kind FROM quarantine"
                            " ORDER BY received_at DESC LIMIT ?", (int(limit),))
        names = [d[0] for d in cur.description]
        return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]

    def _insert_events(self, events: Sequence[EventRow], now: float) -> int:
        if not events:
            return 0
        names = (*_EVENT_COLUMNS, *scale.EXTRA_COLUMNS, "received_at")
        rows = [[getattr(e, c) for c in _EVENT_COLUMNS] + scale.event_extras(e) + [now] for e in events]
        if self.partitioned:  # idempotency through event_keys (see edge/central/scale.py)
            return scale.insert_events(self, names, rows, events)
        marks = ", ".join("?" * len(names))
        sql = f"INSERT INTO events ({', '.join(names)}) VALUES ({marks}) ON CONFLICT (node, seq) DO NOTHING"
        return self._executemany(sql, rows)

    def _upsert_node(self, node: str, fields: dict[str, Any], overwrite: Sequence[str] = ()) -> None:
        """Insert or update a node row: ``last_seen`` only moves forward; other fields take the new value."""
        names = list(fields)
        sets = []
        for name in names:
            if name == "last_seen":
                sets.append("last_seen = CASE WHEN nodes.last_seen IS NULL OR excluded.last_seen > nodes.last_seen"
                            " THEN excluded.last_seen ELSE nodes.last_seen END")
            elif name in overwrite:
                sets.append(f"{name} = excluded.{name}")
            else:
                sets.append(f"{name} = COALESCE(excluded.{name}, nodes.{name})")
        sql = (f"INSERT INTO nodes (node, {', '.join(names)}) VALUES (?{', ?' * len(names)}) "
               f"ON CONFLICT (node) DO UPDATE SET {', '.join(sets)}")
        self._execute(sql, [node, *fields.values()])

    def register_node(self, node: str, pubkey: str, api_url: str | None, baseline_seq: int | None = None,
                      valid_from: float | None = None, now: float | None = None) -> float | None:
        """Register (or re-register) a node; a new key is added with a start time, older keys are kept.

        The first key is valid from the beginning (0) unless ``valid_from`` says otherwise; a key added later
        starts at ``valid_from`` (default: now), and the key before it stays valid for messages timed before
        that. Registering a key already known changes no key. Returns the new key's start time, or None.
        """
        now = time.time() if now is None else now
        self._begin()
        try:
            added = None
            if pubkey.lower().startswith("ed25519:"):
                have = self._execute("SELECT pubkey FROM node_keys WHERE node = ?", (node,)).fetchall()
                if pubkey not in {r[0] for r in have}:
                    added = (0.0 if not have else now) if valid_from is None else float(valid_from)
                    self._execute("INSERT INTO node_keys (node, pubkey, valid_from, added_at) VALUES (?, ?, ?, ?)",
                                  (node, pubkey, added, now))
            self._upsert_node(node, {"pubkey": pubkey, "api_url": api_url})
            if baseline_seq is not None:
                self._execute("UPDATE nodes SET baseline_seq = ? WHERE node = ?", (baseline_seq, node))
            self._commit()
        except BaseException:
            self._rollback()
            raise
        return added

    def node_keys(self) -> dict[str, list[tuple[float, str]]]:
        """Every node's registered Ed25519 keys as ``(valid_from, "ed25519:B64")``, oldest start first."""
        out: dict[str, list[tuple[float, str]]] = {}
        for node, pubkey, start in self._execute("SELECT node, pubkey, valid_from FROM node_keys"
                                                 " ORDER BY node, valid_from, added_at").fetchall():
            out.setdefault(node, []).append((float(start), pubkey))
        return out

    def ack_trust(self, who: str, reason: str, at: float) -> None:
        """An operator has looked at the trust faults so far: `central status` raises only newer ones."""
        self._begin()
        try:
            self._execute("INSERT INTO trust_acks (at, who, reason) VALUES (?, ?, ?)", (at, who, reason))
            self._commit()
        except BaseException:
            self._rollback()
            raise

    def trust_faults(self) -> list[dict[str, Any]]:
        """Trust faults since the last ``ack-trust``, per node and kind: count, first and last time, last reason."""
        row = self._execute("SELECT MAX(at) FROM trust_acks").fetchone()
        since = float(row[0]) if row and row[0] is not None else -1.0
        marks = ", ".join("?" * len(TRUST_KINDS))
        cur = self._execute(
            f"SELECT node, kind, COUNT(*), MIN(received_at), MAX(received_at) FROM quarantine"
            f" WHERE kind IN ({marks}) AND received_at > ? GROUP BY node, kind ORDER BY node, kind",
            [*TRUST_KINDS, since])
        out = []
        for node, kind, n, first, last in cur.fetchall():
            reason = self._execute(
                "SELECT reason FROM quarantine WHERE kind = ? AND received_at = ? AND (node = ? OR node IS NULL)",
                (kind, last, node)).fetchone()
            out.append({"node": node, "kind": kind, "count": int(n), "first": float(first), "last": float(last),
                        "reason": reason[0] if reason else ""})
        return out

    def ack_gap(self, ack: GapAck) -> None:
        self._begin()
        try:
            self._execute("INSERT INTO gap_acks (node, first_seq, last_seq, reason, who, at) VALUES (?, ?, ?, ?, ?, ?)",
                          (ack.node, ack.first, ack.last, ack.reason, ack.who, ack.at))
            self._commit()
        except BaseException:
            self._rollback()
            raise

    # -- reads -------------------------------------------------------------------------------------

    def gap_acks(self, node: str) -> list[GapAck]:
        rows = self._execute("SELECT node, first_seq, last_seq, reason, who, at FROM gap_acks WHERE node = ?"
                             " ORDER BY first_seq", (node,)).fetchall()
        return [GapAck(r[0], int(r[1]), int(r[2]), r[3], r[4], float(r[5])) for r in rows]

    def baseline(self, node: str) -> int | None:
        row = self._execute("SELECT baseline_seq FROM nodes WHERE node = ?", (node,)).fetchone()
        return None if row is None or row[0] is None else int(row[0])

    def count_events(self, node: str | None = None) -> int:
        if node is None:
            return int(self._execute("SELECT COUNT(*) FROM events").fetchone()[0])
        return int(self._execute(f"SELECT COUNT(*) FROM {self.seq_table} WHERE node = ?", (node,)).fetchone()[0])

    def seqs(self, node: str) -> list[int]:
        return [int(r[0]) for r in self._execute(f"SELECT seq FROM {self.seq_table} WHERE node = ? ORDER BY seq",
                                                 (node,))]

    def nodes(self) -> list[dict[str, Any]]:
        """Every known node (from messages or registration), with its last status and stats."""
        cur = self._execute("SELECT node, status, status_ts, last_seen, version, pubkey, api_url, stats, stats_ts,"
                            " time_ok, quarantined, baseline_seq FROM nodes ORDER BY node")
        names = [d[0] for d in cur.description]
        rows = [dict(zip(names, r, strict=True)) for r in cur.fetchall()]
        for row in rows:
            row["time_ok"] = None if row["time_ok"] is None else bool(row["time_ok"])
        return rows

    def node(self, node: str) -> dict[str, Any] | None:
        return next((r for r in self.nodes() if r["node"] == node), None)

    def gaps(self, node: str) -> GapReport:
        """Missing seq ranges of one node, scanning only past its remembered contiguous watermark."""
        row = self._execute("SELECT contiguous_seq, baseline_seq FROM nodes WHERE node = ?", (node,)).fetchone()
        # Seqs at or below the baseline (before the first one central saw, or set at register-node) are no gap.
        mark = max(int(row[0]), int(row[1] or 0)) if row else 0
        holes = self._execute(
            """SELECT prev + 1, seq - 1, known FROM (
                 SELECT seq, LAG(seq, 1, CAST(? AS BIGINT)) OVER (ORDER BY seq) AS prev,
                        MIN(received_at) OVER (ORDER BY seq DESC ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)
                          AS known
                 FROM """ + self.seq_table + """ WHERE node = ? AND seq > ?) t
               WHERE seq > prev + 1 ORDER BY seq""",
            (mark, node, mark),
        ).fetchall()
        top = self._execute(f"SELECT MAX(seq) FROM {self.seq_table} WHERE node = ?", (node,)).fetchone()[0]
        max_seq = int(top or 0)
        gaps = tuple(Gap(int(a), int(b), float(k)) for a, b, k in holes)
        contiguous = gaps[0].first - 1 if gaps else max(max_seq, mark)
        if row and contiguous > mark:
            self._execute("UPDATE nodes SET contiguous_seq = ? WHERE node = ? AND contiguous_seq < ?",
                          (contiguous, node, contiguous))
        return GapReport(node=node, max_seq=max_seq, contiguous=contiguous, gaps=gaps)

    def _where(self, f: SearchFilter) -> tuple[str, list[Any]]:
        clauses, params = [], []
        for col, op, value in (("e.ts", ">=", f.since), ("e.ts", "<", f.until), ("e.label", "=", f.label),
                               ("e.node", "=", f.node), ("e.camera", "=", f.camera)):
            if value is not None:
                clauses.append(f"{col} {op} ?")
                params.append(value)
        for col, value in (("e.color", f.color), ("e.heading", f.heading)):
            if value is not None:
                clauses.append(f"{col} = ?")
                params.append(value)
        if f.plate is not None and not f.fuzzy:
            clauses.append("e.plate_key LIKE ?")
            params.append(scale.like_pattern(scale.plate_pattern(f.plate)))
        if f.zone is not None and self.postgres:  # answered by the GIN index on zones (edge/central/scale.py)
            import json

            clauses.append("CAST(e.zones AS jsonb) @> CAST(? AS jsonb)")
            params.append(json.dumps([f.zone], ensure_ascii=False))
        elif f.zone is not None:
            escaped = f.zone.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_").replace('"', '\\\\"')
            clauses.append("e.zones LIKE ? ESCAPE '\\'")
            params.append(f'%"{escaped}"%')
        return (" WHERE " + " AND ".join(clauses)) if clauses else "", params

    def search(self, f: SearchFilter) -> list[dict[str, Any]]:
        """Messages matching ``f``, newest first, with the node's API address (``search --raw``)."""
        where, params = self._where(f)
        cur = self._execute(
            "SELECT e.node, e.seq, e.id, e.type, e.camera, e.label, e.score, e.ts, e.box, e.zones, e.clip,"
            " e.line_name, e.line_dir, e.duration, e.time_ok, e.received_at, n.api_url"
            f" FROM events e LEFT JOIN nodes n ON n.node = e.node{where}"
            " ORDER BY e.ts DESC, e.node, e.seq DESC LIMIT ?",
            [*params, int(f.limit)],
        )
        names = [d[0] for d in cur.description]
        return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]

    def count(self, f: SearchFilter) -> int:
        """How many messages match ``f`` (without the limit)."""
        where, params = self._where(f)
        return int(self._execute(f"SELECT COUNT(*) FROM events e{where}", params).fetchone()[0])

    def search_objects(self, f: SearchFilter) -> tuple[list[dict[str, Any]], int]:
        """One row per tracked object (node, event id) with a message matching ``f``, newest first; and the total.

        A tracked object sends start, updates and end; each row gathers them: first and last seen, best score,
        every zone it was in, its line crossing and its clip (whichever message carried them).
        """
        where, params = self._where(f)
        distance: dict[tuple[str, str], int] = {}
        if f.plate is not None and f.fuzzy:
            keys, total, distance = self._fuzzy_keys(f, where, params)
        else:
            total = int(self._execute(f"SELECT COUNT(*) FROM (SELECT e.node, e.id FROM events e{where}"
                                      " GROUP BY e.node, e.id) t", params).fetchone()[0])
            keys = self._execute(f"SELECT e.node, e.id, MIN(e.ts) AS first_ts FROM events e{where}"
                                 " GROUP BY e.node, e.id ORDER BY first_ts DESC, e.node, e.id LIMIT ?",
                                 [*params, int(f.limit)]).fetchall()
        messages: dict[tuple[str, str], list[dict[str, Any]]] = {(k[0], k[1]): [] for k in keys}
        order = list(messages)
        for i in range(0, len(order), 200):
            chunk = order[i:i + 200]
            cond = " OR ".join("(e.node = ? AND e.id = ?)" for _ in chunk)
            cur = self._execute(
                "SELECT e.node, e.seq, e.id, e.type, e.camera, e.label, e.score, e.ts, e.zones, e.clip,"
                " e.line_name, e.line_dir, e.duration, e.time_ok, n.api_url,"
                " e.color, e.color_score, e.heading, e.plate, e.plate_score, e.best"
                f" FROM events e LEFT JOIN nodes n ON n.node = e.node WHERE {cond} ORDER BY e.seq",
                [v for key in chunk for v in key])
            names = [d[0] for d in cur.description]
            for r in cur.fetchall():
                row = dict(zip(names, r, strict=True))
                messages[(row["node"], row["id"])].append(row)
        objects = [_tracked_object(messages[k]) for k in order]
        if distance:
            for obj in objects:
                obj["plate_distance"] = distance[(obj["node"], obj["id"])]
        return objects, total

    def _fuzzy_keys(self, f: SearchFilter, where: str, params: list[Any]) -> tuple[list[Any], int,
                                                                                  dict[tuple[str, str], int]]:
        """Objects with a plate within one edit of ``f.plate``: SQL narrows by length, Python measures."""
        pattern = scale.plate_pattern(f.plate or "")
        lo, hi = scale.fuzzy_length_bounds(pattern)
        cond = " AND e.plate_key IS NOT NULL AND LENGTH(e.plate_key) >= ?" + (" AND LENGTH(e.plate_key) <= ?"
                                                                             if hi is not None else "")
        extra = [lo] if hi is None else [lo, hi]
        where = (where + cond) if where else " WHERE" + cond[len(" AND"):]
        rows = self._execute(f"SELECT e.node, e.id, e.plate_key, e.ts FROM events e{where}", [*params, *extra])
        ranked, total, distance = scale.fuzzy_keys(rows.fetchall(), pattern, int(f.limit))
        return ranked, total, distance

    def line_counts(self, f: SearchFilter) -> list[dict[str, Any]]:
        """Directional line crossings per hour (UTC hour start, UNIX seconds), node, camera and line."""
        where, params = self._where(f)
        where = (where + " AND " if where else " WHERE ") + "e.line_name IS NOT NULL"
        hour = self._hour("e.ts")
        cur = self._execute(
            f"SELECT {hour} AS hour, e.node, e.camera, e.line_name,"
            " SUM(CASE WHEN e.line_dir = 'in' THEN 1 ELSE 0 END),"
            " SUM(CASE WHEN e.line_dir = 'out' THEN 1 ELSE 0 END)"
            f" FROM events e{where} GROUP BY {hour}, e.node, e.camera, e.line_name"
            " ORDER BY 1, 2, 3, 4 LIMIT ?",
            [*params, int(f.limit)],
        )
        return [{"hour": None if h is None else int(h), "node": n, "camera": c, "line": ln, "in": int(i), "out": int(o)}
                for h, n, c, ln, i, o in cur.fetchall()]


def _tracked_object(msgs: list[dict[str, Any]]) -> dict[str, Any]:
    """One tracked object from its messages (in seq order): the latest value of each field that was sent."""
    import json

    last = msgs[-1]
    zones: list[str] = []
    for m in msgs:
        for z in json.loads(m["zones"]):
            if z not in zones:
                zones.append(z)
    line = next(({"name": m["line_name"], "dir": m["line_dir"]} for m in reversed(msgs) if m["line_name"]), None)
    return {
        "node": last["node"], "id": last["id"], "camera": last["camera"], "label": last["label"],
        "score": max(float(m["score"]) for m in msgs),
        "first_ts": min(float(m["ts"]) for m in msgs), "last_ts": max(float(m["ts"]) for m in msgs),
        "zones": zones, "line": line,
        "clip": next((m["clip"] for m in reversed(msgs) if m["clip"]), None),
        "duration": next((m["duration"] for m in reversed(msgs) if m["duration"] is not None), None),
        "ended": any(m["type"] == "end" for m in msgs),
        "time_ok": all(bool(m["time_ok"]) for m in msgs),
        "seq": int(last["seq"]),  # the object's latest message (the contract's "node, seq, clip id")
        "seqs": [int(m["seq"]) for m in msgs],
        "api_url": last["api_url"],
        **{k: next((m[k] for m in reversed(msgs) if m.get(k) is not None), None) for k in scale.SEARCH_COLUMNS},
    }


def safe_url(url: str) -> str:
    """The URL without its password, for error messages and logs."""
    return redact_url(url)


def _password(url: str) -> str | None:
    scheme, sep, rest = url.partition("://")
    at = rest.rfind("@")
    if not sep or at < 0 or ":" not in rest[:at]:
        return None
    return rest[:at].split(":", 1)[1] or None


def pg_conninfo(url: str) -> str:
    """The URL with its userinfo percent-encoded, so that a raw ``@`` or ``/`` in a password reaches libpq intact.

    libpq splits ``postgresql://u:p@ss@host/db`` at the first ``@`` and takes ``ss@host`` for the host (and
    then names it in its error). Users write passwords raw; the last ``@`` ends the userinfo.
    """
    scheme, sep, rest = url.partition("://")
    at = rest.rfind("@")
    if not sep or at < 0:
        return url
    user, colon, password = rest[:at].partition(":")
    user = quote(unquote(user), safe="")
    password = quote(unquote(password), safe="")
    return f"{scheme}://{user}{colon}{password}@{rest[at + 1:]}"


def error_line(err: BaseException, url: str) -> str:
    """The first line of a database error, with no trace of the URL's password (raw or encoded)."""
    text = (str(err).strip().splitlines() or [type(err).__name__])[0]
    text = redact_url(text)
    password = _password(url)
    if password:
        for secret in {password, unquote(password), quote(unquote(password), safe="")}:
            if len(secret) >= 3:
                text = text.replace(secret, "***")
    return text
