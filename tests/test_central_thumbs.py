"""Central's thumbnail cache: a node that accepts the connection but never answers costs one bounded wait,
then answers "no thumbnail" at once for every clip of that node until the negative cache expires; a real JPEG
is cached by content."""

from __future__ import annotations

import hashlib
import socket
import time
from pathlib import Path

from edge.central.fetch import save_node_token
from edge.central.thumbs import ThumbCache


def test_a_silent_node_costs_one_bounded_wait_then_none_at_once(tmp_path: Path) -> None:
    (tmp_path / "token").write_text("t" * 40 + "\n")
    save_node_token(tmp_path, "mute-node", str(tmp_path / "token"))
    with socket.socket() as silent:  # listens (the kernel completes the handshake) but nobody ever answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        node = {"node": "mute-node", "api_url": f"http://127.0.0.1:{silent.getsockname()[1]}"}
        cache = ThumbCache(tmp_path, timeout=0.5, negative_ttl=30.0)
        t0 = time.monotonic()
        assert cache.get(node, "cam-1") is None
        first = time.monotonic() - t0
        t0 = time.monotonic()
        assert cache.get(node, "cam-1") is None and cache.get(node, "cam-2") is None  # any row of that node
        again = time.monotonic() - t0
    assert 0.4 <= first < 2.0, first
    assert again < 0.05, again
    assert not (tmp_path / "thumbs" / "index" / "mute-node").exists()


def test_put_is_content_addressed_and_apart_from_the_evidence(tmp_path: Path) -> None:
    cache = ThumbCache(tmp_path)
    jpeg = b"\xff\xd8\xff\xe0" + b"x" * 1000 + b"\xff\xd9"
    a = cache.put("gate-node", "cam-1", jpeg)
    b = cache.put("gate-node", "cam-2", jpeg)
    sha = hashlib.sha256(jpeg).hexdigest()
    assert a == b == tmp_path / "thumbs" / "sha256" / sha[:2] / f"{sha}.jpg" and a.read_bytes() == jpeg
    assert cache.cached("gate-node", "cam-2") == a and cache.cached("gate-node", "cam-3") is None
    assert cache.cached("../x", "cam-1") is None and not (tmp_path / "sha256").exists()
