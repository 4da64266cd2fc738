"""The node's configuration: pydantic models for the TOML file.

This is the only module that knows key names. Stages never receive these
objects; ``daemon.py`` and the CLI read them and pass plain values on.
Unknown keys are errors, so a typo never silently falls back to a default.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10 (JetPack 6)
    import tomli as tomllib

M = TypeVar("M", bound=BaseModel)

DEFAULT_CONFIG_PATH = Path("/etc/edgecam/edgecam.toml")

Point = tuple[Annotated[float, Field(ge=0.0, le=1.0)], Annotated[float, Field(ge=0.0, le=1.0)]]
Polygon = Annotated[list[Point], Field(min_length=3)]
Port = Annotated[int, Field(ge=1, le=65535)]
Positive = Annotated[float, Field(gt=0)]
NonNegative = Annotated[float, Field(ge=0)]

DEFAULT_LABELS = ["person", "bicycle", "car", "motorcycle", "bus", "truck"]


class ConfigError(Exception):
    """A config problem, already phrased as one line for the user."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_default=True)


class NodeConfig(_Section):
    id: str = Field(default="node-01", pattern=r"^[A-Za-z0-9_.-]{1,64}$")


class BrokerLink(_Section):
    """How to reach and log in to the broker: the keys the node's and central's ``[mqtt]`` share."""

    host: str = "127.0.0.1"
    port: Port = 1883
    prefix: str = Field(default="edgecam", pattern=r"^[^#+/][^#+]*$")
    protocol: Literal["3.1.1", "5"] = "3.1.1"
    keepalive: Annotated[int, Field(ge=5, le=3600)] = 30
    username: str | None = None
    password_file: Path | None = None
    tls: bool = False
    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None

    @model_validator(mode="after")
    def _cert_needs_key(self) -> BrokerLink:
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError("cert_file and key_file must be given together")
        return self


class MqttConfig(BrokerLink):
    client_id: str | None = None  # default: "edgecam-<node id>"
    connect_timeout: Positive = 10.0
    drain_timeout: NonNegative = 30.0
    max_inflight: Annotated[int, Field(ge=1, le=1000)] = 50
    reconnect_min: Positive = 1.0
    reconnect_max: Positive = 60.0
    stats_interval: Positive = 60.0
    outbox_max_rows: Annotated[int, Field(ge=100)] = 200_000
    outbox_max_bytes: Annotated[int, Field(ge=100_000)] = 64 * 1024 * 1024
    outbox_max_age_days: Positive = 30.0


class StorageConfig(_Section):
    path: Path = Path("/var/lib/edgecam")


class ClipsConfig(_Section):
    enabled: bool = True
    pre_roll: NonNegative = 5.0
    post_roll: NonNegative = 5.0
    max_clip: Positive = 120.0
    max_bytes: Annotated[int, Field(ge=1_000_000)] = 8 * 1024**3
    max_age_days: Positive = 14.0
    min_free_bytes: Annotated[int, Field(ge=0)] = 512 * 1024**2
    thumbnails: bool = True


class ApiConfig(_Section):
    enabled: bool = True
    listen: str = Field(default="0.0.0.0:8080", pattern=r"^(\[[0-9a-fA-F:]+\]|[A-Za-z0-9.-]+):[0-9]{1,5}$")
    tokens: list[str] = Field(default_factory=list)
    tls_cert: Path | None = None
    tls_key: Path | None = None

    @field_validator("listen")
    @classmethod
    def _port_in_range(cls, v: str) -> str:
        port = int(v.rsplit(":", 1)[1])
        if not 1 <= port <= 65535:
            raise ValueError(f"port {port} is not a valid port (1-65535)")
        return v

    @property
    def host(self) -> str:
        return self.listen.rsplit(":", 1)[0].strip("[]")

    @property
    def port(self) -> int:
        return int(self.listen.rsplit(":", 1)[1])


class DetectorConfig(_Section):
    model: Path | None = None  # default: models/ (manifest decides INT8 or FP32)
    precision: Literal["auto", "int8", "fp32"] = "auto"
    providers: list[str] = Field(default_factory=lambda: ["CPUExecutionProvider"])
    threads: Annotated[int, Field(ge=1, le=64)] = 2
    labels: list[str] = Field(default_factory=lambda: list(DEFAULT_LABELS))
    min_score: Annotated[float, Field(ge=0.0, le=1.0)] = 0.4
    scores: dict[str, Annotated[float, Field(ge=0.0, le=1.0)]] = Field(default_factory=dict)
    min_area: NonNegative = 0.0005  # fraction of the frame
    max_area: Annotated[float, Field(gt=0.0, le=1.0)] = 0.9
    nms_iou: Annotated[float, Field(gt=0.0, le=1.0)] = 0.45


class TrackerConfig(_Section):
    min_hits: Annotated[int, Field(ge=1, le=30)] = 3
    max_lost: Positive = 1.5  # seconds a track may go unseen before it ends
    match_iou: Annotated[float, Field(ge=0.0, le=1.0)] = 0.2
    stationary_recheck: Positive = 5.0  # seconds between re-detections of a still object


