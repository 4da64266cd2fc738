"""The one place a paho MQTT client is built: protocol, session, TLS and login from plain values.

The node's publisher, ``edgecam events tail``, ``edgecam check`` and the central
consumer all connect the same way, so a TLS or password setting means the same
thing to each. Callers add their own timeouts, callbacks and Last Will.
"""

from __future__ import annotations

import ssl
from pathlib import Path

import paho.mqtt.client as mqtt


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
