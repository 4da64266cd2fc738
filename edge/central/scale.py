"""Central at province scale: monthly partitions on PostgreSQL, retention by month, search by plate/colour/heading.

Named migrations (``schema_features``), not more numbers in ``MIGRATIONS``: several features add schema at
once, and a name cannot collide the way two "version 3"s would. They run after the numbered ones, in the
same transaction and under the same lock.

PostgreSQL partitioning (#18.4). ``events`` is partitioned by RANGE on ``ts`` (the node's event time,
UNIX seconds), one partition per UTC month (``events_pYYYYMM``), created ahead (this month and the next
two at every start) and on demand for an event outside them. A partitioned table's primary key must
contain the partition key, so ``(node, seq, ts)`` could no longer say "one row per (node, seq)": a
redelivery with another ``ts`` would make a second row. Idempotency therefore lives in ``event_keys``,
a small unpartitioned table keyed on ``(node, seq)``: a batch first inserts its keys there with
``ON CONFLICT DO NOTHING RETURNING``, and only the keys that came back are inserted into ``events``, in
the same transaction (two consumers racing on one key: the second waits on the first's row lock, then
gets nothing back). Retention drops whole month partitions (no DELETE, no vacuum debt) and the keys of
those months. SQLite (the small-site store) keeps one plain table.
"""

from __future__ import annotations

import calendar
import logging
import re
import time
from collections.abc import Iterable, Sequence
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .messages import EventRow
    from .store import Store

log = logging.getLogger(__name__)

AHEAD_MONTHS = 2  # partitions kept ready beyond the current month
SANE_AHEAD = 10 * 366 * 86400.0  # times past this get no month partition of their own (the door refuses them)
_PART = re.compile(r"^events_p(\d{4})(\d{2})$")
PARTITION_LOCK = 4242018  # advisory lock serialising partition creation between consumers

# Columns added for the identification fields of #16 (end events; ``plate_key`` is the plate without
# punctuation, upper case: what a plate search matches).
SEARCH_COLUMNS = ("color", "color_score", "heading", "plate", "plate_score", "best")

FEATURES: list[tuple[str, str]] = [  # (name, dialect: "any" or "postgresql")
    ("search-fields", "any"),
    ("pg-month-partitions", "postgresql"),
]


# -- migrations ------------------------------------------------------------------------------------

def migrate(store: Store) -> None:
    """Apply the named features this database lacks (called inside ``Store._migrate``'s transaction)."""
    store._execute("CREATE TABLE IF NOT EXISTS schema_features (name TEXT PRIMARY KEY, at DOUBLE PRECISION)")
    have = {r[0] for r in store._execute("SELECT name FROM schema_features").fetchall()}
    for name, dialect in FEATURES:
        if name in have or (dialect == "postgresql" and not store.postgres):
            continue
        _APPLY[name](store)
        store._execute("INSERT INTO schema_features (name, at) VALUES (?, ?)", (name, time.time()))
    store.partitioned = store.postgres and _is_partitioned(store)
    if store.partitioned:  # partitions ahead (this month and the next ones), made before they are needed,
        # and the months whose rows wait in the DEFAULT partition (stored while central's role could not create)
        waiting = store._execute(
            "SELECT DISTINCT CAST(to_char(to_timestamp(ts) AT TIME ZONE 'UTC', 'YYYYMM') AS INTEGER)"
            " FROM events_pother WHERE ts >= 0 AND ts < ?", (time.time() + SANE_AHEAD,)).fetchall()
        ensure_partitions(store, [*ahead(time.time()), *(int(r[0]) for r in waiting)], main=True)


