"""Which clips retention removes: a pure decision, tested without files.

Oldest first by insertion order (never by wall clock, which NTP may move);
held clips are never chosen, even when that leaves the disk over budget. Age is
measured on the store's age clock (``ageclock.py``: monotonic, persisted), and
not at all while ``age_ok`` is false (clock unsynchronised or just stepped).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Kept:
    id: str
    seq: int  # insertion order
    bytes: int
    born: float  # the age clock when the clip was stored (ageclock.AgeClock), not wall time
    held: bool


@dataclass(frozen=True)
class Budget:
    max_bytes: int  # 0: no byte limit
    max_age_s: float  # 0: no age limit
    min_free_bytes: int


def choose_expired(clips: list[Kept], free_bytes: int, now: float, budget: Budget, age_ok: bool = True) -> list[str]:
    """Ids to delete so total <= max_bytes, free >= min_free_bytes and (if age_ok) nothing is older than max_age.

    ``now`` is the age clock's reading, comparable to ``Kept.born``.
    """
    total = sum(c.bytes for c in clips)
    free = free_bytes
    out = []
    for c in sorted(clips, key=lambda c: c.seq):
        if c.held:
            continue
        too_old = age_ok and budget.max_age_s > 0 and now - c.born > budget.max_age_s
        over = (budget.max_bytes > 0 and total > budget.max_bytes) or free < budget.min_free_bytes
        if too_old or over:
            out.append(c.id)
            total -= c.bytes
            free += c.bytes
    return out
