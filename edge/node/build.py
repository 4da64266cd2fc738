"""The one place that turns config into stage arguments, and builds the stages from them.

The daemon, ``check``, ``snapshot`` and ``bench`` call these, so every entry
point builds the pipeline the same way; the stages themselves never see
config (an import-linter contract in ``make lint`` keeps it so). Heavy
stage modules (onnxruntime, PyAV, aiohttp) are imported by the builder that
needs them, so ``edgecam check`` on a node without a model stays light.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from .. import __version__, assets
from ..capture import open_source, source_kind
from ..config import CameraConfig, Config, DetectorConfig, MqttConfig
from ..outbox.store import OutboxLimits
from ..vision.settings import AnalyzerSettings, EventSettings, MotionSettings, TrackerSettings
from .loops import AnalysisLoop, CaptureLoop, FrameSlot, StreamClock, translate

if TYPE_CHECKING:
    from ..api.server import ApiServer
    from ..clips.evidence import NodeKey
    from ..clips.recorder import ClipRecorder
    from ..clips.store import ClipStore
    from ..interfaces import EventSink, NodeView
    from ..outbox.publisher import MqttSettings
    from ..outbox.service import OutboxService
    from ..signing import MessageSigner
    from ..vision.shared import SharedDetector

log = logging.getLogger("edgecam")


class StartupError(Exception):
    """The node cannot start (bad model, unwritable storage): one line, exit 1."""


def _pt(p: Any) -> tuple[float, float]:
    return (float(p[0]), float(p[1]))


def analyzer_settings(camera: CameraConfig, cfg: Config) -> AnalyzerSettings:
    """The pipeline settings of one camera."""
    m, tr, ev, det = camera.motion, cfg.tracker, cfg.events, cfg.detector
    return AnalyzerSettings(
        motion=MotionSettings(
            analysis_height=m.height, threshold=m.threshold, min_area=m.min_area,
            lightning_threshold=m.lightning_threshold, frame_alpha=m.frame_alpha,
            persist_frames=m.persist_frames, mask=tuple(tuple(_pt(p) for p in poly) for poly in m.mask),
            low_light=m.low_light,
        ),
        tracker=TrackerSettings(
            min_hits=tr.min_hits, max_lost=tr.max_lost, match_iou=tr.match_iou,
            stationary_recheck=tr.stationary_recheck,
        ),
        events=EventSettings(
            zones={name: tuple(_pt(p) for p in z.polygon) for name, z in camera.zones.items()},
            lines={name: (_pt(ln.a), _pt(ln.b)) for name, ln in camera.lines.items()},
            update_interval=ev.update_interval, score_step=ev.score_step,
        ),
        min_area=det.min_area,
        max_area=det.max_area,
    )


def detector_kwargs(det: DetectorConfig) -> dict[str, Any]:
    """Keyword arguments for ``detector.load_detector(det.model, det.precision, **kwargs)``."""
    return {
        "keep_labels": tuple(det.labels), "min_score": det.min_score, "scores": dict(det.scores),
        "nms_iou": det.nms_iou, "threads": det.threads, "providers": tuple(det.providers),
    }


def settings_from_config(cfg: MqttConfig, client_id: str) -> MqttSettings:
    """The publisher's settings: what the daemon connects with and what ``check`` probes."""
    from ..outbox.publisher import MqttSettings

    return MqttSettings(
        host=cfg.host, port=cfg.port, prefix=cfg.prefix, protocol=cfg.protocol, client_id=client_id,
        keepalive=cfg.keepalive, username=cfg.username, password_file=cfg.password_file, tls=cfg.tls,
        ca_file=cfg.ca_file, cert_file=cfg.cert_file, key_file=cfg.key_file, connect_timeout=cfg.connect_timeout,
        reconnect_min=cfg.reconnect_min, reconnect_max=cfg.reconnect_max, max_inflight=cfg.max_inflight,
        end_to_end=cfg.end_to_end,
    )


def limits_from_config(cfg: MqttConfig) -> OutboxLimits:
    """The outbox's bounds (rows, bytes, age)."""
    return OutboxLimits(cfg.outbox_max_rows, cfg.outbox_max_bytes, cfg.outbox_max_age_days * 86400.0)


def raw_encoder(cam: CameraConfig) -> Callable[[], Any]:
    """Clips from a raw (USB) camera: encode once with PyAV at the configured size and bitrate."""
    from ..clips.encoder import FrameEncoder

    e = cam.encode
    return lambda: FrameEncoder(e.width, e.height, e.fps, e.bitrate, e.encoder)


