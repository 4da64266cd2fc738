"""One daemon per storage directory (flock): the second `edgecam run` exits with one line naming the first."""

from __future__ import annotations

import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from support.assets import model_path, video_path  # noqa: E402
from support.broker import free_port  # noqa: E402

from edge.clips.evidence import NodeKey  # noqa: E402
from edge.clips.store import ClipStore  # noqa: E402
from edge.storagelock import StorageBusy, StorageLock  # noqa: E402
from edge.types import Finished  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


def _edgecam(*args: str) -> list[str]:
    return [sys.executable, "-m", "edge", *args]


def _config(tmp_path: Path) -> Path:
    cfg = tmp_path / "edgecam.toml"
    cfg.write_text(f"""
[node]
id = "lock-node"
[mqtt]
host = "127.0.0.1"
port = {free_port()}
drain_timeout = 1
reconnect_max = 1
[storage]
path = "{tmp_path / 'state'}"
[api]
enabled = false
""")
    return cfg


def test_lock_is_exclusive_and_names_the_holder(tmp_path: Path):
    first = StorageLock(tmp_path).acquire()
    with pytest.raises(StorageBusy) as info:
        StorageLock(tmp_path).acquire()
    assert info.value.pid == os.getpid() and f"pid {os.getpid()}" in str(info.value)
    first.release()
    StorageLock(tmp_path).acquire().release()  # released: free again


def test_second_daemon_exits_with_one_line_while_one_shot_commands_work(tmp_path: Path):
    model_path()
    state = tmp_path / "state"
    store = ClipStore(state, NodeKey.load_or_create(state / "keys"), node="lock-node")
    now = time.time()
    store.writer.begin("c1", "cam", now, True, None)
    shutil.copyfile(video_path("road"), store.index.final_path("c1"))
    store.writer.add_finished("c1", Finished(now, now + 10, 10.0, labels=["car"], events=[{"id": "o1"}]))
    store.close()
    cfg = _config(tmp_path)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    daemon = subprocess.Popen(_edgecam("run", "-c", str(cfg)), cwd=ROOT, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True, env=env)
    try:
        lines = []
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            line = daemon.stdout.readline()
            assert line, "first daemon ended early:\n" + "".join(lines)
            lines.append(line)
            if " running with " in line:
                break
        assert (state / "edgecam.lock").read_text().strip() == str(daemon.pid)
        began = time.monotonic()
        second = subprocess.run(_edgecam("run", "-c", str(cfg)), cwd=ROOT, capture_output=True, text=True,
                                env=env, timeout=120)
        out = (second.stdout + second.stderr).strip().splitlines()
        assert second.returncode == 1
        assert len(out) == 1 and f"pid {daemon.pid}" in out[0] and "in use" in out[0], out
        assert time.monotonic() - began < 30  # it stops before loading the model or opening any database
        # one-shot node commands still work beside the running daemon (they go through SQLite)
        held = subprocess.run(_edgecam("clips", "hold", "-c", str(cfg), "c1"), cwd=ROOT, capture_output=True,
                              text=True, env=env, timeout=60)
        assert held.returncode == 0 and held.stdout.strip() == "held c1", held.stderr
        with sqlite3.connect(state / "clips.db") as db:
            assert db.execute("SELECT held FROM clips WHERE id='c1'").fetchone()[0] == 1
        shown = subprocess.run(_edgecam("key", "show", "-c", str(cfg)), cwd=ROOT, capture_output=True,
                               text=True, env=env, timeout=60)
        assert shown.returncode == 0
        assert shown.stdout.strip() == NodeKey.load_or_create(state / "keys").public_text()
    finally:
        daemon.send_signal(signal.SIGTERM)
        rest, _ = daemon.communicate(timeout=60)
    assert daemon.returncode == 0, rest[-2000:]
    assert "Traceback" not in rest
    # the lock went with the process: a new daemon could start now
    StorageLock(state).acquire().release()
