"""Motion: where in the frame something changed, cheaply, at a small size.

The detector runs only where motion is, so this stage decides most of the
pipeline's cost. It works on a small grey copy of the frame (``analysis_height``
rows), keeps a running-average background and reports changed areas as boxes
in full-frame pixels. Every buffer is allocated once in the constructor.
In the dark (``low_light``) the threshold follows the scene's contrast down to a
noise floor measured from the frames themselves, exposure steps rescale the
background and light thrown on the scene (headlight cones) is not motion.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from ..types import Box
from .settings import MotionSettings

# A change counts only if something changed near it in the previous frames: a
# candidate must overlap a grown copy of an earlier candidate. Fast cars move
# about a body length per analysed frame, so pixel-level persistence would
# drop them; noise specks do not repeat in the same place.
_PERSIST_GROW = 0.75  # fraction of a box's size added on each side for the overlap test
_WARMUP_FRAMES = 10  # frames that learn the background fast after start or a reset
_WARMUP_ALPHA = 0.3
# Low light (issue 19). A dark scene squeezes everything into a few grey levels, so a person at a distance
# changes the frame by less than ``threshold``. Stretching the frame's contrast by a gain g and thresholding
# at T is the same test as thresholding the unstretched difference at T / g, which costs no per-pixel work;
# so the gain lowers the threshold instead. Sensor noise grows in the dark and a stretch would amplify it:
# the threshold never drops below a noise floor measured from the frame's own difference image.
_STATS_EVERY = 5  # frames between scene statistics (brightness, range, noise): light changes slowly
_TARGET_RANGE = 200.0  # grey levels the scene's 1..99 percentile range is stretched to, at most ...
_MAX_GAIN = 4.0  # ... by this much (about what a contrast stretch gives a dark yard)
_NOISE_K = 3.0  # threshold >= this x the 90th percentile of |frame - background| (about 5 sigma of noise)
_EXPOSURE_CHECK = 0.1  # changed fraction of the frame from which an exposure step is looked for
_EXPOSURE_STEP = 0.05  # median ratio that counts as an exposure step ...
_EXPOSURE_JUMP = 1.5  # ... and from which it is a new light: relearn the scene
_DARK_BRIGHTNESS = 50.0  # mean grey level under which a scene counts as dark (daylight keeps its threshold)
_PIXEL_NOISE_K = 6.0  # and, per pixel, >= this x its running mean |frame - background| (about 5 sigma)
_PIXEL_NOISE_ALPHA = 0.05  # how fast that per-pixel noise map follows (about 4 s at 5 fps)
_LIGHT_RATIO = 1.2  # a changed area this much brighter (or darker) than before ...
_LIGHT_CORR = 0.8  # ... that still correlates this well with the background is light on the scene, not an object
_MIN_THRESHOLD = 5.0  # grey levels: below this the codec's own rounding flickers


def rasterise_mask(polygons: Sequence[Sequence[tuple[float, float]]], width: int, height: int) -> np.ndarray:
    """255 where motion counts, 0 inside any mask polygon (normalised 0..1 points)."""
    keep = np.full((height, width), 255, np.uint8)
    for poly in polygons:
        pts = np.array([[round(x * width), round(y * height)] for x, y in poly], np.int32)
        cv2.fillPoly(keep, [pts], 0)
    return keep


class MotionDetector:
    """Running-average background subtraction with masks, lightning reset and persistence."""

    def __init__(
        self,
        frame_size: tuple[int, int],
        analysis_height: int = MotionSettings.analysis_height,
        threshold: int = MotionSettings.threshold,
        min_area: float = MotionSettings.min_area,
        lightning_threshold: float = MotionSettings.lightning_threshold,
        frame_alpha: float = MotionSettings.frame_alpha,
        persist_frames: int = MotionSettings.persist_frames,
        mask_polygons: Sequence[Sequence[tuple[float, float]]] = MotionSettings.mask,
        low_light: bool = MotionSettings.low_light,
    ) -> None:
        width, height = frame_size
        self.frame_size = (width, height)
        ah = min(height, analysis_height)
        aw = max(1, round(width * ah / height))
        self._scale_x = width / aw
        self._scale_y = height / ah
        self.threshold = threshold
        self.min_pixels = max(1.0, min_area * aw * ah)
        self.lightning_threshold = lightning_threshold
        self.frame_alpha = frame_alpha
        self.persist_frames = persist_frames
        self._small = np.empty((ah, aw, 3), np.uint8)
        self._gray = np.empty((ah, aw), np.uint8)
        self._blur = np.empty((ah, aw), np.uint8)
        self._bg = np.zeros((ah, aw), np.float32)
        self._bg8 = np.empty((ah, aw), np.uint8)
        self._diff = np.empty((ah, aw), np.uint8)
        self._kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (5, 5))
        self._keep = rasterise_mask(mask_polygons, aw, ah) if mask_polygons else None
        self._pixels = float(aw * ah) if self._keep is None else float(np.count_nonzero(self._keep) or 1)
        self._frames = 0  # frames since start or the last reset
        self._previous: list[tuple[int, int, int, int, int]] = []  # x1, y1, x2, y2, persisted count
        self.resets = 0  # lightning resets, for stats
        self.low_light = low_light
        self._hist = np.empty((256, 1), np.float32)
        # Scene statistics, refreshed every _STATS_EVERY frames (read by stats and `edgecam check`).
        self.brightness = 0.0  # mean grey level of the analysis frame
        self.contrast_range = 255.0  # 1..99 percentile spread of its grey levels
        self.gain = 1.0  # contrast stretch the threshold stands for
        self.noise = 0.0  # 90th percentile of |frame - background|, grey levels
        self.effective_threshold = float(threshold)
        self.exposure_steps = 0  # background rescaled for a whole-frame exposure change, for stats
        self.lit = 0  # changed areas dropped as light thrown on the scene (headlights), for stats
        # Sensor noise is not the same everywhere: dark pixels clip it, lit ones (street lamps, white cars)
        # carry it all. A per-pixel running mean of |frame - background| sets a per-pixel floor.
        self._noise_map = np.full((ah, aw), threshold / _PIXEL_NOISE_K, np.float32)
        self._thr8 = np.empty((ah, aw), np.uint8)
        self._mask8 = np.empty((ah, aw), np.uint8)

    def reset(self) -> None:
        """Forget the background (e.g. after a reconnect): the next frame becomes it."""
        self._frames = 0
        self._previous = []

    def detect(self, image: np.ndarray) -> list[Box]:
        """Motion boxes in full-frame pixels; [] when nothing moved or the light changed."""
        cv2.resize(image, (self._small.shape[1], self._small.shape[0]), dst=self._small, interpolation=cv2.INTER_LINEAR)
        cv2.cvtColor(self._small, cv2.COLOR_BGR2GRAY, dst=self._gray)
        cv2.GaussianBlur(self._gray, (5, 5), 0, dst=self._blur)
        if self._frames == 0:
            self._bg[:] = self._blur
            self._frames = 1
            if self.low_light:
                self._scene_gain()
            return []
        changed = self._changed()
        alpha = _WARMUP_ALPHA if self._frames < _WARMUP_FRAMES else self.frame_alpha
        self._frames += 1
        step = self._exposure_step() if self.low_light and changed > _EXPOSURE_CHECK * self._pixels else 1.0
        if _EXPOSURE_STEP <= abs(step - 1.0) and 1.0 / _EXPOSURE_JUMP <= step <= _EXPOSURE_JUMP:
            cv2.multiply(self._bg, step, dst=self._bg)  # type: ignore[call-overload, unused-ignore]  # stubs lack the scalar form; new exposure
            self.exposure_steps += 1
            changed = self._changed()
        if changed > self.lightning_threshold * self._pixels or not 1.0 / _EXPOSURE_JUMP <= step <= _EXPOSURE_JUMP:
            # A global change (headlights, cloud, IR switch) is not an object: relearn the scene.
            self.resets += 1
            self._bg[:] = self._blur
            self._frames = 1
            self._previous = []
            if self.low_light:
                self._noise_map[:] = self.threshold / _PIXEL_NOISE_K  # the new light's noise is learnt again
                self._scene_gain()  # a new light (IR on) has a new range
            return []
        cv2.accumulateWeighted(self._blur, self._bg, alpha)
        cv2.dilate(self._diff, self._kernel, dst=self._diff, iterations=2)
        contours, _ = cv2.findContours(self._diff, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        return self._persisted(contours)

    def _changed(self) -> int:
        """Threshold |frame - background| into ``_diff``; how many pixels changed."""
        cv2.convertScaleAbs(self._bg, dst=self._bg8)
        cv2.absdiff(self._blur, self._bg8, dst=self._diff)
        if self.low_light and self._frames % _STATS_EVERY == 1:
            self._scene_gain()
            self._noise_floor()
        if self.low_light and self.gain > 1.0:
            cv2.convertScaleAbs(self._noise_map, dst=self._thr8, alpha=_PIXEL_NOISE_K)
            cv2.max(self._thr8, self.effective_threshold, dst=self._thr8)  # type: ignore[call-overload, unused-ignore]  # scalar form
            cv2.compare(self._diff, self._thr8, cv2.CMP_GT, dst=self._mask8)
            # Learn noise only where nothing changed: a crowd or traffic must not teach it that people are noise.
            cv2.bitwise_not(self._mask8, dst=self._thr8)
            cv2.accumulateWeighted(self._diff, self._noise_map, self._noise_alpha(), mask=self._thr8)
            self._diff, self._mask8 = self._mask8, self._diff
        else:
            cv2.threshold(self._diff, self.effective_threshold, 255, cv2.THRESH_BINARY, dst=self._diff)
        if self._keep is not None:
            cv2.bitwise_and(self._diff, self._keep, dst=self._diff)
        return cv2.countNonZero(self._diff)

    def _exposure_step(self) -> float:
        """Median grey of the frame over that of the background: how much the whole frame's light changed.

        Exposure and gain steps (auto exposure at dusk, the ramp after an IR switch) multiply every grey
        level alike, so a moderate step is followed by scaling the background; a jump (IR on, lights on)
        relearns the scene. A big object does not move the median unless it covers half the frame.
        """
        (now,) = self._percentiles(self._blur, (0.5,))
        (then,) = self._percentiles(self._bg8, (0.5,))
        return (now + 0.5) / (then + 0.5)

    def _percentiles(self, image: np.ndarray, fractions: Sequence[float]) -> list[int]:
        cv2.calcHist([image], [0], self._keep, [256], [0, 256], hist=self._hist)
        cum = np.cumsum(self._hist[:, 0])
        return [int(i) for i in np.searchsorted(cum, [f * cum[-1] for f in fractions])]

    def _scene_gain(self) -> None:
        """Brightness, range and gain of the scene: a dark or flat scene gets up to ``_MAX_GAIN``.

        Until the noise is measured again the threshold only takes the gain as far as the last noise
        floor allows (none yet after a reset: the plain threshold).
        """
        lo, hi = self._percentiles(self._blur, (0.01, 0.99))
        self.brightness = float(cv2.mean(self._blur, self._keep)[0])
        self.contrast_range = float(max(1, hi - lo))
        dark = self.brightness < _DARK_BRIGHTNESS
        self.gain = min(_MAX_GAIN, max(1.0, _TARGET_RANGE / self.contrast_range)) if dark else 1.0
        if self._frames <= 1 and self.resets == 0:
            self.noise = self.threshold / _NOISE_K  # not measured yet: no gain until it is
        self._set_threshold()

    def _noise_floor(self) -> None:
        """Noise from the difference image itself: most pixels of a frame do not move, so its 90th
        percentile is what sensor noise alone reaches (an object would have to fill a tenth of the
        frame to raise it, and then it is big enough for any threshold)."""
        (p90,) = self._percentiles(self._diff, (0.9,))
        self.noise = float(p90)
        self._set_threshold()

    def _set_threshold(self) -> None:
        floor = max(_MIN_THRESHOLD, _NOISE_K * self.noise)
        self.effective_threshold = min(float(self.threshold), max(self.threshold / self.gain, floor))

    def _persisted(self, contours: Sequence[np.ndarray]) -> list[Box]:
        """Keep candidates big enough that overlap earlier ones for ``persist_frames`` frames."""
        current: list[tuple[int, int, int, int, int]] = []
        boxes: list[Box] = []
        for contour in contours:
            if cv2.contourArea(contour) < self.min_pixels:
                continue
            x, y, w, h = cv2.boundingRect(contour)
            if self.gain > 1.0 and self._is_light(x, y, w, h):
                self.lit += 1
                continue
            count = 1 + self._earlier_count(x, y, x + w, y + h)
            current.append((x, y, x + w, y + h, count))
            if count >= self.persist_frames:
                sx, sy = self._scale_x, self._scale_y
                boxes.append(Box(x * sx, y * sy, (x + w) * sx, (y + h) * sy))
        self._previous = current
        return boxes

    def _noise_alpha(self) -> float:
        return _WARMUP_ALPHA if self._frames < _WARMUP_FRAMES else _PIXEL_NOISE_ALPHA

    def _is_light(self, x: int, y: int, w: int, h: int) -> bool:
        """A headlight's cone or its reflection: the area got brighter (or darker) as a whole while still
        showing what was there (the parked car, the kerb); an object that arrives shows something else."""
        now, then = self._blur[y:y + h, x:x + w], self._bg8[y:y + h, x:x + w]
        ratio = (float(cv2.mean(now)[0]) + 1.0) / (float(cv2.mean(then)[0]) + 1.0)
        if 1.0 / _LIGHT_RATIO < ratio < _LIGHT_RATIO or w < 3 or h < 3:
            return False
        corr = float(cv2.matchTemplate(now, then, cv2.TM_CCOEFF_NORMED)[0, 0])
        return corr > _LIGHT_CORR

    def _earlier_count(self, x1: int, y1: int, x2: int, y2: int) -> int:
        best = 0
        gx = (x2 - x1) * _PERSIST_GROW
        gy = (y2 - y1) * _PERSIST_GROW
        for px1, py1, px2, py2, count in self._previous:
            if px1 - gx < x2 and x1 < px2 + gx and py1 - gy < y2 and y1 < py2 + gy:
                best = max(best, count)
        return min(best, self.persist_frames)


_DARK_SHARE = 0.25  # a scene is too dark when a change must exceed this share of its whole contrast range


@dataclass(frozen=True)
class SceneLight:
    """How one frame's light suits the motion settings (for ``edgecam check``)."""

    brightness: float  # mean grey level 0..255 of the analysis frame
    contrast_range: float  # its 1..99 percentile spread
    gain: float  # contrast stretch low-light adaptation gives it (1.0: none)
    threshold: float  # grey levels a change must exceed, before the noise floor (unknown from one frame)

    @property
    def too_dark(self) -> bool:
        """Dark, and a person in dark clothes differs from the street by a fraction of the scene's range:
        when the threshold is more than a quarter of that range, only bright or close objects are seen.
        A bright flat scene (grey road by day) is not "too dark": its objects have daylight contrast."""
        return self.brightness < _DARK_BRIGHTNESS and self.threshold > _DARK_SHARE * self.contrast_range


def scene_light(image: np.ndarray, analysis_height: int = MotionSettings.analysis_height,
                threshold: int = MotionSettings.threshold, low_light: bool = MotionSettings.low_light) -> SceneLight:
    """What ``MotionDetector`` would make of this frame's light with these settings."""
    md = MotionDetector((image.shape[1], image.shape[0]), analysis_height, threshold)
    md.detect(image)  # the first frame: background, brightness, range and the gain low light would give
    if not low_light:
        return SceneLight(md.brightness, md.contrast_range, 1.0, float(threshold))
    return SceneLight(md.brightness, md.contrast_range, md.gain, max(threshold / md.gain, _MIN_THRESHOLD))
