"""Central's side of signed messages (#18.1): which key may sign what, and the verdict on one message.

A message is stored as a node's fact only when it carries a valid signature (``edge.signing``) by a key
registered for that node (``edgecam central register-node``) and valid at the message's time. Rotation:
keys are ordered by their start time; a key is valid for messages timed before the start of the key
registered after it (the newest key for every time), so old events replayed from an outbox still verify
and a retired key cannot sign anything new.

A node with no registered key is refused ("unregistered") unless the migration window
``[trust] accept_unsigned_until`` is still open: until then, messages of nodes with no registered key are
stored unverified (signed or not: their signature cannot be checked), and counted. A node with a
registered key is always verified, window or not.
"""

from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from .. import signing
from ..clips.evidence import parse_public_key
from .messages import BadMessage

REFRESH_EVERY = 2.0  # seconds: a miss re-reads the keys at most this often (a rogue flood cannot hammer the db)
MAX_AGE = 10.0  # seconds: keys are re-read this often anyway, so a rotation retires the old key in a running consumer


class Untrusted(BadMessage):
    """A message that is not verified as its node's: quarantined with ``kind`` (see ``store.TRUST_KINDS``)."""

    def __init__(self, kind: str, reason: str) -> None:
        super().__init__(reason)
        self.kind = kind


@dataclass(frozen=True)
class TrustPolicy:
    accept_unsigned_until: float | None = None  # UNIX time the migration window closes; None: no window


class KeyRing:
    """Registered keys, read from the store and refreshed when a node is unknown or a signature fails."""

    def __init__(self, policy: TrustPolicy) -> None:
        self.policy = policy
        self._keys: dict[str, list[tuple[float, Ed25519PublicKey]]] = {}
        self._loaded_at = -math.inf
        self._lock = threading.Lock()
        self.accepted_unverified = 0  # stored during the migration window from nodes with no registered key

    def load(self, raw: dict[str, list[tuple[float, str]]]) -> None:
        keys: dict[str, list[tuple[float, Ed25519PublicKey]]] = {}
        for node, items in raw.items():
            for start, text in items:
                try:
                    keys.setdefault(node, []).append((start, parse_public_key(text)))
                except ValueError:
                    continue
        with self._lock:
            self._keys = keys
            self._loaded_at = time.monotonic()

    def stale(self) -> bool:
        return time.monotonic() - self._loaded_at >= REFRESH_EVERY

    def old(self) -> bool:
        return time.monotonic() - self._loaded_at >= MAX_AGE

    def valid_keys(self, node: str, ts: float) -> list[Ed25519PublicKey] | None:
        """The keys that may sign a message of ``node`` timed ``ts``; None when the node has none registered."""
        items = self._keys.get(node)
        if not items:
            return None
        out = []
        for i, (_start, key) in enumerate(items):
            until = items[i + 1][0] if i + 1 < len(items) else math.inf
            if ts < until:
                out.append(key)
        return out

    def check(self, kind: str, node: str, obj: dict[str, Any], now: float | None = None) -> bool:
        """Raise ``Untrusted`` unless the message may be stored; True when its signature was verified."""
        now = time.time() if now is None else now
        ts = obj.get("ts")
        when = float(ts) if isinstance(ts, (int, float)) and not isinstance(ts, bool) and math.isfinite(ts) else now
        keys = self.valid_keys(node, when)
        signed = signing.SIG_KEY in obj
        if keys is None:
            until = self.policy.accept_unsigned_until
            if until is not None and now < until:
                self.accepted_unverified += 1
                return False
            raise Untrusted("unregistered" if signed else "unsigned",
                            f"{'signed' if signed else 'unsigned'}, and node {node!r} has no registered key"
                            " (edgecam central register-node)")
        if not signed:
            raise Untrusted("unsigned", f"no signature, and node {node!r} has a registered key")
        if signing.decode_signature(obj[signing.SIG_KEY]) is None:
            raise Untrusted("bad-signature", "sig is not base64 of 64 bytes")
        if not keys or not signing.verify(kind, node, obj, keys):
            raise Untrusted("bad-signature", f"the signature does not verify with node {node!r}'s key"
                            f" for a message timed {when:.3f}")
        return True
