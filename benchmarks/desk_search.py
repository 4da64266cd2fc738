"""Search time on central with 1,000,000 stored events, SQLite and PostgreSQL (issue #17).

Run:  PYTHONPATH=. nice -n 10 .venv/bin/python benchmarks/desk_search.py [--events 1000000] [--runs 7]
      [--pg postgresql://postgres@127.0.0.1:5432/test] [--no-pg]

Fills a throwaway database (an SQLite file in a temporary folder; a fresh PostgreSQL schema, dropped after)
made by ``Store`` itself, so the schema and indexes are exactly central's; rows go in with ``executemany``
(SQLite) and ``COPY`` (PostgreSQL). 20 nodes x 4 cameras over 30 days, tracked objects of 3 messages each
(start, update, end; the end one carries the clip). Then times ``Store.search_objects`` -- the query code the
desk (``GET /api/search``) and ``edgecam central search`` run -- for a one-day, one-label, one-node query
(the desk's default limit of 200 rows) and for an unfiltered newest-first page of 50. Median and range of
``--runs`` runs after one warm-up run; prints one JSON line per database.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

from edge.central.store import SearchFilter, Store

COLS = ("node, seq, id, type, camera, label, score, ts, box, zones, clip, line_name, line_dir, duration,"
        " time_ok, received_at, raw")
T0 = 1_767_225_600.0  # 2026-01-01T00:00:00Z
DAYS = 30
NODES = [f"node-{i:02d}" for i in range(20)]
LABELS = ["car"] * 5 + ["person"] * 3 + ["truck", "bicycle", "bus", "motorcycle"]


def rows(n: int, seed: int = 17) -> Iterator[tuple]:
    """``n`` event messages: objects of start/update/end, time-ordered per node (seq rises with ts)."""
    rnd = random.Random(seed)
    per_node = n // len(NODES)
    for node in NODES:
        seq, ts, obj = 0, T0, 0
        step = DAYS * 86400 / (per_node / 3)
        while seq < per_node:
            obj += 1
            ts += rnd.expovariate(1 / step)
            label, camera = rnd.choice(LABELS), f"cam{rnd.randrange(4)}"
            oid, clip = f"{camera}-{obj}", f"{camera}-{int(ts)}-{obj:06x}"
            zones = json.dumps(rnd.choice([[], ["drive"], ["drive", "gate"]]))
            for i, kind in enumerate(("start", "update", "end")):
                if seq >= per_node:
                    break
                seq += 1
                t = ts + 2.0 * i
                yield (node, seq, oid, kind, camera, label, round(rnd.uniform(0.3, 0.95), 3), t,
                       "[10, 20, 110, 90]", zones, clip if kind == "end" else None,
                       None, None, 4.0 if kind == "end" else None, True, t + 0.5, "{}")


def fill_sqlite(store: Store, n: int) -> None:
    conn = store._conn
    conn.execute("PRAGMA synchronous=OFF")
    conn.execute("BEGIN")
    marks = ",".join("?" * 17)
    batch: list[tuple] = []
    for r in rows(n):
        batch.append(r)
        if len(batch) == 50_000:
            conn.executemany(f"INSERT INTO events ({COLS}) VALUES ({marks})", batch)
            batch.clear()
    conn.executemany(f"INSERT INTO events ({COLS}) VALUES ({marks})", batch)
    conn.execute("COMMIT")
    conn.execute("ANALYZE")


def fill_pg(store: Store, n: int) -> None:
    conn = store._conn
    with conn.cursor().copy(f"COPY events ({COLS}) FROM STDIN") as copy:
        for r in rows(n):
            copy.write_row(r)
    conn.execute("ANALYZE events")


def timed(store: Store, f: SearchFilter, runs: int) -> dict[str, float | int]:
    store.search_objects(f)  # warm-up: the first run after the fill reads pages from disk
    times, got = [], 0
    for _ in range(runs):
        t0 = time.perf_counter()
        objs, total = store.search_objects(f)
        times.append((time.perf_counter() - t0) * 1000)
        got = len(objs)
    return {"median_ms": round(statistics.median(times), 1), "min_ms": round(min(times), 1),
            "max_ms": round(max(times), 1), "rows": got, "total": total}


def measure(store: Store, n: int, runs: int) -> dict[str, object]:
    day = T0 + 14 * 86400
    one = SearchFilter(since=day, until=day + 86400, label="car", node="node-07", limit=200)
    page = SearchFilter(limit=50)
    count = int(store._execute("SELECT COUNT(*) FROM events").fetchone()[0])
    assert count == n, count
    return {"events": count, "one_day_label_node": timed(store, one, runs), "newest_page_50": timed(store, page, runs)}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=1_000_000)
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--pg", default="postgresql://postgres@127.0.0.1:5432/test")
    ap.add_argument("--no-pg", action="store_true")
    args = ap.parse_args()
    n = args.events - args.events % len(NODES)
    with tempfile.TemporaryDirectory() as d:
        url = f"sqlite:///{Path(d) / 'events.db'}"
        with Store(url) as store:
            t0 = time.perf_counter()
            fill_sqlite(store, n)
            fill_s = time.perf_counter() - t0
            print(json.dumps({"db": "sqlite", "fill_s": round(fill_s, 1), **measure(store, n, args.runs)}),
                  flush=True)
    if args.no_pg:
        return 0
    import psycopg

    schema = "bench_" + uuid.uuid4().hex[:10]
    with psycopg.connect(args.pg, autocommit=True) as admin:
        admin.execute(f"CREATE SCHEMA {schema}")
    try:
        with Store(f"{args.pg}?options=-csearch_path%3D{schema}") as store:
            t0 = time.perf_counter()
            fill_pg(store, n)
            fill_s = time.perf_counter() - t0
            print(json.dumps({"db": "postgresql", "fill_s": round(fill_s, 1), **measure(store, n, args.runs)}),
                  flush=True)
    finally:
        with psycopg.connect(args.pg, autocommit=True) as admin:
            admin.execute(f"DROP SCHEMA {schema} CASCADE")
    return 0


if __name__ == "__main__":
    sys.exit(main())
