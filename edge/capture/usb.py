"""USB (V4L2) cameras through OpenCV: raw frames only, so no packets.

The clip recorder encodes such sources itself (once, at a configured size),
so this adapter stays a thin frame grabber.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator

import cv2
import numpy as np

from ..types import Packet
from . import SourceError


class ArrayPicture:
    """A frame that is already a BGR array."""

    __slots__ = ("index", "time", "mono", "wall", "_image")

    def __init__(self, image: np.ndarray, index: int, time_s: float, mono: float, wall: float) -> None:
        self._image = image
        self.index = index
        self.time = time_s
        self.mono = mono
        self.wall = wall

    def to_bgr(self) -> np.ndarray:
        return self._image


class UsbSource:
    def __init__(self, name: str, device: str, read_timeout: float = 5.0) -> None:
        self.name = name
        self.device = device
        self.read_timeout = read_timeout
        self._cap: cv2.VideoCapture | None = None
        self._start = 0.0
        self._count = 0

    def open(self) -> None:
        """Raw source: returns None (no packets; the recorder encodes frames)."""
        if not os.path.exists(self.device):
            raise SourceError(f"{self.device}: no such device", retryable=True)
        cap = cv2.VideoCapture(self.device, cv2.CAP_V4L2)
        if not cap.isOpened():
            cap.release()
            raise SourceError(f"{self.device}: cannot open video device", retryable=True)
        self._cap = cap
        self._start = time.monotonic()
        return None

    def items(self) -> Iterator[Packet | ArrayPicture]:
        cap = self._cap
        if cap is None:
            raise SourceError(f"{self.device}: not open")
        while True:
            ok, image = cap.read()
            if not ok:
                return  # unplugged or stalled: the caller reconnects
            mono = time.monotonic()
            self._count += 1
            yield ArrayPicture(image, self._count - 1, mono - self._start, mono, time.time())

    def close(self) -> None:
        if self._cap is not None:
            self._cap.release()
        self._cap = None
