"""``edgecam bench``: run the vision pipeline flat out on a file and report what it costs.

Decoding is timed apart from analysis; frames are converted to BGR only when
``FrameGate`` picks them, as the daemon does. CPU time comes from
``getrusage`` (all threads, onnxruntime's included), so "CPU-s per video-s"
is what a Pi core budget must cover, scaled by the Pi's slower cores.
"""

from __future__ import annotations

import resource
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .capture import SourceError
from .capture.pyav import PyavSource
from .errors import UserError
from .node.status import peak_rss_mb
from .types import AnalyzerStats, Event, Frame, Packet
from .vision.pipeline import CameraAnalyzer, FrameGate


@dataclass
class FileRun:
    """What one pass over a file produced."""

    events: list[Event] = field(default_factory=list)
    stats: AnalyzerStats | None = None  # the analyzer's, at the end of the pass
    frames: int = 0  # decoded
    analysed: int = 0
    video_s: float = 0.0
    wall_s: float = 0.0
    cpu_s: float = 0.0
    decode_ms: float = 0.0  # total, including BGR conversion of analysed frames
    size: tuple[int, int] = (0, 0)


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def iter_frames(
    path: Path, detect_fps: float, timing: FileRun | None = None, stop_at: float | None = None
) -> Iterator[tuple[int, float, np.ndarray]]:
    """(index, source time, BGR image) of the frames ``FrameGate`` picks, read by the daemon's own
    capture stage; decode time (BGR conversion included) goes to ``timing``."""
    source = PyavSource("bench", str(path))
    try:
        info = source.open()
    except SourceError as err:
        raise UserError(str(err)) from None
    gate = FrameGate(detect_fps)
    t0 = time.perf_counter()
    try:
        for item in source.items():
            if isinstance(item, Packet):
                continue
            if stop_at is not None and item.time >= stop_at:
                return
            if timing is not None:
                timing.frames = item.index + 1
                timing.video_s = max(timing.video_s, item.time)
            if not gate.should_analyse(item.time):
                continue
            image = item.to_bgr()
            if timing is not None:
                timing.decode_ms += (time.perf_counter() - t0) * 1000
            yield item.index, item.time, image
            t0 = time.perf_counter()
    except SourceError as err:
        raise UserError(str(err)) from None
    finally:
        source.close()
    if timing is not None:
        timing.decode_ms += (time.perf_counter() - t0) * 1000
        if info.fps:
            timing.video_s += 1.0 / info.fps  # the last frame lasts one frame interval


def analyse_file(
    path: Path,
    analyzer: CameraAnalyzer,
    detect_fps: float = 5.0,
    transform: Callable[[int, float, np.ndarray], np.ndarray] | None = None,
    stop_at: float | None = None,
) -> FileRun:
    """Feed a file through ``analyzer`` as the daemon would; returns events, stats and costs."""
    run = FileRun()
    wall0 = time.time()
    cpu0, t0 = _cpu(), time.perf_counter()
    last_t = 0.0
    for index, t, image in iter_frames(path, detect_fps, run, stop_at):
        if transform is not None:
            image = transform(index, t, image)
        run.size = (image.shape[1], image.shape[0])
        run.analysed += 1
        last_t = t
        run.events += analyzer.process(Frame(analyzer.camera, index, t, t, wall0 + t, image))
    run.events += analyzer.flush(last_t, wall0 + last_t)
    run.wall_s = time.perf_counter() - t0
    run.cpu_s = _cpu() - cpu0
    run.stats = analyzer.stats()
    return run


def _baselines(path: Path, detector, detect_fps: float, video_s: float) -> dict[str, Any]:
    """OpenCV MOG2 as a motion baseline; full-frame detection on every analysed and every decoded frame."""
    import cv2

    out: dict[str, Any] = {}
    mog = cv2.createBackgroundSubtractorMOG2(detectShadows=False)
    ms, n = 0.0, 0
    for _, _, image in iter_frames(path, detect_fps):
        t = time.perf_counter()
        mog.apply(image)
        ms += (time.perf_counter() - t) * 1000
        n += 1
    out["mog2_ms_per_frame"] = round(ms / max(1, n), 3)
    for name, fps in (("full_frame_at_detect_fps", detect_fps), ("full_frame_every_frame", 1000.0)):
        cpu0, calls = _cpu(), 0
        for _, _, image in iter_frames(path, fps):
            detector.detect(image)
            calls += 1
        cpu = _cpu() - cpu0
        out[name] = {"detector_calls": calls, "cpu_s_per_video_s": round(cpu / max(video_s, 1e-9), 3)}
    return out


def summarise(run: FileRun, source: Path, model: str) -> dict[str, Any]:
    s = run.stats
    if s is None:
        raise ValueError("summarise: the run has no analyzer stats (analyse_file sets them)")
    starts = s.started
    return {
        "source": source.name,
        "size": f"{run.size[0]}x{run.size[1]}",
        "model": model,
        "video_s": round(run.video_s, 2),
        "frames": run.frames,
        "analysed": run.analysed,
        "fps": round(run.frames / max(run.wall_s, 1e-9), 1),
        "ms_per_analysed_frame": {
            "decode": round(run.decode_ms / max(1, run.analysed), 2),
            **{k: round(v / max(1, run.analysed), 2) for k, v in s.ms_total.items()},
        },
        "detect_ms_per_call": round(s.ms_total.get("detect", 0.0) / max(1, s.detector_calls), 2),
        "detector_calls": s.detector_calls,
        "motion_frames": s.motion_frames,
        "tracks": s.tracks,
        "short_tracks": s.short_tracks,
        "median_track_s": s.median_track_s,
        "starts": dict(sorted(starts.items())),
        "cpu_s_per_video_s": round(run.cpu_s / max(run.video_s, 1e-9), 3),
        "peak_rss_mb": peak_rss_mb(),
    }


