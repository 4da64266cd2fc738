"""Helpers for the desk's tests: a central with a real node's clips registered, events stored, users made."""

from __future__ import annotations

import http.client
import json
from dataclasses import dataclass, field
from pathlib import Path

from edge.central.config import load_central_config
from edge.central.messages import parse_event
from edge.central.store import Store
from edge.central.web import DeskServer
from edge.cli import main

from .central import event
from .recorded import central_config

PASSWORD = "correct horse battery"


def make_central(tmp: Path, db_url: str, api_url: str, pubkey: str, clips: list[tuple[str, float]]) -> Path:
    """central.toml, the node registered with a token, one stored event per clip, three users."""
    cfg = central_config(tmp, db_url)
    assert main(["central", "register-node", "-c", str(cfg), "--node", "gate-node", "--pubkey", pubkey,
                 "--api", api_url, "--token-file", str(tmp / "token")]) == 0
    rows = [parse_event("gate-node", event("gate-node", i + 1, clip=cid, ts=ts, label="car"))
            for i, (cid, ts) in enumerate(clips)]
    with Store(db_url) as store:
        store.write_batch(rows, [], [])
    (tmp / "pw").write_text(PASSWORD + "\n")
    for name, role in (("ines", "investigator"), ("victor", "viewer"), ("ada", "admin")):
        assert main(["central", "user", "add", name, "--role", role, "-c", str(cfg),
                     "--password-file", str(tmp / "pw")]) == 0
    return cfg


def start_desk(cfg: Path, port: int = 0) -> DeskServer:
    server = DeskServer(load_central_config(cfg), "127.0.0.1", port)
    server.worker.retry = 0.5
    server.start()
    return server


@dataclass
class Client:
    """A plain HTTP client that keeps the session cookie and CSRF token, as the page does."""

    port: int
    cookie: str = ""
    csrf: str = ""
    headers: dict[str, str] = field(default_factory=dict)

    def call(self, method: str, path: str, body: object | None = None,
             extra: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        try:
            headers = {"Origin": f"http://127.0.0.1:{self.port}"}
            if self.cookie:
                headers["Cookie"] = self.cookie
            if self.csrf:
                headers["X-CSRF-Token"] = self.csrf
            data = None
            if body is not None:
                data = json.dumps(body).encode()
                headers["Content-Type"] = "application/json"
            headers.update(extra or {})
            conn.request(method, path, body=data, headers={k: v for k, v in headers.items() if v is not None})
            resp = conn.getresponse()
            return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
        finally:
            conn.close()

    def sign_in(self, user: str, password: str = PASSWORD) -> int:
        status, headers, body = self.call("POST", "/api/session", {"user": user, "password": password})
        if status == 200:
            self.cookie = headers["set-cookie"].split(";")[0]
            self.csrf = json.loads(body)["csrf"]
            self.headers = headers
        return status
