"""``edgecam clips list|pull`` against a real in-process node: resume, sha checks, bundles, one-line errors."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path
from types import SimpleNamespace

import pytest
from support.apinode import TOKEN, DroppingProxy, start_node
from support.broker import free_port

from edge.cli import UserError, build_parser
from edge.clips.evidence import check_bundle, verify_bundle


@pytest.fixture(scope="module")
def node(tmp_path_factory):
    n = start_node(tmp_path_factory.mktemp("apicli"))
    yield n
    n.server.stop()


def cli(*argv: str) -> tuple[int, str]:
    """Run one edgecam command in-process: (exit code, one-line error or '')."""
    args = build_parser().parse_args(list(argv))
    try:
        return int(args.handler(args) or 0), ""
    except UserError as err:
        return 1, str(err)


def clips_checks(bundle: Path) -> list:
    """The store's own bundle checks (``edge.clips.evidence.check_bundle``, what ``clips verify`` prints)."""
    try:
        return check_bundle(bundle, None)
    except Exception as err:  # a broken ZIP is a failed check too
        return [SimpleNamespace(ok=False, line=str(err).strip)]


def clip_bytes(node, cid: str) -> bytes:
    return node.catalog.file_path(cid).read_bytes()


def test_pull_writes_verified_clips_and_meta(node, tmp_path, capsys):
    code, err = cli("clips", "pull", "--node", node.url, "--token", TOKEN, "gate-0001", "street-0001",
                    "-o", str(tmp_path))
    assert (code, err) == (0, "")
    for cid in ("gate-0001", "street-0001"):
        assert (tmp_path / f"{cid}.mp4").read_bytes() == clip_bytes(node, cid)
        meta = json.loads((tmp_path / f"{cid}.meta.json").read_text())
        assert meta["record"]["sha256"] == node.catalog.get(cid).sha256
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "gate-0001.meta.json", "gate-0001.mp4", "street-0001.meta.json", "street-0001.mp4"]
    assert capsys.readouterr().out.count(" ok\n") == 2
    # pulling again finds the finished file and leaves it alone
    assert cli("clips", "pull", "--node", node.url, "--token", TOKEN, "gate-0001", "-o", str(tmp_path))[0] == 0


