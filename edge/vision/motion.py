"""Motion: where in the frame something changed, cheaply, at a small size.

The detector runs only where motion is, so this stage decides most of the
pipeline's cost. It works on a small grey copy of the frame (``analysis_height``
rows), keeps a running-average background and reports changed areas as boxes
in full-frame pixels. Every buffer is allocated once in the constructor.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from ..types import Box

# A change counts only if something changed near it in the previous frames: a
# candidate must overlap a grown copy of an earlier candidate. Fast cars move
# about a body length per analysed frame, so pixel-level persistence would
# drop them; noise specks do not repeat in the same place.
_PERSIST_GROW = 0.75  # fraction of a box's size added on each side for the overlap test
_WARMUP_FRAMES = 10  # frames that learn the background fast after start or a reset
_WARMUP_ALPHA = 0.3


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
        analysis_height: int = 120,
        threshold: int = 25,
        min_area: float = 0.001,
        lightning_threshold: float = 0.6,
        frame_alpha: float = 0.05,
        persist_frames: int = 2,
        mask_polygons: Sequence[Sequence[tuple[float, float]]] = (),
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
            return []
        cv2.convertScaleAbs(self._bg, dst=self._bg8)
        cv2.absdiff(self._blur, self._bg8, dst=self._diff)
        cv2.threshold(self._diff, self.threshold, 255, cv2.THRESH_BINARY, dst=self._diff)
        if self._keep is not None:
            cv2.bitwise_and(self._diff, self._keep, dst=self._diff)
        alpha = _WARMUP_ALPHA if self._frames < _WARMUP_FRAMES else self.frame_alpha
        self._frames += 1
        if cv2.countNonZero(self._diff) > self.lightning_threshold * self._pixels:
            # A global change (headlights, cloud, IR switch) is not an object: relearn the scene.
            self.resets += 1
            self._bg[:] = self._blur
            self._frames = 1
            self._previous = []
            return []
        cv2.accumulateWeighted(self._blur, self._bg, alpha)
        cv2.dilate(self._diff, self._kernel, dst=self._diff, iterations=2)
        contours, _ = cv2.findContours(self._diff, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        return self._persisted(contours)

    def _persisted(self, contours: Sequence[np.ndarray]) -> list[Box]:
        """Keep candidates big enough that overlap earlier ones for ``persist_frames`` frames."""
        current: list[tuple[int, int, int, int, int]] = []
        boxes: list[Box] = []
        for contour in contours:
            if cv2.contourArea(contour) < self.min_pixels:
                continue
            x, y, w, h = cv2.boundingRect(contour)
            count = 1 + self._earlier_count(x, y, x + w, y + h)
            current.append((x, y, x + w, y + h, count))
            if count >= self.persist_frames:
                sx, sy = self._scale_x, self._scale_y
                boxes.append(Box(x * sx, y * sy, (x + w) * sx, (y + h) * sy))
        self._previous = current
        return boxes

    def _earlier_count(self, x1: int, y1: int, x2: int, y2: int) -> int:
        best = 0
        gx = (x2 - x1) * _PERSIST_GROW
        gy = (y2 - y1) * _PERSIST_GROW
        for px1, py1, px2, py2, count in self._previous:
            if px1 - gx < x2 and x1 < px2 + gx and py1 - gy < y2 and y1 < py2 + gy:
                best = max(best, count)
        return min(best, self.persist_frames)
