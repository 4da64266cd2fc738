"""A real MQTT subscriber for tests: records every message, reconnects on its own, optionally persistent."""

from __future__ import annotations

import json
import ssl
import threading
import time
from typing import Any

import paho.mqtt.client as mqtt


class Collector:
    """Subscribes to ``topic`` at QoS 1 and keeps ``(topic, payload, retained)`` in arrival order."""

    def __init__(self, port: int, topic: str = "edgecam/#", client_id: str | None = None, persistent: bool = False,
                 tls: ssl.SSLContext | None = None, username: str | None = None, password: str | None = None,
                 host: str = "127.0.0.1") -> None:
        self.topic = topic
        self.messages: list[tuple[str, bytes, bool]] = []
        self._lock = threading.Lock()
        self._subscribed = threading.Event()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id or f"collector-{id(self)}",
                                  clean_session=not persistent)
        if tls is not None:
            self.client.tls_set_context(tls)
        if username:
            self.client.username_pw_set(username, password)
        self.client.reconnect_delay_set(0.1, 0.5)
        self.client.on_connect = self._on_connect
        self.client.on_subscribe = lambda *_a: self._subscribed.set()
        self.client.on_message = self._on_message
        self.host, self.port = host, port

    def start(self, timeout: float = 10.0) -> Collector:
        self.client.connect(self.host, self.port, keepalive=10)
        self.client.loop_start()
        if not self._subscribed.wait(timeout):
            raise TimeoutError("collector did not subscribe")
        return self

    def stop(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()

    def _on_connect(self, client: mqtt.Client, _u: Any, _f: Any, rc: Any, _p: Any) -> None:
        if not rc.is_failure:
            client.subscribe(self.topic, qos=1)

    def _on_message(self, _c: mqtt.Client, _u: Any, m: mqtt.MQTTMessage) -> None:
        with self._lock:
            self.messages.append((m.topic, bytes(m.payload), bool(m.retain)))

    def of_kind(self, kind: str) -> list[dict[str, Any]]:
        """Decoded payloads on ``.../<kind>`` topics."""
        with self._lock:
            msgs = list(self.messages)
        return [json.loads(p) for t, p, _r in msgs if t.endswith("/" + kind)]

    def raw(self) -> list[tuple[str, bytes, bool]]:
        with self._lock:
            return list(self.messages)

    def seqs(self) -> list[int]:
        return [e["seq"] for e in self.of_kind("events")]

    def wait_seqs(self, wanted: set[int], timeout: float) -> set[int]:
        """Wait until every seq in ``wanted`` arrived; returns the ones still missing."""
        deadline = time.monotonic() + timeout
        while True:
            missing = wanted - set(self.seqs())
            if not missing or time.monotonic() > deadline:
                return missing
            time.sleep(0.1)


def retained_status(port: int, node: str, timeout: float = 5.0, **kw: Any) -> dict[str, Any] | None:
    """The retained status a newcomer sees for ``node`` (None if nothing retained)."""
    c = Collector(port, topic=f"edgecam/{node}/status", **kw).start(timeout)
    deadline = time.monotonic() + min(timeout, 1.0)
    while time.monotonic() < deadline and not c.raw():
        time.sleep(0.05)
    c.stop()
    retained = [json.loads(p) for _t, p, r in c.raw() if r]
    return retained[-1] if retained else None
