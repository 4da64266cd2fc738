"""The vision stages' settings and their defaults: the one place each default value is written.

Only frozen dataclasses, no cv2/numpy, so that ``edge/config.py`` can take its
field defaults from here cheaply (``threshold: ... = MotionSettings.threshold``)
and the stage constructors theirs (``MotionDetector(..., threshold=MotionSettings.threshold)``).
``edge.node.build.analyzer_settings`` fills them in from the config. A test
(tests/test_config_defaults.py) fails if the config's default and the stage's drift apart.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

Point = tuple[float, float]


@dataclass(frozen=True)
class MotionSettings:
    analysis_height: int = 120  # rows of the grey copy motion works on (config: ``motion.height``)
    threshold: int = 25
    min_area: float = 0.001  # fraction of the frame
    lightning_threshold: float = 0.6
    frame_alpha: float = 0.05
    persist_frames: int = 2
    mask: tuple[tuple[Point, ...], ...] = ()  # normalised polygons where motion is ignored
    low_light: bool = True  # see edge.vision.motion: the threshold follows a dark scene's contrast


@dataclass(frozen=True)
class TrackerSettings:
    min_hits: int = 3
    max_lost: float = 1.5  # seconds a track may go unseen before it ends
    match_iou: float = 0.2
    stationary_recheck: float = 5.0  # seconds between re-detections of a still object


@dataclass(frozen=True)
class EventSettings:
    zones: Mapping[str, tuple[Point, ...]] = field(default_factory=dict)
    lines: Mapping[str, tuple[Point, Point]] = field(default_factory=dict)
    update_interval: float = 1.0  # at most one update per object per this many seconds
    score_step: float = 0.1  # best-score gain that earns an update
    best_shots: bool = False  # choose best-shot candidates (on where a worker stores them: end events name them)


@dataclass(frozen=True)
class DetectorSettings:
    """The detector's defaults (``edge.vision.detector.Detector`` keyword arguments, ``[detector]`` keys)."""

    labels: tuple[str, ...] = ("person", "bicycle", "car", "motorcycle", "bus", "truck")  # the labels kept
    min_score: float = 0.4
    nms_iou: float = 0.45
    threads: int = 2
    providers: tuple[str, ...] = ("CPUExecutionProvider",)


@dataclass(frozen=True)
class AnalyzerSettings:
    motion: MotionSettings = MotionSettings()
    tracker: TrackerSettings = TrackerSettings()
    events: EventSettings = EventSettings()
    min_area: float = 0.0005  # detections smaller than this fraction of the frame are dropped
    max_area: float = 0.9
