"""Outbox benchmark: durable enqueues per second, and a 10,000-event backlog drained to a local broker.

    PYTHONPATH=. python benchmarks/outbox.py [--events 10000] [--dir DIR] [--write benchmarks/outbox.md]

Starts its own mosquitto (no persistence, its defaults) on a free port. The outbox lives in ``--dir`` (default:
a temporary directory under the current one, so fsync hits a real disk, not tmpfs).
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import paho.mqtt.client as mqtt

from edge.outbox.publisher import MqttSettings
from edge.outbox.service import OutboxService
from edge.outbox.store import Outbox
from edge.types import Event, EventType


def event(i: int) -> Event:
    return Event(id=f"obj-{i}", type=EventType.UPDATE, camera="gate", label="car", score=0.87, ts=time.time(),
                 time=float(i), box=(0.12, 0.34, 0.56, 0.78), zones=("drive",))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def single_commits(d: Path, n: int) -> float:
    """Worst case: every event in its own transaction (one fsync each)."""
    ob = Outbox(d / "single.db", "bench")
    from edge.payload import event_body

    bodies = [event_body(event(i)) for i in range(n)]
    t0 = time.perf_counter()
    for b in bodies:
        ob.enqueue_many([b])
    dt = time.perf_counter() - t0
    ob.close()
    return n / dt


def service_enqueue(d: Path, n: int, port: int) -> float:
    """The daemon's path: submit() from the pipeline, the writer thread batches, flush() = all durable."""
    svc = OutboxService(d / "svc.db", "bench", MqttSettings(port=port, client_id="edgecam-bench-a",
                                                            reconnect_min=30, reconnect_max=60))
    svc.start()
    t0 = time.perf_counter()
    for i in range(n):
        svc.submit(event(i))
    assert svc.flush(120)
    dt = time.perf_counter() - t0
    svc.stop(0)
    return n / dt


def drain(d: Path, n: int, port: int) -> tuple[float, int]:
    """A backlog of ``n`` stored events, then connect: seconds until a subscriber has all and the outbox is empty."""
    ob = Outbox(d / "drain.db", "bench")
    from edge.payload import event_body

    ob.enqueue_many([event_body(event(i)) for i in range(n)])
    ob.close()
    got = threading.Event()
    count = [0]

    def on_message(_c, _u, m) -> None:
        if m.topic.endswith("/events"):
            count[0] += 1
            if count[0] >= n:
                got.set()

    sub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="bench-sub")
    sub.on_message = on_message
    sub.connect("127.0.0.1", port)
    sub.subscribe("edgecam/bench/events", qos=1)
    sub.loop_start()
    time.sleep(0.5)
    svc = OutboxService(d / "drain.db", "bench", MqttSettings(port=port, client_id="edgecam-bench",
                                                              reconnect_min=0.1, reconnect_max=0.5))
    t0 = time.perf_counter()
    svc.start()
    got.wait(120)
    while svc.depth() and time.perf_counter() - t0 < 120:
        time.sleep(0.01)
    dt = time.perf_counter() - t0
    svc.stop(5)
    sub.loop_stop()
    return dt, count[0]


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=10_000)
    ap.add_argument("--single", type=int, default=500, help="events for the one-transaction-each figure")
    ap.add_argument("--dir", help="where the outbox databases go (a real disk)")
    ap.add_argument("--write", help="append a markdown report to this file")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="outbox-bench-", dir=args.dir or "."))
    port = free_port()
    conf = work / "mosquitto.conf"
    conf.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\nmax_queued_messages 100000\n"
                    + ("user root\n" if os.geteuid() == 0 else ""))
    broker = subprocess.Popen([shutil.which("mosquitto") or "/usr/sbin/mosquitto", "-c", str(conf)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        time.sleep(0.5)
        single = single_commits(work, args.single)
        batched = service_enqueue(work, args.events, free_port())  # no broker there: pure enqueue
        secs, received = drain(work, args.events, port)
    finally:
        broker.terminate()
        broker.wait(10)
        shutil.rmtree(work, ignore_errors=True)
    lines = [
        f"- date: {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M UTC}; machine: {platform.machine()}, "
        f"{os.cpu_count()} cores, {platform.platform()}, Python {platform.python_version()}, "
        f"load average {os.getloadavg()[0]:.1f} (shared machine)",
        "- command: `PYTHONPATH=. python benchmarks/outbox.py" + " ".join([""] + sys.argv[1:]) + "`",
        f"- durable enqueue, one transaction (fsync) per event: **{single:,.0f} events/s** ({args.single} events)",
        f"- durable enqueue via OutboxService.submit + writer-thread batching, until flush(): "
        f"**{batched:,.0f} events/s** ({args.events} events; target >= 2,000)",
        f"- backlog of {args.events:,} events drained to a local mosquitto (QoS 1, max_inflight 50): "
        f"**{secs:.2f} s**, {received:,} received (target <= 10 s)",
    ]
    text = "\n".join(lines)
    print(text)
    if args.write:
        with open(args.write, "a", encoding="utf-8") as f:
            f.write(text + "\n\n")
    return 0 if received >= args.events and batched >= 2000 and secs <= 10 else 1


if __name__ == "__main__":
    sys.exit(main())
