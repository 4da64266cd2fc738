"""The shared detector serves saturating cameras in turn: none starves, each call counted with its wait."""

from __future__ import annotations

import threading
import time

from edge.vision.shared import SharedDetector


class SlowDetector:
    """Stands in for the model where the test is about scheduling, not vision: 4 ms a call, one at a time."""

    input_size = 416

    def __init__(self) -> None:
        self.inside = 0
        self.overlaps = 0

    def detect(self, image):
        self.inside += 1
        if self.inside > 1:
            self.overlaps += 1
        time.sleep(0.004)
        self.inside -= 1
        return []


def test_four_saturating_cameras_get_equal_turns() -> None:
    slow = SlowDetector()
    shared = SharedDetector(slow)
    stop = threading.Event()

    def camera() -> None:
        while not stop.is_set():
            shared.detect(None)

    threads = [threading.Thread(target=camera, name=f"analysis-cam{i}") for i in range(4)]
    for t in threads:
        t.start()
    time.sleep(1.5)
    stop.set()
    for t in threads:
        t.join(5)
    calls = shared.calls
    assert set(calls) == {f"analysis-cam{i}" for i in range(4)}
    assert slow.overlaps == 0  # never two calls inside the model at once
    assert max(calls.values()) - min(calls.values()) <= 2, calls  # first come, first served: turns alternate
    assert all(w > 0 for w in shared.waited_s.values())  # saturated: every camera waited its turn
    stats = shared.stats()
    assert stats.calls == calls and 0 < stats.busy_s <= 1.6
