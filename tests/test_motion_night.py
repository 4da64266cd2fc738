"""Motion at night (issue 19): a real street frame made dark and noisy, with objects and lights moved across it."""

from __future__ import annotations

import numpy as np
import pytest
from support.assets import video_path

from edge.bench import iter_frames
from edge.vision.motion import MotionDetector

SIZE = (640, 360)


@pytest.fixture(scope="module")
def scene() -> np.ndarray:
    """A quiet frame of the street clip (nothing moves in its first second)."""
    _, _, image = next(iter_frames(video_path("street"), 5.0))
    return image


def dark(scene: np.ndarray, light: float = 0.2) -> np.ndarray:
    """The scene with a fifth of the light: every grey level scaled down (what less exposure does)."""
    return (scene.astype(np.float32) * light).astype(np.uint8)


def noisy(image: np.ndarray, rng: np.random.Generator, sigma: float) -> np.ndarray:
    return np.clip(image.astype(np.int16) + rng.normal(0, sigma, image.shape), 0, 255).astype(np.uint8)


def with_walker(image: np.ndarray, x: int, contrast: int = 10, y: int = 200, w: int = 24, h: int = 60) -> np.ndarray:
    """A person-sized patch ``contrast`` grey levels brighter than what is behind it (dark clothes at night)."""
    img = image.copy()
    img[y:y + h, x:x + w] = np.clip(img[y:y + h, x:x + w].astype(np.int16) + contrast, 0, 255).astype(np.uint8)
    return img


def blob(image: np.ndarray, cx: int, cy: int, radius: float, peak: float = 255.0) -> np.ndarray:
    """A soft bright disc added to the image: a headlight, an IR LED glare or an insect at the lens."""
    yy, xx = np.mgrid[0:image.shape[0], 0:image.shape[1]]
    glow = peak * np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2.0 * radius**2))
    return np.clip(image.astype(np.float32) + glow[..., None], 0, 255).astype(np.uint8)


def walk(md: MotionDetector, background: np.ndarray, rng: np.random.Generator, sigma: float) -> list[int]:
    """Warm up on the still scene, then walk the patch across it; boxes per walking frame."""
    for _ in range(15):
        md.detect(noisy(background, rng, sigma))
    return [len(md.detect(noisy(with_walker(background, 100 + 12 * i), rng, sigma))) for i in range(12)]


def test_dark_walker_is_seen_only_with_low_light_adaptation(scene):
    night = dark(scene)
    seen = walk(MotionDetector(SIZE), night, np.random.default_rng(1), 2.0)
    blind = walk(MotionDetector(SIZE, low_light=False), night, np.random.default_rng(1), 2.0)
    assert sum(blind) == 0  # 10 grey levels is under the daylight threshold of 25
    assert sum(n > 0 for n in seen) >= 10  # boxed from the second walking frame on (persistence)


def test_dark_walker_box_is_where_the_walker_is(scene):
    md = MotionDetector(SIZE)
    rng = np.random.default_rng(2)
    night = dark(scene)
    for _ in range(15):
        md.detect(noisy(night, rng, 2.0))
    boxes = []
    for i in range(4):
        boxes = md.detect(noisy(with_walker(night, 100 + 12 * i), rng, 2.0))
    assert len(boxes) == 1
    b = boxes[0]
    assert b.x1 <= 136 + 5 and b.x2 >= 136 + 24 - 5 and b.y1 <= 205 and b.y2 >= 255
    assert b.width < 120 and b.height < 150


def test_daylight_keeps_the_daylight_threshold(scene):
    md = MotionDetector(SIZE)
    rng = np.random.default_rng(3)
    for _ in range(15):
        md.detect(noisy(scene, rng, 4.0))
    assert md.gain == 1.0 and md.effective_threshold == 25.0
    assert all(md.detect(noisy(with_walker(scene, 100 + 12 * i), rng, 4.0)) == [] for i in range(8))


