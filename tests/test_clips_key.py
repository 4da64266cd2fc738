"""A corrupt node key ends start-up with one line; `edgecam key new --force` re-keys as a signed chain break."""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from support.assets import video_path  # noqa: E402
from support.broker import free_port  # noqa: E402

from edge import cli  # noqa: E402
from edge.clips import evidence  # noqa: E402
from edge.clips.evidence import KEY_FILE, KeyFileError, NodeKey  # noqa: E402
from edge.clips.store import ClipStore  # noqa: E402
from edge.commands.clips import verify as verify_command  # noqa: E402
from edge.storagelock import StorageLock  # noqa: E402
from edge.types import Finished  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


def _config(tmp_path: Path) -> Path:
    cfg = tmp_path / "edgecam.toml"
    cfg.write_text(f'[node]\nid = "key-node"\n[mqtt]\nhost = "127.0.0.1"\nport = {free_port()}\n'
                   f'[storage]\npath = "{tmp_path / "state"}"\n[api]\nenabled = false\n')
    return cfg


def _clip(store: ClipStore, cid: str) -> dict:
    store.writer.begin(cid, "cam", 1000.0, True, None)
    shutil.copyfile(video_path("road"), store.index.final_path(cid))
    store.writer.add_finished(cid, Finished(1000.0, 1010.0, 10.0))
    return store.catalog.meta(cid)


def test_corrupt_key_ends_daemon_start_with_one_line(tmp_path: Path):
    cfg = _config(tmp_path)
    keys = tmp_path / "state" / "keys"
    NodeKey.load_or_create(keys)
    (keys / KEY_FILE).write_bytes(b"\x00" * 7)  # a torn write
    proc = subprocess.run([sys.executable, "-m", "edge", "run", "-c", str(cfg)], cwd=ROOT, capture_output=True,
                          text=True, timeout=120, env={**os.environ, "PYTHONPATH": str(ROOT)})
    out = (proc.stdout + proc.stderr).strip().splitlines()
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert len(out) == 1, out
    assert "is corrupt (7 bytes" in out[0] and "edgecam key new --force" in out[0] and "backup" in out[0]
    assert (keys / KEY_FILE).read_bytes() == b"\x00" * 7  # never replaced behind the user's back
    assert not (tmp_path / "state" / "outbox.db").exists()  # nothing else opened


def test_overwritten_32_byte_key_is_caught_by_its_public_half(tmp_path: Path):
    NodeKey.load_or_create(tmp_path)
    (tmp_path / KEY_FILE).write_bytes(os.urandom(32))
    try:
        NodeKey.load_or_create(tmp_path)
    except KeyFileError as err:
        assert "does not match node.ed25519.pub" in str(err)
    else:
        raise AssertionError("a replaced key must not load")


def test_key_show_on_corrupt_key_is_one_line(tmp_path: Path, capsys):
    cfg = _config(tmp_path)
    keys = tmp_path / "state" / "keys"
    keys.mkdir(parents=True)
    (keys / KEY_FILE).write_bytes(b"junk")
    assert cli.main(["key", "show", "-c", str(cfg)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "is corrupt (4 bytes" in err[0]


def test_rekey_is_a_signed_chain_break(tmp_path: Path, capsys):
    cfg = _config(tmp_path)
    state = tmp_path / "state"
    store = ClipStore(state, NodeKey.load_or_create(state / "keys"), node="key-node")
    for cid in ("c1", "c2"):
        last = _clip(store, cid)
    store.close()
    last_pub = store.catalog.public_key()
    (state / "keys" / KEY_FILE).write_bytes(b"\x01" * 5)
    capsys.readouterr()
    assert cli.main(["key", "new", "-c", str(cfg)]) == 1  # an existing file needs --force
    assert "--force" in capsys.readouterr().err
    lock = StorageLock(state).acquire()  # as a running daemon holds it
    assert cli.main(["key", "new", "--force", "-c", str(cfg)]) == 1
    assert f"pid {os.getpid()}" in capsys.readouterr().err
    lock.release()
    assert cli.main(["key", "new", "--force", "-c", str(cfg)]) == 0
    new_pub = capsys.readouterr().out.strip()
    kept = sorted(p.name for p in (state / "keys").iterdir() if ".replaced-" in p.name)
    assert len(kept) == 2 and (state / "keys" / kept[1]).read_bytes() == b"\x01" * 5  # old files kept
    store = ClipStore(state, NodeKey.load_or_create(state / "keys"), node="key-node")
    assert store.catalog.public_key() == new_pub
    meta = _clip(store, "c3")
    rec = meta["record"]
    assert rec["seq"] == 3 and rec["prev_hash"] == evidence.record_hash(last["record"])
    assert rec["break"]["prev_seq"] == 2 and rec["break"]["reason"].startswith("signing key changed")
    assert "break" not in _clip(store, "c4")["record"]
    clip, meta_file = tmp_path / "c3.mp4", tmp_path / "c3.meta.json"
    shutil.copyfile(store.catalog.file_path("c3"), clip)
    meta_file.write_text(__import__("json").dumps(meta))
    rc = verify_command(argparse.Namespace(file=str(clip), meta=str(meta_file), pubkey=new_pub))
    lines = capsys.readouterr().out.strip().splitlines()
    assert rc == 0 and lines[2].startswith("chain: ok: BREAK recorded by the node before seq 3: signing key")
    store.close()
    # the index lost after the re-key: clips of the replaced key still verify (its public half was kept)
    for name in ("clips.db", "clips.db-wal", "clips.db-shm"):
        (state / name).unlink(missing_ok=True)
    store = ClipStore(state, NodeKey.load_or_create(state / "keys"), node="key-node")
    counts = store.recover()
    assert counts["rebuilt"] == 4 and counts["quarantined"] == 0
    assert store.catalog.meta("c1")["pubkey"] == last_pub and store.catalog.meta("c4")["pubkey"] == new_pub
    store.close()
