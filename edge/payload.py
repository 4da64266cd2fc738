"""MQTT topic names and payload encoding: the one place for both.

The node (outbox, publisher) and the central consumer both import this, so a
topic or field name can never drift between the two sides.
"""

from __future__ import annotations

import json
from typing import Any

from .types import Event

SCHEMA_VERSION = 1
MAX_EVENT_BYTES = 1024


def events_topic(prefix: str, node: str) -> str:
    return f"{prefix}/{node}/events"


def status_topic(prefix: str, node: str) -> str:
    return f"{prefix}/{node}/status"


def stats_topic(prefix: str, node: str) -> str:
    return f"{prefix}/{node}/stats"


def acks_topic(prefix: str, node: str) -> str:
    """Central's retained end-to-end watermark for one node (``edge.central.acks``)."""
    return f"{prefix}/{node}/acks"


def node_from_topic(prefix: str, topic: str) -> tuple[str, str] | None:
    """``(node, kind)`` for ``<prefix>/<node>/<kind>``, else None."""
    head = prefix + "/"
    if not topic.startswith(head):
        return None
    rest = topic[len(head):].split("/")
    if len(rest) != 2 or not rest[0]:
        return None
    return rest[0], rest[1]


def dumps(obj: Any) -> bytes:
    """Compact JSON, the wire form of every payload."""
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def event_body(event: Event) -> dict[str, Any]:
    """The payload minus ``node`` and ``seq``, which the outbox adds when it stores it."""
    body: dict[str, Any] = {
        "v": SCHEMA_VERSION,
        "id": event.id,
        "camera": event.camera,
        "type": event.type.value,
        "label": event.label,
        "score": round(float(event.score), 3),
        "ts": round(float(event.ts), 3),
        "box": [round(float(c), 4) for c in event.box],
        "zones": list(event.zones),
        "clip": event.clip,
        "time_ok": bool(event.time_ok),
    }
    if event.line is not None:
        body["line"] = {"name": event.line.name, "dir": event.line.direction}
    if event.duration is not None:
        body["duration"] = round(float(event.duration), 2)
    if event.color is not None:
        body["color"] = event.color
        body["color_score"] = round(float(event.color_score or 0.0), 3)
    if event.heading is not None:
        body["heading"] = event.heading
    return body


def event_message(body: dict[str, Any], node: str, seq: int) -> bytes:
    """Final wire bytes of one event; raises ValueError past 1 KiB."""
    msg = dict(body)
    msg["node"] = node
    msg["seq"] = seq
    data = dumps(msg)
    if len(data) > MAX_EVENT_BYTES:
        raise ValueError(f"event payload is {len(data)} bytes, over {MAX_EVENT_BYTES}")
    return data


def status_message(state: str, ts: float, version: str) -> bytes:
    return dumps({"state": state, "ts": round(ts, 3), "version": version})
