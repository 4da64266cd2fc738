"""One detector shared by several camera threads (no config, no onnxruntime import of its own)."""

from __future__ import annotations

import threading
from typing import Any


class SharedDetector:
    """One detector serving several camera threads.

    ``Detector`` reuses its input buffers between calls, so two cameras must
    not run it at the same moment; this serialises them (one model in memory
    instead of one per camera; on 2-4 cores parallel inference gains little).
    """

    def __init__(self, detector: Any) -> None:
        self._detector = detector
        self._lock = threading.Lock()
        self.input_size: int = detector.input_size

    def detect(self, image: Any) -> list:
        with self._lock:
            return self._detector.detect(image)

