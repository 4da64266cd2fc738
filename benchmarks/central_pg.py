"""Central on PostgreSQL at province scale (#18.4): bulk load, consumer inserts, one-day search, ``central status``.

    PYTHONPATH=. nice -n 10 python benchmarks/central_pg.py [--events 10000000] [--nodes 1000] [--days 90]
        [--server postgresql://postgres@127.0.0.1:5432/test] [--write benchmarks/central_pg.md]

Creates its own database (``edgecam_bench_<pid>``) on the server, lets ``Store`` make the partitioned schema,
loads ``--events`` generated events with COPY (events and their ``event_keys``, every index in place), then
measures the consumer's own path (``write_batch`` of 200), a one-day / one-label / one-node search, a plate
search, and the real ``edgecam central status`` command. The database is dropped at the end (``--keep`` not).
The events: ``--nodes`` nodes, two cameras each, seqs 1..N per node without holes, times spread evenly over
``--days`` days from 2026-01-01, labels in a fixed mix, a plate on a third of the motorcycles and cars.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psycopg

from edge.central import scale
from edge.central.messages import parse_event
from edge.central.store import _EVENT_COLUMNS, SearchFilter, Store

T0 = 1_767_225_600.0  # 2026-01-01T00:00:00Z
LABELS = ("person", "car", "motorcycle", "motorcycle", "motorcycle", "car", "person", "truck", "bicycle", "bus")
COLORS = ("white", "black", "grey", "red", "blue", "silver")
HEADINGS = ("up", "right", "down", "left")


def lines(nodes: int, per_node: int, days: float, node_from: int = 0):
    """Tab-separated COPY lines of ``events`` and of ``event_keys``, node by node."""
    span = days * 86400.0
    cols = (*_EVENT_COLUMNS, *scale.EXTRA_COLUMNS, "received_at")
    assert cols[0] == "node"
    for n in range(node_from, node_from + nodes):
        node = f"n{n:05d}"
        step = span / per_node
        base = T0 + (n % 97) * 13.0
        for seq in range(1, per_node + 1):
            ts = round(base + seq * step, 3)
            obj = (seq + 1) // 2
            typ = "start" if seq % 2 else "end"
            label = LABELS[(n + obj) % len(LABELS)]
            cam = "gate" if obj % 2 else "road"
            oid = f"{node}-{cam}-{obj}"
            plate = pkey = color = heading = ""
            if typ == "end":
                color, heading = COLORS[obj % len(COLORS)], HEADINGS[obj % len(HEADINGS)]
                if label in ("car", "motorcycle") and obj % 3 == 0:
                    plate = f"{29 + n % 70}-B{obj % 9 + 1} {obj % 1000:03d}.{n % 100:02d}"
                    pkey = scale.plate_key(plate) or ""
            raw = (f'{{"v":1,"id":"{oid}","camera":"{cam}","type":"{typ}","label":"{label}","score":0.87,'
                   f'"ts":{ts},"box":[0.1,0.2,0.3,0.4],"zones":["drive"],"clip":null,"time_ok":true,'
                   f'"node":"{node}","seq":{seq}}}')
            n_ = "\\N"
            yield (f"{node}\t{seq}\t{oid}\t{typ}\t{cam}\t{label}\t0.87\t{ts}\t[0.1, 0.2, 0.3, 0.4]\t[\"drive\"]\t"
                   f"{n_}\t{n_}\t{n_}\t{n_ if typ == 'start' else 4.5}\tt\t{raw}\t"
                   f"{color or n_}\t{0.8 if color else n_}\t{heading or n_}\t{plate or n_}\t{pkey or n_}\t"
                   f"{0.95 if plate else n_}\t{n_}\t{ts + 0.5}\n"), f"{node}\t{seq}\t{ts}\t{ts + 0.5}\n"


def bulk_load(url: str, nodes: int, per_node: int, days: float, chunk_nodes: int) -> list[dict[str, float]]:
    """COPY the events in chunks of ``chunk_nodes`` nodes, one transaction each; the rate of every chunk."""
    cols = ", ".join((*_EVENT_COLUMNS, *scale.EXTRA_COLUMNS, "received_at"))
    out = []
    with psycopg.connect(url, autocommit=True) as conn:
        for start in range(0, nodes, chunk_nodes):
            count = min(chunk_nodes, nodes - start)
            t = time.perf_counter()
            keys = []
            with conn.transaction(), conn.cursor() as cur:
                with cur.copy(f"COPY events ({cols}) FROM STDIN") as cp:
                    buf = []
                    for ev, key in lines(count, per_node, days, start):
                        buf.append(ev)
                        keys.append(key)
                        if len(buf) >= 20000:
                            cp.write("".join(buf))
                            buf.clear()
                    cp.write("".join(buf))
                with cur.copy("COPY event_keys (node, seq, ts, received_at) FROM STDIN") as cp:
                    for i in range(0, len(keys), 50000):
                        cp.write("".join(keys[i:i + 50000]))
            dt = time.perf_counter() - t
            out.append({"rows": count * per_node, "seconds": dt, "rate": count * per_node / dt})
            print(f"  loaded nodes {start}..{start + count - 1}: {count * per_node} events in {dt:.1f} s"
                  f" ({count * per_node / dt:,.0f}/s)", flush=True)
    return out


def timed(fn, repeat: int = 5) -> tuple[float, float, object]:
    """(first call s, median of the next ``repeat`` s, result)."""
    t = time.perf_counter()
    result = fn()
    first = time.perf_counter() - t
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return first, statistics.median(times), result


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--events", type=int, default=10_000_000)
    ap.add_argument("--nodes", type=int, default=1000)
    ap.add_argument("--days", type=float, default=90.0)
    ap.add_argument("--server", default="postgresql://postgres@127.0.0.1:5432/test")
    ap.add_argument("--chunk-nodes", type=int, default=100)
    ap.add_argument("--keep", action="store_true", help="leave the database for inspection")
    ap.add_argument("--write", type=Path, help="also write the report (markdown) here")
    args = ap.parse_args()
    per_node = args.events // args.nodes
    total = per_node * args.nodes
    name = f"edgecam_bench_{os.getpid()}"
    with psycopg.connect(args.server, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    url = args.server.rsplit("/", 1)[0] + "/" + name
    report: dict[str, object] = {"events": total, "nodes": args.nodes, "days": args.days}
    try:
        with Store(url) as store:  # the schema: partitioned events, event_keys, indexes
            store.write_batch([], [], [])
            scale.ensure_partitions(store, scale.months_between(T0, T0 + args.days * 86400 + 3600))
            with store._conn.cursor() as cur:
                for n in range(args.nodes):
                    cur.execute("INSERT INTO nodes (node, status, last_seen, baseline_seq, api_url)"
                                " VALUES (%s, 'online', %s, 0, %s)",
                                (f"n{n:05d}", time.time(), f"https://10.0.{n // 250}.{n % 250}:8443"))
        print(f"loading {total:,} events ({args.nodes} nodes x {per_node}) into {name} ...", flush=True)
        t = time.perf_counter()
        chunks = bulk_load(url, args.nodes, per_node, args.days, args.chunk_nodes)
        load_s = time.perf_counter() - t
        with psycopg.connect(url, autocommit=True) as conn:
            t = time.perf_counter()
            conn.execute("ANALYZE")
            analyze_s = time.perf_counter() - t
            size = conn.execute("SELECT pg_database_size(current_database())").fetchone()[0]
            parts = conn.execute("SELECT count(*) FROM pg_inherits WHERE inhparent = 'events'::regclass").fetchone()[0]
        report.update(load_s=round(load_s, 1), load_rate=round(total / load_s), analyze_s=round(analyze_s, 1),
                      first_chunk_rate=round(chunks[0]["rate"]), last_chunk_rate=round(chunks[-1]["rate"]),
                      db_bytes=size, partitions=parts)

        with Store(url) as store:
            # the consumer's own path: write_batch of 200 live events (new seqs on 200 nodes), then redeliveries
            batches = []
            now = T0 + args.days * 86400 - 3600
            for b in range(50):
                batch = []
                for k in range(200):
                    node = f"n{(b * 200 + k) % args.nodes:05d}"
                    seq = per_node + 1 + (b * 200 + k) // args.nodes
                    body = {"v": 1, "id": f"{node}-live-{seq}", "camera": "gate", "type": "end", "label": "car",
                            "score": 0.9, "ts": now + b, "box": [0.1, 0.2, 0.3, 0.4], "zones": ["drive"],
                            "clip": None, "time_ok": True, "node": node, "seq": seq, "plate": "29-B1 123.45"}
                    batch.append(parse_event(node, json.dumps(body).encode()))
                batches.append(batch)
            t = time.perf_counter()
            new = sum(store.write_batch(batch, [], []) for batch in batches)
            live_s = time.perf_counter() - t
            t = time.perf_counter()
            again = sum(store.write_batch(batch, [], []) for batch in batches)
            dup_s = time.perf_counter() - t
            report.update(live_events=new, live_rate=round(new / live_s), redelivered_new=again,
                          redelivery_rate=round(len(batches) * 200 / dup_s))

            day = T0 + 45 * 86400
            one = SearchFilter(since=day, until=day + 86400, label="motorcycle", node="n00042")
            first, median, (rows, count) = timed(lambda: store.search_objects(one))
            report.update(search_first_ms=round(first * 1000, 1), search_ms=round(median * 1000, 1),
                          search_objects=count)
            raw = timed(lambda: store.search(one))
            report.update(search_raw_ms=round(raw[1] * 1000, 1), search_raw_rows=len(raw[2]))
            plate = SearchFilter(since=day, until=day + 86400, plate="7*B*")
            p = timed(lambda: store.search_objects(plate))
            report.update(plate_day_ms=round(p[1] * 1000, 1), plate_day_objects=p[2][1])
            # plates the generator makes: "<29 + node % 70>-B<obj % 9 + 1> <obj % 1000>.<node % 100>" (obj % 3 == 0)
            plate_all = SearchFilter(plate="71B1*", limit=100)
            p = timed(lambda: store.search_objects(plate_all), repeat=3)
            report.update(plate_all_ms=round(p[1] * 1000, 1), plate_all_objects=p[2][1])
            fz = SearchFilter(since=day, until=day + 86400, plate="71B1 502.43", fuzzy=True)  # n00042 has ...42
            p = timed(lambda: store.search_objects(fz), repeat=3)
            report.update(fuzzy_day_ms=round(p[1] * 1000, 1), fuzzy_day_objects=p[2][1])

        with tempfile.TemporaryDirectory() as tmp:
            cfg = Path(tmp) / "central.toml"
            cfg.write_text(f'[database]\nurl = "{url}"\n')
            env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parent.parent))
            status = []
            for _ in range(3):
                t = time.perf_counter()
                proc = subprocess.run([sys.executable, "-m", "edge", "central", "status", "-c", str(cfg)],
                                      capture_output=True, text=True, env=env)
                status.append(time.perf_counter() - t)
                assert proc.returncode in (0, 1), proc.stderr
            report.update(status_first_s=round(status[0], 2), status_s=round(statistics.median(status[1:]), 2),
                          status_lines=len(proc.stdout.splitlines()))
    finally:
        if not args.keep:
            with psycopg.connect(args.server, autocommit=True) as conn:
                conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    text = render(report)
    print(text)
    if args.write:
        args.write.write_text(text + "\n")
    return 0


def render(r: dict[str, object]) -> str:
    host = f"{platform.machine()}, {os.cpu_count()} CPUs, PostgreSQL via {psycopg.__name__} {psycopg.__version__}"
    return "\n".join([
        f"### Central on PostgreSQL: {r['events']:,} events, {r['nodes']} nodes, {r['days']:g} days"
        f" ({datetime.date.today()}, {host})",
        "",
        "| measure | value |",
        "|---|---|",
        f"| bulk load (COPY events + event_keys, all indexes) | {r['load_s']} s, {r['load_rate']:,} events/s"
        f" (first chunk {r['first_chunk_rate']:,}/s, last {r['last_chunk_rate']:,}/s) |",
        f"| database size after load | {int(r['db_bytes']) / 1e9:.2f} GB, {r['partitions']} month partitions |",
        f"| consumer path (`write_batch`, 200/batch, new events) | {r['live_rate']:,} events/s"
        f" ({r['live_events']} stored) |",
        f"| redeliveries of those (`write_batch`, all duplicates) | {r['redelivery_rate']:,} events/s,"
        f" {r['redelivered_new']} stored |",
        f"| search: one day, one label, one node (objects) | {r['search_ms']} ms (first {r['search_first_ms']} ms),"
        f" {r['search_objects']} objects |",
        f"| search `--raw`, same filter | {r['search_raw_ms']} ms, {r['search_raw_rows']} messages |",
        f"| plate `7*B*`, one day, all nodes | {r['plate_day_ms']} ms, {r['plate_day_objects']} objects |",
        f"| plate `71B1*`, all time, all nodes (limit 100) | {r['plate_all_ms']} ms, {r['plate_all_objects']}"
        " objects |",
        f"| plate `--fuzzy`, one day, all nodes | {r['fuzzy_day_ms']} ms, {r['fuzzy_day_objects']} objects |",
        f"| `edgecam central status` ({r['nodes']} nodes, whole process) | {r['status_s']} s"
        f" (first run {r['status_first_s']} s) |",
    ])


if __name__ == "__main__":
    sys.exit(main())
