"""The node's configuration: pydantic models for the TOML file.

This is the only module that knows key names. Stages never receive these
objects; ``daemon.py`` and the CLI read them and pass plain values on.
Unknown keys are errors, so a typo never silently falls back to a default.
"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    Strict,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from .config_words import NAME_PATTERN, NODE_ID_PATTERN, did_you_mean, pattern_words, quoted_hint
from .mqttaddress import BrokerAddress
from .vision.settings import AnalyzerSettings, DetectorSettings, EventSettings, MotionSettings, TrackerSettings

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10 (JetPack 6)
    import tomli as tomllib

M = TypeVar("M", bound=BaseModel)

DEFAULT_CONFIG_PATH = Path("/etc/edgecam/edgecam.toml")

# Sections are strict (``port = "1883"`` is an error, not a silent conversion); paths and points are the
# two kinds TOML cannot write natively (a string, a list), so only their containers are lax.
FilePath = Annotated[Path, Strict(False)]
Point = Annotated[tuple[Annotated[float, Field(ge=0.0, le=1.0)], Annotated[float, Field(ge=0.0, le=1.0)]],
                  Strict(False)]
Polygon = Annotated[list[Point], Field(min_length=3)]
Port = Annotated[int, Field(ge=1, le=65535)]
Positive = Annotated[float, Field(gt=0)]
NonNegative = Annotated[float, Field(ge=0)]

DEFAULT_LABELS = list(DetectorSettings.labels)

# Names that travel in every event are bounded so that every possible event fits 1 KiB (``event_size_problem``).
Name = Annotated[str, Field(pattern=NAME_PATTERN)]
Label = Annotated[str, Field(pattern=r"^[A-Za-z0-9 _-]{1,32}$")]
MAX_ZONES = 16  # per camera; the 1 KiB check below is the real bound, this keeps the check cheap and the
MAX_LINES = 16  # zone test per detection bounded
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


class ConfigError(Exception):
    """A config problem, already phrased as one line for the user."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_default=True, strict=True)


class NodeConfig(_Section):
    id: str = Field(default="node-01", pattern=NODE_ID_PATTERN)


class BrokerLink(_Section):
    """How to reach and log in to the broker: the keys the node's and central's ``[mqtt]`` share."""

    # The defaults are edge.mqttaddress.BrokerAddress's (what the publisher and the central consumer use too).
    host: str = BrokerAddress.host
    port: Port = BrokerAddress.port
    prefix: str = Field(default=BrokerAddress.prefix, min_length=1, max_length=64)
    protocol: Literal["3.1.1", "5"] = BrokerAddress.protocol
    keepalive: Annotated[int, Field(ge=5, le=3600)] = BrokerAddress.keepalive
    username: str | None = BrokerAddress.username
    password_file: FilePath | None = None
    tls: bool = BrokerAddress.tls
    ca_file: FilePath | None = BrokerAddress.ca_file
    cert_file: FilePath | None = BrokerAddress.cert_file
    key_file: FilePath | None = BrokerAddress.key_file

    @field_validator("prefix")
    @classmethod
    def _topic_safe(cls, v: str) -> str:
        """MQTT topic rules: no wildcards, no NUL or other control characters, no empty topic levels."""
        if _CONTROL.search(v):
            raise ValueError("must not hold control characters (NUL, tab, newline)")
        if "+" in v or "#" in v:
            raise ValueError("must not hold the MQTT wildcards + or #")
        if v.startswith("/") or v.endswith("/") or "//" in v:
            raise ValueError("must not start or end with / or hold an empty level (//)")
        return v

    @field_validator("host", "username")
    @classmethod
    def _no_control(cls, v: str | None) -> str | None:
        if v is not None and _CONTROL.search(v):
            raise ValueError("must not hold control characters (NUL, tab, newline)")
        return v

    @model_validator(mode="after")
    def _cert_needs_key(self) -> BrokerLink:
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError("cert_file and key_file must be given together")
        return self


class MqttConfig(BrokerLink):
    client_id: Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[^\x00-\x1f\x7f]+$")] | None = None
    # default: "edgecam-<node id>"
    connect_timeout: Positive = 10.0
    drain_timeout: NonNegative = 30.0
    max_inflight: Annotated[int, Field(ge=1, le=1000)] = 50
    reconnect_min: Positive = 1.0
    reconnect_max: Positive = 60.0
    stats_interval: Positive = 60.0
    outbox_max_rows: Annotated[int, Field(ge=100)] = 200_000
    outbox_max_bytes: Annotated[int, Field(ge=100_000)] = 64 * 1024 * 1024
    outbox_max_age_days: Positive = 30.0
    end_to_end: Literal[True, False, "auto"] = "auto"  # keep events until central's acks watermark covers them

    @model_validator(mode="after")
    def _backoff_order(self) -> MqttConfig:
        if self.reconnect_min > self.reconnect_max:
            raise ValueError(f"reconnect_min ({self.reconnect_min:g}) is more than reconnect_max "
                             f"({self.reconnect_max:g})")
        return self


