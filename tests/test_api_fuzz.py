"""Fuzz the running API with hypothesis: hostile paths, queries and headers never give a 5xx or a traceback."""

from __future__ import annotations

import urllib.parse

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support.apinode import request, start_node

from edge.api.auth import FailureLimiter

FUZZ = settings(max_examples=150, deadline=None, database=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture])

SEGMENTS = st.one_of(
    st.sampled_from(["..", ".", "%2e%2e", "%2f", "%5c", "%00", "gate-0001", "evil", "gate-0001.mp4", "meta",
                     "thumb.jpg", "hold", "clips", "api", "v1", "snapshot", "gate.jpg", "static", "index.html",
                     "%2e%2e%2f%2e%2e%2fetc%2fpasswd", "~", "%ff", "%", "a" * 300]),
    st.text(min_size=0, max_size=40),
)
PREFIXES = st.sampled_from(["/", "/api/v1/", "/api/v1/clips/", "/api/v1/snapshot/", "/static/", "//"])
HEADER_TEXT = st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=80)


def sendable(path: str) -> str:
    """Percent-encode what http.client refuses to put on the request line; keep existing escapes."""
    return urllib.parse.quote(path, safe="/%.?=&~-_")


@pytest.fixture(scope="module")
def node(tmp_path_factory):
    n = start_node(tmp_path_factory.mktemp("fuzz"), limiter=FailureLimiter(max_failures=10_000, global_failures=10_000))
    yield n
    n.server.stop()


def check(status: int, body: bytes) -> None:
    assert status < 500, body[:200]
    assert b"Traceback" not in body and b'File "' not in body


@FUZZ
@given(prefix=PREFIXES, segments=st.lists(SEGMENTS, max_size=4), suffix=st.sampled_from(["", ".mp4", "/meta", ".jpg"]),
       method=st.sampled_from(["GET", "HEAD", "POST", "DELETE", "PUT", "OPTIONS"]))
def test_paths(node, prefix, segments, suffix, method):
    status, _, body = request(node.port, sendable(prefix + "/".join(segments) + suffix), method=method)
    check(status, body)
    assert b"not for you" not in body  # the file behind the store's symlink


@FUZZ
@given(query=st.dictionaries(st.sampled_from(["since", "until", "label", "camera", "limit", "after", "x"]),
                             st.text(max_size=30), max_size=5))
def test_list_queries(node, query):
    status, _, body = request(node.port, "/api/v1/clips?" + urllib.parse.urlencode(query))
    check(status, body)
    assert status in (200, 400)


@FUZZ
@given(range_=st.one_of(HEADER_TEXT, st.from_regex(r"bytes=[0-9-]{0,12}(,[0-9-]{0,8})?", fullmatch=True)),
       if_range=st.one_of(st.none(), HEADER_TEXT), if_none_match=st.one_of(st.none(), HEADER_TEXT))
def test_range_headers(node, range_, if_range, if_none_match):
    headers = {"Range": range_}
    if if_range is not None:
        headers["If-Range"] = if_range
    if if_none_match is not None:
        headers["If-None-Match"] = if_none_match
    status, _, body = request(node.port, "/api/v1/clips/gate-0001.mp4", headers)
    check(status, body)
    assert status in (200, 206, 304, 400, 416)


@FUZZ
@given(auth=HEADER_TEXT)
def test_auth_headers(node, auth):
    status, _, body = request(node.port, "/api/v1/clips", {"Authorization": auth}, token=None)
    check(status, body)
    assert status in (401, 200)


@FUZZ
@given(ticket=HEADER_TEXT, path=st.sampled_from(["/api/v1/clips/gate-0001.mp4", "/api/v1/clips/gate-0001/thumb.jpg",
                                                 "/api/v1/snapshot/gate.jpg", "/api/v1/clips", "/api/v1/health"]))
def test_ticket_values(node, ticket, path):
    status, _, body = request(node.port, path + "?" + urllib.parse.urlencode({"ticket": ticket}), token=None)
    check(status, body)
    assert status == 401