@pytest.mark.parametrize("sigma", [3.0, 6.0, 10.0])
def test_dark_noisy_still_scene_stays_silent(scene, sigma):
    """Noise grows in the dark; the gain must not turn it into motion (the floor comes from the frame)."""
    md = MotionDetector(SIZE)
    rng = np.random.default_rng(4)
    night = dark(scene)
    boxes = [md.detect(noisy(night, rng, sigma)) for _ in range(60)]
    assert sum(map(len, boxes)) == 0
    assert md.gain > 1.0  # adapted, yet silent
    assert md.effective_threshold > 5.0 if sigma >= 6.0 else True


def test_ir_switch_resets_and_starts_nothing(scene):
    """The camera turns to IR: the frame goes grey and much brighter at once."""
    md = MotionDetector(SIZE)
    rng = np.random.default_rng(5)
    night = dark(scene)
    grey = np.repeat((scene.mean(axis=2, keepdims=True) * 0.8 + 40).astype(np.uint8), 3, axis=2)
    before = [md.detect(noisy(night, rng, 3.0)) for _ in range(20)]
    after = [md.detect(noisy(grey, rng, 4.0)) for _ in range(30)]
    assert sum(map(len, before)) == 0 and sum(map(len, after)) == 0
    assert md.resets == 1
    assert md.gain == 1.0  # the IR scene has its full range: the daylight threshold is back


def test_ir_switch_with_an_exposure_ramp_starts_nothing(scene):
    """Real IR switches ramp the exposure over a few frames; each big step resets, none leaves a box."""
    md = MotionDetector(SIZE)
    rng = np.random.default_rng(6)
    night = dark(scene)
    grey = scene.mean(axis=2, keepdims=True)
    for _ in range(20):
        md.detect(noisy(night, rng, 3.0))
    boxes = []
    for step in range(1, 7):  # 6 frames from dark to bright
        ramp = np.repeat((grey * (0.2 + 0.12 * step)).astype(np.uint8), 3, axis=2)
        boxes += md.detect(noisy(ramp, rng, 3.0))
    for _ in range(20):
        boxes += md.detect(noisy(ramp, rng, 3.0))
    assert boxes == [] and md.resets >= 1


def test_shot_noise_in_the_lit_parts_stays_silent(scene):
    """Real sensors: noise grows with the light a pixel gets, so the lit parts of a dark scene carry most of
    it; one noise figure for the whole frame (mostly black pixels) would under-rate it there."""
    md = MotionDetector(SIZE)
    rng = np.random.default_rng(10)
    night = dark(scene).astype(np.float32)
    sigma = 0.5 + 0.3 * night  # ~1 in the black parts, up to ~15 on the white car
    boxes = [md.detect(np.clip(night + rng.normal(0, 1, night.shape) * sigma, 0, 255).astype(np.uint8))
             for _ in range(60)]
    assert sum(map(len, boxes[15:])) == 0  # after the warm-up: silent everywhere


def test_headlight_cone_sweeping_over_parked_cars_is_light_not_motion(scene):
    """The light a car throws ahead brightens the parked cars it passes: the same scene, brighter."""
    md = MotionDetector(SIZE)
    rng = np.random.default_rng(11)
    night = dark(scene).astype(np.float32)
    yy, xx = np.mgrid[0:360, 0:640].astype(np.float32)
    for _ in range(15):
        md.detect(noisy(night.astype(np.uint8), rng, 2.0))
    boxes = []
    for i in range(12):
        cone = 1.0 + 1.5 * np.exp(-(((xx - 60 - 45 * i) / 110) ** 2 + ((yy - 230) / 70) ** 2) / 2)
        boxes += md.detect(noisy(np.clip(night * cone[..., None], 0, 255).astype(np.uint8), rng, 2.0))
    assert boxes == []
    assert md.lit >= 5  # seen as change, and dropped as light