def detector(cfg: Config) -> SharedDetector:
    """The one detector every camera shares; a bad model is a ``StartupError`` (one line, exit 1)."""
    from ..vision.detector import ModelError, load_detector
    from ..vision.shared import SharedDetector

    det = cfg.detector
    try:
        model = det.model or assets.default_model_dir()
        found, _choice = load_detector(model, det.precision, **detector_kwargs(det))  # logs its choice
    except (ModelError, OSError) as err:
        raise StartupError(f"detector: {err}") from None
    return SharedDetector(found)


def signer(cfg: Config, key: NodeKey | None) -> MessageSigner | None:
    """The node key as a message signer (None only where no key was loaded: tests building parts alone)."""
    from ..signing import MessageSigner

    return None if key is None else MessageSigner(key, cfg.node.id)


def outbox(cfg: Config, signer: MessageSigner | None = None) -> OutboxService:
    """The durable outbox and its publisher (not started); ``signer`` signs events, status and stats (#18.1)."""
    from ..outbox.service import OutboxService

    m = cfg.mqtt
    return OutboxService(cfg.storage.path / "outbox.db", cfg.node.id, settings_from_config(m, cfg.client_id),
                         limits_from_config(m), version=__version__, signer=signer)


def clip_store(cfg: Config, key: NodeKey | None) -> ClipStore:
    """The clip store, recovered and with its free space checked."""
    from ..clips.evidence import NodeKey
    from ..clips.store import ClipStore

    c = cfg.clips
    storage = cfg.storage.path
    store = ClipStore(
        storage,
        key or NodeKey.load_or_create(storage / "keys"),
        max_bytes=c.max_bytes,
        max_age_s=c.max_age_days * 86400,
        min_free_bytes=c.min_free_bytes,
        node=cfg.node.id,
    )
    store.recover()
    store.check_space()
    return store


@dataclass
class CameraRuntime:
    """One camera's loops, recorder and threads, as the supervisor watches them."""

    name: str
    config: CameraConfig
    capture: CaptureLoop
    analysis: AnalysisLoop
    recorder: ClipRecorder | None
    threads: list[threading.Thread] = field(default_factory=list)  # capture (detect stream), analysis, record
    record: CaptureLoop | None = None  # a two-stream camera's record-stream loop; ``capture`` is its detect loop

    @property
    def done(self) -> bool:
        return all(not t.is_alive() for t in self.threads)


def plates_models(cfg: Config) -> Any:
    """Where the plate models are when ``[plates]`` is on and the extra loads; else None (one line why)."""
    if not cfg.plates.enabled:
        return None
    from ..vision.plates import PlatesUnavailable, model_dir

    try:
        return model_dir()
    except PlatesUnavailable as err:
        log.warning("plates: %s; the node runs on without plates", err)
        return None


def still_decoders(decode: str) -> Callable[[str], list[str]] | None:
    """The hardware decoders a recorder tries for record-stream stills, by the camera's ``decode``: "auto"
    tries what this FFmpeg has for the stream's codec, a named one is tried for its own codec only."""
    if decode == "software":
        return None
    if decode == "auto":
        from ..capture.pyav import hardware_decoders

        return hardware_decoders
    return lambda codec: [decode] if decode.startswith(f"{codec}_") else []


def best_shots(cfg: Config, store: ClipStore, stills_at: Callable[[str, Sequence[float]], Any],
               events: EventSink) -> Any:
    """The node's best-shot worker (started), with the plate reader behind it when ``[plates]`` is on and
    the extra loads; a missing or broken extra is one line, and best shots go on without plates."""
    from ..vision.bestshot import BestShotWorker

    worker = BestShotWorker(store.writer, stills_at, events, still_max_cpu=cfg.clips.still_max_cpu)
    root = plates_models(cfg)
    if root is not None:
        from ..vision.plate_worker import PlateWorker

        worker.plates = PlateWorker(worker.on_plate, max_cpu=cfg.plates.max_cpu)
        log.info("plates: reading the best shot of every vehicle (models in %s, max_cpu %.2f)", root,
                 cfg.plates.max_cpu)
    return worker


