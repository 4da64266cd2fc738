"""What the node reports about itself: the stats payload and the LAN API's live view."""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import cv2

from .redact import redact_url

if TYPE_CHECKING:  # pragma: no cover
    from .daemon import Daemon

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


def disk_usage(path: Path) -> dict[str, int]:
    try:
        usage = shutil.disk_usage(path)
    except OSError:
        return {}
    return {"used_bytes": usage.used, "free_bytes": usage.free, "total_bytes": usage.total}


def node_stats(daemon: Daemon) -> dict[str, Any]:
    """The daemon's part of ``<prefix>/<node>/stats`` (the outbox adds v, node, ts, uptime and its own)."""
    uptime = max(1e-6, time.monotonic() - daemon.started)
    fps: dict[str, float] = {}
    dropped: dict[str, int] = {}
    stage_ms: dict[str, float] = {}
    cameras: dict[str, Any] = {}
    for cam in daemon.cameras.values():
        analyzer_stats = cam.analysis.analyzer.stats()
        fps[cam.name] = round(cam.analysis.analysed / uptime, 2)
        dropped[cam.name] = cam.capture.slot.dropped
        for stage, ms in analyzer_stats.get("ms", {}).items():
            stage_ms[f"{cam.name}.{stage}"] = round(float(ms), 3)
        cameras[cam.name] = {
            "state": cam.capture.state.value,
            "frames": cam.analysis.analysed,
            "reconnects": cam.capture.reconnects,
            "bad_packets": getattr(cam.capture.source, "bad_packets", 0),
            "lines": analyzer_stats.get("lines", {}),
        }
        if cam.recorder is not None:
            cameras[cam.name]["recorder"] = cam.recorder.stats()
    disk = disk_usage(daemon.cfg.storage.path)
    if daemon.clip_store is not None:
        disk["clips_bytes"] = int(daemon.clip_store.stats().get("bytes", 0))
    return {
        "fps": fps,
        "stage_ms": stage_ms,
        "dropped_frames": dropped,
        "cameras": cameras,
        "disk": disk,
        "cpu_temp_c": cpu_temperature(),
        "time_ok": daemon.clock.ok(),
    }


class DaemonView:
    """The LAN API's read-only window on the running node (edge.interfaces.NodeView)."""

    def __init__(self, daemon: Daemon) -> None:
        self._daemon = daemon

    def latest_jpeg(self, camera: str) -> bytes | None:
        cam = self._daemon.cameras.get(camera)
        frame = cam.analysis.latest if cam is not None else None
        if frame is None:
            return None
        ok, buf = cv2.imencode(".jpg", frame.image, [cv2.IMWRITE_JPEG_QUALITY, 85])
        return buf.tobytes() if ok else None

    def health(self) -> dict[str, Any]:
        """What the technician's page shows at a glance (edge/api/web/app.js reads these keys)."""
        d = self._daemon
        store_stats = d.clip_store.stats() if d.clip_store is not None else {}
        usage = disk_usage(d.cfg.storage.path)
        return {
            "node": d.cfg.node.id,
            "state": "stopping" if d.stop_event.is_set() else "running",
            "version": _version(),
            "uptime": round(time.monotonic() - d.started, 1),
            "cameras": {c.name: {"state": c.capture.state.value, "error": redact_url(c.capture.last_error) or None,
                                 "resolution": c.capture.resolution} for c in d.cameras.values()},
            "outbox": {"depth": d.outbox.depth() if d.outbox is not None else 0},
            "disk": {"total": usage.get("total_bytes", 0), "used": usage.get("used_bytes", 0),
                     "free": usage.get("free_bytes", 0)},
            "clips": store_stats,
            "time_ok": d.clock.ok(),
        }


def _version() -> str:
    from . import __version__

    return __version__
