"""Fetch requests from central, on the node: clips pushed to central when central cannot reach the node.

Central (``edge/central/push.py``) publishes a signed request on ``<prefix>/<node>/requests`` (QoS 1); this
handler keeps a persistent MQTT session of its own (client id ``<client_id>-requests``), so a request sent
while the node was offline arrives when it is back. A request is acted on only if it is signed by central's
key (``[central] pubkey``), names this node, has not expired and was never seen before (ids kept in
``requests.db`` under storage); anything else is refused with one log line. The clip then goes to the
request's single-use upload URL: META.json first, then the bytes from the offset central reports (``HEAD``),
so a dropped upload resumes where it stopped.
"""

from __future__ import annotations

import base64
import dataclasses
import http.client
import json
import logging
import queue
import sqlite3
import threading
import time
import urllib.parse
from pathlib import Path
from typing import Any

from ..clips.evidence import canonical, parse_public_key
from ..interfaces import ClipCatalog

log = logging.getLogger("edge.fetchrequests")  # the name the journal has shown for these lines
MAX_REQUEST = 4096
SKEW = 300.0  # seconds a request's "issued" may lie in the node's future (clocks differ)


class Refused(Exception):
    """A request the node will not act on; the message is the one log line."""


class RequestHandler:
    def __init__(self, node_id: str, central_pubkey: str, clips: ClipCatalog, storage: Path, settings: Any = None,
                 pause: float = 2.0) -> None:
        self.node_id, self.clips, self.settings, self.pause = node_id, clips, settings, pause
        self.pub = parse_public_key(central_pubkey)
        self.db = sqlite3.connect(str(Path(storage) / "requests.db"), timeout=30, isolation_level=None,
                                  check_same_thread=False)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("CREATE TABLE IF NOT EXISTS seen (id TEXT PRIMARY KEY, expires REAL NOT NULL,"
                        " payload BLOB, done INTEGER NOT NULL DEFAULT 0)")
        self._queue: queue.Queue[bytes | None] = queue.Queue(maxsize=100)
        self._stop = threading.Event()
        self._worker: threading.Thread | None = None
        self._client: Any = None
        self.outcomes: list[str] = []  # what each request came to, newest last (tests and status)

    # --- checks ---------------------------------------------------------------------------------------

    def check(self, payload: bytes, now: float | None = None) -> dict[str, Any]:
        """The request if it may be acted on (and it is recorded as seen), else Refused."""
        now = time.time() if now is None else now
        if len(payload) > MAX_REQUEST:
            raise Refused(f"request of {len(payload)} bytes, over {MAX_REQUEST}")
        try:
            msg = json.loads(payload)
            request, signature = msg["request"], msg.get("signature")
            if not isinstance(request, dict):
                raise TypeError
        except (ValueError, KeyError, TypeError):
            raise Refused("not a fetch request") from None
        if not isinstance(signature, str) or not signature:
            raise Refused(f"unsigned request {str(request.get('id'))[:40]!r}")
        try:
            self.pub.verify(base64.b64decode(signature, validate=True), canonical(request))
        except Exception:
            raise Refused(f"request {str(request.get('id'))[:40]!r} is not signed by central's key") from None
        rid = str(request.get("id", ""))
        if request.get("v") != 1 or request.get("type") != "fetch" or not rid:
            raise Refused(f"request {rid[:40]!r}: unknown version or type")
        if request.get("node") != self.node_id:
            raise Refused(f"request {rid} is for node {request.get('node')!r}, not this one")
        expires, issued = request.get("expires"), request.get("issued")
        if not isinstance(expires, (int, float)) or not isinstance(issued, (int, float)) or expires <= now:
            raise Refused(f"request {rid} expired")
        if issued > now + SKEW:
            raise Refused(f"request {rid} is issued in the future ({issued - now:.0f} s ahead)")
        url = urllib.parse.urlsplit(str(request.get("upload", "")))
        if url.scheme not in ("http", "https") or not url.netloc:
            raise Refused(f"request {rid}: upload URL is not http(s)")
        try:
            self.db.execute("DELETE FROM seen WHERE expires < ?", (now - 86400,))
            self.db.execute("INSERT INTO seen VALUES (?, ?, ?, 0)", (rid, float(expires), payload))
        except sqlite3.IntegrityError:
            raise Refused(f"request {rid} replayed (already acted on)") from None
        return request

    # --- acting -------------------------------------------------------------------------------------------

    def handle(self, payload: bytes, resumed: bool = False) -> str:
        """Check one request and upload its clip; returns (and logs) what happened, in one line.

        An accepted request is kept (``requests.db``) until its upload ends, so a node that restarts in the
        middle finishes it (``resume_pending``) although the broker will not deliver it again.
        """
        request: dict[str, Any] | None = None
        try:
            request = json.loads(payload)["request"] if resumed else self.check(payload)
            outcome = self._upload(request)
            log.info("requests: %s", outcome)
        except Refused as err:
            outcome = f"refused: {err}"
            log.warning("requests: %s", outcome)
        if request is not None and not self._stop.is_set():
            self.db.execute("UPDATE seen SET done = 1, payload = NULL WHERE id = ?", (str(request.get("id")),))
        self.outcomes.append(outcome)
        return outcome

    def pending(self) -> list[bytes]:
        """Accepted requests whose upload has not ended (the node stopped mid-way), not yet expired."""
        rows = self.db.execute("SELECT payload FROM seen WHERE done = 0 AND payload IS NOT NULL AND expires > ?"
                               " ORDER BY rowid", (time.time(),)).fetchall()
        return [bytes(r[0]) for r in rows]

    def _upload(self, request: dict[str, Any]) -> str:
        clip = str(request.get("clip", ""))
        meta, path = self.clips.meta(clip), self.clips.file_path(clip)
        if meta is None or path is None:
            raise Refused(f"request {request['id']}: no clip {clip!r} on this node")
        url = urllib.parse.urlsplit(request["upload"])
        size = path.stat().st_size
        last = ""
        while time.time() < float(request["expires"]) and not self._stop.is_set():
            try:
                status, headers, body = _call(url, "PUT", "/meta", json.dumps(meta).encode())
                if status == 204:
                    offset = int(headers.get("upload-offset", "0"))
                    status, headers, body = _send(url, path, offset, size)
                if status == 201:
                    return f"request {request['id']}: {clip} uploaded and verified by central ({size} bytes)"
                if status in (404, 410, 413, 422):
                    raise Refused(f"request {request['id']}: central answered {status}: {_text(body)}")
                last = f"central answered {status}: {_text(body)}"
            except (OSError, http.client.HTTPException) as err:
                last = f"upload interrupted ({type(err).__name__}: {err}); resuming"
            log.info("requests: %s %s; retrying in %g s", request["id"], last, self.pause)
            self._stop.wait(self.pause)
        if self._stop.is_set():
            raise Refused(f"request {request['id']}: stopped mid-upload ({last}); it resumes at the next start")
        raise Refused(f"request {request['id']}: not uploaded before it expired ({last})")

    # --- MQTT -----------------------------------------------------------------------------------------

    def start(self) -> None:
        """Own persistent session on ``<prefix>/<node>/requests``; paho reconnects by itself."""
        from ..outbox.publisher import SESSION_EXPIRY_S, make_client

        s = self.settings
        client = make_client(dataclasses.replace(s, client_id=f"{s.client_id}-requests"), persistent=True)
        topic = f"{s.prefix}/{self.node_id}/requests"
        client.on_connect = lambda c, _u, _f, rc, _p: None if rc.is_failure else c.subscribe(topic, qos=1)
        client.on_message = lambda _c, _u, m: self._enqueue(bytes(m.payload))
        client.reconnect_delay_set(s.reconnect_min, s.reconnect_max)
        extra: dict[str, Any] = {}
        if s.protocol == "5":
            from paho.mqtt.packettypes import PacketTypes
            from paho.mqtt.properties import Properties

            props = Properties(PacketTypes.CONNECT)
            props.SessionExpiryInterval = SESSION_EXPIRY_S
            extra = {"clean_start": False, "properties": props}
        self._worker = threading.Thread(target=self._work, name="requests", daemon=True)
        self._worker.start()
        client.connect_async(s.host, s.port, s.keepalive, **extra)
        client.loop_start()
        self._client = client
        log.info("requests: listening on %s for fetch requests signed by central", topic)

    def _enqueue(self, payload: bytes) -> None:
        try:
            self._queue.put_nowait(bytes(payload))
        except queue.Full:
            log.warning("requests: queue full, request dropped (central can send it again)")

    def _work(self) -> None:
        for waiting in self.pending():
            if self._stop.is_set():
                return
            log.info("requests: finishing a request accepted before the last stop")
            self.handle(waiting, resumed=True)
        while not self._stop.is_set():
            payload = self._queue.get()
            if payload is None:
                return
            try:
                self.handle(payload)
            except Exception as err:  # one bad request must not end the handler
                log.error("requests: %s: %s", type(err).__name__, err)

    def stop(self) -> None:
        self._stop.set()
        if self._client is not None:
            self._client.disconnect()
            self._client.loop_stop()
        self._queue.put(None)
        if self._worker is not None:
            self._worker.join(10)
        self.db.close()


