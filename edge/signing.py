"""Signed MQTT messages (#18.1): every event, status and stats message carries the node's Ed25519 signature.

Wire form: the message's JSON object with one more key, ``"sig"``: base64 of the Ed25519 signature
(64 bytes, 88 characters) over the message's *signed bytes*::

    b"edgecam-msg/1\\n" + KIND + b"\\n" + NODE + b"\\n" + canonical(message without "sig")

KIND is the topic's last level (``events``, ``status``, ``stats``) and NODE the topic's node id, so a
signature cannot be replayed on another topic or for another node. ``canonical`` is the evidence
records' form (``edge.clips.evidence.canonical``): keys sorted, no spaces, UTF-8 (no ``\\u`` escapes),
numbers as Python's ``json`` writes them (shortest round-trip form), so a reader that parses the JSON
and writes it back canonically gets the signed bytes again.

Signing happens where the bytes are made: the outbox signs each event as it stores it (the stored
message is the signed one, so a replay after a restart is byte-identical), the publisher signs the
``online`` status and the Last Will (at connect time) and the stats as they are sent.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any, Protocol

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from .payload import MAX_EVENT_BYTES, dumps

SIG_KEY = "sig"
DOMAIN = b"edgecam-msg/1\n"
KINDS = ("events", "status", "stats")
SIG_B64_CHARS = 88  # base64 of 64 bytes
SIG_FIELD_BYTES = len(dumps({"a": 1, SIG_KEY: "x" * SIG_B64_CHARS})) - len(dumps({"a": 1}))  # ,"sig":"..."


class RawSigner(Protocol):
    def sign_bytes(self, data: bytes) -> bytes: ...


def canonical(obj: Any) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def signed_bytes(kind: str, node: str, message: dict[str, Any]) -> bytes:
    """What the signature covers: domain, topic kind, node and the canonical message without ``sig``."""
    body = {k: v for k, v in message.items() if k != SIG_KEY}
    return DOMAIN + kind.encode() + b"\n" + node.encode("utf-8") + b"\n" + canonical(body)


class MessageSigner:
    """Signs one node's messages with its key (``NodeKey``); cheap (~50 µs), called per message, never per frame."""

    def __init__(self, key: RawSigner, node: str) -> None:
        self.key = key
        self.node = node

    def sign(self, kind: str, message: dict[str, Any]) -> str:
        return base64.b64encode(self.key.sign_bytes(signed_bytes(kind, self.node, message))).decode()

    def seal(self, kind: str, message: dict[str, Any]) -> bytes:
        """Wire bytes: the message (in its own key order) with ``sig`` last."""
        out = {k: v for k, v in message.items() if k != SIG_KEY}
        out[SIG_KEY] = self.sign(kind, out)
        return dumps(out)


def seal_event(body: dict[str, Any], node: str, seq: int, signer: MessageSigner) -> tuple[bytes, tuple[str, ...]]:
    """A signed event of at most 1 KiB: fitted with room for the signature, then signed (never refused)."""
    from .payload import fit_event_message

    data, trimmed = fit_event_message(body, node, seq, room=SIG_FIELD_BYTES)
    msg = json.loads(data)
    sealed = signer.seal("events", msg)
    assert len(sealed) <= MAX_EVENT_BYTES, len(sealed)
    return sealed, trimmed


def decode_signature(text: Any) -> bytes | None:
    """The 64 signature bytes, or None when ``sig`` is not base64 of 64 bytes."""
    if not isinstance(text, str) or len(text) != SIG_B64_CHARS:
        return None
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return None
    return raw if len(raw) == 64 else None


def verify(kind: str, node: str, message: dict[str, Any], keys: list[Ed25519PublicKey]) -> bool:
    """True when ``message["sig"]`` is a valid signature by one of ``keys``."""
    sig = decode_signature(message.get(SIG_KEY))
    if sig is None:
        return False
    data = signed_bytes(kind, node, message)
    for key in keys:
        try:
            key.verify(sig, data)
            return True
        except InvalidSignature:
            continue
    return False
