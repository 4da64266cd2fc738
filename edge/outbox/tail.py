"""``edgecam events tail``: subscribe to events and print one line each (installers) or JSON (machines)."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt

from ..errors import UserError
from ..payload import node_from_topic
from .publisher import MqttSettings, connect, make_client


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


def tail_command(args: argparse.Namespace) -> int:
    host, port = parse_broker(args.broker, args.tls)
    settings = MqttSettings(
        host=host, port=port, prefix=args.prefix, client_id=f"edgecam-tail-{os.getpid()}",
        username=args.user, password_file=Path(args.password_file) if args.password_file else None,
        tls=args.tls, ca_file=Path(args.ca_file) if args.ca_file else None,
        cert_file=Path(args.cert_file) if args.cert_file else None,
        key_file=Path(args.key_file) if args.key_file else None, connect_timeout=5.0,
    )
    try:
        client = make_client(settings, persistent=False)
        error = connect(client, settings, persistent=False)
    except (OSError, ValueError) as err:
        raise UserError(str(err)) from None
    if error:
        raise UserError(error)
    topic = f"{args.prefix}/{args.node or '+'}/events"
    seen = [0]

    def on_message(_c: mqtt.Client, _u: Any, m: mqtt.MQTTMessage) -> None:
        if node_from_topic(args.prefix, m.topic) is None:
            return
        try:
            msg = json.loads(m.payload)
        except ValueError:
            print(f"(not JSON on {m.topic}: {len(m.payload)} bytes)", file=sys.stderr)
            return
        print(json.dumps(msg, separators=(",", ":")) if args.json else format_event(msg), flush=True)
        seen[0] += 1

    client.on_message = on_message
    client.on_subscribe = lambda *_a: print(f"listening on {topic} at {host}:{port} (Ctrl-C to stop)",
                                            file=sys.stderr, flush=True)
    client.subscribe(topic, qos=1)
    try:
        while not args.count or seen[0] < args.count:
            if client.loop(0.5) != mqtt.MQTT_ERR_SUCCESS:
                raise UserError(f"lost connection to broker {host}:{port}")
    except KeyboardInterrupt:
        pass
    finally:
        client.disconnect()
    return 0
