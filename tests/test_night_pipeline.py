"""Night events that are not objects (issue 19), through the whole pipeline with the real YOLOX-Nano.

A real street frame, darkened and noisy, with headlight sweeps (and their reflections on a wet road),
an insect or IR LED glare at the lens, and an IR switch. Motion may see the lights; none may start an
event: a light has no shape the detector accepts, and parked cars lit up must not become "moving" ones.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
from support.assets import model_path, video_path

from edge.bench import iter_frames
from edge.types import Frame
from edge.vision.detector import load_detector
from edge.vision.pipeline import CameraAnalyzer


@pytest.fixture(scope="module")
def detector():
    det, _ = load_detector(model_path())
    return det


@pytest.fixture(scope="module")
def night() -> np.ndarray:
    _, _, image = next(iter_frames(video_path("street"), 5.0))
    return (image.astype(np.float32) * 0.25).astype(np.uint8)


def glow(shape: tuple[int, ...], cx: float, cy: float, rx: float, ry: float, peak: float) -> np.ndarray:
    yy, xx = np.mgrid[0:shape[0], 0:shape[1]].astype(np.float32)
    return peak * np.exp(-(((xx - cx) / rx) ** 2 + ((yy - cy) / ry) ** 2) / 2.0)


def run(detector, frames: Callable[[int], np.ndarray], n: int, rng: np.random.Generator) -> tuple[list, dict]:
    analyzer = CameraAnalyzer("night", detector)
    events = []
    for i in range(n):
        noise = rng.normal(0, 3.0, (360, 640, 1))
        image = np.clip(frames(i).astype(np.float32) + noise, 0, 255).astype(np.uint8)
        events += analyzer.process(Frame("night", i, i / 5, i / 5, 1e9 + i / 5, image))
    events += analyzer.flush(n / 5, 1e9 + n / 5)
    return events, analyzer.stats()


def test_headlight_sweep_with_reflection_starts_no_event(detector, night):
    """Two lights crossing the dark street, each with a long reflection below it and a cone of light ahead."""

    def frame(i: int) -> np.ndarray:
        x = -60 + 28 * i
        light = (glow(night.shape, x, 190, 9, 9, 255) + glow(night.shape, x + 22, 190, 9, 9, 255)
                 + glow(night.shape, x + 10, 260, 10, 45, 150) + glow(night.shape, x + 120, 200, 90, 40, 70))
        return np.clip(night.astype(np.float32) + light[..., None], 0, 255)

    events, stats = run(detector, frame, 28, np.random.default_rng(7))
    assert stats.motion_frames >= 10  # motion does see the lights ...
    assert stats.detector_calls >= 10  # ... and asks the detector, which finds no object in them
    assert events == []


def test_insect_at_the_lens_starts_no_event(detector, night):
    """A big out-of-focus bright blob wandering in front of the lens (IR light on a moth)."""

    def frame(i: int) -> np.ndarray:
        cx, cy = 380 + 120 * np.sin(i * 0.5) + 40 * np.sin(i * 1.3), 120 + 60 * np.sin(i * 0.3 + 1)
        return np.clip(night.astype(np.float32) + glow(night.shape, cx, cy, 45, 45, 200)[..., None], 0, 255)

    events, stats = run(detector, frame, 28, np.random.default_rng(8))
    assert stats.motion_frames >= 5  # part of its path is dropped as light; the rest reaches the detector
    assert events == []


def test_ir_switch_lights_up_parked_cars_without_events(detector, night):
    """Half-way the camera turns to IR: grey and bright. The parked cars must not become events."""
    _, _, day = next(iter_frames(video_path("street"), 5.0))
    ir = np.repeat((day.mean(axis=2, keepdims=True) * 0.8 + 30).astype(np.uint8), 3, axis=2)

    def frame(i: int) -> np.ndarray:
        if i < 12:
            return night
        if i < 16:  # the exposure settles over a few frames
            k = (i - 11) / 4
            return night * (1 - k) + ir * k
        return ir

    events, stats = run(detector, frame, 36, np.random.default_rng(9))
    assert stats.lightning_resets >= 1
    assert events == []
