"""From config to the vision stages' plain values: the one vision module that reads config objects.

The daemon, ``check``, ``snapshot`` and ``bench`` call these, so every entry
point builds the pipeline the same way; the stages themselves never see
config.
"""

from __future__ import annotations

import threading
from typing import Any

from ..config import CameraConfig, Config, DetectorConfig
from .pipeline import AnalyzerSettings, EventSettings, MotionSettings, TrackerSettings


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


class SharedDetector:
    """One detector serving several camera threads.

    ``Detector`` reuses its input buffers between calls, so two cameras must
    not run it at the same moment; this serialises them (one model in memory
    instead of one per camera; on 2-4 cores parallel inference gains little).
    """

    def __init__(self, detector: Any) -> None:
        self._detector = detector
        self._lock = threading.Lock()
        self.input_size: int = detector.input_size

    def detect(self, image: Any) -> list:
        with self._lock:
            return self._detector.detect(image)
