"""Push fetch, central's side: central's Ed25519 key, signed fetch requests, single-use upload slots.

For a node central cannot reach (4G, NAT). ``edgecam central fetch --via push`` opens an upload slot
(a 256-bit token; only its sha256 is kept, in ``desk.db``), signs a request with central's key and publishes
it on ``<prefix>/<node>/requests`` at QoS 1 (the node's persistent session keeps it while it is offline).
The node (``edge/node/requests.py``) checks the signature against ``[central] pubkey`` and uploads to the
slot's URL on central's web server::

    PUT   /api/upload/<token>/meta      the clip's META.json
    HEAD  /api/upload/<token>           Upload-Offset: bytes received so far (resume after a drop)
    PATCH /api/upload/<token>           Upload-Offset: N, body = the bytes from N; the last one completes it

On the last byte central verifies the clip against the node's registered key (``accept_clip``, the same
checks as pull) and closes the slot: it is single-use and expires with the request.

Request (``canonical`` JSON, signed whole)::

    {"v": 1, "type": "fetch", "id": HEX, "node": N, "clip": ID, "upload": URL, "issued": UNIX, "expires": UNIX}

message: ``{"request": {...}, "signature": B64}``.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from ..clips.evidence import canonical, public_text
from ..errors import UserError
from ..fsutil import write_atomic

KEY_FILE = "central.ed25519"
REQUEST_TTL = 24 * 3600.0


def key_path(root: Path) -> Path:
    return root / "keys" / KEY_FILE


def init_key(root: Path) -> tuple[str, bool]:
    """Make central's key once (0600); (public text, whether it was made now). Never replaced."""
    path = key_path(root)
    if path.exists():
        return public_text(load_key(root).public_key()), False
    path.parent.mkdir(parents=True, exist_ok=True)
    path.parent.chmod(0o700)
    key = Ed25519PrivateKey.generate()
    write_atomic(path, key.private_bytes_raw(), mode=0o600)
    pub = public_text(key.public_key())
    write_atomic(path.with_name(KEY_FILE + ".pub"), (pub + "\n").encode(), mode=0o644)
    return pub, True


def load_key(root: Path) -> Ed25519PrivateKey:
    path = key_path(root)
    try:
        raw = path.read_bytes()
    except OSError:
        raise UserError(f"no central key at {path}: make it with `edgecam central init -c CENTRAL.toml`") from None
    if len(raw) != 32:
        raise UserError(f"central key {path} is corrupt ({len(raw)} bytes, an Ed25519 key has 32)")
    return Ed25519PrivateKey.from_private_bytes(raw)


def sign_request(key: Ed25519PrivateKey, request: dict[str, Any]) -> bytes:
    sig = base64.b64encode(key.sign(canonical(request))).decode()
    return json.dumps({"request": request, "signature": sig}, sort_keys=True).encode()


