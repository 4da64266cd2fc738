"""Short-lived signed media links, so a ``<video src>`` can play a clip without the bearer token.

A browser's ``<video>`` element cannot send an ``Authorization`` header, and the
token must never travel in a URL. So an authenticated call
(``POST /api/v1/clips/<id>/link``) hands out a URL of the form
``/api/v1/media/<id>.mp4?exp=<unix s>&sig=<base64url HMAC-SHA256>``, signed over
the clip id and the expiry with a secret that is drawn at random when the
server starts and never leaves memory. The link:

- is read-only: it reaches only ``GET``/``HEAD`` of that one clip file (with
  ``Range``, so seeking works);
- expires after ``ttl`` seconds (the page asks for a fresh one when it does);
- dies with the process (a restart draws a new secret);
- is kept out of the access log (only the path is logged, never the query).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
import time
from collections.abc import Callable
from urllib.parse import quote

_EXP = re.compile(r"^\d{1,12}$")
_SIG = re.compile(r"^[A-Za-z0-9_-]{43}$")
MEDIA_PREFIX = "/api/v1/media/"


class MediaSigner:
    """Signs and checks media links for one server process."""

    def __init__(self, ttl: float = 600.0, secret: bytes | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.ttl = ttl
        self._secret = secret if secret is not None else secrets.token_bytes(32)
        self._clock = clock

    def _sig(self, clip_id: str, exp: int) -> str:
        msg = f"media\x00{clip_id}\x00{exp}".encode()
        digest = hmac.new(self._secret, msg, hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()

    def url(self, clip_id: str) -> tuple[str, int]:
        """(the relative media URL for ``clip_id``, its expiry in UNIX seconds)."""
        exp = int(self._clock() + self.ttl)
        return f"{MEDIA_PREFIX}{quote(clip_id)}.mp4?exp={exp}&sig={self._sig(clip_id, exp)}", exp

    def check(self, clip_id: str, exp: str | None, sig: str | None) -> bool:
        """True when ``sig`` was made here for this id and expiry, and the expiry has not passed."""
        if not exp or not sig or not _EXP.match(exp) or not _SIG.match(sig):
            return False
        if int(exp) < self._clock():
            return False
        return hmac.compare_digest(sig, self._sig(clip_id, int(exp)))
