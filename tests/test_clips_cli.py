"""The node's clips/token CLI as a technician uses it (#13.6): verify beside its meta, hold/release over the
LAN, and a new token taken up by a running daemon on SIGHUP without a restart."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from support.apinode import TOKEN, start_node
from support.assets import model_path, video_path
from support.broker import free_port

from edge import cli
from edge.api.auth import hash_line
from edge.clips.evidence import NodeKey
from edge.clips.store import ClipStore
from edge.types import Finished

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def pulled(tmp_path: Path):
    """A clip and its meta side by side, as ``clips pull`` leaves them."""
    store = ClipStore(tmp_path / "s", NodeKey.load_or_create(tmp_path / "s" / "keys"), node="n1")
    store.writer.begin("c1", "gate", 1000.0, True, None)
    store.index.final_path("c1").write_bytes(b"\0\0\0\x18ftypmp42" + b"x" * 2000)
    store.writer.add_finished("c1", Finished(1000.0, 1010.0, 10.0, labels=["car"], events=[{"id": "o"}]))
    out = tmp_path / "pulled"
    out.mkdir()
    shutil.copyfile(store.catalog.file_path("c1"), out / "c1.mp4")
    (out / "c1.meta.json").write_text(json.dumps(store.catalog.meta("c1")))
    key = store.catalog.public_key()
    store.close()
    return out / "c1.mp4", key


def test_verify_finds_the_meta_beside_the_clip(pulled, capsys):
    clip, key = pulled
    assert cli.main(["clips", "verify", str(clip), "--pubkey", key]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[-1] == "verified" and [ln.split(":")[0] for ln in lines[:3]] == ["hash", "signature", "chain"]
    assert cli.main(["clips", "verify", str(clip)]) == 0  # no --pubkey: integrity, and it says origin is unchecked
    out = capsys.readouterr().out
    assert "c1.meta.json's own pubkey (pass --pubkey to check origin)" in out and out.endswith("verified\n")
    clip.with_name("c1.meta.json").unlink()
    assert cli.main(["clips", "verify", str(clip), "--pubkey", key]) == 1
    assert capsys.readouterr().err == "edgecam: no c1.meta.json beside c1.mp4: pass --meta META.json\n"


def test_hold_and_release_over_the_lan(tmp_path: Path, capsys):
    n = start_node(tmp_path)
    try:
        assert cli.main(["clips", "hold", "gate-0001", "--node", n.url, "--token", TOKEN]) == 0
        assert n.catalog.get("gate-0001").held is True
        assert f"held gate-0001 on {n.url}\n" in capsys.readouterr().out
        assert cli.main(["clips", "release", "gate-0001", "--node", n.url, "--token", TOKEN]) == 0
        assert n.catalog.get("gate-0001").held is False
        assert cli.main(["clips", "hold", "nope", "--node", n.url, "--token", TOKEN]) == 1
        assert "edgecam: not found on node: /api/v1/clips/nope/hold\n" in capsys.readouterr().err
        assert cli.main(["clips", "hold", "gate-0001", "--node", n.url, "--token", "wrong"]) == 1
        assert "edgecam: token rejected by node\n" in capsys.readouterr().err
        assert n.catalog.get("gate-0001").held is False
    finally:
        n.server.stop()


def test_hold_on_the_node_still_works(pulled, capsys):
    clip, _ = pulled
    cfg = clip.parent.parent / "edgecam.toml"
    cfg.write_text(f'[storage]\npath = "{clip.parent.parent / "s"}"\n')
    assert cli.main(["clips", "hold", "c1", "-c", str(cfg)]) == 0
    assert capsys.readouterr().out.strip() == "held c1"


def test_token_new_says_how_to_reload(capsys):
    assert cli.main(["token", "new", "--name", "bob"]) == 0
    assert "systemctl reload edgecam" in capsys.readouterr().out


def _status(port: int, token: str) -> int:
    req = urllib.request.Request(f"http://127.0.0.1:{port}/api/v1/health", headers={"Authorization": f"Bearer {token}"})
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:
            return resp.status
    except urllib.error.HTTPError as err:
        return err.code
    except OSError:
        return 0


def _config(tmp_path: Path, api_port: int, tokens: list[str]) -> str:
    return f"""
