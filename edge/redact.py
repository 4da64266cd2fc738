"""Credentials out of anything a person or a log will read: ``redact_url()``.

One small, pure helper shared by the node (RTSP camera URLs) and central
(PostgreSQL URLs). Users write passwords raw, ``@`` included
(``postgresql://u:p@ss@host/db``), so the userinfo ends at the LAST ``@`` of the
URL-ish token: redacting a little too much is safe, leaking a tail is not.
"""

from __future__ import annotations

import re

MASK = "***"

# scheme://  then a token that runs until whitespace or a quote/bracket character
_URL = re.compile(r"(?P<scheme>\b[A-Za-z][A-Za-z0-9+.-]{0,31}://)(?P<rest>[^\s\"'<>`]+)")


def _redact_token(match: re.Match[str]) -> str:
    scheme, rest = match.group("scheme"), match.group("rest")
    at = rest.rfind("@")
    if at < 0:
        return match.group(0)
    userinfo, tail = rest[:at], rest[at + 1:]
    user, colon, _password = userinfo.partition(":")
    if not colon:
        return match.group(0)  # user name only, no password to hide
    return f"{scheme}{user}:{MASK}@{tail}"


def redact_url(text: str) -> str:
    """``text`` with the password of every ``scheme://user:password@host`` in it replaced by ``***``.

    Works on a bare URL or on a longer message (an exception text, a log line, JSON);
    any scheme (rtsp, http, https, postgresql, mqtt, ...). A URL without a password is unchanged.
    """
    if "://" not in text:
        return text
    return _URL.sub(_redact_token, text)
