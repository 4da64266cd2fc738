"""Push fetch: central's signed request over real mosquitto, the node's handler, a resumable single-use upload.

The node is registered without an API URL: central cannot reach it, the clip comes to central.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import threading
import time
import urllib.parse
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from support.broker import Broker
from support.central import sqlite_url, wait_until
from support.recorded import central_config, record_node

from edge.central.config import load_central_config
from edge.central.custody import CustodyLog
from edge.central.evidence import EvidenceStore
from edge.central.push import UploadSlots, load_key, sign_request
from edge.central.web import DeskServer
from edge.cli import main
from edge.node.requests import RequestHandler
from edge.outbox.publisher import MqttSettings


@pytest.fixture
def setup(tmp_path: Path, capsys):
    broker = Broker(tmp_path / "broker").start()
    store, key = record_node(tmp_path / "node")
    cfg = central_config(tmp_path, sqlite_url(tmp_path))
    base = cfg.read_text() + f"\n[mqtt]\nport = {broker.port}\nclient_id = \"central-push-test\"\n"
    cfg.write_text(base)
    desk = DeskServer(load_central_config(cfg), "127.0.0.1", 0)
    desk.start()
    cfg.write_text(base + f'\n[web]\npublic_url = "{desk.url}"\n')
    assert main(["central", "init", "-c", str(cfg)]) == 0
    central_pub = capsys.readouterr().out.strip()
    assert central_pub.startswith("ed25519:")
    assert main(["central", "register-node", "-c", str(cfg), "--node", "gate-node", "--pubkey",
                 key.public_text()]) == 0
    settings = MqttSettings(host="127.0.0.1", port=broker.port, client_id="edgecam-gate-node",
                            reconnect_min=0.2, reconnect_max=1.0)
    handlers: list[RequestHandler] = []

    def handler() -> RequestHandler:
        h = RequestHandler("gate-node", central_pub, store.catalog, tmp_path / "node", settings, pause=0.2)
        handlers.append(h)
        return h

    yield cfg, store, handler, tmp_path / "evidence", desk
    for h in handlers:
        if not h._stop.is_set():
            h.stop()
    desk.stop()
    store.close()
    broker.stop()


def test_push_to_a_node_that_was_offline_completes_when_it_returns(setup, capsys) -> None:
    cfg, store, handler, root, _desk = setup
    clip = store.catalog.list_clips()[0]
    capsys.readouterr()
    first = handler()
    first.start()  # the node's persistent session exists at the broker
    wait_until(lambda: first._client.is_connected(), what="handler connected")
    time.sleep(0.3)  # its SUBSCRIBE is acknowledged
    first.stop()  # the node goes offline
    rc: list[int] = []
    t = threading.Thread(target=lambda: rc.append(main(["central", "fetch", "-c", str(cfg), "--node", "gate-node",
                                                        "--clip", clip.id, "--via", "push", "--wait", "40"])))
    t.start()
    time.sleep(1.0)
    assert t.is_alive() and EvidenceStore.at(root).get("gate-node", clip.id) is None
    back = handler()
    back.start()  # back online: the broker delivers the request it kept
    t.join(40)
    assert rc == [0]
    sha, path = capsys.readouterr().out.split()
    assert sha == clip.sha256 and Path(path).read_bytes() == store.catalog.file_path(clip.id).read_bytes()
    assert back.outcomes == [f"request {back.outcomes[0].split()[1]} {clip.id} uploaded and verified by central"
                             f" ({clip.bytes} bytes)"]
    entries = [(e.action, e.detail) for e in CustodyLog(root / "custody.db").entries(f"gate-node/{clip.id}")]
    assert [a for a, _d in entries] == ["fetch-request", "fetch"] and "via push" in entries[1][1]


def _request(root: Path, url: str, node: str = "gate-node", clip: str = "x", expires_in: float = 600,
             token: str | None = None) -> tuple[bytes, str]:
    slots = UploadSlots(root)
    tok, rid, _exp = slots.open(node, clip, "test")
    slots.close()
    now = time.time()
    req = {"v": 1, "type": "fetch", "id": rid, "node": node, "clip": clip,
           "upload": f"{url}/api/upload/{token or tok}", "issued": now, "expires": now + expires_in}
    return sign_request(load_key(root), req), tok


def test_unsigned_forged_replayed_expired_and_foreign_requests_are_refused(setup, caplog) -> None:
    _cfg, store, handler, root, desk = setup
    clip = store.catalog.list_clips()[1].id
    h = handler()
    signed, _tok = _request(root, desk.url, clip=clip)
    unsigned = json.dumps({"request": json.loads(signed)["request"]}).encode()
    forged = json.loads(signed)
    forged["request"]["clip"] = store.catalog.list_clips()[0].id  # changed after signing
    wrong = sign_request(Ed25519PrivateKey.generate(), json.loads(signed)["request"])  # not central's key
    expired, _t = _request(root, desk.url, clip=clip, expires_in=-1)
    foreign, _t = _request(root, desk.url, node="other-node", clip=clip)
    outcomes = [h.handle(p) for p in (unsigned, json.dumps(forged).encode(), wrong, expired, foreign, b"{")]
    assert [o.split(":")[0] for o in outcomes] == ["refused"] * 6
    assert "unsigned request" in outcomes[0] and "not signed by central's key" in outcomes[1]
    assert "not signed by central's key" in outcomes[2] and "expired" in outcomes[3]
    assert "for node 'other-node'" in outcomes[4] and "not a fetch request" in outcomes[5]
    assert "uploaded and verified" in h.handle(signed)
    assert "replayed" in h.handle(signed)
    assert sum("requests: refused" in r.message for r in caplog.records) == 7
    assert EvidenceStore.at(root).get("gate-node", clip) is not None


def test_upload_url_resumes_after_a_drop_and_is_single_use(setup) -> None:
    _cfg, store, handler, root, desk = setup
    clip = store.catalog.list_clips()[0]
    data = store.catalog.file_path(clip.id).read_bytes()
    signed, tok = _request(root, desk.url, clip=clip.id)
    url = urllib.parse.urlsplit(desk.url)

    def call(method: str, path: str, body: bytes | None = None, headers: dict | None = None):
        conn = http.client.HTTPConnection(url.netloc, timeout=30)
        conn.request(method, path, body=body, headers=headers or {})
        resp = conn.getresponse()
        out = resp.status, dict(resp.getheaders()), resp.read()
        conn.close()
        return out

    meta = json.dumps(store.catalog.meta(clip.id)).encode()
    assert call("PUT", f"/api/upload/{tok}/meta", meta)[0] == 204
    half = len(data) // 2
    status, headers, _b = call("PATCH", f"/api/upload/{tok}", data[:half], {"Upload-Offset": "0"})
    assert status == 204 and headers["Upload-Offset"] == str(half)  # then the link dropped
    assert call("PATCH", f"/api/upload/{tok}", data[:10], {"Upload-Offset": "0"})[0] == 409  # no rewrite
    assert call("HEAD", f"/api/upload/{tok}")[1]["Upload-Offset"] == str(half)
    outcome = handler().handle(signed)  # the node's handler resumes from central's offset
    assert "uploaded and verified" in outcome, outcome
    stored = EvidenceStore.at(root).get("gate-node", clip.id)
    assert stored is not None and stored.path.read_bytes() == data
    assert hashlib.sha256(data).hexdigest() == stored.sha256
    assert call("HEAD", f"/api/upload/{tok}")[0] == 410  # single use
    assert call("PATCH", f"/api/upload/{tok}", b"x", {"Upload-Offset": "0"})[0] == 410
    assert call("HEAD", "/api/upload/not-a-token")[0] == 404


def test_the_daemon_hook_follows_central_pubkey_in_the_node_config(setup, tmp_path: Path) -> None:
    """``start_request_handler`` (the daemon's `# wiring: requests` call): on with [central] pubkey, else off."""
    from edge.config import ConfigError, parse_config
    from edge.node.requests import start_request_handler

    cfg, store, _handler, root, desk = setup
    port = load_central_config(cfg).mqtt.port
    pub = (root / "keys" / "central.ed25519.pub").read_text().strip()
    base = {"node": {"id": "gate-node"}, "storage": {"path": str(tmp_path / "node")},
            "mqtt": {"port": port, "reconnect_min": 0.2}}
    assert start_request_handler(parse_config(base), store.catalog) is None
    h = start_request_handler(parse_config({**base, "central": {"pubkey": pub}}), store.catalog)
    try:
        wait_until(lambda: h._client.is_connected(), what="handler connected")
        time.sleep(0.3)
        clip = store.catalog.list_clips()[1].id
        signed, _tok = _request(root, desk.url, clip=clip)
        import paho.mqtt.publish as publish

        publish.single("edgecam/gate-node/requests", signed, qos=1, hostname="127.0.0.1", port=port)
        wait_until(lambda: EvidenceStore.at(root).get("gate-node", clip) is not None, what="clip pushed")
    finally:
        h.stop()
    with pytest.raises(ConfigError, match="central.pubkey"):
        parse_config({**base, "central": {"pubkey": "not-a-key"}})


def test_a_request_accepted_before_a_stop_is_finished_at_the_next_start(setup, capsys) -> None:
    """The broker will not deliver an acknowledged request again: the node keeps it until the upload ends."""
    from support.broker import free_port

    cfg, store, handler, root, _desk = setup
    clip = store.catalog.list_clips()[1]
    port = free_port()  # central's web server is down for now
    signed, _tok = _request(root, f"http://127.0.0.1:{port}", clip=clip.id)
    first = handler()
    t = threading.Thread(target=first.handle, args=(signed,))
    t.start()
    time.sleep(1.0)  # retrying against the closed port
    first.stop()
    t.join(10)
    assert "stopped mid-upload" in first.outcomes[0]
    second = handler()
    assert second.pending() == [signed]
    desk2 = DeskServer(load_central_config(cfg), "127.0.0.1", port)
    desk2.start()
    try:
        second.start()
        wait_until(lambda: EvidenceStore.at(root).get("gate-node", clip.id) is not None, what="resumed upload")
        wait_until(lambda: second.outcomes != [], what="outcome")
        assert "uploaded and verified" in second.outcomes[0] and second.pending() == []
        assert "replayed" in second.handle(signed)  # and it is still never acted on twice
    finally:
        desk2.stop()
