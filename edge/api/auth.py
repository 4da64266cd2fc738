"""LAN API tokens: only their hashes live in the config; bad guesses get throttled.

A token is 32 random bytes (URL-safe base64). The config holds one line per
token, ``sha256:<64 hex>:<name>``; the node never stores the token itself.
Plain SHA-256 (no salt, no slow KDF) is enough because the token carries 256
bits of entropy: there is nothing to brute-force from its hash.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time
from collections import deque
from dataclasses import dataclass

TOKEN_LINE = re.compile(r"^sha256:([0-9a-f]{64}):([A-Za-z0-9_.@-]{1,64})$")


@dataclass(frozen=True)
class TokenHash:
    """One accepted token, as its digest and the name shown in the access log."""

    digest: bytes
    name: str


def hash_line(token: str, name: str) -> str:
    """The config line for ``token`` (what ``edgecam token new`` prints)."""
    return f"sha256:{hashlib.sha256(token.encode()).hexdigest()}:{name}"


def parse_token_lines(lines: list[str]) -> list[TokenHash]:
    """Parse ``api.tokens``; raise ValueError naming the bad entry (never echoing a secret)."""
    out: list[TokenHash] = []
    for i, line in enumerate(lines):
        m = TOKEN_LINE.match(line.strip())
        if m is None:
            raise ValueError(f"api.tokens[{i}] is not 'sha256:<64 hex>:<name>' (make one with: edgecam token new)")
        out.append(TokenHash(bytes.fromhex(m.group(1)), m.group(2)))
    return out


class TokenChecker:
    """Maps a presented bearer token to its name in constant time per known hash."""

    def __init__(self, hashes: list[TokenHash]) -> None:
        self._hashes = list(hashes)

    def __len__(self) -> int:
        return len(self._hashes)

    def name_for(self, token: str | None) -> str | None:
        """The token's name, or None. Compares against every hash so timing says nothing."""
        if not token or len(token) > 512:
            return None
        digest = hashlib.sha256(token.encode("utf-8", "replace")).digest()
        found: str | None = None
        for h in self._hashes:
            if hmac.compare_digest(digest, h.digest):
                found = h.name
        return found


def bearer_token(header: str | None) -> str | None:
    """The token from an ``Authorization: Bearer <token>`` header, else None."""
    if not header:
        return None
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "bearer":
        return None
    value = value.strip()
    return value or None


