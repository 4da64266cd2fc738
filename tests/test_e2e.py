"""The whole node as its three users see it, under faults (``make e2e``).

A real mosquitto and a real RTSP camera; the node is provisioned into a temp
root with the installer's script and run as a subprocess. The central consumer
(`edgecam central run`) collects events; a technician pulls and verifies clips
with the CLI; an installer runs `edgecam check`. Faults: the broker is killed
for 20 s, the camera server restarts, the daemon is killed with SIGKILL and
restarted. Then: every seq arrived with no gap, every clip named by an `end`
event was pulled and verifies, no 5xx, no traceback.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from support.assets import model_path, video_path
from support.broker import Broker, free_port, wait_port
from support.node import provision_node
from support.rtsp import RtspServer, require_rtsp

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

ROOT = Path(__file__).resolve().parent.parent
EDGECAM = [sys.executable, "-m", "edge"]


def edgecam(*args: str, timeout: float = 120, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([*EDGECAM, *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})})


class Proc:
    """A long-running edgecam subprocess whose output is kept in a log file."""

    def __init__(self, args: list[str], log: Path) -> None:
        self.args, self.log = args, log
        self.proc: subprocess.Popen | None = None

    def start(self) -> Proc:
        out = open(self.log, "a")
        self.proc = subprocess.Popen([*EDGECAM, *self.args], cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)
        return self

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(30)

    def stop(self, timeout: float = 90) -> int:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout)

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def mark(self) -> int:
        """A place in the log: ``since(mark)`` is what was logged after it (restarts append to the same log)."""
        return self.log.stat().st_size if self.log.exists() else 0

    def since(self, mark: int) -> str:
        return self.log.read_bytes()[mark:].decode(errors="replace")


def central_rows(db: Path) -> list[tuple]:
    """Central's rows for the node; none while the file or its schema is still being created."""
    if not db.exists():
        return []
    with sqlite3.connect(db) as conn:
        try:
            return conn.execute("SELECT seq, id, type, clip FROM events WHERE node='e2e' ORDER BY seq").fetchall()
        except sqlite3.OperationalError as err:
            if "no such table" in str(err):
                return []
            raise


