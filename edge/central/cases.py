"""Cases on central: a case number collecting stored clips, with notes; kept in ``cases.db`` (SQLite, WAL).

A case is ``open`` until closed; while open, nothing it holds may be deleted from the evidence store
(``EvidenceStore`` retention asks ``held_shas``). Commands: ``edgecam central case new|add|export|close|reopen``.
"""

from __future__ import annotations

import argparse
import re
import socket
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

from ..errors import UserError

CASE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


@dataclass(frozen=True)
class Case:
    name: str
    created_ts: float
    created_by: str
    notes: str
    state: str  # "open" | "closed"


@dataclass(frozen=True)
class CaseItem:
    node: str
    clip: str
    sha256: str
    added_ts: float
    added_by: str
    note: str


class CaseBook:
    def __init__(self, path: Path) -> None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(str(path), timeout=30, isolation_level=None, check_same_thread=False)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=FULL")
        self.db.execute("""CREATE TABLE IF NOT EXISTS cases (name TEXT PRIMARY KEY, created_ts REAL NOT NULL,
            created_by TEXT NOT NULL, notes TEXT NOT NULL, state TEXT NOT NULL DEFAULT 'open')""")
        self.db.execute("""CREATE TABLE IF NOT EXISTS case_items (name TEXT NOT NULL REFERENCES cases(name),
            node TEXT NOT NULL, clip TEXT NOT NULL, sha256 TEXT NOT NULL, added_ts REAL NOT NULL,
            added_by TEXT NOT NULL, note TEXT NOT NULL, PRIMARY KEY (name, node, clip))""")
        if "closed_ts" not in {r[1] for r in self.db.execute("PRAGMA table_info(cases)")}:
            # cases.db made before close/reopen: the column is added in place (NULL = open or never closed)
            self.db.execute("ALTER TABLE cases ADD COLUMN closed_ts REAL")

    def close(self) -> None:
        self.db.close()

    def new(self, name: str, who: str, notes: str = "") -> Case:
        if not CASE_NAME.match(name):
            raise UserError(f"case {name!r}: a case number is 1..64 letters, digits, _ . - (starting with one"
                            " letter or digit)")
        try:
            self.db.execute("INSERT INTO cases (name, created_ts, created_by, notes, state) VALUES (?,?,?,?, 'open')",
                            (name, time.time(), who, notes))
        except sqlite3.IntegrityError:
            raise UserError(f"case {name!r} exists already") from None
        case = self.get(name)
        assert case is not None
        return case

    def get(self, name: str) -> Case | None:
        row = self.db.execute("SELECT name, created_ts, created_by, notes, state FROM cases WHERE name = ?",
                              (name,)).fetchone()
        return Case(*row) if row else None

    def require(self, name: str) -> Case:
        case = self.get(name)
        if case is None:
            raise UserError(f"no case {name!r} (make it with `edgecam central case new {name}`)")
        return case

    def cases(self) -> list[Case]:
        return [Case(*r) for r in self.db.execute(
            "SELECT name, created_ts, created_by, notes, state FROM cases ORDER BY created_ts DESC")]

    def add(self, name: str, node: str, clip: str, sha256: str, who: str, note: str = "") -> bool:
        """True if added, False if the case already held it."""
        case = self.require(name)
        if case.state != "open":
            raise UserError(f"case {name!r} is closed")
        cur = self.db.execute("INSERT OR IGNORE INTO case_items VALUES (?,?,?,?,?,?,?)",
                              (name, node, clip, sha256, time.time(), who, note))
        return cur.rowcount == 1

    def items(self, name: str) -> list[CaseItem]:
        return [CaseItem(*r) for r in self.db.execute(
            "SELECT node, clip, sha256, added_ts, added_by, note FROM case_items WHERE name = ?"
            " ORDER BY added_ts, node, clip", (name,))]

    def set_state(self, name: str, state: str) -> None:
        self.require(name)
        self.db.execute("UPDATE cases SET state = ? WHERE name = ?", (state, name))

    def close_case(self, name: str, now: float | None = None) -> Case:
        """Close an open case: its clips become deletable by retention, counted from this moment."""
        if self.require(name).state == "closed":
            raise UserError(f"case {name!r} is closed already")
        self.db.execute("UPDATE cases SET state = 'closed', closed_ts = ? WHERE name = ?",
                        (time.time() if now is None else now, name))
        return self.require(name)

    def reopen_case(self, name: str) -> Case:
        """Reopen a closed case: retention holds its clips again, whatever their age."""
        if self.require(name).state == "open":
            raise UserError(f"case {name!r} is open already")
        self.db.execute("UPDATE cases SET state = 'open', closed_ts = NULL WHERE name = ?", (name,))
        return self.require(name)

    def closed_since(self) -> dict[str, float]:
        """sha256 -> when the last closed case holding it was closed, for clips in no open case.

        Retention counts such a clip's age from that close, not from when it was stored: a clip stored two
        years ago in a case closed yesterday is one day old for ``evidence prune``.
        """
        held = self.held_shas()
        return {sha: ts for sha, ts in self.db.execute(
            "SELECT i.sha256, MAX(COALESCE(c.closed_ts, 0)) FROM case_items i JOIN cases c ON c.name = i.name"
            " WHERE c.state = 'closed' GROUP BY i.sha256") if sha not in held}

    def held_shas(self) -> set[str]:
        """Every sha256 in an open case: retention must keep these."""
        return {r[0] for r in self.db.execute(
            "SELECT i.sha256 FROM case_items i JOIN cases c ON c.name = i.name WHERE c.state = 'open'")}