def camera(name: str, cam: CameraConfig, cfg: Config, shared: Any, store: ClipStore | None,
           events: EventSink, clock_ok: Callable[[], bool], stop: threading.Event,
           shots: Any = None) -> CameraRuntime:
    """Source(s), recorder, analyzer, the loops and their (not started) threads of one camera.

    One stream: one capture loop decodes it and feeds the recorder. Two streams (``detect_source``): a
    record loop reads ``source`` for packets only (never decoded) into the recorder, a detect loop decodes
    ``detect_source`` for analysis; each reconnects on its own, and their clocks are lined up by arrival time.
    """
    from ..vision.pipeline import CameraAnalyzer, FrameGate

    two = cam.detect_source is not None
    kind = source_kind(cam.source)
    source = open_source(
        name, cam.source, realtime=cam.realtime, loop=cam.loop,
        open_timeout=cam.open_timeout, read_timeout=cam.read_timeout,
        encode=cam.encode.model_dump() if kind == "picamera2" else None,
        pictures=not two, decode=cam.decode,
    )
    live = kind != "file"
    recorder = None
    if store is not None and cam.record:
        from ..clips.recorder import ClipRecorder

        c = cfg.clips
        # a file read flat out must not outrun the writer: it waits instead of dropping packets
        recorder = ClipRecorder(name, store.writer, c.pre_roll, c.post_roll, c.max_clip,
                                thumbnails=c.thumbnails, lossless=not live and not cam.realtime,
                                still_decoders=still_decoders(cam.decode))
        recorder.start()
    settings = analyzer_settings(cam, cfg)
    if shots is not None:  # end events name a best shot only where a worker stores it
        settings = replace(settings, events=replace(settings.events, best_shots=True))
    analyzer = CameraAnalyzer(name, shared, settings)
    gate = FrameGate(cam.detect_fps)
    if not two:
        # A file read flat out waits for analysis (deterministic); a live camera never waits.
        slot = FrameSlot(size=2, block=not live and not cam.realtime)
        capture = CaptureLoop(name, source, slot, recorder, live=live or cam.loop, reconnect_max=cam.reconnect_max,
                              encoder_factory=raw_encoder(cam) if kind == "usb" else None, gate=gate)
        analysis = AnalysisLoop(name, slot, analyzer, recorder, events, clock_ok, shots=shots)
        runtime = CameraRuntime(name, cam, capture, analysis, recorder)
    else:
        assert cam.detect_source is not None
        detect_live = source_kind(cam.detect_source) != "file"
        detect_source = open_source(
            name, cam.detect_source, realtime=cam.realtime, loop=cam.loop, open_timeout=cam.open_timeout,
            read_timeout=cam.read_timeout, packets=False, decode=cam.decode,
        )
        record_clock, detect_clock = StreamClock(), StreamClock()
        slot = FrameSlot(size=2, block=not detect_live and not cam.realtime)
        capture = CaptureLoop(name, detect_source, slot, None, live=detect_live or cam.loop,
                              reconnect_max=cam.reconnect_max, gate=gate, role="detect", clock=detect_clock)
        record = CaptureLoop(name, source, None, recorder, live=live or cam.loop, reconnect_max=cam.reconnect_max,
                             gate=None, role="record", clock=record_clock)
        analysis = AnalysisLoop(name, slot, analyzer, recorder, events, clock_ok,
                                record_time=translate(detect_clock, record_clock), shots=shots)
        runtime = CameraRuntime(name, cam, capture, analysis, recorder, record=record)
    runtime.threads = [
        threading.Thread(target=capture.run, args=(stop,), name=f"capture-{name}", daemon=True),
        threading.Thread(target=analysis.run, args=(stop,), name=f"analysis-{name}", daemon=True),
    ]
    if runtime.record is not None:
        runtime.threads.append(threading.Thread(target=runtime.record.run, args=(stop,), name=f"record-{name}",
                                                daemon=True))
    return runtime


def api(cfg: Config, store: ClipStore, view: NodeView) -> ApiServer | None:
    """The LAN API, started; None (one logged line why) when it cannot listen: recording goes on."""
    from ..api.server import ApiServer, make_ssl_context

    a = cfg.api
    try:
        ssl_context = make_ssl_context(a.tls_cert, a.tls_key) if a.tls_cert and a.tls_key else None
        server = ApiServer(store.catalog, view, a.host, a.port, a.tokens, ssl_context)
        server.start()
    except (ValueError, RuntimeError, OSError) as err:
        # the node keeps recording and publishing; technicians can pull once this is fixed
        log.error("LAN API disabled: %s", err)
        return None
    log.info("LAN API on %s", server.url)
    return server
