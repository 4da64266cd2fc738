"""HTTP Range decisions as pure functions (RFC 9110 §14), kept apart from I/O so they are easy to test.

Policy (documented in the README's API section):
- one range only, unit ``bytes``: ``a-b``, ``a-`` or ``-n``;
- a syntactically broken header (wrong unit, junk, ``b < a``) → **400**;
- a well-formed but unsatisfiable range (start past the end, ``-0``, empty file) or several
  ranges at once → **416** with ``Content-Range: bytes */SIZE``;
- ``If-Range`` that is not exactly our strong ETag (a date, an old hash) → the Range is
  ignored and the whole file comes back with 200, as the RFC asks.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_SPEC = re.compile(r"^[ \t]*([0-9]{0,19})[ \t]*-[ \t]*([0-9]{0,19})[ \t]*$")  # ASCII only: \d takes any script


class RangeError(Exception):
    """A Range header we will not serve; ``status`` is 400 or 416."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


@dataclass(frozen=True)
class ByteRange:
    """Inclusive byte offsets ``start..end`` of a file of ``size`` bytes."""

    start: int
    end: int
    size: int

    @property
    def length(self) -> int:
        return self.end - self.start + 1

    def content_range(self) -> str:
        return f"bytes {self.start}-{self.end}/{self.size}"


def parse_range(header: str, size: int) -> ByteRange:
    """Parse one ``Range`` header value against a file size; raise RangeError otherwise."""
    unit, sep, specs = header.partition("=")
    if not sep or unit.strip().lower() != "bytes":
        raise RangeError(400, "malformed Range: only 'bytes=' is supported")
    parts = specs.split(",")
    if len(parts) != 1:
        if all(_SPEC.match(p) for p in parts):
            raise RangeError(416, "multiple ranges are not supported")
        raise RangeError(400, "malformed Range")
    m = _SPEC.match(parts[0])
    if m is None or (not m.group(1) and not m.group(2)):
        raise RangeError(400, "malformed Range")
    first, last = m.group(1), m.group(2)
    if not first:  # suffix: the last N bytes
        n = int(last)
        if n == 0 or size == 0:
            raise RangeError(416, "range not satisfiable")
        return ByteRange(max(0, size - n), size - 1, size)
    start = int(first)
    end = int(last) if last else size - 1
    if last and end < start:
        raise RangeError(400, "malformed Range: last byte before first")
    if start >= size:
        raise RangeError(416, "range not satisfiable")
    return ByteRange(start, min(end, size - 1), size)


def if_range_allows(if_range: str | None, etag: str) -> bool:
    """True when a Range may be honoured: no If-Range, or If-Range equal to our strong ETag."""
    if if_range is None:
        return True
    return if_range.strip() == etag


def etag_matches(if_none_match: str | None, etag: str) -> bool:
    """``If-None-Match`` check (weak comparison, ``*`` matches)."""
    if not if_none_match:
        return False
    for tag in if_none_match.split(","):
        tag = tag.strip()
        if tag == "*" or tag.removeprefix("W/") == etag:
            return True
    return False
