"""Clip thumbnails that tell clips apart: the analysed frame of the clip's first detection, its box drawn.

The analysis thread hands over a reference to the frame it already decoded (one per clip); the
clip writer thread copies nothing more, draws and encodes it (a few ms, once per clip). No
decode is added anywhere: seeking a clip for that moment would cost a whole GOP (10 s on some
cameras, 0.6 s of CPU here) on the writer thread.
"""

from __future__ import annotations

import cv2
import numpy as np

BOX_BGR = (0, 215, 255)  # amber: visible on road grey, sky and night alike


def shot_jpeg(image: np.ndarray, box: tuple[float, float, float, float], label: str,
              max_width: int = 640) -> bytes | None:
    """JPEG of ``image`` (BGR) scaled to at most ``max_width``, with the normalised ``box`` and ``label`` drawn."""
    h, w = image.shape[:2]
    img = image.copy() if w <= max_width else cv2.resize(image, (max_width, int(h * max_width / w)),
                                                         interpolation=cv2.INTER_AREA)
    _draw(img, box, label)
    ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, 80])
    return buf.tobytes() if ok else None


def _draw(img: np.ndarray, box: tuple[float, float, float, float], label: str) -> None:
    h, w = img.shape[:2]
    x1, y1, x2, y2 = (int(round(min(max(v, 0.0), 1.0) * s)) for v, s in zip(box, (w, h, w, h), strict=True))
    thick = max(2, w // 240)
    cv2.rectangle(img, (x1, y1), (x2, y2), BOX_BGR, thick)
    scale = max(0.45, w / 1100)
    (tw, th), base = cv2.getTextSize(label, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
    ty = y1 - 4 if y1 - th - base - 4 >= 0 else min(h - 2, y2 + th + 4)
    cv2.rectangle(img, (x1, ty - th - base), (x1 + tw + 4, ty + base // 2), BOX_BGR, -1)
    cv2.putText(img, label, (x1 + 2, ty - 1), cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), 1, cv2.LINE_AA)
