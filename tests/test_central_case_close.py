"""``edgecam central case close|reopen``: retention may delete a closed case's clips only once ``--older-than``
has passed since the close; an open case's never. Close and reopen are custody entries."""

from __future__ import annotations

import time
from pathlib import Path

from support.central import sqlite_url
from support.recorded import central_config

from edge.central.cases import CaseBook
from edge.central.custody import CustodyLog
from edge.central.evidence import EvidenceStore, sha256_file
from edge.central.retention import prune
from edge.cli import main

DAY = 86400.0


def _store_clip(root: Path, tmp: Path, clip: str) -> str:
    f = tmp / f"{clip}.mp4"
    f.write_bytes(clip.encode() * 4096)
    sha = sha256_file(f)
    EvidenceStore.at(root).add("gate-node", clip, f, {"record": {"clip": clip, "sha256": sha}}, "ed25519:K")
    return sha


def test_close_and_reopen_set_what_retention_may_delete(tmp_path: Path, capsys) -> None:
    cfg = central_config(tmp_path, sqlite_url(tmp_path))
    root = tmp_path / "evidence"
    shas = {clip: _store_clip(root, tmp_path, clip) for clip in ("c-open", "c-closed", "c-loose")}
    assert main(["central", "case", "new", "K-1", "-c", str(cfg)]) == 0
    assert main(["central", "case", "new", "K-2", "-c", str(cfg)]) == 0
    assert main(["central", "case", "add", "K-1", "-c", str(cfg), "--node", "gate-node", "--clip", "c-open"]) == 0
    assert main(["central", "case", "add", "K-2", "-c", str(cfg), "--node", "gate-node", "--clip", "c-closed"]) == 0
    assert main(["central", "case", "close", "K-2", "-c", str(cfg), "--reason", "judgment served"]) == 0
    assert main(["central", "case", "close", "K-2", "-c", str(cfg)]) == 1
    assert "case 'K-2' is closed already" in capsys.readouterr().err
    assert main(["central", "case", "reopen", "K-1", "-c", str(cfg)]) == 1
    assert "case 'K-1' is open already" in capsys.readouterr().err

    book, log = CaseBook(root / "cases.db"), CustodyLog(root / "custody.db")
    try:
        closed_at = book.require("K-2")
        assert closed_at.state == "closed"
        # every clip was stored "now"; 10 days on, a 30-day prune deletes nothing (the closed case's clip is
        # 10 days past its close), a 5-day prune deletes the loose one and the closed case's, never the open one's
        ev = EvidenceStore.at(root)
        deleted, kept = prune(ev, book, log, 30 * DAY, "tester", "test", dry_run=True, now=time.time() + 10 * DAY)
        assert deleted == [] and kept == 0
        deleted, kept = prune(ev, book, log, 5 * DAY, "tester", "test", now=time.time() + 10 * DAY)
        assert sorted(e.clip for e in deleted) == ["c-closed", "c-loose"] and kept == 1
        assert [e.clip for e in ev.entries()] == ["c-open"]
        # a clip stored long ago in a case closed just now: its age counts from the close
        sha = _store_clip(root, tmp_path, "c-late")
        book.new("K-3", "tester")
        book.add("K-3", "gate-node", "c-late", sha, "tester")
        book.close_case("K-3", now=time.time() + 100 * DAY)
        deleted, _ = prune(ev, book, log, 30 * DAY, "tester", "test", now=time.time() + 120 * DAY)
        assert deleted == [] and ev.get("gate-node", "c-late") is not None
        deleted, _ = prune(ev, book, log, 30 * DAY, "tester", "test", now=time.time() + 131 * DAY)
        assert [e.clip for e in deleted] == ["c-late"]
        # reopened, the case holds its clip again whatever its age
        assert main(["central", "case", "reopen", "K-2", "-c", str(cfg), "--reason", "appeal"]) == 0
        assert book.require("K-2").state == "open" and shas["c-closed"] in book.held_shas()
        assert set(book.closed_since()) == {sha}
        entries = [(e.action, e.detail) for e in log.entries("case:K-2")]
        assert entries == [("case", "opened"), ("case", "closed: judgment served"), ("case", "reopened: appeal")]
        assert log.verify() == []
    finally:
        book.close()
        log.close()


def test_a_cases_db_from_before_close_gains_the_column_and_keeps_its_cases(tmp_path: Path) -> None:
    import sqlite3

    db = sqlite3.connect(tmp_path / "cases.db")
    db.execute("""CREATE TABLE cases (name TEXT PRIMARY KEY, created_ts REAL NOT NULL, created_by TEXT NOT NULL,
                  notes TEXT NOT NULL, state TEXT NOT NULL DEFAULT 'open')""")
    db.execute("INSERT INTO cases VALUES ('K-OLD', 1.0, 'ines', 'from before', 'open')")
    db.commit()
    db.close()
    book = CaseBook(tmp_path / "cases.db")
    try:
        assert book.require("K-OLD").notes == "from before"
        assert book.close_case("K-OLD", now=50.0).state == "closed"
        book.new("K-NEW", "ines")
        assert [c.name for c in book.cases()] == ["K-NEW", "K-OLD"]
    finally:
        book.close()
