"""The fleet view: per node, what ``edgecam central status`` prints (and ``--json`` emits).

A missing seq range is only an alarm once it has been known for ``alarm_after``
seconds: a node that was offline drains its outbox in seq order within moments
of reconnecting, and a hole that closes that way is delivery working as designed.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from .messages import stats_summary
from .printable import printable
from .store import Store


def node_state(status: str | None, last_seen: float | None, now: float, stale_after: float) -> str:
    """online/offline from the retained status (offline is the Last Will); stale when online but silent."""
    if status == "online" and last_seen is not None and now - last_seen > stale_after:
        return "stale"
    return status or "unknown"


def split_acked(first: int, last: int, acks: list[tuple[int, int]]) -> list[tuple[int, int, bool]]:
    """``first..last`` cut into pieces, each marked True when an operator acknowledged it."""
    pieces, at = [], first
    for a, b in sorted(acks):
        if b < at or a > last:
            continue
        if a > at:
            pieces.append((at, a - 1, False))
        pieces.append((max(a, at), min(b, last), True))
        at = min(b, last) + 1
        if at > last:
            break
    if at <= last:
        pieces.append((at, last, False))
    return pieces


def fleet_rows(store: Store, now: float, alarm_after: float, stale_after: float) -> list[dict[str, Any]]:
    rows = []
    for n in store.nodes():
        report = store.gaps(n["node"])
        acks = [(a.first, a.last) for a in store.gap_acks(n["node"])]
        missing = [{"first": a, "last": b, "since": round(g.since, 3), "acked": acked,
                    "alarm": not acked and now - g.since > alarm_after}
                   for g in report.gaps for a, b, acked in split_acked(g.first, g.last, acks)]
        rows.append({
            "node": n["node"],
            "state": node_state(n["status"], n["last_seen"], now, stale_after),
            "last_seen": n["last_seen"],
            "version": n["version"],
            "max_seq": report.max_seq,
            "contiguous_seq": report.contiguous,
            "missing": missing,
            "alarm": any(m["alarm"] for m in missing),
            **stats_summary(n["stats"]),
            "stats_ts": n["stats_ts"],
            "time_ok": n["time_ok"],
            "api_url": n["api_url"],
            "pubkey": n["pubkey"],
            "baseline_seq": n["baseline_seq"],
            "quarantined": int(n["quarantined"] or 0),
        })
    return rows


def _ago(ts: float | None, now: float) -> str:
    if ts is None:
        return "never"
    secs = max(0, int(now - ts))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if secs >= size:
            return f"{secs // size}{unit} ago"
    return f"{secs}s ago"


def _ranges(missing: list[dict[str, Any]]) -> str:
    if not missing:
        return "-"
    parts = []
    for m in missing[:5]:
        text = str(m["first"]) if m["first"] == m["last"] else f"{m['first']}-{m['last']}"
        parts.append(text + (" ALARM" if m["alarm"] else " acked" if m.get("acked") else ""))
    if len(missing) > 5:
        parts.append(f"+{len(missing) - 5} more")
    return ", ".join(parts)


def _disk(row: dict[str, Any]) -> str:
    if row["disk_free_pct"] is not None:
        return f"{row['disk_free_pct']}% free"
    if isinstance(row["disk_free"], (int, float)):
        return f"{row['disk_free'] / 1e9:.1f} GB free"
    return "-"


def _cameras(row: dict[str, Any]) -> str:
    """``4 ok``, or how many of them are and what is wrong with the others (``3/4 ok: yard blind``)."""
    cams: dict[str, list[str]] = row.get("cameras") or {}
    if not cams:
        return "-"
    wrong = [(name, problems) for name, problems in cams.items() if problems]
    if not wrong:
        return f"{len(cams)} ok"
    said = ", ".join(f"{name} {' + '.join(problems)}" for name, problems in wrong[:3])
    more = f", +{len(wrong) - 3} more" if len(wrong) > 3 else ""
    return f"{len(cams) - len(wrong)}/{len(cams)} ok: {said}{more}"


def format_fleet(rows: list[dict[str, Any]], now: float | None = None) -> str:
    now = datetime.now(timezone.utc).timestamp() if now is None else now
    table: list[tuple[str, ...]] = [("NODE", "STATE", "LAST SEEN", "CONTIG SEQ", "MAX SEQ", "MISSING", "OUTBOX",
                                     "DISK", "CLOCK", "CAMERAS")]
    for r in rows:
        clock = "-" if r["time_ok"] is None else ("ok" if r["time_ok"] else "UNSYNCED")
        table.append((r["node"], r["state"], _ago(r["last_seen"], now), str(r["contiguous_seq"]), str(r["max_seq"]),
                      _ranges(r["missing"]), "-" if r["outbox"] is None else str(r["outbox"]), _disk(r), clock,
                      _cameras(r)))
    table = [tuple(printable(c) for c in t) for t in table]  # node names and versions come from the nodes
    widths = [max(len(t[i]) for t in table) for i in range(len(table[0]))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(t, widths, strict=True)).rstrip() for t in table]
    alarms = sum(1 for r in rows if r["alarm"])
    if not rows:
        lines.append("(no nodes yet)")
    elif alarms:
        lines.append(f"{alarms} node(s) with seq ranges missing for longer than the alarm time (ALARM);"
                     " `edgecam central ack-gap` records an accepted loss")
    quarantined = [f"{printable(r['node'])} {r['quarantined']}" for r in rows if r.get("quarantined")]
    if quarantined:
        lines.append("quarantined messages (refused, kept in the quarantine table): " + ", ".join(quarantined))
    return "\n".join(lines)
