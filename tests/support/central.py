"""Helpers for the central tests: databases (SQLite file, PostgreSQL schema), a real publisher, event payloads."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from edge import payload
from edge.central.trust import TrustPolicy
from edge.types import Event, EventType, LineCrossing

PG_USERS = ("postgres", "root")
PG_BASE = "postgresql://{user}@127.0.0.1:5432/test"
T0 = 1_767_225_600.0  # 2026-01-01T00:00:00Z


def pg_base_url() -> str | None:
    """A working PostgreSQL URL, or None when the server is unreachable."""
    try:
        import psycopg
    except ImportError:
        return None
    for user in PG_USERS:
        url = PG_BASE.format(user=user)
        try:
            with psycopg.connect(url, connect_timeout=2):
                return url
        except psycopg.Error:
            continue
    return None


@contextmanager
def pg_schema(base: str) -> Iterator[str]:
    """A fresh schema for one test; the URL selects it through ``search_path``; dropped afterwards."""
    import psycopg

    name = "central_" + uuid.uuid4().hex[:12]
    with psycopg.connect(base, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {name}")
    try:
        yield f"{base}?options=-csearch_path%3D{name}"
    finally:
        with psycopg.connect(base, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA {name} CASCADE")


# The migration window, open: these helpers publish unsigned v1 events for unregistered nodes (#18.1).
LEGACY = TrustPolicy(accept_unsigned_until=float("inf"))


def sqlite_url(tmp: Path) -> str:
    return f"sqlite:///{tmp / 'central' / 'events.db'}"


def event(node: str, seq: int, *, label: str = "car", camera: str = "gate", zones: tuple[str, ...] = ("drive",),
          line: tuple[str, str] | None = None, clip: str | None = None, ts: float | None = None,
          time_ok: bool = True) -> bytes:
    """Wire bytes of one event, built by the node's own encoder."""
    ev = Event(id=f"{node}-obj{seq}", type=EventType.END if clip else EventType.START, camera=camera, label=label,
               score=0.87, ts=T0 + seq * 10 if ts is None else ts, time=float(seq), box=(0.1, 0.2, 0.3, 0.4),
               zones=zones, clip=clip, time_ok=time_ok,
               line=LineCrossing(*line) if line else None, duration=4.5 if clip else None)
    return payload.event_message(payload.event_body(ev), node, seq)


class Publisher:
    """A real paho client publishing at QoS 1 and waiting until the broker acknowledged every message."""

    def __init__(self, port: int, prefix: str = "edgecam") -> None:
        self.prefix = prefix
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="pub-" + uuid.uuid4().hex[:8])
        self.client.max_inflight_messages_set(100)
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        self._pending: list[mqtt.MQTTMessageInfo] = []

    def events(self, node: str, seqs: list[int], **kw) -> None:
        for seq in seqs:
            self.raw(payload.events_topic(self.prefix, node), event(node, seq, **kw))

    def raw(self, topic: str, data: bytes, qos: int = 1, retain: bool = False) -> None:
        self._pending.append(self.client.publish(topic, data, qos=qos, retain=retain))

    def flush(self, timeout: float = 20.0) -> None:
        for info in self._pending:
            info.wait_for_publish(timeout)
        self._pending.clear()

    def close(self) -> None:
        self.flush()
        self.client.disconnect()
        self.client.loop_stop()


def wait_until(cond: Callable[[], bool], timeout: float = 20.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")
