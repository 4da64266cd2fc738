"""What central prints is safe for a terminal, and its times follow one rule.

Every string central prints came from a node (labels, zones, camera and node names, versions), so
a hostile or broken node could put terminal escapes in them (``ESC ]`` retitles the window, ``ESC [2J``
clears it, U+202E reverses the line). ``printable()`` shows such characters as escapes instead.

Times: stored as UTC (UNIX seconds); shown in the central machine's local time with the zone named,
and UTC beside it. A naive time given on the command line means local time of the central machine.
"""

from __future__ import annotations

import os
import re
from datetime import datetime, timezone

# C0 and C1 controls, DEL, and the invisible characters that reorder or hide text (bidi, line separators).
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff]")
_JSON_UNSAFE = re.compile("[\x7f-\x9f\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff]")  # json.dumps escapes C0


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group(0))
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def printable(value: object) -> str:
    """``value`` as text with every control or invisible formatting character shown as an escape."""
    text = value if isinstance(value, str) else str(value)
    return _UNSAFE.sub(_escape, text)


def json_line(obj: object) -> str:
    """One compact JSON line whose strings cannot drive a terminal (non-ASCII letters stay readable)."""
    import json

    text = json.dumps(obj, separators=(",", ":"), ensure_ascii=False)
    return _JSON_UNSAFE.sub(lambda m: f"\\u{ord(m.group(0)):04x}", text)


def zone_name() -> str:
    """The central machine's time zone, named: ``TZ``, else the /etc/localtime link, else its abbreviation."""
    tz = os.environ.get("TZ", "").lstrip(":")
    if tz and "/" in tz and not tz.startswith("/"):
        return tz
    try:
        target = os.readlink("/etc/localtime")
        if "zoneinfo/" in target:
            return target.split("zoneinfo/", 1)[1]
    except OSError:
        pass
    return tz or (datetime.now().astimezone().tzname() or "local")


def _dt(ts: float | None) -> datetime | None:
    if ts is None:
        return None
    try:
        return datetime.fromtimestamp(float(ts), timezone.utc)
    except (OverflowError, OSError, ValueError):  # an old row with an impossible time: shown as its number
        return None


def utc_iso(ts: float | None) -> str | None:
    """``2026-01-01T00:00:00Z``; None for no time; the raw number for one outside the calendar."""
    dt = _dt(ts)
    if dt is None:
        return None if ts is None else repr(ts)
    return dt.isoformat(timespec="seconds").replace("+00:00", "Z")


def local_text(ts: float | None) -> str:
    """``2026-01-01 01:00:00 CET`` in the central machine's zone (abbreviation of that instant)."""
    dt = _dt(ts)
    if dt is None:
        return "-" if ts is None else repr(ts)
    local = dt.astimezone()
    return f"{local:%Y-%m-%d %H:%M:%S} {local.tzname()}"
