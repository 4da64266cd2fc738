"""FFmpeg's errors in words an installer acts on: no errno numbers, the likely cause named.

PyAV raises ``[Errno 875574520] Server returned 404 Not Found: 'rtsp://…'``: the number is an
FFmpeg tag, not a system errno, and the URL is already in our own message. ``plain_error``
keeps the cause and says what to check. Used by every capture adapter (the daemon; check and
snapshot through ``capture.grab``).
"""

from __future__ import annotations

import difflib
import re
import socket
import urllib.parse

KNOWN_SCHEMES = ("rtsp", "rtsps", "rtmp", "http", "https", "udp", "tcp", "srt", "file")

_ERRNO = re.compile(r"^\[Errno -?\d+\]\s*")
_ANSWERED = re.compile(r"^(?:Server returned|HTTP error) (\d{3})\s*(.*)$")
_ADVICE = {
    "401": "check the user and password in the URL",
    "403": "this user may not open that stream",
    "404": "check the stream path",
    "454": "check the stream path",
    "503": "the camera is busy (too many clients?)",
}


def plain_error(err: BaseException, url: str = "") -> str:
    """One short phrase for ``err`` (a PyAV/FFmpeg error or an OSError) about ``url``."""
    text = (getattr(err, "strerror", None) or str(err) or type(err).__name__).strip()
    text = _ERRNO.sub("", text).split(";")[0].strip()
    if url:
        text = text.replace(f": '{url}'", "").replace(url, "").strip().rstrip(":").strip()
    answered = _ANSWERED.match(text)
    if answered:
        code, reason = answered.groups()
        advice = _ADVICE.get(code)
        phrase = f"the camera answered {code} {reason}".rstrip()
        return f"{phrase}: {advice}" if advice else phrase
    lowered = text.lower()
    parts = urllib.parse.urlsplit(url) if "://" in url else None
    if lowered == "protocol not found" and parts is not None:
        scheme = parts.scheme or url.split("://", 1)[0]
        # swapped letters (rtps) first: difflib alone would rather offer the longer rtsps
        close = [k for k in KNOWN_SCHEMES if sorted(k) == sorted(scheme.lower())] or \
            difflib.get_close_matches(scheme.lower(), KNOWN_SCHEMES, n=1, cutoff=0.5)
        return f"unknown URL scheme '{scheme}'" + (f" (did you mean {close[0]}?)" if close else "")
    if lowered == "connection refused":
        return "connection refused: nothing listens on that address and port (is it the camera's RTSP port?)"
    if "timed out" in lowered or isinstance(err, TimeoutError):
        return "no answer in time: camera off, wrong address, or a firewall in between"
    if lowered in ("no route to host", "network is unreachable"):
        return f"{lowered}: check the camera's address and this machine's network"
    if lowered == "input/output error" and parts is not None and parts.hostname and not _resolves(parts.hostname):
        return f"cannot resolve the host name '{parts.hostname}': check the spelling, or use the camera's IP address"
    if lowered.startswith("invalid data found"):
        return "invalid data: not a video stream or file the decoder understands"
    return text or type(err).__name__


def _resolves(host: str) -> bool:
    """Only called on the error path: is ``host`` a name this machine can look up?"""
    try:
        socket.getaddrinfo(host, None)
    except OSError:
        return False
    return True