class StorageConfig(_Section):
    path: FilePath = Path("/var/lib/edgecam")


class ClipsConfig(_Section):
    enabled: bool = True
    pre_roll: NonNegative = 5.0
    post_roll: NonNegative = 5.0
    max_clip: Positive = 120.0
    max_bytes: Annotated[int, Field(ge=1_000_000)] = 8 * 1024**3
    max_age_days: Positive = 14.0
    min_free_bytes: Annotated[int, Field(ge=0)] = 512 * 1024**2
    thumbnails: bool = True
    # CPU-seconds per second, of one core, for decoding the record stream's full-size stills that a two-stream
    # camera's best shots are cropped from; over it a best shot is cut from the analysed frame (counted).
    still_max_cpu: Annotated[float, Field(ge=0.0, le=1.0)] = 0.15

    @model_validator(mode="after")
    def _pre_roll_fits(self) -> ClipsConfig:
        if self.pre_roll > self.max_clip:
            raise ValueError(f"pre_roll ({self.pre_roll:g} s) is longer than max_clip ({self.max_clip:g} s)")
        return self


class ApiConfig(_Section):
    enabled: bool = True
    listen: str = Field(default="0.0.0.0:8080", pattern=r"^(\[[0-9a-fA-F:]+\]|[A-Za-z0-9.-]+):[0-9]{1,5}$")
    tokens: list[str] = Field(default_factory=list)
    tls_cert: FilePath | None = None
    tls_key: FilePath | None = None

    @field_validator("tokens")
    @classmethod
    def _hash_lines(cls, v: list[str]) -> list[str]:
        """The daemon's own parser: a line it would refuse is refused here, by `check` too."""
        from .api.auth import parse_token_lines

        parse_token_lines(v)
        return v

    @model_validator(mode="after")
    def _cert_and_key(self) -> ApiConfig:
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ValueError("tls_cert and tls_key must be given together (one alone would serve plain HTTP)")
        return self

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
    model: FilePath | None = None  # default: models/ (manifest decides INT8 or FP32)
    precision: Literal["auto", "int8", "fp32"] = "auto"
    # The defaults are edge.vision.settings' (DetectorSettings; min_area/max_area: AnalyzerSettings).
    providers: list[str] = Field(default_factory=lambda: list(DetectorSettings.providers))
    threads: Annotated[int, Field(ge=1, le=64)] = DetectorSettings.threads
    labels: list[Label] = Field(default_factory=lambda: list(DEFAULT_LABELS))
    min_score: Annotated[float, Field(ge=0.0, le=1.0)] = DetectorSettings.min_score
    scores: dict[str, Annotated[float, Field(ge=0.0, le=1.0)]] = Field(default_factory=dict)
    min_area: NonNegative = AnalyzerSettings.min_area  # fraction of the frame
    max_area: Annotated[float, Field(gt=0.0, le=1.0)] = AnalyzerSettings.max_area
    nms_iou: Annotated[float, Field(gt=0.0, le=1.0)] = DetectorSettings.nms_iou


class TrackerConfig(_Section):
    # The defaults (and what each key means) are edge.vision.settings.TrackerSettings'.
    min_hits: Annotated[int, Field(ge=1, le=30)] = TrackerSettings.min_hits
    max_lost: Positive = TrackerSettings.max_lost  # seconds a track may go unseen before it ends
    match_iou: Annotated[float, Field(ge=0.0, le=1.0)] = TrackerSettings.match_iou
    stationary_recheck: Positive = TrackerSettings.stationary_recheck  # seconds between re-detections


class EventsConfig(_Section):
    # The defaults are edge.vision.settings.EventSettings'.
    update_interval: Positive = EventSettings.update_interval  # at most one update per object per this many s
    score_step: Annotated[float, Field(ge=0.0, le=1.0)] = EventSettings.score_step  # gain that earns an update


class MotionConfig(_Section):
    # The defaults are edge.vision.settings.MotionSettings' (``height`` is its ``analysis_height``).
    height: Annotated[int, Field(ge=60, le=1080)] = MotionSettings.analysis_height  # analysis rows (px)
    threshold: Annotated[int, Field(ge=1, le=255)] = MotionSettings.threshold
    min_area: Annotated[float, Field(ge=0.0, le=1.0)] = MotionSettings.min_area  # fraction of the frame
    lightning_threshold: Annotated[float, Field(gt=0.0, le=1.0)] = MotionSettings.lightning_threshold
    frame_alpha: Annotated[float, Field(gt=0.0, le=1.0)] = MotionSettings.frame_alpha
    persist_frames: Annotated[int, Field(ge=1, le=30)] = MotionSettings.persist_frames
    mask: list[Polygon] = Field(default_factory=list)  # MotionSettings.mask: none
    low_light: bool = MotionSettings.low_light  # dark scene: threshold follows its contrast (to a noise floor)


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


