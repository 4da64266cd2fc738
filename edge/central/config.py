"""The central server's configuration (``central.toml``): pydantic models, unknown keys are errors.

Kept apart from ``edge/config.py`` (the node's file) because the two run on
different machines; errors are phrased by the node's ``describe_error`` so both
files fail the same way: one line naming the key path and the bad value. The broker
connection keys are the node's (``BrokerLink``), so TLS and login mean the same in both.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

from pydantic import Field, field_validator

from ..config import BrokerLink, ConfigError, Positive, _Section, read_toml, validate
from ..redact import redact_url


class CentralMqttConfig(BrokerLink):
    client_id: str = Field(default="edgecam-central", min_length=1, max_length=128)
    shared_group: str | None = Field(default=None, pattern=r"^[^#+/]{1,64}$")
    session_expiry: Annotated[int, Field(ge=0)] = 7 * 24 * 3600  # MQTT 5: seconds the broker keeps our queue
    batch_size: Annotated[int, Field(ge=1, le=10_000)] = 200
    batch_wait: Annotated[float, Field(ge=0, le=10)] = 0.2  # seconds to gather a batch before committing


class DatabaseConfig(_Section):
    url: str = "sqlite:////var/lib/edgecam-central/events.db"

    @field_validator("url")
    @classmethod
    def _known_scheme(cls, v: str) -> str:
        if not (v.startswith("sqlite:///") or v.startswith(("postgresql://", "postgres://"))):
            raise ValueError("url must start with sqlite:/// or postgresql://")
        return v


class GapsConfig(_Section):
    alarm_after: Positive = 300.0  # seconds a missing seq may stay missing before it is an alarm


class OfflineConfig(_Section):
    stale_after: Positive = 600.0  # seconds without any message before an "online" node shows as "stale"


class TrustConfig(_Section):
    # Migration window for v1 nodes that do not sign yet (#18.1): until this time (ISO 8601 with a zone, or
    # UNIX seconds) messages of nodes with no registered key are stored unverified. Unset: refused (default).
    accept_unsigned_until: str | float | None = None

    @field_validator("accept_unsigned_until")
    @classmethod
    def _a_time(cls, v: str | float | None) -> str | float | None:
        if v is not None:
            window_end(v)
        return v


def window_end(v: str | float | None) -> float | None:
    """``accept_unsigned_until`` as UNIX seconds (ValueError when it is not a time with a zone)."""
    if v is None:
        return None
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        return float(v)
    from datetime import datetime

    text = str(v).strip().replace("Z", "+00:00").replace("z", "+00:00")
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"{v!r} is not an ISO 8601 time (e.g. 2027-01-31T00:00Z) or UNIX seconds") from None
    if when.tzinfo is None:
        raise ValueError(f"{v!r} has no zone: write Z or +HH:MM")
    return when.timestamp()
class EvidenceConfig(_Section):
    path: str = "/var/lib/edgecam-central/evidence"  # fetched clips by sha256, custody.db, node tokens


class WebConfig(_Section):
    listen: str | None = Field(default=None, pattern=r"^[^\s:]*:\d{1,5}$")  # HOST:PORT; `central run` serves it
    session_idle: Positive = 1800.0  # seconds without a request before a session ends
    session_max: Positive = 12 * 3600.0  # seconds a session lives at most
    public_url: str | None = Field(default=None, pattern=r"^https?://[^\s/]+(/\S*)?$")  # what nodes upload to


class CentralConfig(_Section):
    mqtt: CentralMqttConfig = Field(default_factory=CentralMqttConfig)
    database: DatabaseConfig = Field(default_factory=DatabaseConfig)
    gaps: GapsConfig = Field(default_factory=GapsConfig)
    nodes: OfflineConfig = Field(default_factory=OfflineConfig)
    trust: TrustConfig = Field(default_factory=TrustConfig)
    evidence: EvidenceConfig = Field(default_factory=EvidenceConfig)
    web: WebConfig = Field(default_factory=WebConfig)


def parse_central_config(data: dict[str, Any]) -> CentralConfig:
    """Validate; the one-line error never shows a URL's password (``database.url`` is echoed when wrong)."""
    try:
        return validate(CentralConfig, data)
    except ConfigError as err:
        raise ConfigError(redact_url(str(err))) from None


def load_central_config(path: Path | str) -> CentralConfig:
    """Read and validate a central TOML file; raises ConfigError with one line."""
    return parse_central_config(read_toml(path))
