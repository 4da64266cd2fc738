"""LAN API server: real clips served in-process on a free port; bytes, ranges, auth and hostile input."""

from __future__ import annotations

import hashlib
import json
import socket
import time

import pytest
from support.apinode import TOKEN, raw, request, start_node

from edge.api.auth import FailureLimiter, TokenChecker, bearer_token, hash_line, parse_token_lines
from edge.api.ranges import RangeError, parse_range


@pytest.fixture(scope="module")
def node(tmp_path_factory):
    n = start_node(tmp_path_factory.mktemp("api"), idle_timeout=1.5)
    yield n
    n.server.stop()


def test_list_matches_files_and_filters(node):
    status, headers, body = request(node.port, "/api/v1/clips")
    assert status == 200 and headers["content-type"].startswith("application/json")
    rows = json.loads(body)
    assert [r["id"] for r in rows] == ["gate-0002", "street-0001", "evil", "gate-0001"]  # newest first
    for row in rows:
        assert set(row) >= {"id", "camera", "start_ts", "end_ts", "labels", "bytes", "sha256"}
    first = next(r for r in rows if r["id"] == "gate-0001")
    path = node.catalog.root / "gate" / "gate-0001.mp4"
    assert first["bytes"] == path.stat().st_size
    assert first["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    rows = json.loads(request(node.port, "/api/v1/clips?camera=gate&label=person")[2])
    assert [r["id"] for r in rows] == ["gate-0002"]
    since = json.loads(request(node.port, "/api/v1/clips?since=2026-11-19T08:14:00Z")[2])
    assert all(r["end_ts"] >= 1795594440 for r in since)
    page1 = request(node.port, "/api/v1/clips?limit=2")
    assert [r["id"] for r in json.loads(page1[2])] == ["gate-0002", "street-0001"]
    assert page1[1]["x-next-after"] == "street-0001"
    page2 = json.loads(request(node.port, "/api/v1/clips?limit=2&after=street-0001")[2])
    assert [r["id"] for r in page2] == ["evil", "gate-0001"]
    for bad in ("limit=0", "limit=abc", "since=yesterday", "camera=../x", "label=a%00b"):
        assert request(node.port, f"/api/v1/clips?{bad}")[0] == 400, bad


def test_full_download_is_byte_identical(node):
    path = node.catalog.root / "gate" / "gate-0001.mp4"
    status, headers, body = request(node.port, "/api/v1/clips/gate-0001.mp4?download=1")
    assert status == 200
    assert body == path.read_bytes()
    sha = hashlib.sha256(body).hexdigest()
    assert headers["etag"] == f'"{sha}"' and node.catalog.get("gate-0001").sha256 == sha
    assert headers["content-type"] == "video/mp4" and headers["accept-ranges"] == "bytes"
    assert headers["content-disposition"] == 'attachment; filename="gate-0001.mp4"'
    assert int(headers["content-length"]) == len(body)
    head = request(node.port, "/api/v1/clips/gate-0001.mp4", method="HEAD")
    assert head[0] == 200 and head[2] == b"" and head[1]["content-length"] == str(len(body))
    assert request(node.port, "/api/v1/clips/gate-0001.mp4", {"If-None-Match": headers["etag"]})[0] == 304


def test_ranges(node):
    data = (node.catalog.root / "gate" / "gate-0001.mp4").read_bytes()
    size, etag = len(data), f'"{hashlib.sha256(data).hexdigest()}"'
    status, headers, body = request(node.port, "/api/v1/clips/gate-0001.mp4", {"Range": "bytes=100-1099"})
    assert status == 206 and body == data[100:1100]
    assert headers["content-range"] == f"bytes 100-1099/{size}"
    assert request(node.port, "/api/v1/clips/gate-0001.mp4", {"Range": "bytes=-500"})[2] == data[-500:]
    assert request(node.port, "/api/v1/clips/gate-0001.mp4", {"Range": f"bytes={size - 10}-"})[2] == data[-10:]
    # If-Range: our ETag honours the range, anything else gets the whole file
    assert request(node.port, "/api/v1/clips/gate-0001.mp4", {"Range": "bytes=5-9", "If-Range": etag})[0] == 206
    status, _, body = request(node.port, "/api/v1/clips/gate-0001.mp4", {"Range": "bytes=5-9", "If-Range": '"old"'})
    assert status == 200 and body == data
    for header, want in (
        (f"bytes={size}-", 416), ("bytes=-0", 416), ("bytes=0-1,5-9", 416),
        ("bytes=abc", 400), ("items=0-1", 400), ("bytes=9-5", 400), ("bytes=", 400), ("bytes=--1", 400),
        ("bytes=99999999999999999999999999-", 400),
    ):
        status, headers, body = request(node.port, "/api/v1/clips/gate-0001.mp4", {"Range": header})
        assert status == want, header
        assert headers["content-range"] == f"bytes */{size}"
        assert json.loads(body)["status"] == want


def test_range_parser_edges():
    assert parse_range("bytes=0-", 10).content_range() == "bytes 0-9/10"
    assert parse_range("bytes=5-100", 10).length == 5
    assert parse_range("bytes=-100", 10).start == 0
    with pytest.raises(RangeError) as err:
        parse_range("bytes=0-", 0)
    assert err.value.status == 416


def test_meta_thumb_snapshot_health_hold(node):
    meta = json.loads(request(node.port, "/api/v1/clips/gate-0001/meta")[2])
    assert meta["record"]["sha256"] == node.catalog.get("gate-0001").sha256
    status, headers, body = request(node.port, "/api/v1/clips/gate-0001/thumb.jpg")
    assert status == 200 and body[:2] == b"\xff\xd8" and headers["content-type"] == "image/jpeg"
    assert request(node.port, "/api/v1/clips/gate-0002/thumb.jpg")[0] == 404
    status, headers, body = request(node.port, "/api/v1/snapshot/gate.jpg")
    assert status == 200 and body[:2] == b"\xff\xd8"
    assert request(node.port, "/api/v1/snapshot/nocam.jpg")[0] == 404
    assert json.loads(request(node.port, "/api/v1/health")[2])["state"] == "running"
    assert request(node.port, "/api/v1/clips/gate-0002/hold", method="POST")[0] == 200
    assert node.catalog.get("gate-0002").held is True
    row = next(r for r in json.loads(request(node.port, "/api/v1/clips")[2]) if r["id"] == "gate-0002")
    assert row["held"] is True
    assert request(node.port, "/api/v1/clips/gate-0002/hold", method="DELETE")[0] == 200
    assert node.catalog.get("gate-0002").held is False
    assert request(node.port, "/api/v1/clips/nope/hold", method="POST")[0] == 404
    assert request(node.port, "/api/v1/clips/gate-0002/hold", method="PUT")[0] == 405
    assert request(node.port, "/api/v1/pubkey")[2].decode() == node.catalog.public_key()
    spec = json.loads(request(node.port, "/api/v1/openapi.json")[2])
    assert spec["openapi"].startswith("3.") and "/api/v1/clips/{id}.mp4" in spec["paths"]


def test_public_routes_and_auth(node):
    assert request(node.port, "/healthz", token=None)[:3:2] == (200, b"ok")
    status, headers, body = request(node.port, "/", token=None)
    assert status == 200 and b"<html" in body and headers["x-frame-options"] == "DENY"
    for path in ("/api/v1/clips", "/api/v1/clips/gate-0001.mp4", "/api/v1/health", "/api/v1/snapshot/gate.jpg"):
        status, headers, body = request(node.port, path, token=None)
        assert status == 401 and headers["www-authenticate"].startswith("Bearer")
        assert request(node.port, path, {"Authorization": "Basic dXNlcjpwYXNz"}, token=None)[0] == 401
    # a cookie or a query-string token is not a credential (CSRF: only the header counts)
    assert request(node.port, f"/api/v1/clips/gate-0001/hold?token={TOKEN}", {"Cookie": f"token={TOKEN}"},
                   method="POST", token=None)[0] == 401


def test_wrong_tokens_get_429(tmp_path):
    n = start_node(tmp_path, limiter=FailureLimiter(max_failures=4, window=30.0))
    try:
        codes = [request(n.port, "/api/v1/clips", token=f"wrong-{i}")[0] for i in range(6)]
        assert codes == [401, 401, 401, 401, 429, 429]
        status, headers, _ = request(n.port, "/api/v1/clips", token="wrong-6")
        assert status == 429 and 1 <= int(headers["retry-after"]) <= 31
        assert request(n.port, "/api/v1/clips")[0] == 200  # the right token is never locked out (#14.14)
        assert request(n.port, "/healthz", token=None)[0] == 200
    finally:
        n.server.stop()


def test_limiter_window_slides():
    lim = FailureLimiter(max_failures=3, window=10.0)
    for t in (0.0, 1.0, 2.0):
        lim.record_failure("a", now=t)
    assert lim.retry_after("a", now=3.0) == pytest.approx(7.0)
    assert lim.retry_after("b", now=3.0) == 0.0
    assert lim.retry_after("a", now=10.5) == 0.0  # the first failure aged out


def test_token_lines():
    line = hash_line("s3cret", "bob")
    assert "s3cret" not in line
    checker = TokenChecker(parse_token_lines([line]))
    assert checker.name_for("s3cret") == "bob" and checker.name_for("s3cre") is None
    assert bearer_token("Bearer abc") == "abc" and bearer_token("bearer  abc ") == "abc"
    assert bearer_token("Basic abc") is None and bearer_token("Bearer ") is None
    with pytest.raises(ValueError, match=r"api.tokens\[0\]"):
        parse_token_lines(["plain-token"])


@pytest.mark.parametrize("path", [
    "/api/v1/clips/..%2f..%2fsecret.mp4",
    "/api/v1/clips/%2e%2e%2fsecret.mp4",
    "/api/v1/clips/%2e%2e/meta",
    "/api/v1/clips/../secret.mp4",
    "/api/v1/clips/..%5csecret.mp4",
    "/api/v1/clips/%2fetc%2fpasswd.mp4",
    "/api/v1/clips//etc/passwd.mp4",
    "/api/v1/clips/evil.mp4",  # a symlink in the store pointing outside it
    "/api/v1/clips/evil/thumb.jpg",
    "/api/v1/clips/nope.mp4",
    "/api/v1/clips/gate-0001%00.mp4",
    "/api/v1/snapshot/..%2fgate.jpg",
    "/static/..%2f..%2fserver.py",
    "/static/../openapi.json",
    "/static/index.html%00.js",
])
def test_traversal_is_404(node, path):
    status, _, body = request(node.port, path)
    assert status == 404, path
    assert b"not for you" not in body and b"import" not in body


def test_huge_headers_are_4xx(node):
    answer = raw(node.port, b"GET /api/v1/clips HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 20000 + b"\r\n\r\n")
    assert answer.split(b" ", 2)[1] in (b"400", b"431")
    answer = raw(node.port, b"GET /" + b"a" * 20000 + b" HTTP/1.1\r\nHost: x\r\n\r\n")
    assert answer.split(b" ", 2)[1] in (b"400", b"414")
    many = b"".join(b"X-H%d: 1\r\n" % i for i in range(200))
    answer = raw(node.port, b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + many + b"\r\n")
    assert answer.split(b" ", 2)[1] in (b"400", b"431")
    answer = raw(node.port, b"\x16\x03\x01garbage\r\n\r\n")
    assert answer.split(b" ", 2)[1] == b"400"
    assert request(node.port, "/healthz")[0] == 200  # and the server is fine


def test_idle_and_slow_connections_are_closed(node):
    """Slowloris: a connection that never completes its request is closed by the server."""
    t0 = time.monotonic()
    with socket.create_connection(("127.0.0.1", node.port), timeout=20) as s:
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")  # headers never finished
        got = s.recv(1024)  # blocks until the server gives up on us
    assert got == b"" and time.monotonic() - t0 < 15
    with socket.create_connection(("127.0.0.1", node.port), timeout=20) as s:  # nothing sent at all
        assert s.recv(1024) == b""


def test_tickets_open_one_path_for_reading(node):
    status, _, body = request(node.port, "/api/v1/ticket?path=/api/v1/clips/gate-0001.mp4", method="POST")
    assert status == 200
    url = json.loads(body)["url"]
    ticket = url.split("ticket=")[1]
    data = (node.catalog.root / "gate" / "gate-0001.mp4").read_bytes()
    status, _, body = request(node.port, url, {"Range": "bytes=0-99"}, token=None)  # what <video src> does
    assert status == 206 and body == data[:100]
    assert request(node.port, f"/api/v1/clips/gate-0002.mp4?ticket={ticket}", token=None)[0] == 401
    assert request(node.port, f"/api/v1/clips/gate-0001/hold?ticket={ticket}", method="POST", token=None)[0] == 401
    assert request(node.port, f"/api/v1/clips?ticket={ticket}", token=None)[0] == 401
    forged = ticket.rsplit(".", 1)[0] + ".0123456789abcdef0123456789abcdef"
    assert request(node.port, f"/api/v1/clips/gate-0001.mp4?ticket={forged}", token=None)[0] == 401
    for bad in ("/api/v1/clips", "/api/v1/clips/gate-0001/hold", "/etc/passwd", ""):
        assert request(node.port, f"/api/v1/ticket?path={bad}", method="POST")[0] == 400
    assert request(node.port, "/api/v1/ticket?path=/api/v1/clips/gate-0001.mp4", method="POST", token=None)[0] == 401


def test_ticket_expiry():
    from edge.api.auth import TicketSigner

    signer = TicketSigner(ttl=60)
    ticket, expiry = signer.issue("/api/v1/snapshot/gate.jpg", "bob", now=1000.0)
    assert expiry == 1060 and signer.check("/api/v1/snapshot/gate.jpg", ticket, now=1059.0) == "bob"
    assert signer.check("/api/v1/snapshot/gate.jpg", ticket, now=1061.0) is None
    assert TicketSigner().check("/api/v1/snapshot/gate.jpg", ticket, now=1000.0) is None  # other process
