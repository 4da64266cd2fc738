"""The supervisor: builds every stage through ``edge.node.build``, runs the threads, stops them in reverse.

No logic of its own beyond supervision: start order is storage → detector →
outbox → clip store → cameras → LAN API; stop order is the reverse, so open
clips are finished and the outbox gets its bounded drain before exit.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .. import __version__
from ..config import Config, doubtful, load_config, unusable
from ..sdnotify import Notifier
from ..signals import deferred
from ..types import CameraState, Frame
from . import build
from .build import CameraRuntime, StartupError
from .heap import TRIM_EVERY_S, Heap
from .status import CameraStatus, ClockCache, DaemonView, NodeStatus, collect, stats_body

if TYPE_CHECKING:
    from ..api.server import ApiServer
    from ..clips.evidence import NodeKey
    from ..clips.store import ClipStore
    from ..outbox.service import OutboxService
    from ..storagelock import StorageLock
    from ..vision.shared import SharedDetector

__all__ = ["CameraRuntime", "Daemon", "StartupError"]

log = logging.getLogger("edgecam")

PROGRESS_EVERY_S = 5.0
STALL_LIMIT_S = 60.0  # a stage silent for this long stops the watchdog pings


class Daemon:
    def __init__(self, cfg: Config) -> None:
        self.cfg = cfg
        self.stop_event = threading.Event()
        self.notifier = Notifier()
        self.cameras: dict[str, CameraRuntime] = {}
        self.detector: SharedDetector | None = None
        self.outbox: OutboxService | None = None
        self.clip_store: ClipStore | None = None
        self.api: ApiServer | None = None
        self.requests: Any = None  # wiring: requests (edge.node.requests.RequestHandler)
        self.best_shots: Any = None  # vision.bestshot.BestShotWorker (with the plate reader behind it)
        self.started = time.monotonic()
        self.clock = ClockCache()
        self.storage_lock: StorageLock | None = None
        self.node_key: NodeKey | None = None
        self.config_path: str | Path | None = None  # set by `edgecam run`: SIGHUP re-reads [api] tokens from it
        self._reload = threading.Event()
        self.heap = Heap()

    # ---- start -------------------------------------------------------------------------
    def start(self) -> None:
        self.heap.cap_arenas()  # before any worker thread exists (edge/node/heap.py)
        for problem in unusable(self.cfg):  # what `edgecam check` fails on, said where the journal shows it
            log.error("config: %s", problem)
        for note in doubtful(self.cfg):
            log.warning("config: %s", note)
        storage = self.cfg.storage.path
        try:
            storage.mkdir(parents=True, exist_ok=True)
            probe = storage / ".write-test"
            probe.write_bytes(b"")
            probe.unlink()
        except OSError as err:
            raise StartupError(f"storage.path {storage}: not writable ({err.strerror})") from None
        self._lock_storage()
        # wiring: signed messages (#18.1): every node has a key now, clips or not (events, status, stats signed)
        self.node_key = self._load_key()  # before anything starts: a corrupt key ends start-up in one line
        self.detector = build.detector(self.cfg)
        self.outbox = build.outbox(self.cfg, build.signer(self.cfg, self.node_key))  # wiring: signed messages
        self.outbox.start()
        if self.cfg.clips.enabled:
            self.clip_store = build.clip_store(self.cfg, self.node_key)
            self.best_shots = build.best_shots(self.cfg, self.clip_store, self.stills_at, self.outbox)
        elif build.plates_models(self.cfg) is not None:
            log.warning("plates: read from best shots, which live in the clip store: off while [clips] is off")
        for name, cam in self.cfg.cameras.items():
            if cam.enabled:
                self.cameras[name] = build.camera(name, cam, self.cfg, self.detector, self.clip_store, self.outbox,
                                                  self.clock.ok, self.stop_event, shots=self.best_shots)
        if not self.cameras:
            log.warning("no cameras configured: nothing to capture")
        for runtime in self.cameras.values():
            for thread in runtime.threads:
                thread.start()
        if self.cfg.api.enabled and self.clip_store is not None:
            self.api = build.api(self.cfg, self.clip_store, DaemonView(self.status, self.latest_frame,
                                                                           self.still_at))
        if self.clip_store is not None:  # wiring: requests (push fetch from central, edge/node/requests.py)
            from .requests import start_request_handler

            self.requests = start_request_handler(self.cfg, self.clip_store.catalog)
        for runtime in self.cameras.values():
            runtime.capture.opened.wait(timeout=runtime.config.open_timeout + 2)
            if runtime.record is not None:
                runtime.record.opened.wait(timeout=runtime.config.open_timeout + 2)
        self.notifier.send("READY=1", f"STATUS={self.summary()}")
        log.info("edgecam %s node %s running with %d camera(s)", __version__, self.cfg.node.id, len(self.cameras))

    def _lock_storage(self) -> None:
        """Before the outbox or clip store is opened: a second daemon on this storage exits with one line."""
        from ..storagelock import StorageBusy, StorageLock

        try:
            self.storage_lock = StorageLock(self.cfg.storage.path).acquire()
        except StorageBusy as err:
            raise StartupError(str(err)) from None
        except OSError as err:
            raise StartupError(f"storage.path {self.cfg.storage.path}: cannot lock ({err.strerror})") from None

    def _load_key(self) -> NodeKey:
        from ..clips.evidence import NodeKey
        from ..errors import UserError

        try:
            return NodeKey.load_or_create(self.cfg.storage.path / "keys")
        except UserError as err:
            raise StartupError(str(err)) from None

    # ---- supervise ---------------------------------------------------------------------
    def supervise(self) -> int:
        interval = self.notifier.watchdog_interval() or 5.0
        next_ping = next_stats = next_progress = time.monotonic()
        next_trim = next_ping + TRIM_EVERY_S
        while not self.stop_event.wait(0.25):
            now = time.monotonic()
            if self.cameras and all(c.done for c in self.cameras.values()):
                break
            if now >= next_ping:
                next_ping = now + min(interval, 5.0)
                stalled = self.stalled_stage()
                if stalled is None:
                    self.notifier.send("WATCHDOG=1", f"STATUS={self.summary()}")
                else:
                    log.error("stage %s is stuck; withholding watchdog pings", stalled)
                    self.notifier.send(f"STATUS=stuck: {stalled}")
            if now >= next_progress:
                next_progress = now + PROGRESS_EVERY_S
                self._log_progress()
            if now >= next_trim:  # a few ms a minute; keeps RSS at the live size across faults (edge/node/heap.py)
                next_trim = now + TRIM_EVERY_S
                self.heap.trim()
            if self._reload.is_set():
                self._reload.clear()
                self.reload_tokens()
            if now >= next_stats and self.outbox is not None:
                next_stats = now + self.cfg.mqtt.stats_interval
                self.outbox.publish_stats(self.stats())
        failed = [c.name for c in self.cameras.values() if c.capture.state is CameraState.FAILED]
        if self.cameras and len(failed) == len(self.cameras) and not self.stop_event.is_set():
            log.error("every camera failed: %s", "; ".join(c.capture.last_error for c in self.cameras.values()))
            return 1
        return 0

    def stalled_stage(self) -> str | None:
        now = time.monotonic()
        for cam in self.cameras.values():
            for i, thread in enumerate(cam.threads):
                loop = cam.record if i == 2 and cam.record is not None else cam.capture
                if not thread.is_alive() and loop.state not in (CameraState.FINISHED, CameraState.FAILED):
                    return thread.name
            if cam.threads[1].is_alive() and now - cam.analysis.heartbeat > STALL_LIMIT_S:
                return f"analysis-{cam.name}"
            reading = cam.capture.state is CameraState.RUNNING and cam.threads[0].is_alive()
            if reading and now - cam.capture.heartbeat > STALL_LIMIT_S:
                return f"capture-{cam.name}"
            rec = cam.record
            if rec is not None and rec.state is CameraState.RUNNING and cam.threads[2].is_alive() and (
                    now - rec.heartbeat > STALL_LIMIT_S):
                return f"record-{cam.name}"
        return None

    def summary(self) -> str:
        parts = [f"{c.name}:{c.capture.state.value}"
                 + (f"/record:{c.record.state.value}" if c.record is not None else "") for c in self.cameras.values()]
        depth = self.outbox.depth() if self.outbox is not None else 0
        return f"{' '.join(parts) or 'no cameras'}; outbox {depth}"

    def _log_progress(self) -> None:
        for cam in self.cameras.values():
            if cam.capture.state is CameraState.RUNNING:
                latest = cam.analysis.latest
                log.info("camera %s: %.1f s of video, %d frames analysed, %d dropped, %d events", cam.name,
                         latest.time if latest else 0.0, cam.analysis.analysed, cam.analysis.slot.dropped,
                         sum(cam.analysis.event_counts.values()))

    def status(self) -> NodeStatus:
        """One frozen snapshot of the node: what MQTT stats, ``/api/v1/health`` and the page report."""
        cams = tuple(CameraStatus(c.name, c.capture.snapshot(), c.analysis.snapshot(),
                                  c.recorder.stats() if c.recorder is not None else None,
                                  c.record.snapshot() if c.record is not None else None)
                     for c in self.cameras.values())
        return collect(self.cfg.node.id, self.stop_event.is_set(), self.started, cams,
                       self.outbox.depth() if self.outbox is not None else 0, self.cfg.storage.path,
                       self.clip_store.stats() if self.clip_store is not None else None, self.clock.ok(),
                       self.detector.stats() if self.detector is not None else None,
                       self.best_shots.stats() if self.best_shots is not None else None)

    def stats(self) -> dict[str, Any]:
        """The ``stats`` payload's body, the outbox's own figures included (what ``publish_stats`` sends)."""
        return stats_body(self.status(), self.outbox.stats() if self.outbox is not None else None)

    def latest_frame(self, camera: str) -> Frame | None:
        """The last analysed frame of ``camera`` (the page's live view), None before the first."""
        cam = self.cameras.get(camera)
        return cam.analysis.latest if cam is not None else None

    def still_at(self, camera: str, mono: float) -> Any:
        """A two-stream camera's record-stream frame at ``mono`` (full size, decoded now), else None."""
        cam = self.cameras.get(camera)
        if cam is None or cam.record is None or cam.recorder is None:
            return None
        return cam.recorder.still_at(mono)

    def stills_at(self, camera: str, monos: Sequence[float]) -> Iterator[tuple[int, Any]]:
        """``(k, image)`` for each ``monos[k]`` a two-stream camera's record stream still holds (one decoding
        pass per GOP); nothing for a camera with one stream."""
        cam = self.cameras.get(camera)
        if cam is None or cam.record is None or cam.recorder is None:
            return iter(())
        return cam.recorder.stills_at(monos)

    # ---- stop --------------------------------------------------------------------------
    def request_stop(self, *_: Any) -> None:
        if not self.stop_event.is_set():
            log.info("stopping: finishing clips and flushing the outbox")
        self.stop_event.set()

    def shutdown(self) -> bool:
        self.stop_event.set()
        self.notifier.send("STOPPING=1")
        for cam in self.cameras.values():
            for thread in cam.threads:
                thread.join(timeout=max(10.0, cam.config.read_timeout * 3))
        if self.best_shots is not None:  # the last ends' best shots are stored before their clips close
            self.best_shots.stop(timeout=10.0)
        for cam in self.cameras.values():
            if cam.recorder is not None:
                cam.recorder.close(timeout=30.0)
        if self.best_shots is not None and self.best_shots.plates is not None:
            self.best_shots.plates.stop(timeout=10.0)  # its last plates go out as updates before the outbox stops
        if self.requests is not None:  # wiring: requests
            self.requests.stop()
        if self.clip_store is not None:
            self.clip_store.close()
        if self.api is not None:
            self.api.stop()
        drained = True
        if self.outbox is not None:
            self._say_drain_wait()
            drained = self.outbox.stop(self.cfg.mqtt.drain_timeout)
            if not drained:
                log.warning("outbox not drained: %d event(s) wait for the next start", self.outbox.depth())
        self._log_summary()
        return drained

    def _say_drain_wait(self) -> None:
        """Before a drain that cannot finish at once: one line, so a stop with the broker down is not a silent hang."""
        assert self.outbox is not None
        waiting = self.outbox.depth()
        publisher = getattr(self.outbox, "publisher", None)
        if waiting and not getattr(publisher, "connected", True):
            log.info("outbox: the broker is not connected: waiting up to %g s (mqtt.drain_timeout) for it, then "
                     "%d event(s) stay in the outbox for the next start", self.cfg.mqtt.drain_timeout, waiting)

    def _log_summary(self) -> None:
        for cam in self.cameras.values():
            counts = ", ".join(f"{k}={v}" for k, v in sorted(cam.analysis.event_counts.items())) or "no events"
            log.info("summary %s: %s; %d frames analysed, %d dropped, %d reconnects; %s", cam.name,
                     cam.capture.state.value, cam.analysis.analysed, cam.analysis.slot.dropped,
                     cam.capture.reconnects, counts)

    def request_reload(self, *_: Any) -> None:
        """SIGHUP (``systemctl reload edgecam``): the supervisor re-reads the API tokens; nothing else stops."""
        self._reload.set()

    def reload_tokens(self) -> bool:
        """New ``[api] tokens`` take effect without a restart; a bad config keeps the old ones (one line why)."""
        if self.config_path is None or self.api is None:
            log.warning("reload: %s", "no config file to re-read" if self.config_path is None else "LAN API is off")
            return False
        try:
            tokens = load_config(self.config_path).api.tokens
            self.api.set_tokens(tokens)
        except Exception as err:  # noqa: BLE001 - any failure keeps the running tokens; say why in one line
            log.error("reload: tokens unchanged: %s", " ".join(str(err).split())[:300])
            return False
        return True

    def run(self) -> int:
        for sig in (signal.SIGTERM, signal.SIGINT):  # deferred: Event.set() in a handler can deadlock
            signal.signal(sig, deferred(self.request_stop))
        signal.signal(signal.SIGHUP, deferred(self.request_reload))
        try:
            self.start()
        except StartupError as err:
            log.error("%s", err)
            self._abort()
            return 1
        code = self.supervise()
        self.shutdown()
        return code

    def _abort(self) -> None:
        self.stop_event.set()
        if self.outbox is not None:
            self.outbox.stop(0)
