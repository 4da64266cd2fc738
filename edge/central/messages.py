"""Decode what the nodes publish into typed rows; anything malformed raises ``BadMessage``.

The wire format is written by ``edge.payload`` on the node. Validation is strict on
the fields the store indexes (node, seq, ts, type) and lenient on extra fields, so
a newer node with an added optional field is still stored (its raw JSON is kept).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

from .. import payload

EVENT_TYPES = ("start", "update", "end")
LINE_DIRS = ("in", "out")


class BadMessage(ValueError):
    """A payload that cannot be stored; the text is one line for the log."""


@dataclass(frozen=True)
class EventRow:
    node: str
    seq: int
    id: str
    type: str
    camera: str
    label: str
    score: float
    ts: float
    box: str  # JSON [x1, y1, x2, y2]
    zones: str  # JSON list of zone names
    clip: str | None
    line_name: str | None
    line_dir: str | None
    duration: float | None
    time_ok: bool
    raw: str


@dataclass(frozen=True)
class StatusRow:
    node: str
    state: str
    ts: float | None
    version: str | None
    retained: bool


@dataclass(frozen=True)
class StatsRow:
    node: str
    raw: str
    time_ok: bool | None


def _load(data: bytes) -> dict[str, Any]:
    try:
        text = data.decode("utf-8")
        obj = json.loads(text)
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise BadMessage(f"not UTF-8 JSON ({err})") from None
    except RecursionError:
        raise BadMessage("JSON nested too deeply") from None
    if "\\u0000" in text:
        raise BadMessage("contains a NUL character (no database stores it in text)")
    if not isinstance(obj, dict):
        raise BadMessage("not a JSON object")
    return obj


def _num(obj: dict[str, Any], key: str, optional: bool = False) -> float | None:
    value = obj.get(key)
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise BadMessage(f"{key}: {value!r} is not a number")
    return float(value)


def _str(obj: dict[str, Any], key: str, optional: bool = False) -> str | None:
    value = obj.get(key)
    if value is None and optional:
        return None
    if not isinstance(value, str) or not value:
        raise BadMessage(f"{key}: {value!r} is not a non-empty string")
    return value


def parse_event(node: str, data: bytes) -> EventRow:
    """Validate one ``events`` payload from the topic of ``node``."""
    if len(data) > payload.MAX_EVENT_BYTES:
        raise BadMessage(f"{len(data)} bytes, over {payload.MAX_EVENT_BYTES}")
    obj = _load(data)
    if obj.get("v") != payload.SCHEMA_VERSION:
        raise BadMessage(f"v: {obj.get('v')!r} is not schema version {payload.SCHEMA_VERSION}")
    if obj.get("node") != node:
        raise BadMessage(f"node: {obj.get('node')!r} does not match the topic's {node!r}")
    seq = obj.get("seq")
    if isinstance(seq, bool) or not isinstance(seq, int) or seq < 1 or seq >= 2**63:
        raise BadMessage(f"seq: {seq!r} is not a positive integer")
    if obj.get("type") not in EVENT_TYPES:
        raise BadMessage(f"type: {obj.get('type')!r} is not one of {', '.join(EVENT_TYPES)}")
    box = obj.get("box")
    if not isinstance(box, list) or len(box) != 4 or not all(
        isinstance(c, (int, float)) and not isinstance(c, bool) for c in box
    ):
        raise BadMessage(f"box: {box!r} is not four numbers")
    zones = obj.get("zones", [])
    if not isinstance(zones, list) or not all(isinstance(z, str) for z in zones):
        raise BadMessage(f"zones: {zones!r} is not a list of names")
    line_name, line_dir = _line(obj.get("line"))
    time_ok = obj.get("time_ok", True)
    if not isinstance(time_ok, bool):
        raise BadMessage(f"time_ok: {time_ok!r} is not true/false")
    return EventRow(
        node=node, seq=seq, id=_str(obj, "id"), type=obj["type"], camera=_str(obj, "camera"),
        label=_str(obj, "label"), score=_num(obj, "score"), ts=_num(obj, "ts"),
        box=json.dumps(box), zones=json.dumps(zones, ensure_ascii=False), clip=_str(obj, "clip", optional=True),
        line_name=line_name, line_dir=line_dir, duration=_num(obj, "duration", optional=True),
        time_ok=time_ok, raw=data.decode("utf-8"),
    )


def _line(line: Any) -> tuple[str | None, str | None]:
    if line is None:
        return None, None
    if not isinstance(line, dict) or not isinstance(line.get("name"), str) or line.get("dir") not in LINE_DIRS:
        raise BadMessage(f"line: {line!r} is not {{name, dir: in|out}}")
    return line["name"], line["dir"]


def parse_status(node: str, data: bytes, retained: bool) -> StatusRow:
    obj = _load(data)
    state = obj.get("state")
    if state not in ("online", "offline"):
        raise BadMessage(f"state: {state!r} is not online/offline")
    version = obj.get("version")
    return StatusRow(node=node, state=state, ts=_num(obj, "ts", optional=True),
                     version=version if isinstance(version, str) else None, retained=retained)


def parse_stats(node: str, data: bytes) -> StatsRow:
    """Stats are free-form JSON objects: stored whole, read by ``stats_summary``."""
    obj = _load(data)
    time_ok = obj.get("time_ok")
    return StatsRow(node=node, raw=json.dumps(obj, separators=(",", ":")),
                    time_ok=time_ok if isinstance(time_ok, bool) else None)


def stats_summary(raw: str | None) -> dict[str, Any]:
    """Outbox depth, disk and fps from a node's last stats (edge/schema/stats.schema.json)."""
    try:
        obj = json.loads(raw) if raw else {}
    except json.JSONDecodeError:
        obj = {}
    if not isinstance(obj, dict):
        obj = {}
    outbox = obj.get("outbox") if isinstance(obj.get("outbox"), dict) else {}
    disk = obj.get("disk") if isinstance(obj.get("disk"), dict) else {}
    used, free = disk.get("used_bytes"), disk.get("free_bytes")
    used_pct = None
    if isinstance(used, (int, float)) and isinstance(free, (int, float)) and used + free > 0:
        used_pct = round(100.0 * used / (used + free), 1)
    fps = obj.get("fps")
    return {
        "outbox": outbox.get("depth"),
        "disk_free": free,
        "disk_used_pct": used_pct,
        "fps": round(sum(fps.values()), 2) if isinstance(fps, dict) else fps,
    }
