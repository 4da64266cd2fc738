"""``edgecam events tail``: subscribe to events and print one line each (installers) or JSON (machines)."""

from __future__ import annotations

import time
from typing import Any

from ..errors import UserError


def parse_broker(text: str, tls: bool) -> tuple[str, int]:
    """``HOST[:PORT]`` (``[v6]:PORT`` too); the port defaults to 8883 with TLS, else 1883."""
    host, port = text, 8883 if tls else 1883
    if text.startswith("["):
        end = text.find("]")
        host, rest = text[1:end], text[end + 1:]
        if rest.startswith(":"):
            port = _port(rest[1:], text)
    elif text.count(":") == 1:
        host, p = text.split(":")
        port = _port(p, text)
    if not host:
        raise UserError(f"--broker {text!r}: expected HOST[:PORT]")
    return host, port


def _port(p: str, text: str) -> int:
    if not p.isdigit() or not 0 < int(p) < 65536:
        raise UserError(f"--broker {text!r}: bad port {p!r}")
    return int(p)


def format_event(msg: dict[str, Any]) -> str:
    """One readable line: time, node, camera, type, label, score, zones, line, clip, seq."""
    when = time.strftime("%Y-%m-%d %H:%M:%S %Z", time.localtime(float(msg.get("ts", 0))))  # local, zone named
    parts = [
        when + ("" if msg.get("time_ok", True) else " ?"),  # ?: the node's clock was not synchronised
        str(msg.get("node", "?")), str(msg.get("camera", "?")), f"{msg.get('type', '?'):<6}",
        str(msg.get("label", "?")), f"{float(msg.get('score', 0)):.2f}",
    ]
    if msg.get("zones"):
        parts.append("zones=" + ",".join(msg["zones"]))
    line = msg.get("line")
    if isinstance(line, dict):
        parts.append(f"line={line.get('name')}:{line.get('dir')}")
    if msg.get("duration") is not None:
        parts.append(f"dur={float(msg['duration']):.1f}s")
    if msg.get("clip"):
        parts.append(f"clip={msg['clip']}")
    parts.append(f"seq={msg.get('seq')}")
    return " ".join(parts)


