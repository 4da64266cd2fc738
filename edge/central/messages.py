"""Decode what the nodes publish into typed rows; anything malformed raises ``BadMessage``.

The wire format is written by ``edge.payload`` on the node. Validation is strict on
the fields the store indexes (node, seq, ts, type) and lenient on extra fields, so
a newer node with an added optional field is still stored (its raw JSON is kept).
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass
from typing import Any, Literal, overload

from .. import payload

EVENT_TYPES = ("start", "update", "end")
LINE_DIRS = ("in", "out")

# Ranges checked at the door, so that nothing stored can break a query or a report later (#14.11).
MAX_SEQ = 2**53  # exact in a double, in JavaScript and in every JSON reader
TS_AHEAD = 10 * 365.25 * 86400  # a ts more than ten years ahead of central's clock is not a time
MAX_TEXT = 256  # id, camera, label, clip, zone and line names, version
MAX_ZONES = 64
MAX_DURATION = 7 * 86400.0
MAX_STATS_BYTES = 64 * 1024


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
    # identification fields of #16 (end events and updates), each optional
    color: str | None = None
    color_score: float | None = None
    heading: str | None = None
    plate: str | None = None
    plate_score: float | None = None
    best: str | None = None


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


def _finite(key: str, value: Any) -> float:
    """A JSON number as a finite float; a huge int (400 digits) is refused here, not by the database."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise BadMessage(f"{key}: {_show(value)} is not a number")
    try:
        number = float(value)
    except OverflowError:
        raise BadMessage(f"{key}: {_show(value)} is out of range") from None
    if not math.isfinite(number):
        raise BadMessage(f"{key}: {_show(value)} is not a finite number")
    return number


def _show(value: Any) -> str:
    """A bounded repr for the log and the quarantine reason."""
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


@overload
def _num(obj: dict[str, Any], key: str, optional: Literal[False] = False, lo: float | None = None,
         hi: float | None = None) -> float: ...
@overload
def _num(obj: dict[str, Any], key: str, optional: bool, lo: float | None = None,
         hi: float | None = None) -> float | None: ...
def _num(obj: dict[str, Any], key: str, optional: bool = False, lo: float | None = None,
         hi: float | None = None) -> float | None:
    value = obj.get(key)
    if value is None and optional:
        return None
    number = _finite(key, value)
    if (lo is not None and number < lo) or (hi is not None and number > hi):
        raise BadMessage(f"{key}: {_show(value)} is outside {lo:g}..{hi:g}")
    return number


@overload
def _ts(obj: dict[str, Any], key: str = "ts", optional: Literal[False] = False, now: float | None = None) -> float: ...
@overload
def _ts(obj: dict[str, Any], key: str = "ts", optional: bool = False, now: float | None = None) -> float | None: ...
def _ts(obj: dict[str, Any], key: str = "ts", optional: bool = False, now: float | None = None) -> float | None:
    """A time: finite, not before 1970 (an unsynchronised node may send 1970) and not ten years ahead."""
    value = obj.get(key)
    if value is None and optional:
        return None
    number = _finite(key, value)
    now = time.time() if now is None else now
    if not 0.0 <= number <= now + TS_AHEAD:
        raise BadMessage(f"{key}: {_show(value)} is not a time between 1970 and ten years from now")
    return number


@overload
def _str(obj: dict[str, Any], key: str, optional: Literal[False] = False) -> str: ...
@overload
def _str(obj: dict[str, Any], key: str, optional: bool) -> str | None: ...
def _str(obj: dict[str, Any], key: str, optional: bool = False) -> str | None:
    value = obj.get(key)
    if value is None and optional:
        return None
    if not isinstance(value, str) or not value:
        raise BadMessage(f"{key}: {_show(value)} is not a non-empty string")
    if len(value) > MAX_TEXT:
        raise BadMessage(f"{key}: {len(value)} characters, over {MAX_TEXT}")
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
    if isinstance(seq, bool) or not isinstance(seq, int) or not 1 <= seq <= MAX_SEQ:
        raise BadMessage(f"seq: {_show(seq)} is not an integer in 1..2^53")
    if obj.get("type") not in EVENT_TYPES:
        raise BadMessage(f"type: {obj.get('type')!r} is not one of {', '.join(EVENT_TYPES)}")
    box = obj.get("box")
    if not isinstance(box, list) or len(box) != 4:
        raise BadMessage(f"box: {_show(box)} is not four numbers")
    for c in box:
        if not -1.0 <= _finite("box", c) <= 2.0:  # normalised 0..1; a little outside is a clipped box
            raise BadMessage(f"box: {_show(c)} is outside -1..2")
    zones = obj.get("zones", [])
    if not isinstance(zones, list) or not all(isinstance(z, str) and 0 < len(z) <= MAX_TEXT for z in zones):
        raise BadMessage(f"zones: {_show(zones)} is not a list of names")
    if len(zones) > MAX_ZONES:
        raise BadMessage(f"zones: {len(zones)} names, over {MAX_ZONES}")
    line_name, line_dir = _line(obj.get("line"))
    time_ok = obj.get("time_ok", True)
    if not isinstance(time_ok, bool):
        raise BadMessage(f"time_ok: {_show(time_ok)} is not true/false")
    return EventRow(
        node=node, seq=seq, id=_str(obj, "id"), type=obj["type"], camera=_str(obj, "camera"),
        label=_str(obj, "label"), score=_num(obj, "score", lo=0.0, hi=1.0), ts=_ts(obj),
        box=json.dumps(box), zones=json.dumps(zones, ensure_ascii=False), clip=_str(obj, "clip", optional=True),
        line_name=line_name, line_dir=line_dir, duration=_num(obj, "duration", optional=True, lo=0.0, hi=MAX_DURATION),
        time_ok=time_ok, raw=data.decode("utf-8"),
        color=_extra_text(obj, "color"), color_score=_extra_score(obj, "color_score"),
        heading=_extra_text(obj, "heading"), plate=_extra_text(obj, "plate"),
        plate_score=_extra_score(obj, "plate_score"), best=_extra_text(obj, "best"),
    )


