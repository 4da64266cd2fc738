"""Thumbnails for the desk's search rows: pulled lazily from the node's LAN API, cached on central.

The node serves each clip's thumbnail (``GET /api/v1/clips/<id>/thumb.jpg``, taken at the first detection with
its box drawn). The desk asks for it only when a row's image is requested, over the node's API with the token
registered for central, with a short timeout so a slow or unreachable node costs one bounded wait (and then
``NEGATIVE_TTL`` seconds of immediate "no thumbnail" for every row of that node), never the search itself.

The cache is *not* evidence: it lives under ``[evidence] path``/``thumbs/`` apart from the evidence store
(``sha256/…``, ``clips/…``), content addressed (``thumbs/sha256/ab/<sha>.jpg``, written once by atomic
rename) with a (node, clip) index beside it; retention of the evidence store never looks at it, and deleting
the folder only makes the desk ask the nodes again.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
import threading
import time
import urllib.parse
from pathlib import Path

from ..api.client import NodeClient
from ..errors import UserError
from .fetch import read_node_token

TIMEOUT = 3.0  # seconds one node may take to answer a thumbnail request
NEGATIVE_TTL = 60.0  # seconds a failed node (or a clip it has no thumbnail of) is not asked again
MAX_BYTES = 2 * 1024 * 1024
_ID = re.compile(r"^[A-Za-z0-9_.-]{1,128}$")
_SHA = re.compile(r"^[0-9a-f]{64}$")


class ThumbCache:
    """Content-addressed JPEGs under ``root/thumbs`` with a per-(node, clip) index; thread-safe."""

    def __init__(self, root: Path, timeout: float = TIMEOUT, negative_ttl: float = NEGATIVE_TTL) -> None:
        self.dir = Path(root) / "thumbs"
        self.evidence_root = Path(root)
        self.timeout, self.negative_ttl = timeout, negative_ttl
        self._failed: dict[tuple[str, str], float] = {}
        self._lock = threading.Lock()

    def _index(self, node: str, clip: str) -> Path:
        return self.dir / "index" / node / clip

    def _blob(self, sha: str) -> Path:
        return self.dir / "sha256" / sha[:2] / f"{sha}.jpg"

    def cached(self, node: str, clip: str) -> Path | None:
        """The cached JPEG of this clip, if central has it."""
        if not (_ID.match(node) and _ID.match(clip)):
            return None
        try:
            sha = self._index(node, clip).read_text().strip()
        except OSError:
            return None
        blob = self._blob(sha) if _SHA.match(sha) else None
        return blob if blob is not None and blob.is_file() else None

    def put(self, node: str, clip: str, jpeg: bytes) -> Path:
        sha = hashlib.sha256(jpeg).hexdigest()
        blob = self._blob(sha)
        if not blob.is_file():
            _write_new(blob, jpeg)
        _write_new(self._index(node, clip), (sha + "\n").encode())
        return blob

    def get(self, node: dict, clip: str) -> Path | None:
        """The thumbnail of ``clip`` on ``node`` (a registered node's row): cached, or pulled now in at most
        ``timeout`` seconds; None (the page shows its placeholder) when the node has none or cannot be reached."""
        name = node["node"]
        have = self.cached(name, clip)
        if have is not None or not node.get("api_url") or not _ID.match(clip):
            return have
        now = time.monotonic()
        with self._lock:
            if max(self._failed.get((name, ""), 0.0), self._failed.get((name, clip), 0.0)) > now:
                return None
        try:
            jpeg = self._pull(node["api_url"], read_node_token(self.evidence_root, name), clip)
            key = (name, clip)  # the node answered: this clip has no thumbnail (or not a JPEG)
        except UserError as err:
            jpeg = None
            # unreachable, silent or refusing us: every row of this node gets the placeholder at once for a while,
            # rather than each one waiting out the timeout; a clip the node does not have is that clip's alone
            key = (name, clip) if str(err).startswith("not found on node") else (name, "")
        if jpeg is None:
            with self._lock:
                if len(self._failed) > 10_000:
                    self._failed = {k: t for k, t in self._failed.items() if t > now}
                self._failed[key] = now + self.negative_ttl
            return None
        return self.put(name, clip, jpeg)

    def _pull(self, api_url: str, token: str, clip: str) -> bytes | None:
        client = NodeClient(api_url, token, timeout=self.timeout)
        deadline = time.monotonic() + self.timeout
        chunks, size = [], 0
        try:
            with client.open(f"/api/v1/clips/{urllib.parse.quote(clip)}/thumb.jpg") as resp:
                if resp.status != 200:
                    return None
                while block := resp.read(64 * 1024):
                    size += len(block)
                    if size > MAX_BYTES or time.monotonic() > deadline:
                        return None
                    chunks.append(block)
        except OSError:  # the node stalled or dropped mid-answer
            return None
        jpeg = b"".join(chunks)
        return jpeg if jpeg.startswith(b"\xff\xd8\xff") else None


def _write_new(path: Path, data: bytes) -> None:
    """Write by atomic rename, so a reader sees the whole file or none."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".part-")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
