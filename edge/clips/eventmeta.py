"""How a clip's META.json lists the events it covers: the clip record's own format, not the MQTT payload.

The keys match what the MQTT event body carries (so one reader serves both), but the recorder no longer
borrows the MQTT encoder: a change to the wire payload (trimming for 1 KiB, signing) cannot change what a
clip's record says. ``time`` is the event's source time on the recorded stream, ``clip`` the clip's id.
"""

from __future__ import annotations

from typing import Any

from ..types import Event

META_EVENT_VERSION = 1


def clip_event(event: Event, clip_id: str) -> dict[str, Any]:
    """One event as the clip's record lists it (only the fields the event has; none trimmed)."""
    out: dict[str, Any] = {
        "v": META_EVENT_VERSION, "id": event.id, "camera": event.camera, "type": event.type.value,
        "label": event.label, "score": round(float(event.score), 3), "ts": round(float(event.ts), 3),
        "box": [round(float(c), 4) for c in event.box], "zones": list(event.zones), "clip": clip_id,
        "time_ok": bool(event.time_ok),
    }
    if event.line is not None:
        out["line"] = {"name": event.line.name, "dir": event.line.direction}
    if event.duration is not None:
        out["duration"] = round(float(event.duration), 2)
    if event.color is not None:
        out["color"] = event.color
        out["color_score"] = round(float(event.color_score or 0.0), 3)
    if event.heading is not None:
        out["heading"] = event.heading
    if event.best is not None:
        out["best"] = event.best
    if event.plate is not None:
        out["plate"] = event.plate
        out["plate_score"] = round(float(event.plate_score or 0.0), 3)
    out["time"] = round(float(event.time), 3)
    return out
