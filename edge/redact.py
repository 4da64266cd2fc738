"""Hide the password part of URLs wherever text leaves the process (logs, health, check output).

Camera and database URLs carry credentials (``rtsp://viewer:S3cret@cam/…``);
FFmpeg and drivers echo them back in their errors. Every message that may hold
a URL goes through ``redact_url`` before it is shown, stored or logged. Pure
string work, no parsing library: it must also work on URLs inside longer
messages and on URLs that ``urllib`` refuses (a raw ``@`` in a password).
"""

from __future__ import annotations

import re

MASK = "***"

# scheme://userinfo@ — the userinfo runs to the LAST "@" before the host's path, so a password that
# holds a raw "@" (postgresql://u:p@ss@db/x) is hidden whole, not just up to its first "@".
_USERINFO = re.compile(r"(?P<scheme>\b[A-Za-z][A-Za-z0-9+.-]*://)(?P<userinfo>[^\s/?#'\"<>]*)@")


def _mask(match: re.Match[str]) -> str:
    user, colon, _password = match.group("userinfo").partition(":")
    if not colon:
        return match.group(0)  # a user name alone is no secret (postgresql://edgecam@db/events)
    return f"{match.group('scheme')}{user}:{MASK}@"


def redact_url(text: str) -> str:
    """``text`` with the password of every ``scheme://user:password@`` replaced by ``***``."""
    if "://" not in text:
        return text
    return _USERINFO.sub(_mask, text)
