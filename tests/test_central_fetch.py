"""``edgecam central fetch --via pull`` against a real node: recorder → clip store → LAN API → central's store."""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path

import pytest
from support.apinode import TOKEN, DroppingProxy
from support.central import sqlite_url
from support.recorded import central_config, record_node, serve

from edge.central.custody import CustodyLog
from edge.central.evidence import EvidenceStore
from edge.cli import main
from edge.clips.evidence import NodeKey


@pytest.fixture(scope="module")
def node(tmp_path_factory):
    """A node's real clip store with two recorded, signed, chained clips."""
    store, key = record_node(tmp_path_factory.mktemp("node"))
    yield store, key
    store.close()


_serve = serve


def _central(tmp: Path) -> Path:
    return central_config(tmp, sqlite_url(tmp))


def _register(cfg: Path, api: str, pubkey: str) -> None:
    assert main(["central", "register-node", "-c", str(cfg), "--node", "gate-node", "--pubkey", pubkey,
                 "--api", api, "--token-file", str(cfg.parent / "token")]) == 0


def test_pull_resumes_after_a_drop_verifies_and_stores(node, tmp_path: Path, capsys) -> None:
    store, key = node
    clip = store.catalog.list_clips()[0]
    data = store.catalog.file_path(clip.id).read_bytes()
    server = _serve(store)
    proxy = DroppingProxy(server.port, after=len(data) // 2, drops=1)
    try:
        cfg = _central(tmp_path)
        _register(cfg, f"http://127.0.0.1:{proxy.port}", key.public_text())
        token_file = tmp_path / "evidence" / "secrets" / "gate-node.token"
        assert token_file.read_text().strip() == TOKEN and token_file.stat().st_mode & 0o777 == 0o600
        capsys.readouterr()
        assert main(["central", "fetch", "-c", str(cfg), "--node", "gate-node", "--clip", clip.id]) == 0
        sha, path = capsys.readouterr().out.split()
        assert sha == clip.sha256 and Path(path).read_bytes() == data
        ranged = [r for r in proxy.requests if b".mp4 " in r and b"Range: bytes=" in r]
        assert len(ranged) == 1, "the second attempt resumed where the dropped one stopped"
        assert list((tmp_path / "evidence" / "incoming" / "gate-node").iterdir()) == []
        meta = EvidenceStore.at(tmp_path / "evidence").meta(sha)
        assert meta["record"]["clip"] == clip.id and meta["record"]["sha256"] == sha
        log = CustodyLog(tmp_path / "evidence" / "custody.db")
        [entry] = log.entries(f"gate-node/{clip.id}")
        assert entry.action == "fetch" and sha in entry.detail and log.verify() == []
        before = len(proxy.requests)
        assert main(["central", "fetch", "-c", str(cfg), "--node", "gate-node", "--clip", clip.id]) == 0
        assert capsys.readouterr().out.split() == [sha, path] and len(proxy.requests) == before
    finally:
        proxy.close()
        server.stop()


def test_a_clip_not_signed_by_the_registered_key_is_refused(node, tmp_path: Path, capsys) -> None:
    store, _key = node
    clip = store.catalog.list_clips()[1]
    server = _serve(store)
    try:
        cfg = _central(tmp_path)
        other = NodeKey.create(tmp_path / "other.ed25519")
        _register(cfg, server.url, other.public_text())
        capsys.readouterr()
        assert main(["central", "fetch", "-c", str(cfg), "--node", "gate-node", "--clip", clip.id]) == 1
        err = capsys.readouterr().err
        assert "refused, not stored" in err and "signature: FAIL" in err
        assert EvidenceStore.at(tmp_path / "evidence").get("gate-node", clip.id) is None
        assert not list((tmp_path / "evidence").glob("sha256/*/*"))
        [entry] = CustodyLog(tmp_path / "evidence" / "custody.db").entries()
        assert entry.action == "fetch-failed" and "signature: FAIL" in entry.detail
        assert main(["central", "fetch", "-c", str(cfg), "--node", "gate-node", "--clip", "no-such-clip"]) == 1
        assert "not found on node" in capsys.readouterr().err
    finally:
        server.stop()


def test_a_fetch_to_an_offline_node_waits_and_completes_when_it_returns(node, tmp_path: Path, capsys) -> None:
    store, key = node
    clip = store.catalog.list_clips()[0]
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cfg = _central(tmp_path)
    _register(cfg, f"http://127.0.0.1:{port}", key.public_text())
    assert main(["central", "fetch", "-c", str(cfg), "--node", "gate-node", "--clip", clip.id]) == 1
    assert "cannot reach node" in capsys.readouterr().err
    rc: list[int] = []
    t = threading.Thread(target=lambda: rc.append(main(["central", "fetch", "-c", str(cfg), "--node", "gate-node",
                                                        "--clip", clip.id, "--wait", "30"])))
    t.start()
    time.sleep(1.5)
    assert t.is_alive()
    server = _serve(store, port)
    try:
        t.join(30)
        assert rc == [0]
        assert capsys.readouterr().out.split()[0] == clip.sha256
    finally:
        server.stop()


def test_register_with_a_token_needs_the_api_and_fetch_needs_the_token(tmp_path: Path, capsys) -> None:
    cfg = _central(tmp_path)
    key = NodeKey.create(tmp_path / "k.ed25519").public_text()
    assert main(["central", "register-node", "-c", str(cfg), "--node", "n", "--pubkey", key,
                 "--token-file", str(tmp_path / "token")]) == 1
    assert "--token-file needs --api" in capsys.readouterr().err
    assert main(["central", "register-node", "-c", str(cfg), "--node", "n", "--pubkey", key,
                 "--api", "http://127.0.0.1:9", "--token-file", str(tmp_path / "missing")]) == 1
    assert "cannot read it" in capsys.readouterr().err
    assert main(["central", "register-node", "-c", str(cfg), "--node", "n", "--pubkey", key,
                 "--api", "http://127.0.0.1:9"]) == 0
    assert main(["central", "fetch", "-c", str(cfg), "--node", "n", "--clip", "c"]) == 1
    assert "no API token for node 'n'" in capsys.readouterr().err


def test_pull_with_the_node_registered_in_postgresql(node, tmp_path: Path, capsys) -> None:
    """The same fetch with central's database on PostgreSQL (the evidence store stays on files)."""
    from support.central import pg_base_url, pg_schema

    from edge.central.store import Store

    base = pg_base_url()
    if base is None:
        pytest.skip("PostgreSQL not reachable on 127.0.0.1:5432")
    store, key = node
    clip = store.catalog.list_clips()[1]
    server = _serve(store)
    try:
        with pg_schema(base) as url:
            cfg = central_config(tmp_path, url)
            _register(cfg, server.url, key.public_text())
            with Store(url) as db:
                assert db.node("gate-node")["api_url"] == server.url
            capsys.readouterr()
            assert main(["central", "fetch", "-c", str(cfg), "--node", "gate-node", "--clip", clip.id]) == 0
            sha, path = capsys.readouterr().out.split()
            assert sha == clip.sha256 and Path(path).read_bytes() == store.catalog.file_path(clip.id).read_bytes()
    finally:
        server.stop()