def _h(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class UploadSlots:
    """Single-use, expiring upload slots in ``desk.db``; the staged bytes live in ``incoming/push/<id>``."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.db = sqlite3.connect(str(root / "desk.db"), timeout=30, isolation_level=None, check_same_thread=False)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("""CREATE TABLE IF NOT EXISTS uploads (token_hash TEXT PRIMARY KEY, id TEXT NOT NULL,
            node TEXT NOT NULL, clip TEXT NOT NULL, expires REAL NOT NULL, state TEXT NOT NULL,
            reason TEXT NOT NULL DEFAULT '', sha256 TEXT, requested_by TEXT NOT NULL)""")
        self.lock = threading.Lock()

    def close(self) -> None:
        self.db.close()

    def open(self, node: str, clip: str, who: str, ttl: float = REQUEST_TTL) -> tuple[str, str, float]:
        """(token, request id, expiry) for a new slot."""
        token, rid, expires = secrets.token_urlsafe(32), secrets.token_hex(16), time.time() + ttl
        with self.lock:
            self.db.execute("INSERT INTO uploads VALUES (?,?,?,?,?, 'open', '', NULL, ?)",
                            (_h(token), rid, node, clip, expires, who))
        return token, rid, expires

    def get(self, token: str) -> dict[str, Any] | None:
        with self.lock:
            cur = self.db.execute("SELECT id, node, clip, expires, state, reason, sha256, requested_by FROM uploads"
                                  " WHERE token_hash = ?", (_h(token),))
            row = cur.fetchone()
            return dict(zip([d[0] for d in cur.description], row, strict=True)) if row else None

    def by_id(self, rid: str) -> dict[str, Any] | None:
        with self.lock:
            cur = self.db.execute("SELECT id, node, clip, expires, state, reason, sha256 FROM uploads WHERE id = ?",
                                  (rid,))
            row = cur.fetchone()
            return dict(zip([d[0] for d in cur.description], row, strict=True)) if row else None

    def finish(self, rid: str, state: str, reason: str = "", sha256: str | None = None) -> None:
        with self.lock:
            self.db.execute("UPDATE uploads SET state = ?, reason = ?, sha256 = ? WHERE id = ?",
                            (state, reason[:500], sha256, rid))

    def staging(self, rid: str) -> Path:
        d = self.root / "incoming" / "push"
        d.mkdir(parents=True, exist_ok=True)
        return d / rid


def publish_request(settings: Any, topic: str, payload: bytes, timeout: float = 15.0) -> None:
    """Publish at QoS 1 and wait for the broker's PUBACK (a request the broker never took is an error)."""
    from ..mqttclient import login, new_client, use_tls

    client = new_client(f"{settings.client_id}-push-{secrets.token_hex(4)}", settings.protocol, False)
    if settings.tls:
        use_tls(client, settings.ca_file, settings.cert_file, settings.key_file)
    login(client, settings.username, settings.password)
    try:
        client.connect(settings.host, settings.port, settings.keepalive)
    except OSError as err:
        raise UserError(f"cannot reach broker {settings.host}:{settings.port}: {err.strerror or err}") from None
    client.loop_start()
    try:
        info = client.publish(topic, payload, qos=1, retain=False)
        info.wait_for_publish(timeout)
        if not info.is_published():
            raise UserError(f"broker {settings.host}:{settings.port} did not take the request within {timeout:g} s")
    except (RuntimeError, ValueError) as err:
        raise UserError(f"publishing the request failed: {err}") from None
    finally:
        client.disconnect()
        client.loop_stop()


def publish_signed_request(cfg: Any, node: str, clip: str, who: str, address: str) -> str:
    """Open an upload slot, sign and publish the request (QoS 1), log it; the request (= slot) id."""
    from .cli import broker_settings
    from .custody import CustodyLog
    from .fetch import evidence_root

    if not cfg.web.public_url:
        raise UserError("push needs [web] public_url (the address nodes reach central's web server on),"
                        " and that server running (`central run` with [web] listen, or `central web`)")
    root = evidence_root(cfg)
    key = load_key(root)
    slots = UploadSlots(root)
    try:
        token, rid, expires = slots.open(node, clip, who)
    finally:
        slots.close()
    request = {"v": 1, "type": "fetch", "id": rid, "node": node, "clip": clip,
               "upload": f"{cfg.web.public_url.rstrip('/')}/api/upload/{token}",
               "issued": round(time.time(), 3), "expires": round(expires, 3)}
    settings = broker_settings(cfg)
    publish_request(settings, f"{settings.prefix}/{node}/requests", sign_request(key, request))
    log = CustodyLog(root / "custody.db")
    try:
        log.append(who, "fetch-request", f"{node}/{clip}", address, f"via push: request {rid} published")
    finally:
        log.close()
    return rid


def push_fetch(cfg: Any, node: dict[str, Any], clip: str, wait: float, who: str, address: str) -> Any:
    """Open a slot, publish the signed request, wait up to ``wait`` s for the verified clip in the store."""
    from .evidence import EvidenceStore
    from .fetch import evidence_root

    root = evidence_root(cfg)
    store = EvidenceStore.at(root)
    have = store.get(node["node"], clip)
    if have is not None:
        return have
    rid = publish_signed_request(cfg, node["node"], clip, who, address)
    slots = UploadSlots(root)
    try:
        deadline = time.monotonic() + max(0.0, wait)
        while True:
            slot = slots.by_id(rid) or {}
            if slot.get("state") == "verified":
                got = store.get(node["node"], clip)
                if got is not None:
                    return got
            if slot.get("state") == "failed":
                raise UserError(f"{node['node']}/{clip}: {slot.get('reason')}")
            if time.monotonic() >= deadline:
                raise UserError(f"{node['node']}/{clip}: not verified within --wait {wait:g} s; request {rid} stays"
                                " valid for 24 h and completes when the node comes back (then `central fetch`"
                                " prints it at once)")
            time.sleep(0.2)
    finally:
        slots.close()