def _conn(url: urllib.parse.SplitResult) -> http.client.HTTPConnection:
    cls = http.client.HTTPSConnection if url.scheme == "https" else http.client.HTTPConnection
    return cls(url.netloc, timeout=30, blocksize=1 << 18)


def _call(url: urllib.parse.SplitResult, method: str, suffix: str = "", body: bytes | None = None,
          headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    conn = _conn(url)
    try:
        conn.request(method, url.path + suffix, body=body, headers=headers or {})
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read(4096)
    finally:
        conn.close()


def _send(url: urllib.parse.SplitResult, path: Path, offset: int, size: int) -> tuple[int, dict[str, str], bytes]:
    """PATCH the bytes from ``offset`` (streamed from the file, never all in memory)."""
    conn = _conn(url)
    try:
        with path.open("rb") as f:
            f.seek(offset)
            conn.request("PATCH", url.path, body=f, headers={"Upload-Offset": str(offset),
                                                             "Content-Length": str(size - offset),
                                                             "Content-Type": "application/octet-stream"})
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read(4096)
    finally:
        conn.close()


def _text(body: bytes) -> str:
    try:
        return str(json.loads(body).get("error", ""))[:200]
    except (ValueError, AttributeError):
        return body[:200].decode("utf-8", "replace")


def start_request_handler(cfg: Any, clips: ClipCatalog) -> RequestHandler | None:
    """The daemon's hook: a handler when ``[central] pubkey`` is set, else None (push fetch off)."""
    from .build import settings_from_config

    if not cfg.central.pubkey:
        return None
    handler = RequestHandler(cfg.node.id, cfg.central.pubkey, clips, cfg.storage.path,
                             settings_from_config(cfg.mqtt, cfg.client_id))
    handler.start()
    return handler
