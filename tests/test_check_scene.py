"""`edgecam check`'s scene line: says when a camera's scene is too dark for its motion settings (issue 19)."""

from __future__ import annotations

import numpy as np
import pytest
from support.assets import video_path

from edge.bench import iter_frames
from edge.check.result import OK, WARN
from edge.check.scene import probe_scene
from edge.vision.motion import scene_light


@pytest.fixture(scope="module")
def street() -> np.ndarray:
    _, _, image = next(iter_frames(video_path("street"), 5.0))
    return image


def scaled(image: np.ndarray, light: float) -> np.ndarray:
    return (image.astype(np.float32) * light).astype(np.uint8)


def test_daylight_scene_is_fine(street):
    r = probe_scene("gate", street, 120, 25, True)
    assert r.status == OK and r.data["gain"] == 1.0 and r.data["motion_threshold"] == 25.0
    assert "brightness" in r.detail and "motion needs a change of 25.0 grey levels" in r.detail


def test_dark_scene_is_too_dark_without_low_light_and_fine_with_it(street):
    night = scaled(street, 0.2)  # a fifth of the light
    off = probe_scene("gate", night, 120, 25, False)
    on = probe_scene("gate", night, 120, 25, True)
    assert off.status == WARN and off.data["too_dark"] is True
    assert off.advice == "too dark for these settings: set cameras.gate.motion.low_light = true"
    assert on.status == OK and on.data["gain"] > 2.0 and on.data["motion_threshold"] < 12.5


def test_nearly_black_scene_is_too_dark_even_adapted(street):
    black = scaled(street, 0.03)
    r = probe_scene("gate", black, 120, 25, True)
    assert r.status == WARN and r.detail.startswith("too dark for the motion settings")
    assert "IR / night mode" in r.advice and "cameras.gate.motion.threshold" in r.advice


def test_scene_light_matches_what_motion_does(street):
    """The check's figures are the motion stage's own: same brightness, range and gain."""
    night = scaled(street, 0.2)
    light = scene_light(night, 120, 25, True)
    assert light.brightness < 50 and 1.0 < light.gain <= 4.0
    assert light.threshold == pytest.approx(max(25 / light.gain, 5.0))
