"""What the node reports about itself: one frozen snapshot, serialised here and nowhere else.

Each loop hands out a frozen snapshot of its own counters (``CaptureStatus``,
``AnalysisStatus``), each stage its frozen report (``RecorderStats``,
``ClipStoreStats``, ``DetectorStats``, ``OutboxStats``: ``edge.types``); the
daemon gathers them with the disk facts into one ``NodeStatus``. ``stats_body``
turns it into the MQTT ``stats`` payload, ``health_body`` into ``/api/v1/health``
(which the page reads): the key names of both are the published contract and do
not change, and this module is the only place that writes them.
This module imports nothing of the daemon's, so the two cannot import each other.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .. import __version__
from ..redact import redact_url
from ..types import (
    CameraState,
    ClipStoreStats,
    DetectorStats,
    Frame,
    IdentificationStats,
    OutboxStats,
    RecorderStats,
)

THERMAL_ZONE = Path("/sys/class/thermal/thermal_zone0/temp")


def cpu_temperature() -> float | None:
    """CPU temperature in °C where the kernel exposes it (Pi, Jetson), else None."""
    try:
        return int(THERMAL_ZONE.read_text().strip()) / 1000.0
    except (OSError, ValueError):
        return None


def peak_rss_mb() -> float:
    """This process's peak RSS (VmHWM). Not ``ru_maxrss``: that one survives exec on Linux, so a
    process started from a large parent (pytest, say) would report the parent's size."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024, 1)
    except (OSError, ValueError):
        pass
    import resource

    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


@dataclass(frozen=True)
class DiskUsage:
    total: int
    used: int
    free: int


def disk_usage(path: Path) -> DiskUsage | None:
    """The storage file system's usage, None when it cannot be read (a missing mount)."""
    try:
        usage = shutil.disk_usage(path)
    except OSError:
        return None
    return DiskUsage(total=usage.total, used=usage.used, free=usage.free)


@dataclass(frozen=True)
class CaptureStatus:
    """A capture loop's counters at one moment."""

    state: CameraState
    reconnects: int
    bad_packets: int
    dropped: int
    last_error: str
    resolution: tuple[int, int] | None
    decoder: str | None = None  # "software", a hardware decoder's name, "none" (a record stream), None (raw)
    fps: float = 0.0  # nominal rate the stream states
    codec: str | None = None


@dataclass(frozen=True)
class AnalysisStatus:
    """An analysis loop's counters at one moment (the analyzer's own figures included)."""

    analysed: int
    events: int
    stage_ms: Mapping[str, float]
    lines: Mapping[str, Mapping[str, int]]


@dataclass(frozen=True)
class CameraStatus:
    name: str
    capture: CaptureStatus  # the stream that is analysed (a two-stream camera's detect stream)
    analysis: AnalysisStatus
    recorder: RecorderStats | None  # ClipRecorder.stats(), published whole (recorder_body)
    record: CaptureStatus | None = None  # a two-stream camera's record stream; None: one stream does both

    @property
    def blind(self) -> bool:
        """No frames to analyse: the (detect) stream is not running."""
        return self.capture.state is not CameraState.RUNNING

    @property
    def record_down(self) -> str | None:
        """Why events get no clip now, when the record stream of a two-stream camera is down; else None."""
        if self.record is None or self.record.state is CameraState.RUNNING:
            return None
        return redact_url(self.record.last_error) or f"record stream {self.record.state.value}"


def stream_body(c: CaptureStatus) -> dict[str, Any]:
    """One stream of a two-stream camera, as stats and health show it."""
    return {"state": c.state.value, "error": redact_url(c.last_error) or None, "resolution": c.resolution,
            "fps": round(c.fps, 2), "codec": c.codec, "decoder": c.decoder, "reconnects": c.reconnects,
            "bad_packets": c.bad_packets}


@dataclass(frozen=True)
class NodeStatus:
    """Everything the node says about itself, read once per report."""

    node: str
    stopping: bool
    version: str
    uptime_s: float
    cameras: tuple[CameraStatus, ...]
    outbox_depth: int
    disk: DiskUsage | None
    clips: ClipStoreStats | None  # ClipStore.stats(); None with clips off
    cpu_temp_c: float | None
    time_ok: bool
    detector: DetectorStats | None = None  # SharedDetector.stats(): calls and waits per analysis thread
    identification: IdentificationStats | None = None  # BestShotWorker.stats(); None with clips off


