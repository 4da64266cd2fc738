"""Per-node broker accounts (#18.2): mosquitto password lines and ACL lines, made here so provision and the
tests use the same text as docs/broker.md.

ACL (mosquitto ``acl_file``): a node's account writes only its own events, status and stats, and reads only
its own requests and acks; central's account reads every node's events, status and stats and writes only
requests and acks. Nothing else is granted (mosquitto denies what no line allows).
"""

from __future__ import annotations

import base64
import hashlib
import secrets

from . import payload

PBKDF2_ITERATIONS = 101  # mosquitto_passwd's default for its $7$ (PBKDF2-SHA512) format
NODE_WRITES = ("events", "status", "stats")
NODE_READS = ("requests", "acks")


def mosquitto_password_line(user: str, password: str, salt: bytes | None = None) -> str:
    """``user:$7$101$SALT$HASH``: what ``mosquitto_passwd`` writes, so the plain password never leaves the node."""
    salt = secrets.token_bytes(12) if salt is None else salt
    digest = hashlib.pbkdf2_hmac("sha512", password.encode("utf-8"), salt, PBKDF2_ITERATIONS)
    return f"{user}:$7${PBKDF2_ITERATIONS}${base64.b64encode(salt).decode()}${base64.b64encode(digest).decode()}"


def node_acl_lines(prefix: str, node: str) -> list[str]:
    """The ACL block of one node's account (its username is its node id)."""
    lines = [f"user {node}"]
    lines += [f"topic write {prefix}/{node}/{kind}" for kind in NODE_WRITES]
    lines += [f"topic read {prefix}/{node}/{kind}" for kind in NODE_READS]
    return lines


def central_acl_lines(prefix: str, user: str = "central") -> list[str]:
    """The ACL block of central's account (every consumer of one fleet may share it)."""
    lines = [f"user {user}"]
    lines += [f"topic read {payload.events_topic(prefix, '+')}", f"topic read {payload.status_topic(prefix, '+')}",
              f"topic read {payload.stats_topic(prefix, '+')}"]
    lines += [f"topic write {payload.requests_topic(prefix, '+')}", f"topic write {payload.acks_topic(prefix, '+')}"]
    return lines


def new_password() -> str:
    return secrets.token_urlsafe(24)