class EventsConfig(_Section):
    update_interval: Positive = 1.0  # at most one update per object per this many seconds
    score_step: Annotated[float, Field(ge=0.0, le=1.0)] = 0.1  # best-score gain that earns an update


class MotionConfig(_Section):
    height: Annotated[int, Field(ge=60, le=1080)] = 120  # analysis resolution (frame height in px)
    threshold: Annotated[int, Field(ge=1, le=255)] = 25
    min_area: Annotated[float, Field(ge=0.0, le=1.0)] = 0.001  # fraction of the frame
    lightning_threshold: Annotated[float, Field(gt=0.0, le=1.0)] = 0.6
    frame_alpha: Annotated[float, Field(gt=0.0, le=1.0)] = 0.05
    persist_frames: Annotated[int, Field(ge=1, le=30)] = 2
    mask: list[Polygon] = Field(default_factory=list)
    low_light: bool = True  # dark scene: threshold follows its contrast (down to a measured noise floor)


class ZoneConfig(_Section):
    polygon: Polygon


class LineConfig(_Section):
    """A counting line from ``a`` to ``b``; crossing left-to-right of a→b is "in"."""

    a: Point
    b: Point

    @model_validator(mode="after")
    def _distinct(self) -> LineConfig:
        if self.a == self.b:
            raise ValueError("a and b must differ")
        return self


class EncodeConfig(_Section):
    """For sources that give raw frames (USB): encode once for clips."""

    width: Annotated[int, Field(ge=16, le=7680)] = 1280
    height: Annotated[int, Field(ge=16, le=4320)] = 720
    fps: Annotated[float, Field(gt=0, le=120)] = 15.0
    bitrate: Annotated[int, Field(ge=50_000)] = 2_000_000
    encoder: str = "libx264"


class CameraConfig(_Section):
    source: str
    enabled: bool = True
    realtime: bool = False
    detect_fps: Annotated[float, Field(gt=0, le=60)] = 5.0
    loop: bool = False
    record: bool = True
    open_timeout: Positive = 20.0  # opening waits for a keyframe; some cameras send one every 10 s
    read_timeout: Positive = 5.0
    reconnect_max: Positive = 30.0
    motion: MotionConfig = Field(default_factory=MotionConfig)
    zones: dict[str, ZoneConfig] = Field(default_factory=dict)
    lines: dict[str, LineConfig] = Field(default_factory=dict)
    encode: EncodeConfig = Field(default_factory=EncodeConfig)

    @field_validator("source")
    @classmethod
    def _source_not_blank(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("source must not be empty")
        return v


class LogConfig(_Section):
    level: Literal["debug", "info", "warning", "error"] = "info"


class Config(_Section):
    node: NodeConfig = Field(default_factory=NodeConfig)
    mqtt: MqttConfig = Field(default_factory=MqttConfig)
    storage: StorageConfig = Field(default_factory=StorageConfig)
    clips: ClipsConfig = Field(default_factory=ClipsConfig)
    api: ApiConfig = Field(default_factory=ApiConfig)
    detector: DetectorConfig = Field(default_factory=DetectorConfig)
    tracker: TrackerConfig = Field(default_factory=TrackerConfig)
    events: EventsConfig = Field(default_factory=EventsConfig)
    log: LogConfig = Field(default_factory=LogConfig)
    cameras: dict[Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]{1,32}$")], CameraConfig] = Field(
        default_factory=dict
    )

    @property
    def client_id(self) -> str:
        return self.mqtt.client_id or f"edgecam-{self.node.id}"


def describe_error(err: ValidationError) -> str:
    """One line naming the key path and the bad value: what an installer can act on."""
    first = err.errors()[0]
    path = ".".join(str(p) for p in first["loc"])
    msg = first["msg"]
    for prefix in ("Value error, ", "Assertion failed, "):
        if msg.startswith(prefix):
            msg = msg[len(prefix):]
    kind = first["type"]
    value = first.get("input")
    if kind == "extra_forbidden":
        return f"{path}: unknown key"
    if kind == "missing":
        return f"{path}: required key is missing"
    if path.endswith("port") and kind in ("less_than_equal", "greater_than_equal"):
        return f"{path}: {value!r} is not a valid port (1-65535)"
    shown = _short(value)
    more = f" (and {len(err.errors()) - 1} more)" if len(err.errors()) > 1 else ""
    return f"{path or '(top level)'}: {shown} is invalid: {msg}{more}"


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def validate(model: type[M], data: dict[str, Any]) -> M:
    """Validate parsed TOML against a config model; raises ConfigError with one line."""
    try:
        return model.model_validate(data)
    except ValidationError as err:
        raise ConfigError(describe_error(err)) from None


def read_toml(path: Path | str) -> dict[str, Any]:
    """Read a TOML file; every failure is one ConfigError line naming the file."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found") from None
    except OSError as err:
        raise ConfigError(f"{path}: cannot read config ({err.strerror})") from None
    try:
        return tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: config is not UTF-8 text") from None
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"{path}: not valid TOML: {err}") from None


def parse_config(data: dict[str, Any]) -> Config:
    return validate(Config, data)


def load_config(path: Path | str) -> Config:
    """Read and validate the node's TOML file; raises ConfigError with one line."""
    return parse_config(read_toml(path))