def collect(node: str, stopping: bool, started: float, cameras: tuple[CameraStatus, ...], outbox_depth: int,
            storage: Path, clips: ClipStoreStats | None, time_ok: bool,
            detector: DetectorStats | None = None, identification: IdentificationStats | None = None) -> NodeStatus:
    """One snapshot; ``started`` is the daemon's ``time.monotonic()`` at construction."""
    return NodeStatus(node=node, stopping=stopping, version=__version__, uptime_s=time.monotonic() - started,
                      cameras=cameras, outbox_depth=outbox_depth, disk=disk_usage(storage), clips=clips,
                      cpu_temp_c=cpu_temperature(), time_ok=time_ok, detector=detector,
                      identification=identification)


def detector_body(s: NodeStatus) -> dict[str, Any] | None:
    """The shared detector's load: busy share of the node's uptime, and each camera's calls and wait (s)."""
    if s.detector is None:
        return None
    calls, waited = s.detector.calls, s.detector.waited_s
    cams = {}
    for cam in s.cameras:
        thread = f"analysis-{cam.name}"  # the thread that calls the detector for this camera (node.build)
        cams[cam.name] = {"calls": int(calls.get(thread, 0)), "waited_s": round(float(waited.get(thread, 0.0)), 3)}
    busy = float(s.detector.busy_s)
    return {"busy_share": round(busy / max(1e-6, s.uptime_s), 3), "cameras": cams}


def best_shots_body(i: IdentificationStats) -> dict[str, Any]:
    """Best shots and plates, as ``stats`` shows them (``best_shots``): what was stored, how many came from the
    record stream at full resolution, what the stills and the plate reads cost."""
    return {"offered": i.offered, "dropped": i.dropped, "stored": i.stored, "store_failed": i.store_failed,
            "from_record_stream": i.from_record_stream, "stills_over_budget": i.stills_over_budget,
            "still_cpu_s": i.still_cpu_s,
            "plates": {"submitted": i.plates_submitted, "read": i.plates_read, "found": i.plates_found,
                       "dropped": i.plates_dropped, "cpu_s": i.plates_cpu_s}}


def recorder_body(r: RecorderStats) -> dict[str, Any]:
    """A camera's clip recorder, as ``stats`` shows it (``cameras.<name>.recorder``)."""
    return {"packets": r.packets, "dropped": r.dropped, "clips": r.clips, "lost": r.lost, "errors": r.errors,
            "queued": r.queued, "ring_s": r.ring_s, "ring_bytes": r.ring_bytes, "recording": r.recording,
            "paused": r.paused, "streaming": r.streaming, "down": r.down}


def clips_body(c: ClipStoreStats) -> dict[str, Any]:
    """The clip store, as ``/api/v1/health`` shows it (``clips``)."""
    return {"clips": c.clips, "bytes": c.bytes, "held": c.held, "lost": c.lost, "best_bytes": c.best_bytes,
            "quarantined": c.quarantined, "paused": c.paused, "pause_reason": c.pause_reason,
            "free_bytes": c.free_bytes}


def outbox_body(o: OutboxStats) -> dict[str, Any]:
    """The outbox, as ``stats`` shows it (``outbox``: edge/schema/stats.schema.json)."""
    return {"depth": o.depth, "oldest_age_s": o.oldest_age_s, "evicted": o.evicted, "trimmed": o.trimmed,
            "published": o.published, "replayed": o.replayed, "connected": o.connected,
            "blocked_submits": o.blocked_submits, "last_seq": o.last_seq, "unsent": o.unsent,
            "end_to_end": o.end_to_end, "central_seq": o.central_seq, "resent": o.resent,
            "unstored": o.unstored, "disk_reserve": o.disk_reserve}


