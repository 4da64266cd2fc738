"""Runs an OutboxService in its own process so a test can kill -9 it mid-burst.

Usage: outbox_child.py DB PORT NODE FIRST COUNT MODE
MODE "burst": submit COUNT events in batches of 20, printing ``durable <last index>`` after each batch is in
SQLite, then idle until killed. MODE "drain": submit, stop(drain 30 s), print ``drained True|False``, exit.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from edge.outbox.publisher import MqttSettings
from edge.outbox.service import OutboxService
from edge.types import Event, EventType


def event(i: int) -> Event:
    return Event(id=f"obj-{i}", type=EventType.START, camera="gate", label="car", score=0.9, ts=time.time(),
                 time=float(i), box=(0.1, 0.2, 0.3, 0.4), zones=("drive",))


def main() -> int:
    db, port, node, first, count, mode = sys.argv[1:7]
    settings = MqttSettings(port=int(port), client_id=f"edgecam-{node}", keepalive=5, reconnect_min=0.1,
                            reconnect_max=0.5, connect_timeout=3.0)
    svc = OutboxService(Path(db), node, settings)
    svc.start()
    first_i, n = int(first), int(count)
    for start in range(first_i, first_i + n, 20):
        for i in range(start, min(start + 20, first_i + n)):
            svc.submit(event(i))
        svc.flush(30.0)
        print(f"durable {min(start + 20, first_i + n) - 1}", flush=True)
        if mode == "burst":
            time.sleep(0.02)
    if mode == "drain":
        print(f"drained {svc.stop(30.0)}", flush=True)
        return 0
    while True:
        time.sleep(1)


if __name__ == "__main__":
    sys.exit(main())