def _search_fields(store: Store) -> None:
    text, num = "TEXT", "DOUBLE PRECISION"
    for col, kind in (("color", text), ("color_score", num), ("heading", text), ("plate", text),
                      ("plate_key", text), ("plate_score", num), ("best", text)):
        store._execute(f"ALTER TABLE events ADD COLUMN {col} {kind}")
    if not store.postgres:  # PostgreSQL gets its indexes with the partitions
        store._execute("CREATE INDEX IF NOT EXISTS events_plate ON events (plate_key) WHERE plate_key IS NOT NULL")
        store._execute("CREATE INDEX IF NOT EXISTS events_node_ts ON events (node, ts)")
        store._execute("CREATE INDEX IF NOT EXISTS events_camera_ts ON events (camera, ts)")


PG_INDEXES = (
    "CREATE INDEX IF NOT EXISTS events_ts ON events (ts)",
    "CREATE INDEX IF NOT EXISTS events_node_ts ON events (node, ts)",
    "CREATE INDEX IF NOT EXISTS events_label_ts ON events (label, ts)",
    "CREATE INDEX IF NOT EXISTS events_camera_ts ON events (camera, ts)",
    "CREATE INDEX IF NOT EXISTS events_node_id ON events (node, id)",
    # zones is a JSON list kept as text: a GIN index on it as jsonb answers "in zone X" (``@>``)
    "CREATE INDEX IF NOT EXISTS events_zones ON events USING GIN ((CAST(zones AS jsonb)) jsonb_path_ops)",
    "CREATE INDEX IF NOT EXISTS events_plate ON events (plate_key text_pattern_ops) WHERE plate_key IS NOT NULL",
)


def _pg_partitions(store: Store) -> None:
    """Today's plain ``events`` becomes a partitioned one; rows and their (node, seq) keys are copied over."""
    if _is_partitioned(store):
        return
    store._execute("ALTER TABLE events RENAME TO events_unpartitioned")
    store._execute("ALTER TABLE events_unpartitioned RENAME CONSTRAINT events_pkey TO events_unpartitioned_pkey")
    for index in ("events_ts", "events_label_ts", "events_node_id"):
        store._execute(f"DROP INDEX IF EXISTS {index}")
    store._execute("CREATE TABLE events (LIKE events_unpartitioned INCLUDING DEFAULTS, PRIMARY KEY (node, seq, ts))"
                   " PARTITION BY RANGE (ts)")
    # received_at too: gap reports and acks read only (node, seq, received_at), so they stay on this one index
    # instead of probing every month's partition
    store._execute("""CREATE TABLE IF NOT EXISTS event_keys (
        node TEXT NOT NULL, seq BIGINT NOT NULL, ts DOUBLE PRECISION NOT NULL,
        received_at DOUBLE PRECISION NOT NULL, PRIMARY KEY (node, seq))""")
    # The months present (each one, not every month between: an unsynchronised node's 1970 must not make
    # 56 years of partitions); rows from before validation at the door (#14.11) with impossible times go
    # to the DEFAULT partition, which also catches anything that ever misses its month.
    present = store._execute(
        "SELECT DISTINCT CAST(to_char(to_timestamp(ts) AT TIME ZONE 'UTC', 'YYYYMM') AS INTEGER)"
        " FROM events_unpartitioned WHERE ts >= 0 AND ts < ?", (time.time() + SANE_AHEAD,)).fetchall()
    months = set(ahead(time.time())) | {int(r[0]) for r in present}
    for month in sorted(months):
        store._execute(_create_partition_sql(month))
    store._execute("CREATE TABLE IF NOT EXISTS events_pother PARTITION OF events DEFAULT")
    store._execute("INSERT INTO event_keys (node, seq, ts, received_at)"
                   " SELECT node, seq, ts, received_at FROM events_unpartitioned")
    store._execute("INSERT INTO events SELECT * FROM events_unpartitioned")
    store._execute("DROP TABLE events_unpartitioned")
    for ddl in PG_INDEXES:
        store._execute(ddl)


_APPLY = {"search-fields": _search_fields, "pg-month-partitions": _pg_partitions}