def stats_body(s: NodeStatus, outbox: OutboxStats | None = None) -> dict[str, Any]:
    """The daemon's part of ``<prefix>/<node>/stats``, with ``outbox`` (last) when it is given; the outbox
    service adds v, node, ts and uptime in front."""
    uptime = max(1e-6, s.uptime_s)
    cameras: dict[str, Any] = {}
    stage_ms: dict[str, float] = {}
    for cam in s.cameras:
        for stage, ms in cam.analysis.stage_ms.items():
            stage_ms[f"{cam.name}.{stage}"] = round(float(ms), 3)
        cameras[cam.name] = {
            "state": cam.capture.state.value,
            "frames": cam.analysis.analysed,
            "reconnects": cam.capture.reconnects,
            "bad_packets": cam.capture.bad_packets,
            "lines": {k: dict(v) for k, v in cam.analysis.lines.items()},
            "blind": cam.blind,
            "decoder": cam.capture.decoder,
        }
        if cam.record is not None:
            cameras[cam.name]["streams"] = {"record": stream_body(cam.record), "detect": stream_body(cam.capture)}
            cameras[cam.name]["record_down"] = cam.record_down
        if cam.recorder is not None:
            cameras[cam.name]["recorder"] = recorder_body(cam.recorder)
    disk: dict[str, int] = {}
    if s.disk is not None:
        disk = {"used_bytes": s.disk.used, "free_bytes": s.disk.free, "total_bytes": s.disk.total}
    if s.clips is not None:
        disk["clips_bytes"] = int(s.clips.bytes)
        disk["best_bytes"] = int(s.clips.best_bytes)
    return {
        "fps": {cam.name: round(cam.analysis.analysed / uptime, 2) for cam in s.cameras},
        "stage_ms": stage_ms,
        "dropped_frames": {cam.name: cam.capture.dropped for cam in s.cameras},
        "cameras": cameras,
        "disk": disk,
        "cpu_temp_c": s.cpu_temp_c,
        "time_ok": s.time_ok,
        **({"detector": det} if (det := detector_body(s)) is not None else {}),
        **({"best_shots": best_shots_body(s.identification)} if s.identification is not None else {}),
        **({"outbox": outbox_body(outbox)} if outbox is not None else {}),
    }


def health_body(s: NodeStatus) -> dict[str, Any]:
    """``/api/v1/health``: what the technician's page shows at a glance (edge/api/web/app.js reads these keys)."""
    d = s.disk or DiskUsage(0, 0, 0)
    return {
        "node": s.node,
        "state": "stopping" if s.stopping else "running",
        "version": s.version,
        "uptime": round(s.uptime_s, 1),
        "cameras": {c.name: _camera_health(c) for c in s.cameras},
        "outbox": {"depth": s.outbox_depth},
        "disk": {"total": d.total, "used": d.used, "free": d.free},
        "clips": clips_body(s.clips) if s.clips is not None else {},
        "time_ok": s.time_ok,
    }


def _camera_health(c: CameraStatus) -> dict[str, Any]:
    body: dict[str, Any] = {"state": c.capture.state.value, "error": redact_url(c.capture.last_error) or None,
                            "resolution": c.capture.resolution, "blind": c.blind}
    if c.record is not None:  # two streams: each on its own, and why clips are off while the record one is down
        body["streams"] = {"record": stream_body(c.record), "detect": stream_body(c.capture)}
        body["record_down"] = c.record_down
    return body


class DaemonView:
    """The LAN API's read-only window on the running node (edge.interfaces.NodeView)."""

    def __init__(self, status: Callable[[], NodeStatus], latest: Callable[[str], Frame | None],
                 still: Callable[[str, float], Any] | None = None) -> None:
        """``still(camera, mono)``: the record stream's full-size frame at ``mono`` (two-stream cameras), or
        None; the latest analysed frame is the fallback."""
        self._status = status
        self._latest = latest
        self._still = still

    def latest_jpeg(self, camera: str) -> bytes | None:
        import cv2

        frame = self._latest(camera)
        if frame is None:
            return None
        image = self._still(camera, frame.mono) if self._still is not None else None  # an API worker thread
        ok, buf = cv2.imencode(".jpg", frame.image if image is None else image, [cv2.IMWRITE_JPEG_QUALITY, 85])
        return buf.tobytes() if ok else None

    def health(self) -> dict[str, Any]:
        return health_body(self._status())


class ClockCache:
    """Whether the wall clock is synchronised, asked at most once a minute."""

    def __init__(self) -> None:
        self._value = True
        self._checked = -1e9

    def ok(self) -> bool:
        now = time.monotonic()
        if now - self._checked > 60:
            from ..clock import clock_synchronised

            self._value = clock_synchronised() is True  # "cannot tell" is not "synchronised" (time_ok contract)
            self._checked = now
        return self._value
