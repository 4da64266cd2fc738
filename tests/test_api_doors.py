"""Small doors of the LAN API (#14.14): throttling that locks nobody out, a global failure budget, a journal
that unauthenticated clients cannot flood, no version-naming Server header, ASCII-only Range digits."""

from __future__ import annotations

import http.client
import logging

import pytest
from support.apinode import TOKEN, raw, request, start_node

from edge.api.auth import FailureLimiter, LogBudget
from edge.api.ranges import RangeError, parse_range


def _from(addr: str, port: int, token: str) -> tuple[int, dict[str, str]]:
    """One GET /api/v1/clips from a chosen loopback source address (127.0.0.0/8 is all local)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10, source_address=(addr, 0))
    try:
        conn.request("GET", "/api/v1/clips", headers={"Authorization": f"Bearer {token}"})
        resp = conn.getresponse()
        resp.read()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}
    finally:
        conn.close()


def test_wrong_tokens_do_not_lock_out_the_right_one(tmp_path):
    n = start_node(tmp_path, limiter=FailureLimiter(max_failures=4, window=30.0))
    try:
        codes = [request(n.port, "/api/v1/clips", token=f"wrong-{i}")[0] for i in range(6)]
        assert codes == [401, 401, 401, 401, 429, 429]
        status, headers, _ = request(n.port, "/api/v1/clips", token="wrong-again")
        assert status == 429 and 1 <= int(headers["retry-after"]) <= 31
        assert [request(n.port, "/api/v1/clips")[0] for _ in range(3)] == [200, 200, 200]  # same address
        assert request(n.port, "/api/v1/clips", token="wrong-7")[0] == 429  # and the guesser is still held
    finally:
        n.server.stop()


def test_many_addresses_share_one_failure_budget(tmp_path):
    lim = FailureLimiter(max_failures=10, window=60.0, global_failures=25)
    n = start_node(tmp_path, limiter=lim)
    try:
        codes = [_from(f"127.0.0.{10 + i}", n.port, f"guess-{i}-{j}")[0] for i in range(30) for j in range(3)]
        assert codes.count(401) == 25 and codes.count(429) == 90 - 25  # 30 addresses x 3 = 90 tries, 25 judged
        assert _from("127.0.0.99", n.port, TOKEN)[0] == 200  # a valid token from anywhere still works
    finally:
        n.server.stop()


def test_unauthenticated_floods_write_a_bounded_log(tmp_path, caplog):
    budget = LogBudget(per_window=5, window=3600.0)
    n = start_node(tmp_path, limiter=FailureLimiter(max_failures=10_000, global_failures=10_000), log_budget=budget)
    caplog.set_level(logging.INFO, logger="edge.api")
    try:
        for i in range(60):
            assert raw(n.port, b"GET /\x00 HTTP/1.1\r\nHost: x\r\n\r\n").startswith(b"HTTP/1.0 400")
            assert request(n.port, "/api/v1/clips", token=f"bad-{i}")[0] == 401
            assert request(n.port, "/api/v1/health", token=None)[0] == 401
        assert request(n.port, "/api/v1/clips")[0] == 200
    finally:
        n.server.stop()
    lines = [r.getMessage() for r in caplog.records]
    assert sum("Error handling request" in m for m in lines) == 5
    assert sum("bad token from" in m for m in lines) == 5
    unauth = [m for m in lines if " - " in m and m.startswith("127.0.0.1 -")]
    assert len(unauth) == 5  # access lines of unauthenticated requests (180 were made)
    assert sum(" alice GET /api/v1/clips 200 " in m for m in lines) == 1  # a token holder's line is kept
    summary = [m for m in lines if "held back" in m]
    assert len(summary) == 1
    assert "55 bad tokens" in summary[0] and "55 parser errors" in summary[0]
    assert "175 unauthenticated requests" in summary[0] and "from 1 address(es)" in summary[0]


def test_server_header_names_no_versions(tmp_path):
    n = start_node(tmp_path)
    try:
        answers = [raw(n.port, b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"),
                   raw(n.port, b"GET /api/v1/clips HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"),
                   raw(n.port, b"GARBAGE\r\n\r\n"), raw(n.port, b"GET /\x00 HTTP/1.1\r\n\r\n")]
        for answer in answers:
            head = answer.split(b"\r\n\r\n", 1)[0].decode("latin-1").lower()
            assert "\r\nserver: edgecam" in head, head
            assert "python" not in head and "aiohttp" not in head
    finally:
        n.server.stop()


@pytest.mark.parametrize("header", ["bytes=\u0661\u0660-", "bytes=0-\u0669", "bytes=\uff11-", "bytes=-\u0966\u0967",
                                    "bytes=\u00a00-1"])
def test_range_accepts_ascii_digits_only(header):
    with pytest.raises(RangeError) as err:
        parse_range(header, 1000)
    assert err.value.status == 400


def test_range_with_arabic_indic_digits_is_400_on_the_wire(tmp_path):
    n = start_node(tmp_path)
    try:
        for value in ("\u0661\u0660-", "0-\u0669"):
            head = b"GET /api/v1/clips/gate-0001.mp4 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
            answer = raw(n.port, head + b"Authorization: Bearer " + TOKEN.encode() + b"\r\nRange: bytes="
                         + value.encode() + b"\r\n\r\n")
            assert answer.startswith(b"HTTP/1.1 400"), answer[:100]
        assert request(n.port, "/api/v1/clips?limit=%D9%A1%D9%A0")[0] == 400
    finally:
        n.server.stop()
