"""One detector shared by several camera threads (no config, no onnxruntime import of its own)."""

from __future__ import annotations

import threading
import time
from typing import Any

from ..types import DetectorStats


class SharedDetector:
    """One detector serving several camera threads, in the order they asked (a ticket turnstile).

    ``Detector`` reuses its input buffers between calls, so two cameras must not run it at the same
    moment: calls are serialised (one model in memory instead of one per camera). Batching calls from
    several cameras is not possible with the shipped YOLOX-Nano: its input is fixed at batch 1
    (``images [1, 3, 416, 416]``). A plain lock is not fair (a thread that releases it may take it again
    before a waiting one wakes), so a saturated detector could starve one camera; tickets serve calls
    first come, first served, so every camera's analysis rate degrades alike. Each calling thread's
    calls and time spent waiting are counted (``stats``), and the detector's busy time.
    """

    def __init__(self, detector: Any) -> None:
        self._detector = detector
        self._turn = threading.Condition()
        self._next_ticket = 0
        self._serving = 0
        self.input_size: int = detector.input_size
        self.calls: dict[str, int] = {}
        self.waited_s: dict[str, float] = {}
        self.busy_s = 0.0

    def detect(self, image: Any) -> list:
        asked = time.perf_counter()
        with self._turn:
            ticket = self._next_ticket
            self._next_ticket += 1
            while ticket != self._serving:
                self._turn.wait()
        began = time.perf_counter()
        try:
            return self._detector.detect(image)
        finally:
            done = time.perf_counter()
            name = threading.current_thread().name
            with self._turn:
                self._serving += 1
                self._turn.notify_all()
                self.calls[name] = self.calls.get(name, 0) + 1
                self.waited_s[name] = self.waited_s.get(name, 0.0) + (began - asked)
                self.busy_s += done - began

    def stats(self) -> DetectorStats:
        """Per calling thread (``analysis-<camera>``): calls and seconds waited; the detector's busy seconds."""
        with self._turn:
            return DetectorStats(calls=dict(self.calls), waited_s={k: round(v, 3) for k, v in self.waited_s.items()},
                                 busy_s=round(self.busy_s, 3))
