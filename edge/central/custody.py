"""The custody log: every sign-in, search, view, fetch, export and deletion, hash-chained in SQLite (WAL).

Each entry's ``hash`` is sha256 over the canonical JSON of its fields and the previous entry's hash, so an
edited, removed or inserted entry breaks the chain from there on (``verify`` names the first bad seq).
Appends run in ``BEGIN IMMEDIATE`` so the web server and command-line fetches can write at once.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

ACTIONS = ("sign-in", "sign-in-failed", "sign-out", "search", "view", "fetch", "fetch-failed", "fetch-request",
           "case", "export", "delete", "user", "acknowledge")


@dataclass(frozen=True)
class Entry:
    seq: int
    ts: float
    who: str
    action: str
    subject: str
    address: str
    detail: str
    prev_hash: str | None
    hash: str

    def body(self) -> dict[str, Any]:
        d = asdict(self)
        d.pop("hash")
        return d


def entry_hash(body: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
                          .encode()).hexdigest()


def verify_entries(entries: list[Entry], first_prev: str | None = None) -> list[str]:
    """Problems in a run of consecutive entries ([] = intact); used on the log and on a case export's copy."""
    out = []
    prev = first_prev
    expected_seq = entries[0].seq if entries else 1
    for e in entries:
        if e.seq != expected_seq:
            out.append(f"custody: entry seq {expected_seq} is missing (next is {e.seq})")
        if entry_hash(e.body()) != e.hash:
            out.append(f"custody: entry seq {e.seq} was altered (its hash does not match)")
        if e.prev_hash != prev:
            out.append(f"custody: entry seq {e.seq} does not link to the entry before it")
        prev, expected_seq = e.hash, e.seq + 1
    return out


class CustodyLog:
    """Append-only, hash-chained; one SQLite file (``custody.db`` under ``[evidence] path``)."""

    def __init__(self, path: Path) -> None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(str(path), timeout=30, isolation_level=None, check_same_thread=False)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=FULL")
        self.db.execute("""CREATE TABLE IF NOT EXISTS custody (
            seq INTEGER PRIMARY KEY, ts REAL NOT NULL, who TEXT NOT NULL, action TEXT NOT NULL,
            subject TEXT NOT NULL, address TEXT NOT NULL, detail TEXT NOT NULL, prev_hash TEXT, hash TEXT NOT NULL)""")

    def close(self) -> None:
        self.db.close()

    def append(self, who: str, action: str, subject: str = "", address: str = "", detail: str = "") -> Entry:
        if action not in ACTIONS:
            raise ValueError(f"unknown custody action {action!r}")
        self.db.execute("BEGIN IMMEDIATE")
        try:
            row = self.db.execute("SELECT seq, hash FROM custody ORDER BY seq DESC LIMIT 1").fetchone()
            seq, prev = (row[0] + 1, row[1]) if row else (1, None)
            body: dict[str, Any] = {"seq": seq, "ts": round(time.time(), 6), "who": who[:200], "action": action,
                    "subject": subject[:500], "address": address[:100], "detail": detail[:2000], "prev_hash": prev}
            entry = Entry(**body, hash=entry_hash(body))
            self.db.execute("INSERT INTO custody VALUES (?,?,?,?,?,?,?,?,?)",
                            (entry.seq, entry.ts, entry.who, entry.action, entry.subject, entry.address,
                             entry.detail, entry.prev_hash, entry.hash))
            self.db.execute("COMMIT")
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        return entry

    def entries(self, subject: str | None = None) -> list[Entry]:
        sql = "SELECT seq, ts, who, action, subject, address, detail, prev_hash, hash FROM custody"
        args: tuple[Any, ...] = ()
        if subject is not None:
            sql += " WHERE subject = ?"
            args = (subject,)
        return [Entry(*r) for r in self.db.execute(sql + " ORDER BY seq", args)]

    def verify(self) -> list[str]:
        return verify_entries(self.entries())