def _owns_events(store: Store) -> bool:
    row = store._execute("SELECT pg_has_role(c.relowner, 'USAGE') FROM pg_class c"
                         " WHERE c.oid = to_regclass('events')").fetchone()
    return bool(row and row[0])


def _is_partitioned(store: Store) -> bool:
    row = store._execute("SELECT c.relkind FROM pg_class c WHERE c.oid = to_regclass('events')").fetchone()
    return row is not None and row[0] == "p"


# -- months and partitions -------------------------------------------------------------------------

def month_of(ts: float) -> int:
    """The month holding ``ts`` as YYYYMM (UTC)."""
    dt = datetime.fromtimestamp(ts, timezone.utc)
    return dt.year * 100 + dt.month


def month_bounds(month: int) -> tuple[int, int]:
    """UNIX seconds of the month's first instant and of the next month's."""
    y, m = divmod(month, 100)
    start = calendar.timegm((y, m, 1, 0, 0, 0))
    ny, nm = (y + 1, 1) if m == 12 else (y, m + 1)
    return start, calendar.timegm((ny, nm, 1, 0, 0, 0))


def _next(month: int) -> int:
    y, m = divmod(month, 100)
    return (y + 1) * 100 + 1 if m == 12 else month + 1


def months_between(lo: float, hi: float) -> list[int]:
    out, month, last = [], month_of(lo), month_of(hi)
    while month <= last:
        out.append(month)
        month = _next(month)
    return out


def ahead(now: float) -> list[int]:
    """This month and the next ``AHEAD_MONTHS``."""
    months = [month_of(now)]
    for _ in range(AHEAD_MONTHS):
        months.append(_next(months[-1]))
    return months


def _create_partition_sql(month: int) -> str:
    start, end = month_bounds(month)
    return (f"CREATE TABLE IF NOT EXISTS events_p{month} PARTITION OF events"
            f" FOR VALUES FROM ({start}) TO ({end})")


def partitions(store: Store) -> list[int]:
    """The months that have a partition, oldest first."""
    rows = store._execute("SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
                          " WHERE i.inhparent = to_regclass('events')").fetchall()
    return sorted(int(m.group(1) + m.group(2)) for (name,) in rows if (m := _PART.match(name)))


def ensure_partitions(store: Store, months: Iterable[int], main: bool = False) -> None:
    """Create missing month partitions on a connection of their own (committed at once, so a batch that
    rolls back cannot take a partition with it that the cache believes in). ``main``: in the migration's
    transaction on the store's own connection (which may hold ``events`` locked: another one would wait)."""
    known: set[int] = store.__dict__.setdefault("_months", set())
    if not known:
        known.update(partitions(store))
    missing = sorted(set(months) - known)
    if not missing:
        return
    if main:
        if not _owns_events(store):
            return  # not ours to create; ensure_partitions on demand says so once per month
        store._execute("SELECT pg_advisory_xact_lock(?)", (PARTITION_LOCK,))
        for month in missing:
            _add_partition(store._conn, month)
        known.update(missing)
        return
    import psycopg

    from .store import pg_conninfo

    with psycopg.connect(pg_conninfo(store.url), autocommit=True, connect_timeout=10) as conn:
        for month in missing:
            try:
                with conn.transaction():
                    conn.execute("SELECT pg_advisory_xact_lock(%s)", (PARTITION_LOCK,))
                    _add_partition(conn, month)
            except psycopg.errors.InsufficientPrivilege as err:
                # Central's role does not own ``events``: the month's rows go to the DEFAULT partition (nothing
                # is lost), and the owner's next start (or ``central prune``) gives them their month.
                log.warning("events of %d go to the default partition: cannot create events_p%d (%s);"
                            " any `edgecam central` command run as the tables' owner moves them", month, month,
                            str(err).strip().splitlines()[0])
    known.update(missing)


