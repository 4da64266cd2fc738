"""What the node reports about itself: the stats payload and the LAN API's live view."""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import cv2

if TYPE_CHECKING:  # pragma: no cover
    from .daemon import Daemon

THERMAL_ZONE = Path("/sys/class/thermal/thermal_zone0/temp")


def cpu_temperature() -> float | None:
    """CPU temperature in °C where the kernel exposes it (Pi, Jetson), else None."""
    try:
        return int(THERMAL_ZONE.read_text().strip()) / 1000.0
    except (OSError, ValueError):
        return None


def disk_usage(path: Path) -> dict[str, int]:
    try:
        usage = shutil.disk_usage(path)
    except OSError:
        return {}
    return {"total": usage.total, "used": usage.used, "free": usage.free}


def node_stats(daemon: Daemon) -> dict[str, Any]:
    """The body of ``<prefix>/<node>/stats``: small, flat enough to graph."""
    cameras: dict[str, Any] = {}
    uptime = time.monotonic() - daemon.started
    for cam in daemon.cameras.values():
        analyzer_stats = cam.analysis.analyzer.stats()
        cameras[cam.name] = {
            "state": cam.capture.state.value,
            "fps": round(cam.analysis.analysed / uptime, 2) if uptime > 0 else 0.0,
            "frames": cam.analysis.analysed,
            "dropped": cam.capture.slot.dropped,
            "reconnects": cam.capture.reconnects,
            "stage_ms": analyzer_stats.get("stage_ms", {}),
            "lines": analyzer_stats.get("lines", {}),
        }
        if cam.recorder is not None:
            cameras[cam.name]["recorder"] = cam.recorder.stats()
    outbox = daemon.outbox.stats() if daemon.outbox is not None else {}
    return {
        "node": daemon.cfg.node.id,
        "ts": round(time.time(), 3),
        "uptime": round(uptime, 1),
        "cameras": cameras,
        "outbox": outbox,
        "disk": disk_usage(daemon.cfg.storage.path),
        "cpu_temp": cpu_temperature(),
        "time_ok": daemon._clock.ok(),
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
        d = self._daemon
        store_stats = d.clip_store.stats() if d.clip_store is not None and hasattr(d.clip_store, "stats") else {}
        return {
            "node": d.cfg.node.id,
            "version": _version(),
            "uptime": round(time.monotonic() - d.started, 1),
            "cameras": {c.name: {"state": c.capture.state.value, "error": c.capture.last_error or None,
                                 "resolution": c.capture.resolution} for c in d.cameras.values()},
            "outbox": {"depth": d.outbox.depth() if d.outbox is not None else 0},
            "disk": disk_usage(d.cfg.storage.path),
            "clips": store_stats,
            "time_ok": d._clock.ok(),
        }


def _version() -> str:
    from . import __version__

    return __version__
