"""The evidence desk over HTTP (no browser): users, sessions, roles, CSRF, same-origin, throttling, fetch queue."""

from __future__ import annotations

import contextlib
import json
import time
import zipfile
from pathlib import Path

import pytest
from support.central import event, sqlite_url, wait_until
from support.desk import PASSWORD, Client, make_central, start_desk
from support.recorded import record_node, serve

from edge.central.casefile import check_case
from edge.central.config import load_central_config
from edge.central.custody import CustodyLog
from edge.central.messages import parse_event
from edge.central.store import Store
from edge.central.users import UserBook, check_password
from edge.cli import main


@pytest.fixture(scope="module")
def desk(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("central")
    store, key = record_node(tmp_path_factory.mktemp("node"))
    node = serve(store)
    clips = [(c.id, c.start_ts) for c in store.catalog.list_clips()]
    cfg = make_central(tmp, sqlite_url(tmp), node.url, key.public_text(), clips)
    server = start_desk(cfg)
    yield server, cfg, tmp, store
    server.stop()
    node.stop()
    store.close()


def test_page_is_strict_and_the_api_needs_a_session(desk) -> None:
    server = desk[0]
    status, headers, body = Client(server.port).call("GET", "/")
    assert status == 200 and b'<script src="/static/desk.js" defer></script>' in body
    assert "script-src 'self'" in headers["content-security-policy"]
    assert "default-src 'none'" in headers["content-security-policy"] and headers["x-frame-options"] == "DENY"
    assert b"<script>" not in body and b"http" not in body.replace(b'http-equiv', b'')
    assert Client(server.port).call("GET", "/api/search")[0] == 401
    assert Client(server.port).call("GET", "/static/../web.py")[0] == 404


def test_passwords_are_scrypt_and_sessions_are_httponly_strict(desk) -> None:
    server, _cfg, tmp, _store = desk
    row = UserBook(tmp / "evidence" / "desk.db").db.execute("SELECT hash FROM users WHERE name='ines'").fetchone()
    assert row[0].startswith("scrypt$32768$8$3$") and check_password(PASSWORD, row[0]) and PASSWORD not in row[0]
    c = Client(server.port)
    assert c.sign_in("ines") == 200
    cookie = c.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie
    status, _h, body = c.call("GET", "/api/session")
    assert status == 200 and json.loads(body)["role"] == "investigator"
    assert c.call("DELETE", "/api/session")[0] == 200
    assert c.call("GET", "/api/session")[0] == 401


def test_state_changes_need_same_origin_and_csrf(desk) -> None:
    server, _cfg, tmp, store = desk
    c = Client(server.port)
    assert c.sign_in("ines") == 200
    clip = store.catalog.list_clips()[0].id
    body = {"node": "gate-node", "clip": clip}
    status, _h, out = c.call("POST", "/api/fetches", body, {"Origin": "http://evil.example"})
    assert status == 403 and b"cross-site" in out
    status, _h, out = c.call("POST", "/api/fetches", body, {"Origin": None, "Sec-Fetch-Site": "cross-site"})
    assert status == 403
    status, _h, out = c.call("POST", "/api/fetches", body, {"X-CSRF-Token": "forged"})
    assert status == 403 and b"CSRF" in out
    status, _h, out = c.call("POST", "/api/session", {"user": "ines", "password": PASSWORD},
                             {"Origin": "http://evil.example"})
    assert status == 403
    assert c.call("GET", "/api/fetches")[2] == b"[]"  # nothing was queued by the refused requests


def test_viewer_gets_403_on_fetch_cases_and_export(desk) -> None:
    server, _cfg, _tmp, store = desk
    v = Client(server.port)
    assert v.sign_in("victor") == 200
    assert v.call("GET", "/api/search")[0] == 200
    assert v.call("POST", "/api/fetches", {"node": "gate-node", "clip": store.catalog.list_clips()[0].id})[0] == 403
    assert v.call("POST", "/api/cases", {"name": "K-1"})[0] == 403
    assert v.call("POST", "/api/cases/K-1/export")[0] == 403
    assert v.call("GET", "/api/cases")[0] == 403


def test_fetch_by_pull_then_watch_with_range_then_case_export_verifies(desk, tmp_path: Path) -> None:
    server, _cfg, tmp, store = desk
    c = Client(server.port)
    assert c.sign_in("ines") == 200
    rows = json.loads(c.call("GET", "/api/search")[2])["rows"]
    clip = store.catalog.list_clips()[0]
    [row] = [r for r in rows if r["clip"] == clip.id]
    assert row["stored"] is False
    status, _h, out = c.call("POST", "/api/fetches", {"node": "gate-node", "clip": clip.id})
    assert status == 202
    fid = json.loads(out)["id"]
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        [req] = [r for r in json.loads(c.call("GET", "/api/fetches")[2]) if r["id"] == fid]
        if req["state"] in ("verified", "failed"):
            break
        time.sleep(0.1)
    assert req["state"] == "verified" and req["sha256"] == clip.sha256, req
    data = store.catalog.file_path(clip.id).read_bytes()
    assert c.call("GET", f"/api/clips/gate-node/{clip.id}.mp4")[2] == data
    status, headers, body = c.call("GET", f"/api/clips/gate-node/{clip.id}.mp4", extra={"Range": "bytes=1000-1999"})
    assert status == 206 and body == data[1000:2000] and headers["content-type"] == "video/mp4"
    assert c.call("POST", "/api/cases", {"name": "K-2026-7", "notes": "hit and run"})[0] == 201
    assert json.loads(c.call("POST", "/api/cases/K-2026-7/clips", {"node": "gate-node", "clip": clip.id})[2]) \
        == {"added": True}
    status, headers, body = c.call("POST", "/api/cases/K-2026-7/export")
    assert status == 200 and headers["content-type"] == "application/zip"
    (tmp_path / "case.zip").write_bytes(body)
    # the sent copy does not pile up on central (removed once the server's last write returned)
    wait_until(lambda: list((tmp / "evidence" / "exports").iterdir()) == [], timeout=10, what="export removed")
    assert [ch.line() for ch in check_case(tmp_path / "case.zip") if not ch.ok] == []
    with zipfile.ZipFile(tmp_path / "case.zip") as zf:
        assert zf.read(f"clips/gate-node/{clip.id}.mp4") == data
        assert "ines" in zf.read("cover.html").decode()
    actions = [(e.who, e.action) for e in CustodyLog(tmp / "evidence" / "custody.db").entries()]
    for expected in (("ines", "sign-in"), ("ines", "search"), ("ines", "fetch"), ("ines", "view"),
                     ("ines", "export")):
        assert expected in actions


def test_admin_acknowledges_a_gap_with_a_reason_from_the_page(desk) -> None:
    server, cfg, tmp, _store = desk
    rows = [parse_event("lost-node", event("lost-node", s)) for s in (1, 4)]
    with Store(load_central_config(cfg).database.url) as db:
        db.write_batch(rows, [], [])
    v, a = Client(server.port), Client(server.port)
    assert v.sign_in("victor") == 200 and a.sign_in("ada") == 200
    body = {"first": 2, "last": 3, "reason": "node unplugged for repair"}
    assert v.call("POST", "/api/fleet/lost-node/ack", body)[0] == 403
    assert a.call("POST", "/api/fleet/lost-node/ack", {**body, "reason": ""})[0] == 400
    assert a.call("POST", "/api/fleet/nope/ack", body)[0] == 404
    assert a.call("POST", "/api/fleet/lost-node/ack", body)[0] == 200
    [lost] = [n for n in json.loads(a.call("GET", "/api/fleet")[2]) if n["node"] == "lost-node"]
    assert lost["missing"] == [{"first": 2, "last": 3, "since": lost["missing"][0]["since"], "acked": True,
                                "alarm": False}]
    [entry] = CustodyLog(tmp / "evidence" / "custody.db").entries("node:lost-node")
    assert entry.who == "ada" and entry.action == "acknowledge" and "node unplugged for repair" in entry.detail


def test_sign_in_is_throttled_and_disable_ends_sessions(desk, capsys) -> None:
    server, cfg, _tmp, _store = desk
    c = Client(server.port)
    assert c.sign_in("ada") == 200
    statuses = [Client(server.port).sign_in("ada", "wrong password!") for _ in range(6)]
    assert statuses == [401] * 5 + [429]
    status, headers, _b = Client(server.port).call("POST", "/api/session", {"user": "ada", "password": PASSWORD})
    assert status == 429 and int(headers["retry-after"]) > 200  # even the right password waits out the lockout
    assert c.call("GET", "/api/session")[0] == 200  # the signed-in session is unaffected
    assert main(["central", "user", "disable", "ada", "-c", str(cfg)]) == 0
    assert c.call("GET", "/api/session")[0] == 401
    assert main(["central", "user", "add", "x", "--role", "viewer", "-c", str(cfg),
                 "--password-file", str(cfg.parent / "token-short")]) == 1
    assert "cannot read" in capsys.readouterr().err


def _wait_http(url: str, timeout: float = 20.0) -> int:
    import urllib.error
    import urllib.request

    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                return resp.status
        except (urllib.error.URLError, OSError):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


@contextlib.contextmanager
def _central_serving_the_desk(command: str, tmp_path: Path, client_id: str):
    """`edgecam central <command>` with [web] listen on a free port, against a broker of its own; yields the
    process once the desk answers, and leaves neither running."""
    import os
    import subprocess
    import sys

    from support.broker import Broker, free_port

    root = Path(__file__).resolve().parent.parent
    broker = Broker(tmp_path / "broker").start()
    port = free_port()
    cfg = tmp_path / "central.toml"
    cfg.write_text(f'[mqtt]\nport = {broker.port}\nclient_id = "{client_id}"\n[database]\nurl = "sqlite:///'
                   f'{tmp_path}/e.db"\n[evidence]\npath = "{tmp_path}/ev"\n[web]\nlisten = "127.0.0.1:{port}"\n')
    proc = subprocess.Popen([sys.executable, "-m", "edge", "central", command, "-c", str(cfg)], cwd=root,
                            env=dict(os.environ, PYTHONPATH=str(root)), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    try:
        assert _wait_http(f"http://127.0.0.1:{port}/") == 200
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
        broker.stop()


@pytest.mark.parametrize("command", ["run", "web"])
def test_central_run_and_central_web_serve_the_page(command: str, tmp_path: Path) -> None:
    """`central run` serves the desk when [web] listen is set; `central web` serves it alone; SIGTERM ends both."""
    import signal

    with _central_serving_the_desk(command, tmp_path, "desk-run-test") as proc:
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0, out[-2000:]


@pytest.mark.parametrize("command", ["run", "web"])
def test_sigterm_that_the_kernel_hands_to_another_thread_still_ends_central(command: str, tmp_path: Path) -> None:
    """The kernel may deliver a process's SIGTERM to any of its threads; Python runs the handler in the main
    thread only when that thread runs bytecode. `central web` waited without a timeout and, under CI load,
    ignored SIGTERM for 30 s. Here the signal goes to one thread that is not the main one (tgkill), as it can."""
    import ctypes
    import os
    import platform
    import signal
    import time

    if platform.machine() != "x86_64":
        pytest.skip("tgkill's syscall number is x86-64's here")
    with _central_serving_the_desk(command, tmp_path, "desk-sig-test") as proc:
        others = [int(t) for t in os.listdir(f"/proc/{proc.pid}/task") if int(t) != proc.pid]
        assert others, "central has more threads than its main one"
        libc = ctypes.CDLL(None, use_errno=True)
        sent = time.monotonic()
        assert libc.syscall(234, proc.pid, others[-1], int(signal.SIGTERM)) == 0  # SYS_tgkill
        out, _ = proc.communicate(timeout=30)
        took = time.monotonic() - sent
    assert proc.returncode == 0, out[-2000:]
    assert took < 15, f"{took:.1f} s to stop"


def test_sessions_expire_when_idle_and_at_their_lifetime(tmp_path: Path, monkeypatch) -> None:
    import edge.central.users as users

    now = [1_800_000_000.0]
    monkeypatch.setattr(users.time, "time", lambda: now[0])  # the book's clock, stepped by the test
    book = UserBook(tmp_path / "desk.db", idle=600, lifetime=1800)
    book.add("ines", "investigator", PASSWORD)
    user = book.authenticate("ines", PASSWORD)
    assert user is not None and book.authenticate("ines", "wrong password") is None
    sid, _s = book.open_session(user, "127.0.0.1")
    idle_sid, _s = book.open_session(user, "127.0.0.1")
    for _ in range(4):  # used every 400 s: alive past the idle time, until the lifetime ends
        now[0] += 400
        assert book.session(sid) is not None
    assert book.session(idle_sid) is None  # not used for 1600 s: ended by the idle timeout
    now[0] += 400
    assert book.session(sid) is None  # 2000 s old: past the 1800 s lifetime although in use
    assert book.db.execute("SELECT COUNT(*) FROM sessions").fetchone()[0] == 0
