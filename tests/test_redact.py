"""``edge.redact.redact_url``: no password survives, anything else is kept."""

from __future__ import annotations

import pytest

from edge.redact import redact_url


@pytest.mark.parametrize(("text", "want"), [
    ("rtsp://viewer:S3cretPass@10.0.0.7:554/stream1", "rtsp://viewer:***@10.0.0.7:554/stream1"),
    ("postgresql://central:p@ss@db.lan:5432/events", "postgresql://central:***@db.lan:5432/events"),
    ("postgres://u:a@b@c@db/x?sslmode=require", "postgres://u:***@db/x?sslmode=require"),
    ("http://admin:pa:ss@cam/", "http://admin:***@cam/"),
    ("https://u:%40x@h", "https://u:***@h"),
    ("mqtts://edge:pw@broker:8883", "mqtts://edge:***@broker:8883"),
    ("rtsp://:onlypass@cam/s", "rtsp://:***@cam/s"),
    ("postgresql://nobody@127.0.0.1:1/none", "postgresql://nobody@127.0.0.1:1/none"),
    ("rtsp://10.0.0.7/stream", "rtsp://10.0.0.7/stream"),
    ("no url here: a@b:c", "no url here: a@b:c"),
])
def test_bare_urls(text: str, want: str) -> None:
    assert redact_url(text) == want


def test_inside_longer_messages_and_json() -> None:
    msg = ('cannot open rtsp://viewer:S3cretPass@10.0.0.7/s (timeout); also {"error": '
           '"postgresql://c:p@ss@db/e: refused"} and \'mqtt://u:x@b\'')
    out = redact_url(msg)
    for secret in ("S3cretPass", "p@ss", "ss@db", ":x@"):
        assert secret not in out
    assert out == ('cannot open rtsp://viewer:***@10.0.0.7/s (timeout); also {"error": '
                   '"postgresql://c:***@db/e: refused"} and \'mqtt://u:***@b\'')
    assert redact_url(out) == out  # idempotent


def test_two_urls_on_one_line_are_each_redacted() -> None:
    out = redact_url("rtsp://a:one@h1/x rtsp://b:two@h2/y")
    assert out == "rtsp://a:***@h1/x rtsp://b:***@h2/y"
