"""Credentials in camera/database URLs never leave the process: errors, health, logs, check output (#14.10)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from support.assets import model_path
from support.broker import free_port

from edge.redact import redact_url

ROOT = Path(__file__).resolve().parent.parent
SECRET = "S3cretPass"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("rtsp://viewer:S3cretPass@10.0.0.9:554/stream1", "rtsp://viewer:***@10.0.0.9:554/stream1"),
        ("http://admin:pw@cam.local/snap.jpg", "http://admin:***@cam.local/snap.jpg"),
        ("https://a:b@h", "https://a:***@h"),
        ("mqtt://node:x@broker:1883", "mqtt://node:***@broker:1883"),
        ("rtsps://u:p@h/x", "rtsps://u:***@h/x"),
        # a raw "@" inside the password: the whole password goes, not only its head
        ("postgresql://central:p@ss@w0rd@db.local/events", "postgresql://central:***@db.local/events"),
        ("postgres://u:a:b@db/x", "postgres://u:***@db/x"),
        ("rtsp://:onlypass@h/x", "rtsp://:***@h/x"),
        # inside longer messages, quoted, several URLs, and "@" after the path is not userinfo
        ("camera gate: failed: rtsp://v:S3cretPass@10.0.0.9/s: cannot open (404 Not Found)",
         "camera gate: failed: rtsp://v:***@10.0.0.9/s: cannot open (404 Not Found)"),
        ("'rtsp://v:pw@h/a' and \"http://x:y@z/\"", "'rtsp://v:***@h/a' and \"http://x:***@z/\""),
        ("rtsp://h/path@1 user@example.org", "rtsp://h/path@1 user@example.org"),
        # nothing secret: left alone
        ("postgresql://edgecam@db/events", "postgresql://edgecam@db/events"),
        ("/dev/video0: no such device", "/dev/video0: no such device"),
        ("", ""),
    ],
)
def test_redact_url(text: str, expected: str) -> None:
    assert redact_url(text) == expected


def test_redact_is_idempotent() -> None:
    once = redact_url("rtsp://u:p@h/x")
    assert redact_url(once) == once == "rtsp://u:***@h/x"


def test_source_and_probe_errors_carry_no_password() -> None:
    """What FFmpeg says about a URL that does not answer, as the capture loop and `check` store it."""
    from edge.capture import SourceError
    from edge.capture.pyav import PyavSource
    from edge.check import render
    from edge.check.host import probe_camera

    url = f"rtsp://viewer:{SECRET}@127.0.0.1:{free_port()}/stream1"
    with pytest.raises(SourceError) as info:
        PyavSource("gate", url, open_timeout=2, read_timeout=2).open()
    assert SECRET not in str(info.value) and "rtsp://viewer:***@127.0.0.1" in str(info.value)
    result = probe_camera("gate", url, 2.0, (640, 360))
    assert result.failed
    assert SECRET not in result.detail and "viewer:***@" in result.detail
    assert SECRET not in render([result])


def test_log_lines_are_redacted_by_the_handler() -> None:
    """The root handler's filter catches every logger, third-party ones too, and tracebacks."""
    code = (
        "import logging\n"
        "from edge.logs import setup_logging\n"
        "setup_logging()\n"
        f"logging.getLogger('edge.x').warning('open %s failed', 'rtsp://v:{SECRET}@h/s')\n"
        f"logging.getLogger('libav').error('rtsp://v:{SECRET}@h/s: 404')\n"
        "try:\n"
        f"    raise RuntimeError('postgresql://c:{SECRET}@x@db/e refused')\n"
        "except RuntimeError:\n"
        "    logging.getLogger('edgecam').exception('store failed')\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert SECRET not in proc.stderr
    assert proc.stderr.count("v:***@h/s") == 2 and "postgresql://c:***@db/e refused" in proc.stderr


def test_daemon_health_and_journal_never_show_the_camera_password(tmp_path: Path) -> None:
    """The reported leak end to end: a real daemon, an RTSP camera that does not answer, the LAN API's health."""
    from edge.api.auth import hash_line

    model_path()
    token = "t" * 43
    api_port = free_port()
    cfg = tmp_path / "edgecam.toml"
    cfg.write_text(f"""
[node]
id = "redact-node"
[mqtt]
port = {free_port()}
drain_timeout = 1
[storage]
path = "{tmp_path / 'state'}"
[api]
listen = "127.0.0.1:{api_port}"
tokens = ["{hash_line(token, 'tester')}"]
[cameras.gate]
source = "rtsp://viewer:{SECRET}@127.0.0.1:{free_port()}/stream1"
open_timeout = 2
reconnect_max = 1
""")
    proc = subprocess.Popen([sys.executable, "-m", "edge", "run", "-c", str(cfg)], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env={**os.environ})
    try:
        health = None
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and proc.poll() is None:
            req = urllib.request.Request(f"http://127.0.0.1:{api_port}/api/v1/health",
                                         headers={"Authorization": f"Bearer {token}"})
            try:
                with urllib.request.urlopen(req, timeout=2) as resp:
                    health = json.loads(resp.read())
            except OSError:
                time.sleep(0.3)
                continue
            if health["cameras"]["gate"]["error"]:
                break
            time.sleep(0.3)
    finally:
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=60)
    assert health is not None, out[-3000:]
    error = health["cameras"]["gate"]["error"]
    assert error and "rtsp://viewer:***@127.0.0.1" in error and SECRET not in error
    assert "viewer:***@" in out, out[-3000:]
    assert SECRET not in out
