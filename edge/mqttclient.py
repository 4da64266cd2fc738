"""The one place a paho MQTT client is built: protocol, session, TLS and login from plain values.

The node's publisher, ``edgecam events tail``, ``edgecam check`` and the central
consumer all connect the same way, so a TLS or password setting means the same
thing to each. Callers add their own timeouts, callbacks and Last Will.
"""

from __future__ import annotations

import ssl
import threading
import time
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt

from .mqttaddress import BrokerAddress as BrokerAddress  # re-exported: the shared connection fields
from .mqttaddress import MqttProtocol as MqttProtocol


def new_client(client_id: str, protocol: str, persistent: bool, manual_ack: bool = False) -> mqtt.Client:
    """A paho client (callback API 2) for MQTT ``"5"`` or ``"3.1.1"``; ``persistent`` keeps a 3.1.1 session.

    MQTT 5 sessions are chosen at connect time (``clean_start``), so ``persistent`` only matters for 3.1.1.
    """
    v5 = protocol == "5"
    return mqtt.Client(
        mqtt.CallbackAPIVersion.VERSION2,
        client_id=client_id,
        clean_session=None if v5 else not persistent,
        protocol=mqtt.MQTTv5 if v5 else mqtt.MQTTv311,
        manual_ack=manual_ack,
    )


def use_tls(client: mqtt.Client, ca_file: Path | None, cert_file: Path | None, key_file: Path | None) -> None:
    """TLS with the hostname check and CERT_REQUIRED on; raises ``ssl.SSLError``/``OSError`` for unusable files."""
    ctx = ssl.create_default_context(cafile=str(ca_file) if ca_file else None)
    if cert_file:
        ctx.load_cert_chain(str(cert_file), str(key_file) if key_file else None)
    client.tls_set_context(ctx)


def read_password(path: Path | None) -> str | None:
    """The password file's text without its trailing line ending; OSError says which file failed."""
    if path is None:
        return None
    try:
        return Path(path).read_text(encoding="utf-8").rstrip("\r\n")
    except OSError as err:
        raise OSError(f"cannot read mqtt.password_file {path}: {err.strerror}") from None


def login(client: mqtt.Client, username: str | None, password: str | None) -> None:
    """Send credentials when a user name or a password file is set (a password alone goes with an empty name)."""
    if username or password is not None:
        client.username_pw_set(username or "", password)


CLOSED = "closed"  # what ``wait_connack`` returns when the connection dropped before the answer


def listen_connack(client: mqtt.Client) -> list[Any]:
    """Collect the CONNACK's reason code into the returned list (set before ``client.connect``)."""
    answer: list[Any] = []
    client.on_connect = lambda _c, _u, _f, reason, _p: answer.append(reason)
    return answer


def wait_connack(client: mqtt.Client, answer: list[Any], timeout: float, stop: threading.Event | None = None) -> Any:
    """Pump ``client`` until the CONNACK: its reason code; None when none came within ``timeout`` (or ``stop``
    was set); ``CLOSED`` when the broker closed the connection first. The one CONNACK wait of the node's
    publisher, ``events tail`` and ``edgecam check``."""
    deadline = time.monotonic() + timeout
    while not answer and time.monotonic() < deadline and not (stop is not None and stop.is_set()):
        if client.loop(0.1) != mqtt.MQTT_ERR_SUCCESS and not answer:
            return CLOSED
    return answer[0] if answer else None
