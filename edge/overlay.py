"""Draw a camera's motion mask, zones, counting lines and detections on a frame.

For aiming a camera and tuning zones (``edgecam snapshot --overlay``). Plain
values in: polygons and line ends as 0..1 fractions of the frame (as in the
config), detections in pixels. Nothing here reads the config or files.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import cv2
import numpy as np

from .types import Detection

NormPoint = tuple[float, float]
NormPolygon = Sequence[NormPoint]

ZONE_COLOURS = [(0, 200, 255), (255, 160, 0), (180, 0, 255), (0, 220, 0), (255, 0, 160), (0, 120, 255)]  # BGR
LINE_COLOUR = (0, 255, 255)
MASK_COLOUR = (60, 60, 60)
BOX_COLOUR = (0, 255, 0)
FONT = cv2.FONT_HERSHEY_SIMPLEX


def _px(points: NormPolygon, width: int, height: int) -> np.ndarray:
    """0..1 points to an int32 pixel polygon for OpenCV."""
    return np.array([[round(x * (width - 1)), round(y * (height - 1))] for x, y in points], dtype=np.int32)


def _scale(image: np.ndarray) -> float:
    return max(0.5, image.shape[0] / 720)


def _label(image: np.ndarray, text: str, org: tuple[int, int], colour: tuple[int, int, int]) -> None:
    """Text on a filled box so it stays readable over any scene; kept inside the frame."""
    s = _scale(image)
    thick = max(1, round(2 * s))
    (tw, th), base = cv2.getTextSize(text, FONT, 0.7 * s, thick)
    x = min(max(0, org[0]), image.shape[1] - tw - 4)
    y = min(max(th + 4, org[1]), image.shape[0] - base - 2)
    cv2.rectangle(image, (x, y - th - 4), (x + tw + 4, y + base), colour, -1)
    cv2.putText(image, text, (x + 2, y - 2), FONT, 0.7 * s, (0, 0, 0), thick, cv2.LINE_AA)


def draw_mask(image: np.ndarray, polygons: Sequence[NormPolygon]) -> None:
    """Shade the areas where motion is ignored, with a hatch so they read as 'masked'."""
    if not polygons:
        return
    h, w = image.shape[:2]
    area = np.zeros((h, w), dtype=np.uint8)
    for poly in polygons:
        cv2.fillPoly(area, [_px(poly, w, h)], 255)
    hatch = np.zeros_like(area)
    step = max(8, round(16 * _scale(image)))
    for k in range(-h, w, step):
        cv2.line(hatch, (k, h), (k + h, 0), 255, 1)
    inside = area > 0
    shaded = (image[inside].astype(np.uint16) * 2 + np.array(MASK_COLOUR, dtype=np.uint16)) // 4
    image[inside] = shaded.astype(np.uint8)
    image[inside & (hatch > 0)] = (110, 110, 110)
    for poly in polygons:
        cv2.polylines(image, [_px(poly, w, h)], True, (200, 200, 200), 1, cv2.LINE_AA)


def draw_zones(image: np.ndarray, zones: Mapping[str, NormPolygon]) -> None:
    """Each zone: translucent fill, outline, and its name at its top-most corner."""
    h, w = image.shape[:2]
    thick = max(1, round(2 * _scale(image)))
    for i, (name, poly) in enumerate(zones.items()):
        colour = ZONE_COLOURS[i % len(ZONE_COLOURS)]
        pts = _px(poly, w, h)
        fill = image.copy()
        cv2.fillPoly(fill, [pts], colour)
        cv2.addWeighted(fill, 0.3, image, 0.7, 0, dst=image)
        cv2.polylines(image, [pts], True, colour, thick, cv2.LINE_AA)
        top = pts[np.argmin(pts[:, 1])]
        _label(image, name, (int(top[0]), int(top[1]) - 4), colour)


def in_direction(a: NormPoint, b: NormPoint, width: int, height: int) -> np.ndarray:
    """Unit vector (pixels) toward the "in" side: the right of a→b as seen in the image (y down)."""
    dx, dy = (b[0] - a[0]) * width, (b[1] - a[1]) * height
    normal = np.array([-dy, dx], dtype=np.float64)
    return normal / (np.linalg.norm(normal) or 1.0)


def draw_lines(image: np.ndarray, lines: Mapping[str, tuple[NormPoint, NormPoint]]) -> None:
    """Each counting line: a→b, its name, and an arrow from its middle toward the "in" side."""
    h, w = image.shape[:2]
    s = _scale(image)
    thick = max(1, round(3 * s))
    for name, (a, b) in lines.items():
        pa, pb = _px([a], w, h)[0], _px([b], w, h)[0]
        cv2.line(image, tuple(int(v) for v in pa), tuple(int(v) for v in pb), LINE_COLOUR, thick, cv2.LINE_AA)
        cv2.circle(image, tuple(int(v) for v in pa), thick + 2, LINE_COLOUR, -1)
        mid = (pa + pb) / 2.0
        tip = mid + in_direction(a, b, w, h) * max(30.0, 0.08 * min(w, h))
        cv2.arrowedLine(image, tuple(int(v) for v in mid), tuple(int(v) for v in tip), LINE_COLOUR, thick,
                        cv2.LINE_AA, tipLength=0.35)
        _label(image, "in", (int(tip[0]) + 4, int(tip[1]) + 6), LINE_COLOUR)
        back = mid - (tip - mid) * 0.6
        _label(image, name, (int(back[0]), int(back[1])), LINE_COLOUR)


def draw_detections(image: np.ndarray, detections: Sequence[Detection]) -> None:
    thick = max(1, round(2 * _scale(image)))
    for det in detections:
        b = det.box
        cv2.rectangle(image, (int(b.x1), int(b.y1)), (int(b.x2), int(b.y2)), BOX_COLOUR, thick)
        _label(image, f"{det.label} {det.score:.2f}", (int(b.x1), int(b.y1) - 2), BOX_COLOUR)


def draw_overlay(
    image: np.ndarray,
    mask: Sequence[NormPolygon] = (),
    zones: Mapping[str, NormPolygon] | None = None,
    lines: Mapping[str, tuple[NormPoint, NormPoint]] | None = None,
    detections: Sequence[Detection] = (),
) -> np.ndarray:
    """A copy of ``image`` with everything drawn: mask under zones under lines under detections."""
    out = image.copy()
    draw_mask(out, mask)
    draw_zones(out, zones or {})
    draw_lines(out, lines or {})
    draw_detections(out, detections)
    return out
