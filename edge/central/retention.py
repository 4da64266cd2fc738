"""``edgecam central evidence prune --older-than DAYS``: retention of central's evidence store.

A clip in an open case is never deleted, whatever its age; a clip in a closed case (and in no open one) only once
the age has passed since the case was closed; every deletion is a custody entry.
"""

from __future__ import annotations

import argparse
import socket
import time

from ..errors import UserError
from .cases import CaseBook
from .custody import CustodyLog
from .evidence import EvidenceStore, StoredClip


def prune(store: EvidenceStore, book: CaseBook, log: CustodyLog, older_than: float, who: str, where: str,
          dry_run: bool = False, now: float | None = None) -> tuple[list[StoredClip], int]:
    """Delete clips stored before ``now - older_than`` that no open case holds; (deleted, kept by a case)."""
    cutoff = (time.time() if now is None else now) - older_than
    held = book.held_shas()
    closed = book.closed_since()
    deleted, kept = [], 0
    for e in list(store.entries()):
        if max(e.stored_ts, closed.get(e.sha256, 0.0)) >= cutoff:
            continue
        if e.sha256 in held:
            kept += 1
            continue
        if not dry_run:
            store.remove(e.node, e.clip)
            log.append(who, "delete", f"{e.node}/{e.clip}", where,
                       f"retention: stored {time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime(e.stored_ts))},"
                       f" older than {older_than / 86400:g} days; sha256 {e.sha256}")
        deleted.append(e)
    return deleted, kept


def prune_command(args: argparse.Namespace) -> int:
    from .fetch import storage_errors

    return storage_errors(_prune)(args)


def _prune(args: argparse.Namespace) -> int:
    from .cli import _login_user
    from .config import load_central_config
    from .fetch import evidence_root

    if not args.older_than >= 0:
        raise UserError("--older-than: a number of days, 0 or more")
    root = evidence_root(load_central_config(args.config))
    book, log = CaseBook(root / "cases.db"), CustodyLog(root / "custody.db")
    try:
        deleted, kept = prune(EvidenceStore.at(root), book, log, args.older_than * 86400, _login_user(),
                              f"cli@{socket.gethostname()}", args.dry_run)
    finally:
        book.close()
        log.close()
    for e in deleted:
        print(f"{'would delete' if args.dry_run else 'deleted'} {e.node}/{e.clip} {e.sha256}")
    print(f"{len(deleted)} clip(s) {'would be ' if args.dry_run else ''}deleted; {kept} kept by open cases")
    return 0