DECODER_NAME = re.compile(r"^[a-z0-9_]{1,40}$")


class CameraConfig(_Section):
    source: str  # the stream that is recorded (and analysed too, unless detect_source is given)
    detect_source: str | None = None  # a second stream (the camera's sub stream) decoded for analysis only
    decode: str = "software"  # "auto" (hardware where FFmpeg has it), "software" or an FFmpeg decoder name
    enabled: bool = True
    realtime: bool = False
    detect_fps: Annotated[float, Field(gt=0, le=60)] = 5.0
    loop: bool = False
    record: bool = True
    open_timeout: Positive = 20.0  # opening waits for a keyframe; some cameras send one every 10 s
    read_timeout: Positive = 5.0
    reconnect_max: Positive = 30.0
    motion: MotionConfig = Field(default_factory=MotionConfig)
    zones: Annotated[dict[Name, ZoneConfig], Field(max_length=MAX_ZONES)] = Field(default_factory=dict)
    lines: Annotated[dict[Name, LineConfig], Field(max_length=MAX_LINES)] = Field(default_factory=dict)
    encode: EncodeConfig = Field(default_factory=EncodeConfig)

    @field_validator("source")
    @classmethod
    def _source_not_blank(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("source must not be empty")
        return v

    @field_validator("decode")
    @classmethod
    def _decoder_name(cls, v: str) -> str:
        if not DECODER_NAME.match(v):
            raise ValueError('must be "auto", "software" or an FFmpeg decoder name such as "h264_v4l2m2m"')
        return v

    @field_validator("detect_source")
    @classmethod
    def _detect_source_is_a_stream(cls, v: str | None, info: ValidationInfo) -> str | None:
        """A stream or a video file PyAV reads: a raw camera (USB, Pi camera) has one stream, a typo'd scheme
        would otherwise be taken for a file name and fail only at run time."""
        from .capture import LIVE_PREFIXES, source_kind

        if v is None:
            return v
        if not v.strip() or _CONTROL.search(v):
            raise ValueError("must be a stream URL (rtsp://...) or a video file, not empty")
        if source_kind(v) in ("usb", "picamera2"):
            raise ValueError("must be a network stream or a video file: a USB or Pi camera has one stream")
        if "://" in v and not v.startswith(LIVE_PREFIXES) and not v.startswith("file://"):
            scheme = v.split("://", 1)[0]
            raise ValueError(f"unknown scheme {scheme!r}: use one of "
                             f"{', '.join(p.removesuffix('://') for p in LIVE_PREFIXES)} or a file path")
        source = info.data.get("source")
        if v == source:
            raise ValueError("is the same as source: leave detect_source out for a one-stream camera")
        if source is not None and source_kind(source) in ("usb", "picamera2"):
            raise ValueError("needs source to be a network stream or a file: a USB or Pi camera has one stream")
        return v


class PlatesConfig(_Section):
    """Licence-plate reading (the ``plates`` extra): off the hot path, within a share of one core."""

    enabled: bool = False
    max_cpu: Annotated[float, Field(gt=0.0, le=1.0)] = 0.25  # CPU-seconds per second, of one core


class CentralLinkConfig(_Section):
    """What the node knows of central: its public key, to act on signed fetch requests (edge/node/requests.py)."""

    pubkey: str | None = Field(default=None, pattern=r"^ed25519:[A-Za-z0-9+/]{43}=$")


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
    plates: PlatesConfig = Field(default_factory=PlatesConfig)
    central: CentralLinkConfig = Field(default_factory=CentralLinkConfig)
    cameras: dict[Name, CameraConfig] = Field(
        default_factory=dict
    )

    @property
    def client_id(self) -> str:
        return self.mqtt.client_id or f"edgecam-{self.node.id}"


def describe_error(err: ValidationError, model: type[BaseModel] | None = None) -> str:
    """One line naming the key path and the bad value: what an installer can act on."""
    first = err.errors()[0]
    loc = first["loc"]
    path = ".".join(str(p) if len(str(p)) <= 40 else str(p)[:37] + "..." for p in loc)  # a 900-char key stays short
    msg = first["msg"]
    for prefix in ("Value error, ", "Assertion failed, "):
        if msg.startswith(prefix):
            msg = msg[len(prefix):]
    kind = first["type"]
    value = first.get("input")
    more = f" (and {len(err.errors()) - 1} more)" if len(err.errors()) > 1 else ""
    if kind == "extra_forbidden":
        return f"{path}: unknown key{did_you_mean(model, loc)}"
    if kind == "missing" and loc and isinstance(loc[-1], int):  # only points are tuples: [x] or [x, ]
        parent = ".".join(str(p) for p in loc[:-1])
        return f"{parent}: {_short(value)} is invalid: a point needs two numbers [x, y]"
    if kind == "too_long" and msg.startswith("Tuple"):
        return f"{path}: {_short(value)} is invalid: a point needs two numbers [x, y]"
    if kind == "missing":
        return f"{path}: required key is missing"
    if path.endswith("port") and kind in ("less_than_equal", "greater_than_equal"):
        return f"{path}: {value!r} is not a valid port (1-65535)"
    if loc[:2] == ("api", "tokens"):  # never echo what may be a token pasted in by mistake
        return msg if msg.startswith("api.tokens[") else f"{path}: {msg}"
    if kind == "string_pattern_mismatch":
        return f"{path.removesuffix('.[key]')}: {_short(value)} is invalid: {pattern_words(first)}{more}"
    if isinstance(value, dict) and kind == "value_error":  # a rule across keys: the message names them
        return f"{path or '(top level)'}: {msg}{more}"
    quoted = quoted_hint(kind, value)
    if quoted:
        return f"{path}: {value!r} is invalid: {quoted}{more}"
    return f"{path or '(top level)'}: {_short(value)} is invalid: {msg}{more}"


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def validate(model: type[M], data: dict[str, Any]) -> M:
    """Validate parsed TOML against a config model; raises ConfigError with one line."""
    try:
        return model.model_validate(data)
    except ValidationError as err:
        raise ConfigError(describe_error(err, model)) from None


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
    cfg = validate(Config, data)
    problem = event_size_problem(cfg)
    if problem:
        raise ConfigError(problem)
    return cfg


def event_size_problem(cfg: Config) -> str | None:
    """A camera whose largest possible event would not fit 1 KiB, as one line; None when all fit."""
    from .payload import MAX_EVENT_BYTES, worst_case_event_bytes

    for name, cam in cfg.cameras.items():
        size = worst_case_event_bytes(cfg.node.id, name, cfg.detector.labels, list(cam.zones), list(cam.lines))
        if size > MAX_EVENT_BYTES:
            names = sum(len(z) for z in cam.zones)
            return (f"cameras.{name}: an event could be {size} bytes, over the {MAX_EVENT_BYTES}-byte limit "
                    f"(node.id {len(cfg.node.id)} chars, {len(cam.zones)} zones with {names} chars of names): "
                    f"shorten the zone, line, camera or node names, or use fewer zones")
    return None


def unusable(cfg: Config) -> list[str]:
    """Valid values the daemon still cannot use (files that are not there), one line each; check fails on these."""
    problems: list[str] = []
    m = cfg.mqtt
    files = [("mqtt.password_file", m.password_file)]
    if m.tls:
        files += [("mqtt.ca_file", m.ca_file), ("mqtt.cert_file", m.cert_file), ("mqtt.key_file", m.key_file)]
    if cfg.api.enabled:
        files += [("api.tls_cert", cfg.api.tls_cert), ("api.tls_key", cfg.api.tls_key)]
    for key, path in files:
        if path is not None and not path.is_file():
            problems.append(f"{key}: {str(path)!r} does not exist" if not path.exists()
                            else f"{key}: {str(path)!r} is not a file")
        elif path is not None and not os.access(path, os.R_OK):
            problems.append(f"{key}: {str(path)!r} is not readable by this user")
    model = cfg.detector.model
    if model is not None:
        if not model.exists():
            problems.append(f"detector.model: {str(model)!r} does not exist")
        elif model.is_dir() and not (model / "manifest.json").is_file():
            problems.append(f"detector.model: {str(model)!r} has no manifest.json "
                            f"(run `edgecam model prepare --out {model}`, or name an .onnx file)")
    return problems


def doubtful(cfg: Config) -> list[str]:
    """Settings that work but are almost surely not meant, one line each; check warns on these."""
    notes: list[str] = []
    if cfg.api.enabled and not cfg.api.tokens:
        notes.append("api.tokens is empty: the LAN API will refuse every request "
                     "(add one with `edgecam token new --name NAME`, or set api.enabled = false)")
    if not cfg.mqtt.tls and (cfg.mqtt.ca_file or cfg.mqtt.cert_file):
        notes.append("mqtt.ca_file/cert_file are set but mqtt.tls = false: they are not used")
    return notes


def load_config(path: Path | str) -> Config:
    """Read and validate the node's TOML file; raises ConfigError with one line."""
    return parse_config(read_toml(path))
