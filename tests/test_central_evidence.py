"""Central's evidence store (content-addressed, never overwritten) and the hash-chained custody log."""

from __future__ import annotations

import hashlib
import os
import sqlite3
from pathlib import Path

import pytest

from edge.central.custody import CustodyLog
from edge.central.evidence import EvidenceError, EvidenceStore


def _clip(tmp: Path, name: str, data: bytes) -> tuple[Path, dict]:
    p = tmp / name
    p.write_bytes(data)
    return p, {"record": {"clip": "c1", "sha256": hashlib.sha256(data).hexdigest()}, "signature": "x"}


def test_store_is_content_addressed_and_never_overwritten(tmp_path: Path) -> None:
    store = EvidenceStore.at(tmp_path / "ev")
    data = os.urandom(300_000)
    f, meta = _clip(tmp_path, "a.mp4", data)
    got = store.add("n1", "c1", f, meta, "ed25519:K")
    sha = hashlib.sha256(data).hexdigest()
    assert got.sha256 == sha and got.path == tmp_path / "ev" / "sha256" / sha[:2] / f"{sha}.mp4"
    assert got.path.read_bytes() == data and (got.path.stat().st_mode & 0o222) == 0
    assert store.meta(sha) == meta and store.intact(sha)
    again = store.add("n1", "c1", f, meta, "ed25519:K")  # the same bytes again: same entry, nothing rewritten
    assert again == got and [e.clip for e in store.entries()] == ["c1"]
    other, other_meta = _clip(tmp_path, "b.mp4", data[:-1] + b"\0")
    with pytest.raises(EvidenceError, match="never replaced"):
        store.add("n1", "c1", other, other_meta, "ed25519:K")
    assert got.path.read_bytes() == data
    with pytest.raises(EvidenceError, match="not the signed record"):
        store.add("n1", "c2", other, meta, "ed25519:K")
    assert store.get("n1", "c2") is None
    os.chmod(got.path, 0o644)
    with got.path.open("r+b") as fh:  # one byte changed on disk is seen
        fh.seek(1000)
        fh.write(bytes([data[1000] ^ 1]))
    assert not store.intact(sha)


def test_custody_chain_detects_edit_and_removal(tmp_path: Path) -> None:
    log = CustodyLog(tmp_path / "custody.db")
    for i in range(4):
        log.append("alice", "view", f"n1/c{i}", "192.0.2.7", "")
    entries = log.entries()
    assert [e.seq for e in entries] == [1, 2, 3, 4] and entries[1].prev_hash == entries[0].hash
    assert log.verify() == [] and [e.seq for e in log.entries("n1/c2")] == [3]
    log.close()
    db = sqlite3.connect(tmp_path / "custody.db")
    db.execute("UPDATE custody SET who = 'mallory' WHERE seq = 2")
    db.commit()
    log = CustodyLog(tmp_path / "custody.db")
    assert log.verify() == ["custody: entry seq 2 was altered (its hash does not match)"]
    db.execute("UPDATE custody SET who = 'alice' WHERE seq = 2")
    db.execute("DELETE FROM custody WHERE seq = 3")
    db.commit()
    assert log.verify() == ["custody: entry seq 3 is missing (next is 4)",
                            "custody: entry seq 4 does not link to the entry before it"]
    with pytest.raises(ValueError):
        log.append("alice", "nonsense")
