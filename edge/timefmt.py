"""One time rule for everything a person reads: UTC is stored; shown in local time with the zone named,
and UTC beside it wherever evidence is concerned (bundles, clip lists, the page).

Stored times stay UNIX seconds (UTC by definition). These helpers only format them, so the node's CLI,
its bundles and its docs say the same thing in the same words.
"""

from __future__ import annotations

import math
from datetime import datetime, timezone


def _dt(ts: float) -> datetime | None:
    if not isinstance(ts, (int, float)) or not math.isfinite(ts):
        return None
    try:
        return datetime.fromtimestamp(ts, timezone.utc)
    except (OverflowError, OSError, ValueError):
        return None


def utc_iso(ts: float) -> str:
    """``2026-12-02T01:54:09Z`` (ISO 8601, UTC, whole seconds); ``?`` for a time that cannot be a date."""
    dt = _dt(ts)
    return dt.strftime("%Y-%m-%dT%H:%M:%SZ") if dt else "?"


def local_text(ts: float) -> str:
    """``2026-12-02 02:54:09 CET (UTC+01:00)``: the node's local time with its zone named."""
    dt = _dt(ts)
    if dt is None:
        return "?"
    loc = dt.astimezone()
    off = loc.strftime("%z")
    off = f"{off[:3]}:{off[3:]}" if off else "+00:00"
    return f"{loc.strftime('%Y-%m-%d %H:%M:%S')} {loc.tzname() or ''} (UTC{off})".replace("  ", " ")


def evidence_time(ts: float) -> str:
    """Local time with its zone, and UTC beside it: ``2026-12-02 02:54:09 CET (UTC+01:00) = 2026-12-02T01:54:09Z``."""
    return f"{local_text(ts)} = {utc_iso(ts)}"


def zone_label() -> str:
    """The local zone as a column header names it: ``CET, UTC+01:00``."""
    loc = datetime.now(timezone.utc).astimezone()
    off = loc.strftime("%z")
    return f"{loc.tzname()}, UTC{off[:3]}:{off[3:]}" if off else "UTC"
