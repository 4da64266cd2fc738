"""Where the broker is and how to log in to it: the connection fields every MQTT client here shares.

``BrokerAddress`` is the one place these defaults are written. The node's
``MqttSettings`` (edge/outbox/publisher.py) and central's ``BrokerSettings``
(edge/central/consumer.py) build on it, and the config's ``BrokerLink``
(edge/config.py, the ``[mqtt]`` keys of both) takes its defaults from it.
Only a dataclass, no paho, so that ``edge/config.py`` imports it cheaply;
``edge.mqttclient`` re-exports it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

MqttProtocol = Literal["3.1.1", "5"]


@dataclass(frozen=True)
class BrokerAddress:
    host: str = "127.0.0.1"
    port: int = 1883
    prefix: str = "edgecam"
    protocol: MqttProtocol = "3.1.1"
    keepalive: int = 30
    username: str | None = None
    tls: bool = False
    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None
