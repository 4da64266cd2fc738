"""Helpers for API tests: a served catalog of real clips, raw HTTP requests, and a connection-dropping proxy."""

from __future__ import annotations

import http.client
import socket
import threading
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from edge.api.auth import hash_line
from edge.api.server import ApiServer

from .assets import video_path
from .clipcat import DictCatalog, StillView

TOKEN = "test-token-0123456789abcdefghijklmnopqrstuv"
BASE_TS = 1_795_000_000.0


@dataclass
class Node:
    server: ApiServer
    catalog: DictCatalog
    root: Path

    @property
    def port(self) -> int:
        return self.server.port

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def make_catalog(root: Path) -> DictCatalog:
    """Three real clips on two cameras, thumbnails, and a symlink in the store that points outside it."""
    cat = DictCatalog(root / "store")
    cat.add_clip("gate-0001", video_path("road"), "gate", BASE_TS, 8.0, ("car",))
    cat.add_clip("gate-0002", video_path("road"), "gate", BASE_TS + 100, 4.0, ("car", "person"), offset=8.0)
    cat.add_clip("street-0001", video_path("street"), "street", BASE_TS + 50, 6.0, ("person",))
    ok, jpg = cv2.imencode(".jpg", np.full((36, 64, 3), 128, np.uint8))
    (cat.root / "gate" / "gate-0001.jpg").write_bytes(jpg.tobytes())
    outside = root / "secret.mp4"
    outside.write_bytes(b"not for you\n" * 100)
    (cat.root / "gate" / "evil.mp4").symlink_to(outside)
    cat.add_file("evil", "gate/evil.mp4", "gate", BASE_TS + 1, BASE_TS + 2, ("car",))
    return cat


def start_node(root: Path, **kwargs) -> Node:
    cat = make_catalog(root)
    ok, jpg = cv2.imencode(".jpg", np.zeros((36, 64, 3), np.uint8))
    server = ApiServer(cat, StillView({"gate": jpg.tobytes()}), "127.0.0.1", 0, [hash_line(TOKEN, "alice")], **kwargs)
    server.start()
    return Node(server, cat, root)


def request(port: int, path: str, headers: dict[str, str] | None = None, method: str = "GET",
            token: str | None = TOKEN) -> tuple[int, dict[str, str], bytes]:
    """One request sent exactly as given (no path normalisation)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.putrequest(method, path, skip_host=False, skip_accept_encoding=True)
        all_headers = dict(headers or {})
        if token is not None:
            all_headers.setdefault("Authorization", f"Bearer {token}")
        for k, v in all_headers.items():
            conn.putheader(k, v)
        conn.endheaders()
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()


def raw(port: int, data: bytes, timeout: float = 10.0) -> bytes:
    """Send raw bytes, read the answer until the server closes."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(data)
        chunks = []
        try:
            while chunk := s.recv(65536):
                chunks.append(chunk)
        except (TimeoutError, ConnectionResetError):
            pass
        return b"".join(chunks)


class DroppingProxy:
    """TCP proxy to the node that cuts the first ``drops`` clip downloads (``.mp4``) after ``after`` response bytes."""

    def __init__(self, target_port: int, after: int, drops: int) -> None:
        self.target_port, self.after, self.drops = target_port, after, drops
        self.requests: list[bytes] = []
        self._sock = socket.create_server(("127.0.0.1", 0))
        self.port = self._sock.getsockname()[1]
        self._closed = False
        self._dropped = 0
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._sock.accept()
            except OSError:
                return
            index = len(self.requests)
            self.requests.append(b"")
            threading.Thread(target=self._pipe, args=(client, index), daemon=True).start()

    def _pipe(self, client: socket.socket, index: int) -> None:
        with client, socket.create_connection(("127.0.0.1", self.target_port)) as up:
            head = client.recv(65536)
            self.requests[index] = head
            limit = None
            with self._lock:
                if b".mp4 " in head and not head.startswith(b"HEAD") and self._dropped < self.drops:
                    self._dropped += 1
                    limit = self.after
            up.sendall(head)
            sent = 0
            while chunk := up.recv(65536):
                if limit is not None and sent + len(chunk) >= limit:
                    client.sendall(chunk[: limit - sent])
                    client.shutdown(socket.SHUT_RDWR)
                    return
                client.sendall(chunk)
                sent += len(chunk)

    def close(self) -> None:
        self._closed = True
        self._sock.close()
