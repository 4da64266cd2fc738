"""The LAN API over the real clip store: clips recorded by the real recorder, served, pulled and verified.

The other API tests use a small catalog of remuxed files (fast, hostile-input heavy); this one proves the
same routes on what the node really writes: ClipRecorder → ClipStore (SQLite index, signatures).
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pytest
from support.apinode import TOKEN, request
from support.clipcat import StillView
from support.recorded import record_node

from edge.api.auth import hash_line
from edge.api.server import ApiServer

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    store, key = record_node(tmp_path_factory.mktemp("node"), node="api-node")  # two real clips: car, bus
    server = ApiServer(store.catalog, StillView({}), "127.0.0.1", 0, [hash_line(TOKEN, "tech")])
    server.start()
    yield server, store, key
    server.stop()
    store.close()


def test_list_download_range_and_hold_on_recorded_clips(served) -> None:
    server, store, _key = served
    status, headers, body = request(server.port, "/api/v1/clips")
    assert status == 200
    listed = json.loads(body)
    assert len(listed) == 2 and {tuple(c["labels"]) for c in listed} == {("car",), ("bus",)}
    clip = listed[0]
    data = store.catalog.file_path(clip["id"]).read_bytes()
    status, headers, body = request(server.port, f"/api/v1/clips/{clip['id']}.mp4")
    assert status == 200 and body == data
    assert hashlib.sha256(body).hexdigest() == clip["sha256"] and len(body) == clip["bytes"]
    status, headers, body = request(server.port, f"/api/v1/clips/{clip['id']}.mp4", {"Range": "bytes=100-1099"})
    assert status == 206 and body == data[100:1100]
    assert headers["content-range"] == f"bytes 100-1099/{len(data)}"
    assert request(server.port, f"/api/v1/clips/{clip['id']}/hold", method="POST")[0] in (200, 204)
    assert store.catalog.get(clip["id"]).held
    assert request(server.port, f"/api/v1/clips/{clip['id']}/hold", method="DELETE")[0] in (200, 204)
    assert not store.catalog.get(clip["id"]).held
    assert request(server.port, "/api/v1/clips/nope.mp4")[0] == 404
    assert request(server.port, "/api/v1/clips", token="wrong")[0] == 401


def test_pull_and_verify_with_the_cli(served, tmp_path: Path) -> None:
    server, store, key = served
    ids = [c.id for c in store.catalog.list_clips()]
    env = {"EDGECAM_TOKEN": TOKEN, "PATH": "/usr/bin:/bin"}
    pull = subprocess.run([sys.executable, "-m", "edge", "clips", "pull", "--node", f"http://127.0.0.1:{server.port}",
                           *ids, "-o", str(tmp_path), "--bundle", str(tmp_path / "bundle.zip")],
                          capture_output=True, text=True, timeout=120, env=env, cwd=ROOT)
    assert pull.returncode == 0, pull.stderr
    for clip_id in ids:
        assert (tmp_path / f"{clip_id}.mp4").read_bytes() == store.catalog.file_path(clip_id).read_bytes()
        verify = subprocess.run([sys.executable, "-m", "edge", "clips", "verify", str(tmp_path / f"{clip_id}.mp4"),
                                 "--meta", str(tmp_path / f"{clip_id}.meta.json"), "--pubkey", key.public_text()],
                                capture_output=True, text=True, timeout=60, cwd=ROOT)
        assert verify.returncode == 0, verify.stdout + verify.stderr
    bundle = subprocess.run([sys.executable, "-m", "edge", "clips", "verify", str(tmp_path / "bundle.zip"),
                             "--pubkey", key.public_text()], capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert bundle.returncode == 0, bundle.stdout
