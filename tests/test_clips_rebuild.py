"""A lost, emptied or corrupt clip index loses nothing: rebuilt from the signed records beside the clips."""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from support.assets import video_path  # noqa: E402

from edge import cli  # noqa: E402
from edge.clips import evidence  # noqa: E402
from edge.clips.evidence import NodeKey, write_bundle  # noqa: E402
from edge.clips.store import ClipStore  # noqa: E402
from edge.commands.clips import verify as verify_command  # noqa: E402
from edge.types import Finished  # noqa: E402


def _store(root: Path, **kw) -> ClipStore:
    return ClipStore(root, NodeKey.load_or_create(root / "keys"), node="n1", **kw)


def _clip(store: ClipStore, cid: str, wall: float = 1000.0) -> None:
    store.writer.begin(cid, "cam", wall, True, None)
    shutil.copyfile(video_path("road"), store.index.final_path(cid))
    store.writer.add_finished(cid, Finished(wall, wall + 10, 10.0, start_mono=5.0, end_mono=15.0, labels=["car"],
                                     events=[{"id": cid + "-o", "label": "car"}]))


def _three(root: Path) -> tuple[dict[str, bytes], dict[str, dict]]:
    """c1 <- c2 (held) <- c3; returns the clip bytes and signed records as they were."""
    store = _store(root)
    for i, cid in enumerate(("c1", "c2", "c3")):
        _clip(store, cid, 1000.0 + i)
    assert store.catalog.hold("c2")
    data = {c: store.index.final_path(c).read_bytes() for c in ("c1", "c2", "c3")}
    records = {c: store.catalog.meta(c)["record"] for c in ("c1", "c2", "c3")}
    store.close()
    return data, records


def _drop_index(root: Path) -> None:
    for name in ("clips.db", "clips.db-wal", "clips.db-shm"):
        (root / name).unlink(missing_ok=True)


def test_removed_index_is_rebuilt_and_the_chain_continues(tmp_path: Path):
    root = tmp_path / "storage"
    data, records = _three(root)
    _drop_index(root)
    store = _store(root)
    counts = store.recover()
    assert counts["rebuilt"] == 3 and counts["quarantined"] == 0 and counts["removed"] == 0
    assert [c.id for c in store.catalog.list_clips()] == ["c3", "c2", "c1"]  # insertion order kept (chain order)
    assert store.catalog.get("c2").held and not store.catalog.get("c1").held  # the hold survived the lost index
    for cid, raw in data.items():
        assert store.catalog.file_path(cid).read_bytes() == raw
        meta = store.catalog.meta(cid)
        assert meta["record"] == records[cid] and meta["events"] == [{"id": cid + "-o", "label": "car"}]
    _clip(store, "c4", 1003.0)
    rec4 = store.catalog.meta("c4")["record"]
    assert rec4["seq"] == 4 and rec4["prev_hash"] == evidence.record_hash(records["c3"]) and "break" not in rec4
    store.close()


def test_emptied_index_without_head_records_a_signed_break(tmp_path: Path, capsys):
    root = tmp_path / "storage"
    _data, records = _three(root)
    store = _store(root)
    store.index.db.execute("DELETE FROM clips")  # the index emptied ...
    (store.dir / "chain-head.json").unlink()  # ... and the chain head gone too
    store.close()
    store = _store(root)
    assert store.recover()["rebuilt"] == 3
    _clip(store, "c4", 1003.0)
    rec4 = store.catalog.meta("c4")["record"]
    assert rec4["seq"] == 4  # never a second seq 1
    assert rec4["break"] == {"reason": "clip index was empty; chain head file missing", "prev_seq": 3,
                             "prev_hash": evidence.record_hash(records["c3"])}
    _clip(store, "c5", 1004.0)
    assert "break" not in store.catalog.meta("c5")["record"]  # recorded once, then the chain goes on
    bundle = tmp_path / "evidence.zip"
    cat = store.catalog
    write_bundle(bundle, [(cat.file_path(c), cat.meta(c)) for c in ("c3", "c4", "c5")], cat.public_key())
    rc = verify_command(argparse.Namespace(file=str(bundle), meta=None, pubkey=store.catalog.public_key()))
    lines = capsys.readouterr().out.strip().splitlines()
    assert rc == 0, lines
    assert "chain: ok: c4: BREAK recorded by the node before seq 4: clip index was empty" in "\n".join(lines)
    assert lines[-1] == "verified (1 chain break(s) recorded by the node, see above)"
    store.close()


def test_all_clips_expired_then_index_lost_never_reuses_a_seq(tmp_path: Path):
    root = tmp_path / "storage"
    store = _store(root, max_bytes=1)  # every unheld clip expires as soon as it is stored
    for cid in ("c1", "c2"):
        _clip(store, cid)
    assert store.catalog.list_clips() == [] and sorted(p.name for p in store.dir.iterdir()) == ["chain-head.json"]
    store.close()
    _drop_index(root)
    store = _store(root)
    store.recover()
    store.keeper.budget = type(store.keeper.budget)(0, 0, 0)
    _clip(store, "c3")
    rec = store.catalog.meta("c3")["record"]
    assert rec["seq"] == 3 and "break" not in rec  # the head file outlived the expired clips
    store.close()


