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


def requests_topic(prefix: str, node: str) -> str:
    """Central's requests to one node (read only by that node's broker account: firmware_config/mosquitto/)."""
    return f"{prefix}/{node}/requests"


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
    if event.best is not None:
        body["best"] = event.best
    if event.plate is not None:
        body["plate"] = event.plate
        body["plate_score"] = round(float(event.plate_score or 0.0), 3)
    return body


def event_message(body: dict[str, Any], node: str, seq: int) -> bytes:
    """Final wire bytes of one event, at most 1 KiB: optional fields are trimmed rather than the event lost."""
    return fit_event_message(body, node, seq)[0]


# Optional fields go first when an event would not fit, least useful first; then zones from the end.
# Required fields are bounded by config validation (``worst_case_event_bytes``), so they always fit.
TRIM_ORDER = ("color_score", "plate_score", "best", "color", "heading", "duration", "plate", "line")


def fit_event_message(body: dict[str, Any], node: str, seq: int, room: int = 0) -> tuple[bytes, tuple[str, ...]]:
    """``(wire bytes, names of what was trimmed)``: never refuses an event for its size.

    ``room`` bytes are kept free under 1 KiB for what is added afterwards (the signature, ``edge.signing``).
    """
    limit = MAX_EVENT_BYTES - room
    msg = dict(body)
    msg["node"] = node
    msg["seq"] = seq
    data = dumps(msg)
    trimmed: list[str] = []
    if len(data) <= limit:
        return data, ()
    unknown = sorted(k for k in msg if k not in REQUIRED_EVENT_KEYS and k not in TRIM_ORDER)
    candidates = [k for k in [*unknown, *TRIM_ORDER] if k in msg]  # fields this version does not know go first
    while candidates and len(data) > limit:
        # the first field whose loss alone is enough; else the largest, so as few fields as possible go
        sizes = {k: len(dumps({k: msg[k]})) for k in candidates}
        over = len(data) - limit
        key = next((k for k in candidates if sizes[k] - 2 >= over), max(candidates, key=sizes.__getitem__))
        candidates.remove(key)
        del msg[key]
        trimmed.append(key)
        data = dumps(msg)
    if len(data) <= limit:
        return data, tuple(trimmed)
    zones = list(msg.get("zones") or [])
    while zones and len(data) > limit:
        zones.pop()
        msg["zones"] = zones
        data = dumps(msg)
        if "zones" not in trimmed:
            trimmed.append("zones")
    return data, tuple(trimmed)


REQUIRED_EVENT_KEYS = frozenset(
    {"v", "id", "seq", "node", "camera", "type", "label", "score", "ts", "box", "zones", "clip", "time_ok"})

# Widest values each field can take (see the recorder's and the event builder's id formats):
# ts to the year 2286, seq to 2^53, a track number of 12 digits, an 11-hex-digit ms clock.
_WIDEST_TS = 9_999_999_999.999
_WIDEST_SEQ = 2**53
_WIDEST_DURATION = 9_999_999.99
# Room kept for the optional fields announced in the interface (best shot, colour, heading, plate),
# so a config that fits today still fits when they are filled in.
_OPTIONAL_RESERVE = {"best": "x" * 64, "color": "x" * 12, "color_score": 0.999, "heading": "down-right",
                     "plate": "x" * 16, "plate_score": 0.999}


def worst_case_event_bytes(node: str, camera: str, labels: list[str], zones: list[str],
                           lines: list[str]) -> int:
    """Size of the largest event this camera could send: every zone at once, the longest names, widest numbers."""
    label = max(labels, key=lambda x: len(dumps(x)), default="x")
    line = max(lines, key=lambda x: len(dumps(x)), default=None)
    body: dict[str, Any] = {
        "v": SCHEMA_VERSION,
        "id": f"{camera}-{'f' * 11}-{'9' * 12}",
        "camera": camera,
        "type": "update",
        "label": label,
        "score": 0.999,
        "ts": _WIDEST_TS,
        "box": [0.9999] * 4,
        "zones": list(zones),
        "clip": f"{camera}-20261202T015409Z-ffffff",
        "time_ok": False,
        "duration": _WIDEST_DURATION,
        **_OPTIONAL_RESERVE,
    }
    if line is not None:
        body["line"] = {"name": line, "dir": "out"}
    body["node"] = node
    body["seq"] = _WIDEST_SEQ
    return len(dumps(body)) + SIGNATURE_FIELD_BYTES


# ``,"sig":"<88 base64 characters>"``: every event carries its Ed25519 signature (edge/signing.py).
SIGNATURE_FIELD_BYTES = 97


def status_message(state: str, ts: float, version: str, node: str | None = None, signer: Any = None) -> bytes:
    """The retained status; with a ``signer`` (``edge.signing.MessageSigner``) it names the node and is signed."""
    msg: dict[str, Any] = {"state": state, "ts": round(ts, 3), "version": version}
    if node is not None:
        msg["node"] = node
    return signer.seal("status", msg) if signer is not None else dumps(msg)
