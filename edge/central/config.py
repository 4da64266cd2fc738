"""The central server's configuration (``central.toml``): pydantic models, unknown keys are errors.

Kept apart from ``edge/config.py`` (the node's file) because the two run on
different machines; errors are phrased by the node's ``describe_error`` so both
files fail the same way: one line naming the key path and the bad value.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from ..config import read_toml, validate

Port = Annotated[int, Field(ge=1, le=65535)]
Positive = Annotated[float, Field(gt=0)]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_default=True)


class CentralMqttConfig(_Section):
    host: str = "127.0.0.1"
    port: Port = 1883
    prefix: str = Field(default="edgecam", pattern=r"^[^#+/][^#+]*$")
    protocol: Literal["3.1.1", "5"] = "3.1.1"
    client_id: str = Field(default="edgecam-central", min_length=1, max_length=128)
    keepalive: Annotated[int, Field(ge=5, le=3600)] = 30
    username: str | None = None
    password_file: Path | None = None
    tls: bool = False
    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None
    shared_group: str | None = Field(default=None, pattern=r"^[^#+/]{1,64}$")
    session_expiry: Annotated[int, Field(ge=0)] = 7 * 24 * 3600  # MQTT 5: seconds the broker keeps our queue
    batch_size: Annotated[int, Field(ge=1, le=10_000)] = 200
    batch_wait: Annotated[float, Field(ge=0, le=10)] = 0.2  # seconds to gather a batch before committing

    @model_validator(mode="after")
    def _cert_needs_key(self) -> CentralMqttConfig:
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError("cert_file and key_file must be given together")
        return self


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


class CentralConfig(_Section):
    mqtt: CentralMqttConfig = Field(default_factory=CentralMqttConfig)
    database: DatabaseConfig = Field(default_factory=DatabaseConfig)
    gaps: GapsConfig = Field(default_factory=GapsConfig)
    nodes: OfflineConfig = Field(default_factory=OfflineConfig)


def parse_central_config(data: dict[str, Any]) -> CentralConfig:
    return validate(CentralConfig, data)


def load_central_config(path: Path | str) -> CentralConfig:
    """Read and validate a central TOML file; raises ConfigError with one line."""
    return parse_central_config(read_toml(path))