[node]
id = "hup-node"
[mqtt]
host = "127.0.0.1"
port = {free_port()}
drain_timeout = 1
[storage]
path = "{tmp_path / 'state'}"
[api]
listen = "127.0.0.1:{api_port}"
tokens = {json.dumps(tokens)}
[cameras.road]
source = "{video_path('road')}"
realtime = true
loop = true
detect_fps = 1
"""


def test_new_token_works_after_sighup_without_restart(tmp_path: Path):
    model_path()
    old, new = "old-token-0123456789abcdefghijklmnop", "new-token-0123456789abcdefghijklmnop"
    port = free_port()
    cfg = tmp_path / "edgecam.toml"
    cfg.write_text(_config(tmp_path, port, [hash_line(old, "old")]))
    log = (tmp_path / "daemon.log").open("w")
    proc = subprocess.Popen([sys.executable, "-m", "edge", "run", "-c", str(cfg)], cwd=ROOT, stdout=log,
                            stderr=subprocess.STDOUT, env={**os.environ})
    try:
        deadline = time.monotonic() + 60
        while _status(port, old) != 200:
            assert proc.poll() is None and time.monotonic() < deadline, (tmp_path / "daemon.log").read_text()[-2000:]
            time.sleep(0.2)
        assert _status(port, new) == 401
        cfg.write_text(_config(tmp_path, port, [hash_line(new, "new")]))
        proc.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 10
        while _status(port, new) != 200:
            assert proc.poll() is None and time.monotonic() < deadline, (tmp_path / "daemon.log").read_text()[-2000:]
            time.sleep(0.1)
        assert _status(port, old) == 401  # removed from the config: refused now
        pid = proc.pid
        cfg.write_text(_config(tmp_path, port, ["not-a-token-line"]))
        proc.send_signal(signal.SIGHUP)  # a broken config keeps the running tokens
        deadline = time.monotonic() + 10
        while "reload: tokens unchanged" not in (tmp_path / "daemon.log").read_text():
            assert time.monotonic() < deadline
            time.sleep(0.1)
        assert _status(port, new) == 200 and proc.poll() is None and proc.pid == pid
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
        log.close()
    text = (tmp_path / "daemon.log").read_text()
    assert "api: tokens reloaded (1 token(s))" in text and "Traceback" not in text
    assert text.count("api: listening on") == 1  # one start: no restart happened


def test_pulled_files_and_bundle_are_readable_by_others(tmp_path: Path, capsys):
    """What a technician pulls is copied on (USB stick, e-mail): 0644 like any download, never mkstemp's 0600."""
    import stat

    n = start_node(tmp_path / "node")
    old = os.umask(0o022)
    try:
        out = tmp_path / "out"
        assert cli.main(["clips", "pull", "gate-0001", "--node", n.url, "--token", TOKEN, "-o", str(out),
                         "--bundle", str(tmp_path / "b.zip")]) == 0
    finally:
        os.umask(old)
        n.server.stop()
    for path in (out / "gate-0001.mp4", out / "gate-0001.meta.json", tmp_path / "b.zip"):
        assert stat.S_IMODE(path.stat().st_mode) == 0o644, path


def test_clips_list_names_the_zone_and_shows_utc_beside(tmp_path: Path, capsys, monkeypatch):
    monkeypatch.setenv("TZ", "Asia/Ho_Chi_Minh")
    time.tzset()
    n = start_node(tmp_path)
    try:
        assert cli.main(["clips", "list", "--node", n.url, "--token", TOKEN]) == 0
    finally:
        n.server.stop()
        monkeypatch.delenv("TZ")
        time.tzset()
    lines = capsys.readouterr().out.splitlines()
    head = lines[0].split()
    assert head[:6] == ["ID", "CAMERA", "START", "(+07,", "UTC+07:00)", "START"] and head[6] == "(UTC)"
    row = next(ln for ln in lines if ln.startswith("gate-0001 "))
    assert re.search(r"  2026-11-18 18:06:40 +2026-11-18 11:06:40  ", row), row  # BASE_TS: local (UTC+7), then UTC


def test_events_tail_lines_name_the_zone(monkeypatch):
    from edge.outbox.tail import format_event

    monkeypatch.setenv("TZ", "Europe/Berlin")
    time.tzset()
    try:
        line = format_event({"ts": 1_796_176_449.0, "node": "n1", "camera": "gate", "type": "start", "label": "car",
                             "score": 0.9, "seq": 1, "time_ok": False})
    finally:
        monkeypatch.delenv("TZ")
        time.tzset()
    assert line.startswith("2026-12-02 02:54:09 CET ? n1 gate start")