def _add_partition(conn: Any, month: int) -> None:
    """Create one month's partition; rows of that month already in the DEFAULT partition move into it."""
    start, end = month_bounds(month)
    name = f"events_p{month}"
    if conn.execute("SELECT to_regclass(%s)", (name,)).fetchone()[0] is not None:
        return
    stray = conn.execute("SELECT 1 FROM events_pother WHERE ts >= %s AND ts < %s LIMIT 1", (start, end)).fetchone()
    if stray is None:
        conn.execute(_create_partition_sql(month))
        return
    conn.execute(f"CREATE TABLE {name} (LIKE events INCLUDING DEFAULTS INCLUDING CONSTRAINTS)")
    conn.execute(f"INSERT INTO {name} SELECT * FROM events_pother WHERE ts >= %s AND ts < %s", (start, end))
    conn.execute("DELETE FROM events_pother WHERE ts >= %s AND ts < %s", (start, end))
    conn.execute(f"ALTER TABLE events ATTACH PARTITION {name} FOR VALUES FROM ({start}) TO ({end})")


def insert_events(store: Store, cols: Sequence[str], rows: Sequence[Sequence[Any]],
                  events: Sequence[EventRow]) -> int:
    """Insert the rows whose (node, seq) is new; ``rows[i]`` holds ``events[i]``'s values of ``cols``."""
    ensure_partitions(store, {month_of(e.ts) for e in events})
    cur = store._conn.cursor()
    at = cols.index("received_at")
    order = sorted(range(len(events)), key=lambda i: (events[i].node, events[i].seq))  # one lock order for all
    events, rows = [events[i] for i in order], [rows[i] for i in order]
    cur.execute("INSERT INTO event_keys (node, seq, ts, received_at)"
                " SELECT * FROM unnest(%s::text[], %s::bigint[], %s::float8[], %s::float8[])"
                " ON CONFLICT (node, seq) DO NOTHING RETURNING node, seq",
                ([e.node for e in events], [e.seq for e in events], [e.ts for e in events], [r[at] for r in rows]))
    new = {(n, int(s)) for n, s in cur.fetchall()}
    fresh = []
    for e, row in zip(events, rows, strict=True):
        if (e.node, e.seq) in new:
            new.discard((e.node, e.seq))  # a key twice in one batch: the first copy wins, as ON CONFLICT does
            fresh.append(row)
    if fresh:
        marks = ", ".join(["%s"] * len(cols))
        cur.executemany(f"INSERT INTO events ({', '.join(cols)}) VALUES ({marks})", fresh)
    return len(fresh)


# -- retention -------------------------------------------------------------------------------------

def prune(store: Store, before_month: int) -> tuple[list[int], int]:
    """Drop every event of months before ``before_month`` (YYYYMM); returns (months dropped, rows dropped).

    PostgreSQL drops whole partitions; SQLite deletes the rows. Each node's gap baseline moves up to the
    highest seq dropped, so the pruned history does not turn into a "missing" range.
    """
    cut = month_bounds(before_month)[0]
    store._begin()
    try:
        if store.partitioned:
            months = [m for m in partitions(store) if m < before_month]
            tables = [f"events_p{m}" for m in months]
            union = " UNION ALL ".join([*(f"SELECT node, seq FROM {t}" for t in tables),
                                        f"SELECT node, seq FROM events_pother WHERE ts < {cut}"])
        else:
            present = store._execute("SELECT DISTINCT CAST(strftime('%Y%m', ts, 'unixepoch') AS INTEGER)"
                                     " FROM events WHERE ts >= 0 AND ts < ?", (cut,)).fetchall()
            months = sorted(int(r[0]) for r in present if r[0] is not None)
            union = f"SELECT node, seq FROM events WHERE ts < {cut}"
        dropped = int(store._execute(f"SELECT COUNT(*) FROM ({union}) t").fetchone()[0])
        for node, mx in store._execute(f"SELECT node, MAX(seq) FROM ({union}) t GROUP BY node").fetchall():
            store._execute("UPDATE nodes SET baseline_seq = ? WHERE node = ? AND"
                           " (baseline_seq IS NULL OR baseline_seq < ?)", (int(mx), node, int(mx)))
        if store.partitioned:
            for t in tables:
                store._execute(f"DROP TABLE {t}")
            store._execute("DELETE FROM event_keys WHERE ts < ?", (cut,))
            store.__dict__.get("_months", set()).difference_update(months)
            store._execute("DELETE FROM events_pother WHERE ts < ?", (cut,))
        else:
            store._execute("DELETE FROM events WHERE ts < ?", (cut,))
        store._commit()
    except BaseException:
        store._rollback()
        raise
    return months, dropped