def wait_until(check, timeout: float, what: str, step: float = 1.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(step)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def test_node_end_to_end_under_faults(tmp_path: Path) -> None:
    model_path()
    require_rtsp()
    broker = Broker(tmp_path / "broker").start()
    camera = RtspServer(video_path("highway")).start()
    api_port = free_port()
    config, token = provision_node(tmp_path, "e2e", camera.url, broker.port, api_port, detect_fps=4)
    central_db = tmp_path / "central.db"
    central_cfg = tmp_path / "central.toml"
    central_cfg.write_text(f'[mqtt]\nhost = "127.0.0.1"\nport = {broker.port}\nclient_id = "e2e-central"\n'
                           f'[database]\nurl = "sqlite:///{central_db}"\n'
                           '\n[trust]\naccept_unsigned_until = "2100-01-01T00:00Z"\n')  # the node is not registered
    central = Proc(["central", "run", "-c", str(central_cfg)], tmp_path / "central.log").start()
    node = Proc(["run", "-c", str(config)], tmp_path / "node.log")
    node_url = f"http://127.0.0.1:{api_port}"
    try:
        # central's first session must exist at the broker before the node's first event: a QoS 1 message
        # published before that SUBSCRIBE is queued for nobody, and seq 1.. would be a gap for ever
        wait_until(lambda: "subscribed to" in central.text(), 60, "central subscribed", step=0.1)
        node.start()
        wait_port(api_port, timeout=90)
        # installer: the checklist passes on the running node's config (camera, model, broker, storage)
        check = edgecam("check", "-c", str(config), "--json", timeout=120)
        results = json.loads(check.stdout)
        # the API port is taken by the running node itself, and this machine's clock may be unsynchronised
        needed = [r for r in results["checks"] if r["name"].split()[0] in ("config", "camera", "model", "broker",
                                                                            "storage")]
        assert len(needed) >= 5 and all(r["status"] in ("ok", "warn") for r in needed), check.stdout
        wait_until(lambda: len(central_rows(central_db)) >= 3, 120, "first events")

        # fault 1: the broker is down for 20 s; events wait in the outbox
        broker.kill()
        time.sleep(20)
        broker.start()
        # fault 2: the camera server restarts; the node must see it go (not just an old "running" line)
        mark = node.mark()
        camera.kill()
        wait_until(lambda: "camera road: reconnecting" in node.since(mark), 60, "the node to notice the camera")
        time.sleep(3)
        camera.start()
        wait_until(lambda: "camera road: running" in node.since(mark).split("camera road: reconnecting")[-1], 60,
                   "camera back")
        # fault 3: the daemon is killed and restarted, once it is recording again after the camera's return
        mark = node.mark()
        wait_until(lambda: "event start" in node.since(mark), 60, "an event after the camera came back")
        time.sleep(5)
        node.kill9()
        before_kill = max(r[0] for r in central_rows(central_db))
        mark = node.mark()
        node.start()
        wait_until(lambda: "running with 1 camera" in node.since(mark), 90, "the node restarted")
        wait_port(api_port, timeout=90)
        # the restarted node carries on the seqs: wait for some of its own events at central, then stop it
        wait_until(lambda: len(central_rows(central_db)) and max(r[0] for r in central_rows(central_db))
                   >= before_kill + 3, 120, "events from the restarted node at central")
        assert node.stop() == 0
        wait_until(lambda: _contiguous(central_rows(central_db)), 60, "every seq at central")
    finally:
        if node.proc and node.proc.poll() is None:
            node.stop()
        if central.proc and central.proc.poll() is None:
            central.stop()
        camera.kill()
        broker.stop()

    rows = central_rows(central_db)
    seqs = [r[0] for r in rows]
    assert seqs == list(range(1, len(seqs) + 1)), "central store has a gap"
    assert any(r[2] == "start" for r in rows)
    clip_ids = sorted({r[3] for r in rows if r[2] == "end" and r[3]})
    assert clip_ids, "no clip was named by an end event"

    # technician: pull every clip named by an end event and verify each offline
    node2 = Proc(["run", "-c", str(config)], tmp_path / "node2.log")
    camera.start()
    broker.start()
    node2.start()
    try:
        wait_port(api_port, timeout=90)
        listing = edgecam("clips", "list", "--node", node_url, "--json", env={"EDGECAM_TOKEN": token})
        assert listing.returncode == 0, listing.stderr
        listed = {c["id"] for c in json.loads(listing.stdout)}
        assert set(clip_ids) <= listed
        out = tmp_path / "pulled"
        pull = edgecam("clips", "pull", "--node", node_url, *clip_ids, "-o", str(out),
                       "--bundle", str(tmp_path / "evidence.zip"), env={"EDGECAM_TOKEN": token}, timeout=300)
        assert pull.returncode == 0, pull.stderr
        pubkey = edgecam("key", "show", "-c", str(config)).stdout.strip()
        for clip in clip_ids:
            verify = edgecam("clips", "verify", str(out / f"{clip}.mp4"), "--meta", str(out / f"{clip}.meta.json"),
                             "--pubkey", pubkey)
            assert verify.returncode == 0, verify.stdout + verify.stderr
        bundle = edgecam("clips", "verify", str(tmp_path / "evidence.zip"), "--pubkey", pubkey)
        assert bundle.returncode == 0, bundle.stdout
    finally:
        node2.stop()
        camera.kill()
        broker.stop()

    logs = node.text() + node2.text() + central.text()
    assert "Traceback" not in logs
    # the LAN API's access log: address, token name, method, path, status, bytes, ms
    marker = "edge.api.access: "
    access = [line.split(marker, 1)[1].split() for line in logs.splitlines() if marker in line]
    assert len(access) >= len(clip_ids) + 1, "the technician's requests are missing from the access log"
    assert [a for a in access if a[4].startswith("5")] == [], "the LAN API answered 5xx"
    assert "camera road: reconnecting" in node.text()


def _contiguous(rows: list[tuple]) -> bool:
    seqs = [r[0] for r in rows]
    return bool(seqs) and seqs == list(range(1, len(seqs) + 1))