def _extra_text(obj: dict[str, Any], key: str) -> str | None:
    """An identification field (#16) as a searchable column, or None when it is absent or malformed: the
    event itself is still stored (with the field in ``raw``), it only cannot be found by that field."""
    value = obj.get(key)
    return value if isinstance(value, str) and 0 < len(value) <= MAX_TEXT else None


def _extra_score(obj: dict[str, Any], key: str) -> float | None:
    number = _plain(obj.get(key))
    return number if number is not None and 0.0 <= number <= 1.0 else None


def _line(line: Any) -> tuple[str | None, str | None]:
    if line is None:
        return None, None
    if not isinstance(line, dict) or not isinstance(line.get("name"), str) or line.get("dir") not in LINE_DIRS:
        raise BadMessage(f"line: {_show(line)} is not {{name, dir: in|out}}")
    if not 0 < len(line["name"]) <= MAX_TEXT:
        raise BadMessage(f"line: a name of {len(line['name'])} characters (1..{MAX_TEXT})")
    return line["name"], line["dir"]


def parse_status(node: str, data: bytes, retained: bool) -> StatusRow:
    obj = _load(data)
    state = obj.get("state")
    if state not in ("online", "offline"):
        raise BadMessage(f"state: {_show(state)} is not online/offline")
    version = obj.get("version")
    if isinstance(version, str) and len(version) > MAX_TEXT:
        raise BadMessage(f"version: {len(version)} characters, over {MAX_TEXT}")
    return StatusRow(node=node, state=state, ts=_ts(obj, optional=True),
                     version=version if isinstance(version, str) else None, retained=retained)


def parse_stats(node: str, data: bytes) -> StatsRow:
    """Stats are free-form JSON objects: stored whole (bounded), read by ``stats_summary``."""
    if len(data) > MAX_STATS_BYTES:
        raise BadMessage(f"{len(data)} bytes, over {MAX_STATS_BYTES}")
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
    outbox: dict[str, Any] = obj["outbox"] if isinstance(obj.get("outbox"), dict) else {}
    disk: dict[str, Any] = obj["disk"] if isinstance(obj.get("disk"), dict) else {}
    used, free = _plain(disk.get("used_bytes")), _plain(disk.get("free_bytes"))
    total = _plain(disk.get("total_bytes"))
    if total is None and used is not None and free is not None:
        total = used + free
    free_pct = None
    if free is not None and total is not None and 0 <= free <= total and total > 0:
        # The node's page shows Math.round(100 * free / total) "% free": the same word and number here.
        free_pct = int(100.0 * free / total + 0.5)
    used_pct = None  # kept for readers of ``status --json`` from before disk_free_pct
    if used is not None and free is not None and used >= 0 and free >= 0 and used + free > 0:
        used_pct = round(100.0 * used / (used + free), 1)
    fps = obj.get("fps")
    if isinstance(fps, dict):
        rates = [_plain(v) for v in fps.values()]
        fps = round(sum(r for r in rates if r is not None), 2)
    depth = _plain(outbox.get("depth"))
    cameras = camera_problems(obj.get("cameras"))
    return {
        "outbox": int(depth) if depth is not None else None,
        "disk_free": free,
        "disk_free_pct": free_pct,
        "disk_used_pct": used_pct,
        "fps": _plain(fps),
        "cameras": cameras,
    }


MAX_CAMERAS_SUMMARISED = 64  # stats are free-form: a node cannot make the fleet view unbounded


def camera_problems(cameras: Any) -> dict[str, list[str]]:
    """Per camera of a node's last stats, what keeps it from giving evidence (empty list: nothing):
    ``blind`` (no frames to analyse), ``no clips`` (a two-stream camera's record stream is down),
    ``clips paused`` (the node's storage is full or failing)."""
    if not isinstance(cameras, dict):
        return {}
    out: dict[str, list[str]] = {}
    for name, cam in list(cameras.items())[:MAX_CAMERAS_SUMMARISED]:
        if not isinstance(cam, dict):
            continue
        problems = []
        if cam.get("blind") is True or (cam.get("blind") is None and cam.get("state") not in (None, "running")):
            problems.append("blind")
        if cam.get("record_down"):
            problems.append("no clips")
        recorder = cam.get("recorder")
        if isinstance(recorder, dict) and recorder.get("paused") is True:
            problems.append("clips paused")
        out[str(name)[:64]] = problems
    return out


def _plain(value: Any) -> float | None:
    """A number a report can do arithmetic with (stats are free-form: a 400-digit int is not one)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    try:
        number = float(value)
    except OverflowError:
        return None
    return number if math.isfinite(number) and abs(number) < 1e18 else None
