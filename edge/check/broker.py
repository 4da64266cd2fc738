"""Broker probe: connect once with the node's TLS and credentials, and say why it failed.

Unreachable (refused, no route, no answer, no such host), TLS failure
(certificate, wrong port for TLS), and a refused login are different fixes for
an installer, so they get different lines.
"""

from __future__ import annotations

import ipaddress
import socket
import ssl
import time

from ..mqttclient import CLOSED, listen_connack, login, new_client, read_password, use_tls, wait_connack
from ..outbox.publisher import MqttSettings
from .result import FAIL, OK, WARN, Result


class _Failed(Exception):
    def __init__(self, detail: str, advice: str) -> None:
        super().__init__(detail)
        self.advice = advice


def _client(target: MqttSettings, timeout: float):
    """The node's own client construction (``edge.mqttclient``), with a line per unusable file."""
    client = new_client(f"{target.client_id}-check", target.protocol, persistent=False)
    client.connect_timeout = timeout  # also bounds paho's TLS handshake
    try:
        password = read_password(target.password_file)
    except OSError as err:
        raise _Failed(str(err), "create it (one line: the password), readable by the edgecam user") from None
    login(client, target.username, password)
    if target.tls:
        for key, path in (("ca_file", target.ca_file), ("cert_file", target.cert_file), ("key_file", target.key_file)):
            if path is not None and not path.is_file():
                raise _Failed(f"mqtt.{key} {path} not found", f"fix mqtt.{key}")
        try:
            use_tls(client, target.ca_file, target.cert_file, target.key_file)
        except (ssl.SSLError, OSError) as err:
            raise _Failed(f"TLS files unusable: {err}", "check mqtt.ca_file/cert_file/key_file (PEM)") from None
    return client


def _connect(target: MqttSettings, timeout: float) -> None:
    """Connect and wait for the CONNACK; raise _Failed with the reason."""

    where = f"{target.host}:{target.port}"
    client = _client(target, timeout)
    answer = listen_connack(client)
    try:
        client.connect(target.host, target.port, keepalive=max(10, int(timeout) * 2))
    except ssl.SSLCertVerificationError as err:
        raise _Failed(f"TLS to {where}: certificate not trusted ({err.verify_message})",
                      "set mqtt.ca_file to the CA that signed the broker's certificate; the host name must match it"
                      ) from None
    except ssl.SSLError as err:
        raise _Failed(f"TLS to {where} failed ({err.reason or err})",
                      "is this the broker's TLS port? (1883 is usually plain, 8883 TLS)") from None
    except (ConnectionResetError, BrokenPipeError) as err:
        if not target.tls:
            raise _Failed(f"{where} reset the connection ({err.strerror})", "see the broker's log") from None
        raise _Failed(f"TLS to {where} failed: the broker reset the handshake",
                      "is this the broker's TLS port? (1883 is usually plain, 8883 TLS)") from None
    except socket.gaierror:
        raise _Failed(f"cannot resolve {target.host}", "check mqtt.host and the node's DNS") from None
    except TimeoutError:
        raise _Failed(f"{where} unreachable: no answer within {timeout:g} s",
                      "check the address, the network route and firewalls") from None
    except OSError as err:
        raise _Failed(f"{where} unreachable: {err.strerror or err}",
                      "is the broker running, and is mqtt.port right? check firewalls") from None
    try:
        reason = wait_connack(client, answer, timeout)
        if reason is CLOSED:
            hint = "the broker may expect TLS (mqtt.tls = false)" if not target.tls else "see the broker's log"
            raise _Failed(f"{where} closed the connection before answering", hint)
        if reason is None:
            raise _Failed(f"{where} accepted TCP but sent no CONNACK within {timeout:g} s",
                          "is this an MQTT port? (TLS-only listeners need mqtt.tls = true)")
        if reason.is_failure:
            raise _Failed(f"{where} refused the login: {reason}",
                          "check mqtt.username and the password in mqtt.password_file (and the broker's ACL)")
    finally:
        client.disconnect()
        client.loop(timeout=0.1)


def _outside_lan(host: str, port: int) -> list[str]:
    """Addresses of the broker that the systemd unit's IPAddressAllow= (LAN ranges) does not cover."""
    try:
        infos = socket.getaddrinfo(host, port, proto=socket.IPPROTO_TCP)
    except OSError:
        return []
    addrs = {ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in infos}
    return sorted(str(a) for a in addrs if a.is_global)


def probe_broker(target: MqttSettings, timeout: float) -> Result:
    where = f"{target.host}:{target.port}"
    started = time.monotonic()
    try:
        _connect(target, timeout)
    except _Failed as err:
        return Result("broker", FAIL, str(err), err.advice)
    ms = (time.monotonic() - started) * 1000.0
    how = ("TLS" if target.tls else "plain") + (f", user {target.username}" if target.username else "")
    detail = f"connected to {where} ({how}, MQTT {target.protocol}) in {ms:.0f} ms"
    data = {"ms": round(ms, 1)}
    public = _outside_lan(target.host, target.port)
    if public:
        allow = " ".join(public)
        return Result("broker", WARN, detail + f"; {allow} is outside the LAN ranges edgecam.service allows",
                      f"add `IPAddressAllow={allow}` with `systemctl edit edgecam`", data)
    return Result("broker", OK, detail, data=data)