def _context(args: argparse.Namespace):
    from .cli import _login_user
    from .config import load_central_config
    from .custody import CustodyLog
    from .fetch import evidence_root

    cfg = load_central_config(args.config)
    root = evidence_root(cfg)
    return cfg, root, CaseBook(root / "cases.db"), CustodyLog(root / "custody.db"), _login_user()


def _disk(fn):
    from .fetch import storage_errors

    return storage_errors(fn)


def _where() -> str:
    return f"cli@{socket.gethostname()}"


@_disk
def case_new_command(args: argparse.Namespace) -> int:
    _cfg, _root, book, log, who = _context(args)
    try:
        book.new(args.name, who, args.notes or "")
        log.append(who, "case", f"case:{args.name}", _where(), "opened" + (f": {args.notes}" if args.notes else ""))
    finally:
        book.close()
        log.close()
    print(f"case {args.name} opened")
    return 0


def _set_state_command(args: argparse.Namespace, closing: bool) -> int:
    _cfg, _root, book, log, who = _context(args)
    try:
        if closing:
            book.close_case(args.name)
        else:
            book.reopen_case(args.name)
        what = "closed" if closing else "reopened"
        log.append(who, "case", f"case:{args.name}", _where(), what + (f": {args.reason}" if args.reason else ""))
    finally:
        book.close()
        log.close()
    print(f"case {args.name} {what}")
    return 0


@_disk
def case_close_command(args: argparse.Namespace) -> int:
    """Close a case: retention may delete its clips once they are older than prune's age since the close."""
    return _set_state_command(args, closing=True)


@_disk
def case_reopen_command(args: argparse.Namespace) -> int:
    """Reopen a closed case: its clips are held again (never deleted while open)."""
    return _set_state_command(args, closing=False)


@_disk
def case_add_command(args: argparse.Namespace) -> int:
    """Add a clip to a case; a clip not yet in the evidence store is fetched (and verified) first."""
    from .evidence import EvidenceStore
    from .fetch import fetch_pull, registered_node

    cfg, root, book, log, who = _context(args)
    try:
        book.require(args.name)
        stored = EvidenceStore.at(root).get(args.node, args.clip)
        if stored is None:
            stored, _new = fetch_pull(cfg, registered_node(cfg, args.node), args.clip, 0.0, who, _where())
        added = book.add(args.name, args.node, args.clip, stored.sha256, who, args.note or "")
        if added:
            log.append(who, "case", f"{args.node}/{args.clip}", _where(),
                       f"added to case {args.name} (sha256 {stored.sha256})")
    finally:
        book.close()
        log.close()
    print(f"{stored.sha256}  {args.node}/{args.clip} {'added to' if added else 'already in'} case {args.name}")
    return 0


@_disk
def case_export_command(args: argparse.Namespace) -> int:
    from .casefile import write_case

    if not Path(args.output).parent.is_dir():
        raise UserError(f"-o {args.output}: no such directory")
    _cfg, root, book, log, who = _context(args)
    try:
        out = write_case(Path(args.output), root, book, log, args.name, who, _where())
    finally:
        book.close()
        log.close()
    print(out)
    return 0