# -- plates ----------------------------------------------------------------------------------------

def plate_key(text: str | None) -> str | None:
    """A plate as searched: letters and digits only, upper case (``29-B1 123.45`` -> ``29B112345``)."""
    if text is None:
        return None
    key = "".join(ch for ch in text.upper() if ch.isalnum())
    return key or None


def plate_pattern(text: str) -> str:
    """A search pattern as typed, reduced like a plate; ``*`` and ``?`` stay wildcards."""
    return "".join(ch for ch in text.upper() if ch.isalnum() or ch in "*?")


def like_pattern(pattern: str) -> str:
    """``29B1*45`` -> ``29B1%45`` (plate keys hold only letters and digits: nothing to escape)."""
    return pattern.replace("*", "%").replace("?", "_")


def edit_distance(pattern: str, text: str) -> int:
    """Fewest single-character edits for ``text`` to match ``pattern`` (``?`` one character, ``*`` any run)."""
    prev = [0] * (len(text) + 1)
    for j in range(1, len(text) + 1):
        prev[j] = j
    for p in pattern:
        cur = [prev[0] + (0 if p == "*" else 1)] + [0] * len(text)
        for j, t in enumerate(text, 1):
            if p == "*":
                cur[j] = min(prev[j], cur[j - 1])
            else:
                hit = 0 if p in ("?", t) else 1
                cur[j] = min(prev[j - 1] + hit, prev[j] + 1, cur[j - 1] + 1)
        prev = cur
    return prev[-1]


def fuzzy_keys(candidates: Iterable[tuple[str, str, str, float]], pattern: str,
               limit: int) -> tuple[list[tuple[str, str]], int, dict[tuple[str, str], int]]:
    """Objects whose plate is within one edit of ``pattern``: best match first, then newest; and the total."""
    best: dict[tuple[str, str], tuple[int, float]] = {}
    for node, oid, key, ts in candidates:
        d = edit_distance(pattern, key)
        if d <= 1:
            old = best.get((node, oid))
            if old is None or (d, -ts) < (old[0], -old[1]):
                best[(node, oid)] = (d, ts)
    ranked = sorted(best, key=lambda k: (best[k][0], -best[k][1], k))
    return ranked[:limit], len(ranked), {k: v[0] for k, v in best.items()}


def fuzzy_length_bounds(pattern: str) -> tuple[int, int | None]:
    """Plate lengths that can be within one edit of ``pattern`` (a cheap SQL prefilter)."""
    fixed = len(pattern.replace("*", ""))
    return max(fixed - 1, 0), None if "*" in pattern else fixed + 1


def event_extras(e: EventRow) -> list[Any]:
    """The identification columns of one event row, in ``EXTRA_COLUMNS`` order."""
    return [e.color, e.color_score, e.heading, e.plate, plate_key(e.plate), e.plate_score, e.best]


EXTRA_COLUMNS = ("color", "color_score", "heading", "plate", "plate_key", "plate_score", "best")


def parse_month(text: str) -> int:
    """``2026-01`` -> 202601; ValueError when it is not a month."""
    m = re.fullmatch(r"(\d{4})-(\d{2})", text.strip())
    if not m or not 1 <= int(m.group(2)) <= 12:
        raise ValueError(text)
    return int(m.group(1)) * 100 + int(m.group(2))