class FailureLimiter:
    """Sliding windows of failed logins: per client address, and for the whole node.

    After ``max_failures`` failures within ``window`` seconds an address's failing
    requests get 429 until enough of them age out; after ``global_failures`` from all
    addresses together, everyone's do (many addresses cannot multiply the budget).
    Only failures are throttled: the server checks a presented token first, and a valid
    one is always served, so a guesser on a shared (NAT) address locks nobody out. That
    costs no safety: a token is 256 random bits, so the budgets bound the work and the
    journal, not the odds of a guess. Memory is bounded: at most ``max_addresses``
    addresses are tracked (the stalest dropped first).
    """

    def __init__(self, max_failures: int = 10, window: float = 60.0, max_addresses: int = 4096,
                 global_failures: int = 60) -> None:
        self.max_failures = max_failures
        self.window = window
        self.max_addresses = max_addresses
        self.global_failures = global_failures
        self._fails: dict[str, deque[float]] = {}
        self._all: deque[float] = deque(maxlen=max(1, global_failures))

    def _trim(self, addr: str, now: float) -> deque[float] | None:
        q = self._fails.get(addr)
        if q is None:
            return None
        while q and q[0] <= now - self.window:
            q.popleft()
        if not q:
            del self._fails[addr]
            return None
        return q

    def retry_after(self, addr: str, now: float | None = None) -> float:
        """Seconds until a failing ``addr`` may try again; 0 when it is not blocked."""
        now = time.monotonic() if now is None else now
        while self._all and self._all[0] <= now - self.window:
            self._all.popleft()
        wait = 0.0
        if len(self._all) >= self.global_failures:
            wait = self._all[0] + self.window - now
        q = self._trim(addr, now)
        if q is None or len(q) < self.max_failures:
            return max(0.0, wait)
        return max(0.0, wait, q[len(q) - self.max_failures] + self.window - now)

    def record_failure(self, addr: str, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        q = self._trim(addr, now)
        if q is None:
            if len(self._fails) >= self.max_addresses:
                stalest = min(self._fails, key=lambda a: self._fails[a][-1])
                del self._fails[stalest]
            q = self._fails[addr] = deque(maxlen=self.max_failures * 2)
        q.append(now)
        self._all.append(now)


class LogBudget:
    """At most ``per_window`` lines per kind in each ``window`` seconds; the rest are counted, not written.

    Unauthenticated clients must not be able to fill an SD card's journal: bad tokens,
    HTTP parser errors and their access lines go through here, and ``summary()`` (called
    once per window by the server) says how many were held back and from how many addresses.
    """

    def __init__(self, per_window: int = 20, window: float = 60.0) -> None:
        self.per_window = per_window
        self.window = window
        self._start = time.monotonic()
        self._written: dict[str, int] = {}
        self._held: dict[str, int] = {}
        self._addrs: set[str] = set()

    def allow(self, kind: str, addr: str = "?", now: float | None = None) -> bool:
        now = time.monotonic() if now is None else now
        if now - self._start >= self.window and not self._held:
            self._start, self._written = now, {}
        if self._written.get(kind, 0) < self.per_window:
            self._written[kind] = self._written.get(kind, 0) + 1
            return True
        self._held[kind] = self._held.get(kind, 0) + 1
        if len(self._addrs) < 10_000:
            self._addrs.add(addr)
        return False

    def summary(self, now: float | None = None) -> str | None:
        """One line for what was held back since the last summary (None if nothing), and a new window."""
        now = time.monotonic() if now is None else now
        held, addrs, began = self._held, len(self._addrs), self._start
        self._start, self._written, self._held, self._addrs = now, {}, {}, set()
        if not held:
            return None
        kinds = ", ".join(f"{n} {k}" for k, n in sorted(held.items()))
        return (f"api: {sum(held.values())} log line(s) held back in the last {now - began:.0f} s "
                f"({kinds}) from {addrs} address(es)")


TICKET_PATH = re.compile(
    r"^/api/v1/(clips/[A-Za-z0-9_.-]{1,128}(\.mp4|/thumb\.jpg)|(snapshot|best)/[A-Za-z0-9_.-]{1,128}\.jpg)$"
)


class TicketSigner:
    """Short-lived, read-only URLs for ``<video src>`` and ``<img src>``, which cannot send a header.

    A ticket is ``<expiry>.<token name>.<hmac>`` over (path, expiry, name) with a
    secret made at start-up (tickets die with the process). It opens exactly one
    path, for GET/HEAD only, so it cannot hold or release anything.
    """

    def __init__(self, ttl: float = 3600.0, secret: bytes | None = None) -> None:
        self.ttl = ttl
        self._secret = secret or secrets.token_bytes(32)

    def _mac(self, path: str, expiry: int, name: str) -> str:
        msg = f"{path}\n{expiry}\n{name}".encode()
        return hmac.new(self._secret, msg, hashlib.sha256).hexdigest()[:32]

    def issue(self, path: str, name: str, now: float | None = None) -> tuple[str, int] | None:
        """(ticket, expiry) for a ticketable path, else None."""
        if not TICKET_PATH.match(path):
            return None
        expiry = int((time.time() if now is None else now) + self.ttl)
        return f"{expiry}.{name}.{self._mac(path, expiry, name)}", expiry

    def check(self, path: str, ticket: str, now: float | None = None) -> str | None:
        """The issuing token's name when ``ticket`` opens ``path`` now, else None."""
        parts = ticket.split(".")
        if len(parts) < 3 or not (parts[0].isascii() and parts[0].isdigit()) or len(ticket) > 256:
            return None
        expiry, name, mac = int(parts[0]), ".".join(parts[1:-1]), parts[-1]
        if expiry < (time.time() if now is None else now) or not TICKET_PATH.match(path):
            return None
        return name if hmac.compare_digest(mac, self._mac(path, expiry, name)) else None