def test_unexplained_and_forged_files_are_quarantined_not_deleted(tmp_path: Path):
    root = tmp_path / "storage"
    data, _ = _three(root)
    _drop_index(root)
    clips = root / "clips"
    meta = json.loads((clips / "c1.meta.json").read_text())
    meta["record"]["start_ts"] += 3600  # an edited record: its signature no longer verifies
    (clips / "c1.meta.json").write_text(json.dumps(meta))
    shutil.copyfile(video_path("street"), clips / "stray.mp4")  # a file no record explains
    store = _store(root)
    counts = store.recover()
    assert counts["rebuilt"] == 2 and counts["quarantined"] == 3  # c1.mp4 + c1.meta.json + stray.mp4
    assert [c.id for c in store.catalog.list_clips()] == ["c3", "c2"]
    q = root / "quarantine"
    assert (q / "c1.mp4").read_bytes() == data["c1"]
    assert (q / "stray.mp4").read_bytes() == video_path("street").read_bytes()
    assert store.stats().quarantined == 3
    _clip(store, "c4")
    assert store.catalog.meta("c4")["record"]["seq"] == 4  # c1's seq (1) is below the head anyway: no reuse
    store.close()


def test_corrupt_index_is_set_aside_with_one_line_and_rebuilt(tmp_path: Path):
    root = tmp_path / "storage"
    _three(root)
    _drop_index(root)
    (root / "clips.db").write_bytes(b"this is not sqlite" * 100)
    cfg = tmp_path / "edgecam.toml"
    cfg.write_text(f'[storage]\npath = "{root}"\n')
    assert cli.main(["clips", "hold", "-c", str(cfg), "c1"]) == 1  # a one-shot command leaves it alone
    assert (root / "clips.db").read_bytes() == b"this is not sqlite" * 100
    seen: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = seen.append  # type: ignore[method-assign]
    logging.getLogger("edge.clips").addHandler(handler)
    try:
        store = _store(root)
        counts = store.recover()
    finally:
        logging.getLogger("edge.clips").removeHandler(handler)
    errors = [r.getMessage() for r in seen if r.levelno >= logging.ERROR]
    assert len(errors) == 1 and "is not a usable database (file is not a database)" in errors[0]
    aside = [p for p in root.iterdir() if p.name.startswith("clips.db.corrupt-")]
    assert len(aside) == 1 and aside[0].read_bytes() == b"this is not sqlite" * 100
    assert counts["rebuilt"] == 3 and store.catalog.get("c2").held
    _clip(store, "c4")
    assert store.catalog.meta("c4")["record"]["seq"] == 4 and "break" not in store.catalog.meta("c4")["record"]
    store.close()


def test_index_from_before_sidecars_is_backfilled(tmp_path: Path):
    root = tmp_path / "storage"
    _three(root)
    clips = root / "clips"
    for p in list(clips.glob("*.meta.json")) + list(clips.glob("*.held")) + [clips / "chain-head.json"]:
        p.unlink()  # what an older node left: the index only
    store = _store(root)
    counts = store.recover()
    assert counts == {"finalised": 0, "removed": 0, "lost": 0, "rebuilt": 0, "quarantined": 0}
    assert sorted(p.name for p in clips.glob("*.meta.json")) == ["c1.meta.json", "c2.meta.json", "c3.meta.json"]
    assert (clips / "c2.held").exists() and (clips / "chain-head.json").exists()
    store.close()
    _drop_index(root)
    store = _store(root)
    assert store.recover()["rebuilt"] == 3
    store.close()


@pytest.mark.parametrize("held", [True, False])
def test_hold_marker_follows_hold_and_release(tmp_path: Path, held: bool):
    store = _store(tmp_path)
    _clip(store, "c1")
    store.catalog.hold("c1")
    if not held:
        store.catalog.release("c1")
    assert store.index.held_path("c1").exists() is held
    store.close()


def test_daemon_starts_on_a_corrupt_index_and_keeps_every_clip(tmp_path: Path):
    """A real `edgecam run`: one line about the corrupt clips.db, no traceback, every clip (and hold) kept."""
    import os
    import signal
    import sqlite3
    import subprocess
    import time

    from support.assets import model_path
    from support.broker import free_port

    model_path()
    state = tmp_path / "state"
    data, _ = _three(state)
    _drop_index(state)
    (state / "clips.db").write_bytes(b"\x00garbage" * 512)
    cfg = tmp_path / "edgecam.toml"
    cfg.write_text(f'[node]\nid = "n1"\n[mqtt]\nhost = "127.0.0.1"\nport = {free_port()}\ndrain_timeout = 1\n'
                   f'[storage]\npath = "{state}"\n[api]\nenabled = false\n')
    root = Path(__file__).resolve().parent.parent
    proc = subprocess.Popen([sys.executable, "-m", "edge", "run", "-c", str(cfg)], cwd=root, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            env={**os.environ, "PYTHONPATH": str(root)})
    lines = []
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            assert line, "daemon ended early:\n" + "".join(lines)
            lines.append(line)
            if " running with " in line:
                break
    finally:
        proc.send_signal(signal.SIGTERM)
        rest, _ = proc.communicate(timeout=60)
    out = "".join(lines) + rest
    assert proc.returncode == 0 and "Traceback" not in out, out[-3000:]
    corrupt = [ln for ln in out.splitlines() if "clips.db" in ln and "not a usable database" in ln]
    assert len(corrupt) == 1 and "ERROR" in corrupt[0]
    assert "chain continues after seq 3" in out
    with sqlite3.connect(state / "clips.db") as db:
        rows = db.execute("SELECT id, held FROM clips WHERE status='ok' ORDER BY seq").fetchall()
    assert rows == [("c1", 0), ("c2", 1), ("c3", 0)]
    for cid, raw in data.items():
        assert (state / "clips" / f"{cid}.mp4").read_bytes() == raw