def test_pull_resumes_after_a_dropped_connection(node, tmp_path):
    size = len(clip_bytes(node, "gate-0001"))
    proxy = DroppingProxy(node.port, after=size // 2, drops=1)
    try:
        url = f"http://127.0.0.1:{proxy.port}"
        assert cli("clips", "pull", "--node", url, "--token", TOKEN, "gate-0001", "-o", str(tmp_path)) == (0, "")
    finally:
        proxy.close()
    assert (tmp_path / "gate-0001.mp4").read_bytes() == clip_bytes(node, "gate-0001")
    clip_requests = [r for r in proxy.requests if b".mp4 " in r]
    assert len(clip_requests) == 2
    assert b"Range: bytes=" not in clip_requests[0]
    resumed = clip_requests[1].decode()
    assert "Range: bytes=" in resumed and f'If-Range: "{node.catalog.get("gate-0001").sha256}"' in resumed
    offset = int(resumed.split("Range: bytes=")[1].split("-")[0])
    assert 0 < offset < size // 2


def test_interrupted_pull_keeps_part_and_a_later_run_finishes(node, tmp_path, capsys):
    size = len(clip_bytes(node, "gate-0002"))
    proxy = DroppingProxy(node.port, after=size // 6, drops=100)
    try:
        code, err = cli("clips", "pull", "--node", f"http://127.0.0.1:{proxy.port}", "--token", TOKEN, "gate-0002",
                        "-o", str(tmp_path))
    finally:
        proxy.close()
    assert code == 1 and "connection lost after" in err and "partial file kept" in err
    part = tmp_path / "gate-0002.mp4.part"
    assert 0 < part.stat().st_size < size and not (tmp_path / "gate-0002.mp4").exists()
    assert part.read_bytes() == clip_bytes(node, "gate-0002")[: part.stat().st_size]
    assert cli("clips", "pull", "--node", node.url, "--token", TOKEN, "gate-0002", "-o", str(tmp_path)) == (0, "")
    assert (tmp_path / "gate-0002.mp4").read_bytes() == clip_bytes(node, "gate-0002")
    assert not part.exists() and not (tmp_path / "gate-0002.mp4.part.etag").exists()


def test_sha_mismatch_is_refused(tmp_path):
    n = start_node(tmp_path / "node")
    try:
        rec = n.catalog.get("gate-0001")
        n.catalog._records["gate-0001"] = type(rec)(**{**rec.__dict__, "sha256": "0" * 64})
        code, err = cli("clips", "pull", "--node", n.url, "--token", TOKEN, "gate-0001", "-o", str(tmp_path / "out"))
    finally:
        n.server.stop()
    assert code == 1 and "sha256 mismatch" in err
    assert not list((tmp_path / "out").glob("*.mp4*"))


def test_bundle_verifies_and_one_altered_byte_fails(node, tmp_path):
    bundle = tmp_path / "evidence.zip"
    code, err = cli("clips", "pull", "--node", node.url, "--token", TOKEN, "gate-0001", "gate-0002",
                    "-o", str(tmp_path / "pulled"), "--bundle", str(bundle))
    assert (code, err) == (0, "")
    assert verify_bundle(bundle) == []
    assert all(c.ok for c in clips_checks(bundle)), [c.line() for c in clips_checks(bundle)]
    with zipfile.ZipFile(bundle) as zf:
        manifest = json.loads(zf.read("manifest.json"))
        assert zf.read("clips/gate-0001.mp4") == clip_bytes(node, "gate-0001")
        assert zf.read("pubkey.txt").decode().strip() == node.catalog.public_key()
        info = zf.getinfo("clips/gate-0002.mp4")
    assert [c["id"] for c in manifest["clips"]] == ["gate-0001", "gate-0002"]
    data = bytearray(bundle.read_bytes())
    data[info.header_offset + 30 + len(info.filename) + len(info.extra) + 5000] ^= 0x01  # inside the clip
    bad = tmp_path / "altered.zip"
    bad.write_bytes(bytes(data))
    assert verify_bundle(bad) != []
    assert not all(c.ok for c in clips_checks(bad))
    # a consistent rewrite that only swaps clip bytes (fresh CRC) is caught by the manifest hash
    swapped = tmp_path / "swapped.zip"
    with zipfile.ZipFile(bundle) as src, zipfile.ZipFile(swapped, "w") as dst:
        for item in src.infolist():
            body = src.read(item)
            if item.filename == "clips/gate-0001.mp4":
                body = body[:-1] + bytes([body[-1] ^ 1])
            dst.writestr(item, body)
    assert any("does not match its sha256" in p for p in verify_bundle(swapped))
    assert not all(c.ok for c in clips_checks(swapped))


def test_list_table_and_json(node, capsys):
    code = cli("clips", "list", "--node", node.url, "--token", TOKEN, "--camera", "gate", "--label", "person")
    assert code == (0, "")
    out = capsys.readouterr().out.splitlines()
    assert out[0].split()[:3] == ["ID", "CAMERA", "START"] and len(out) == 2 and out[1].startswith("gate-0002")
    assert cli("clips", "list", "--node", node.url, "--token", TOKEN, "--json", "--since", "1795000060") == (0, "")
    rows = json.loads(capsys.readouterr().out)
    assert [r["id"] for r in rows] == ["gate-0002"]


def test_tokens_from_env_and_file(node, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("EDGECAM_TOKEN", TOKEN)
    assert cli("clips", "list", "--node", node.url, "--json")[0] == 0
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n")
    monkeypatch.delenv("EDGECAM_TOKEN")
    assert cli("clips", "list", "--node", node.url, "--token-file", str(token_file), "--json")[0] == 0
    assert cli("clips", "list", "--node", node.url) == (1, "no token: pass --token, --token-file or set EDGECAM_TOKEN")


def test_one_line_errors(node, tmp_path):
    assert cli("clips", "list", "--node", node.url, "--token", "nope") == (1, "token rejected by node")
    code, err = cli("clips", "list", "--node", f"http://127.0.0.1:{free_port()}", "--token", TOKEN)
    assert code == 1 and err.startswith("cannot reach node http://127.0.0.1:")
    code, err = cli("clips", "pull", "--node", node.url, "--token", TOKEN, "no-such-clip", "-o", str(tmp_path))
    assert (code, err) == (1, "not found on node: /api/v1/clips/no-such-clip/meta")
    code, err = cli("clips", "pull", "--node", node.url, "--token", TOKEN, "gate-0001", "nope", "-o", str(tmp_path))
    assert (code, err) == (1, "1 of 2 clip(s) not pulled")
    code, err = cli("clips", "pull", "--node", node.url, "--token", TOKEN, "../etc", "-o", str(tmp_path))
    assert code == 1
    assert cli("clips", "list", "--node", "ftp://x", "--token", TOKEN)[0] == 1


def test_token_new_prints_hash_line_only(capsys):
    from edge.api.auth import parse_token_lines

    assert cli("token", "new", "--name", "tech-anna") == (0, "")
    out = capsys.readouterr().out
    token = out.splitlines()[0].rsplit(" ", 1)[1]
    line = out.splitlines()[2].strip().strip(",").strip('"')
    assert token not in line and parse_token_lines([line])[0].name == "tech-anna"
    import hashlib

    assert parse_token_lines([line])[0].digest == hashlib.sha256(token.encode()).digest()
    assert Path  # keep the import used


def test_tls_node_with_self_signed_cert(tmp_path):
    import subprocess

    from edge.api.server import make_ssl_context

    project = Path(__file__).resolve().parent.parent
    subprocess.run([str(project / "scripts" / "make-api-cert"), str(tmp_path / "tls"), "127.0.0.1"],
                   check=True, capture_output=True, timeout=30)
    cert, key = tmp_path / "tls" / "api-cert.pem", tmp_path / "tls" / "api-key.pem"
    n = start_node(tmp_path / "node", ssl_context=make_ssl_context(cert, key))
    try:
        url = f"https://127.0.0.1:{n.port}"
        assert cli("clips", "pull", "--node", url, "--token", TOKEN, "gate-0001", "-o", str(tmp_path / "out"),
                   "--cafile", str(cert)) == (0, "")
        assert (tmp_path / "out" / "gate-0001.mp4").read_bytes() == n.catalog.file_path("gate-0001").read_bytes()
        code, err = cli("clips", "list", "--node", url, "--token", TOKEN)  # the system CAs don't know this cert
        assert code == 1 and err.startswith("cannot reach node") and "CERTIFICATE_VERIFY_FAILED" in err
    finally:
        n.server.stop()


def test_stale_part_with_old_etag_starts_over(node, tmp_path):
    (tmp_path / "gate-0001.mp4.part").write_bytes(b"x" * 5000)  # from some other version of the clip
    (tmp_path / "gate-0001.mp4.part.etag").write_text('"0000"')
    assert cli("clips", "pull", "--node", node.url, "--token", TOKEN, "gate-0001", "-o", str(tmp_path)) == (0, "")
    assert (tmp_path / "gate-0001.mp4").read_bytes() == clip_bytes(node, "gate-0001")


def test_stop_with_a_stalled_download_and_busy_port(tmp_path):
    import socket
    import time

    from edge.api.server import ApiServer

    n = start_node(tmp_path / "node", write_timeout=30.0)
    stalled = socket.create_connection(("127.0.0.1", n.port))
    stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    stalled.sendall(f"GET /api/v1/clips/gate-0002.mp4 HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\n\r\n"
                    .encode())
    assert stalled.recv(100).startswith(b"HTTP/1.1 200")  # then stop reading
    busy = ApiServer(n.catalog, n.server._handlers.view, "127.0.0.1", n.port, [])
    with pytest.raises(RuntimeError, match="cannot listen on 127.0.0.1"):
        busy.start()
    busy.stop()
    t0 = time.monotonic()
    n.server.stop()
    assert time.monotonic() - t0 < 5
    stalled.close()


def test_bad_tls_files_are_one_line(tmp_path):
    from edge.api.server import make_ssl_context

    with pytest.raises(ValueError, match="api.tls_cert/api.tls_key: cannot load"):
        make_ssl_context(tmp_path / "missing.pem", tmp_path / "missing.key")
