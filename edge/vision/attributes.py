"""Object attributes for the ``end`` event: colour (measured on the object) and heading (from the track).

Colour: a box around a car also holds road, kerb and sky, and the car itself has dark windows and
tyres. So the crop is shrunk to <= 48 px, every pixel gets a weight that is

* centre-weighted (a Gaussian over the box: the object fills the middle, background the corners),
* cut to a fifth where its colour is common on the box's border ring (the border is background: a
  pixel of the road's colour inside the box is road between the wheels, or shadow),

and votes for one of eight names from its HSV value (achromatic pixels by brightness: black, grey,
white; chromatic ones by hue). Chromatic votes count double: every car shows achromatic glass and
rubber, only coloured cars show chroma. ``color_score`` is the winner's share of the weighted votes.

Heading: the direction of the track's displacement (median of its first and last few centres, so one
jittery box does not decide), in image terms with y down: ``up`` is towards the top of the frame.
A track that moved less than ``min_move`` of its box size has no heading (None).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import cv2
import numpy as np

COLORS = ("white", "black", "grey", "red", "blue", "green", "yellow", "brown")
HEADINGS = ("right", "down-right", "down", "down-left", "left", "up-left", "up", "up-right")  # 0 deg = +x, y down
_SIDE = 48
_BORDER = 0.12  # share of the width/height that is the border ring taken as background
_CHROMA_WEIGHT = 3.0
_BG_WEIGHT = 0.2

# pixel class thresholds on OpenCV's 8-bit Lab (L 0-255, a and b centred on 128)
_BLACK_L = 60
_WHITE_L = 165
_WHITE_Q75 = 170  # achromatic object whose bright quarter reaches this lightness: white
_BLACK_Q50 = 100  # ... whose median lightness stays under this: black
_CHROMA = 14  # below this a pixel is achromatic (black / grey / white)
_MAX_CAST = 20  # a border this far off neutral is not grey road (grass, a wall): do not white-balance on it


def _classify(lab: np.ndarray, cast: tuple[float, float]) -> np.ndarray:
    """Per-pixel index into COLORS from lightness, chroma and hue angle in Lab, after removing the cast."""
    L = lab[..., 0].astype(np.float32)
    a = lab[..., 1].astype(np.float32) - 128 - cast[0]
    b = lab[..., 2].astype(np.float32) - 128 - cast[1]
    chroma = np.hypot(a, b)
    hue = np.degrees(np.arctan2(b, a)) % 360
    out = np.full(L.shape, COLORS.index("grey"), np.int8)
    out[L >= _WHITE_L] = COLORS.index("white")
    out[L < _BLACK_L] = COLORS.index("black")
    colourful = (chroma >= _CHROMA) & (L >= _BLACK_L * 0.6)
    bands = (
        (0, 45, "red"), (45, 75, "brown"), (75, 110, "yellow"), (110, 200, "green"), (200, 300, "blue"),
        (300, 360, "red"),
    )
    for lo, hi, name in bands:
        out[colourful & (hue >= lo) & (hue < hi)] = COLORS.index(name)
    orange = colourful & (hue >= 45) & (hue < 75)
    out[orange & (L >= 150)] = COLORS.index("yellow")  # bright orange reads as yellow, dark as brown
    return out


def _cast(lab: np.ndarray) -> tuple[float, float]:
    """The border ring's median (a, b) offset: the camera's colour cast, when the border is grey road."""
    hh, ww = lab.shape[:2]
    by, bx = max(1, round(hh * _BORDER)), max(1, round(ww * _BORDER))
    ring = np.concatenate([lab[:by].reshape(-1, 3), lab[-by:].reshape(-1, 3),
                           lab[:, :bx].reshape(-1, 3), lab[:, -bx:].reshape(-1, 3)]).astype(np.float32)
    da, db = float(np.median(ring[:, 1])) - 128, float(np.median(ring[:, 2])) - 128
    return (da, db) if math.hypot(da, db) <= _MAX_CAST else (0.0, 0.0)


def _weights(shape: tuple[int, int]) -> np.ndarray:
    hh, ww = shape
    ys = (np.arange(hh) - (hh - 1) / 2) / (0.35 * hh)
    xs = (np.arange(ww) - (ww - 1) / 2) / (0.35 * ww)
    return np.exp(-0.5 * (ys[:, None] ** 2 + xs[None, :] ** 2)).astype(np.float32)


def _background_bins(lab: np.ndarray) -> np.ndarray:
    """Quantised Lab bins (16 levels a side) that hold >= 3% of the border ring: the background's colours."""
    hh, ww = lab.shape[:2]
    by, bx = max(1, round(hh * _BORDER)), max(1, round(ww * _BORDER))
    q = (lab // 16).astype(np.int32)
    code = q[..., 0] * 256 + q[..., 1] * 16 + q[..., 2]
    ring = np.concatenate([code[:by].ravel(), code[-by:].ravel(), code[:, :bx].ravel(), code[:, -bx:].ravel()])
    counts = np.bincount(ring, minlength=16**3)
    common = counts >= 0.03 * len(ring)
    return common[code]


def color_of(crop: np.ndarray) -> tuple[str, float] | None:
    """(colour name, share of weighted votes 0..1) of the object filling a BGR crop; None if too small."""
    if crop is None or crop.ndim != 3 or crop.shape[0] < 4 or crop.shape[1] < 4:
        return None
    h, w = crop.shape[:2]
    scale = _SIDE / max(h, w)
    small = cv2.resize(crop, (max(4, round(w * scale)), max(4, round(h * scale))), interpolation=cv2.INTER_AREA)
    lab = cv2.cvtColor(small, cv2.COLOR_BGR2LAB)
    cls = _classify(lab, _cast(lab))
    wts = _weights(cls.shape)
    wts[_background_bins(lab)] *= _BG_WEIGHT
    chroma = np.isin(cls, [COLORS.index(c) for c in ("red", "blue", "green", "yellow", "brown")])
    wts[chroma] *= _CHROMA_WEIGHT
    votes = np.bincount(cls.ravel().astype(np.int64), weights=wts.ravel(), minlength=len(COLORS))
    total = float(votes.sum())
    if total <= 0:
        return None
    achromatic = [COLORS.index(c) for c in ("white", "black", "grey")]
    grey_votes = float(votes[achromatic].sum())
    votes[achromatic] = 0
    best = int(votes.argmax())
    if votes[best] >= grey_votes:
        return COLORS[best], round(float(votes[best]) / total, 3)
    return _shade(lab[..., 0], wts, np.isin(cls, achromatic)), round(grey_votes / total, 3)


def _shade(lightness: np.ndarray, wts: np.ndarray, mask: np.ndarray) -> str:
    """White, grey or black from the weighted lightness distribution of the achromatic pixels.

    Per-pixel cuts fail here: a white car in shade has most pixels mid-grey but its bright quarter is
    near white, and a black car's body reflects the sky. So: bright upper quartile -> white, dark
    median -> black (cut points from the labelled crops in BENCHMARKS.md).
    """
    L = lightness[mask].astype(np.float32)
    w = wts[mask]
    order = np.argsort(L)
    cum = np.cumsum(w[order])
    cum /= cum[-1]

    def q(p: float) -> float:
        return float(L[order][min(len(L) - 1, int(np.searchsorted(cum, p)))])

    if q(0.75) >= _WHITE_Q75:
        return "white"
    if q(0.5) < _BLACK_Q50:
        return "black"
    return "grey"


def heading_of(centres: Sequence[tuple[float, float]], box_size: float, min_move: float = 0.5) -> str | None:
    """Direction of travel from a track's box centres (oldest first), one of HEADINGS, or None if it hardly moved.

    ``box_size`` is a typical box side in the same pixels (e.g. the median of sqrt(w*h)); the object must
    move ``min_move`` of it, so a parked car's jitter has no heading.
    """
    n = len(centres)
    if n < 2:
        return None
    k = max(1, n // 4)
    pts = np.asarray(centres, dtype=np.float64)
    start = np.median(pts[:k], axis=0)
    end = np.median(pts[-k:], axis=0)
    dx, dy = float(end[0] - start[0]), float(end[1] - start[1])
    if math.hypot(dx, dy) < min_move * box_size:
        return None
    angle = math.degrees(math.atan2(dy, dx)) % 360  # y down: 90 deg is "down"
    return HEADINGS[int(((angle + 22.5) % 360) // 45)]


_SHARP_SIDE = 64  # sharpness is measured on the box shrunk to this many pixels on its long side
_SHARP_FULL = 150.0  # Laplacian variance at which a shot counts as fully sharp (motion blur scores far below)


def shot_quality(image: np.ndarray, x1: int, y1: int, x2: int, y2: int, score: float) -> float:
    """How well an object is seen in one frame: size x detector score x sharpness (bigger is better).

    Size is the box's side (sqrt of its area), so a car twice as close wins without drowning the
    score; sharpness (variance of the Laplacian of the shrunk grey crop, capped at ``_SHARP_FULL``)
    keeps a motion-blurred frame from beating a slightly smaller crisp one. The caller only asks
    when a candidate could win (about one box a second per track), so this is off the per-frame path.
    """
    crop = image[y1:y2, x1:x2]
    if crop.size == 0:
        return 0.0
    h, w = crop.shape[:2]
    scale = _SHARP_SIDE / max(h, w)
    small = cv2.resize(crop, (max(1, int(w * scale)), max(1, int(h * scale))), interpolation=cv2.INTER_AREA) \
        if scale < 1 else crop
    grey = cv2.cvtColor(small, cv2.COLOR_BGR2GRAY)
    sharp = min(1.0, float(cv2.Laplacian(grey, cv2.CV_32F).var()) / _SHARP_FULL)
    return math.sqrt(float(h * w)) * float(score) * (0.4 + 0.6 * sharp)
