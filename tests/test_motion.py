"""Motion detector on a real frame with a real object pasted in and moved across it."""

from __future__ import annotations

import numpy as np
import pytest
from support.assets import video_path

from edge.bench import iter_frames
from edge.vision.motion import MotionDetector, rasterise_mask

SIZE = (640, 360)


@pytest.fixture(scope="module")
def scene() -> np.ndarray:
    """A quiet frame of the street clip (no car moving at its first second)."""
    _, _, image = next(iter_frames(video_path("street"), 5.0))
    return image


def with_object(scene: np.ndarray, x: int, y: int = 150, w: int = 70, h: int = 35) -> np.ndarray:
    """The scene with a dark car-sized patch at (x, y): what a passing car changes."""
    img = scene.copy()
    img[y:y + h, x:x + w] = (30, 30, 40)
    return img


def noisy(image: np.ndarray, rng: np.random.Generator, sigma: float = 4.0) -> np.ndarray:
    return np.clip(image.astype(np.int16) + rng.normal(0, sigma, image.shape), 0, 255).astype(np.uint8)


def test_still_scene_with_sensor_noise_has_no_motion(scene):
    md = MotionDetector(SIZE)
    rng = np.random.default_rng(0)
    assert all(md.detect(noisy(scene, rng)) == [] for _ in range(40))


def test_moving_object_is_boxed_in_full_frame_pixels(scene):
    md = MotionDetector(SIZE)
    for _ in range(12):  # past the fast-learning warm-up
        md.detect(scene)
    boxes = []
    for i in range(4):
        boxes = md.detect(with_object(scene, 100 + 50 * i))
    assert len(boxes) == 1
    b = boxes[0]
    assert b.x1 <= 250 + 10 and b.x2 >= 250 + 70 - 10 and b.y1 <= 160 and b.y2 >= 175  # last position covered
    assert b.width < 250  # not the whole frame


def test_one_frame_blip_does_not_count(scene):
    md = MotionDetector(SIZE, persist_frames=2)
    for _ in range(12):  # past the fast-learning warm-up
        md.detect(scene)
    assert md.detect(with_object(scene, 300)) == []  # seen once
    assert md.detect(scene) == [] and md.detect(scene) == []  # gone again: no lasting box


def test_mask_hides_motion_under_it(scene):
    mask = [((0.0, 0.3), (1.0, 0.3), (1.0, 0.7), (0.0, 0.7))]
    md = MotionDetector(SIZE, mask_polygons=mask)
    for _ in range(12):  # past the fast-learning warm-up
        md.detect(scene)
    assert all(md.detect(with_object(scene, 100 + 50 * i)) == [] for i in range(5))
    keep = rasterise_mask(mask, 64, 36)
    assert keep[18, 30] == 0 and keep[2, 30] == 255


def test_global_light_change_resets_instead_of_reporting(scene):
    md = MotionDetector(SIZE)
    for _ in range(12):  # past the fast-learning warm-up
        md.detect(scene)
    bright = np.clip(scene.astype(np.int16) + 70, 0, 255).astype(np.uint8)
    assert md.detect(bright) == []
    assert md.resets == 1
    assert md.detect(bright) == [] and md.detect(bright) == []  # the new light is the background now
