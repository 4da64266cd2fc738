"""RTSP for real: a gst-rtsp-server the test kills, restarts and freezes; capture recovers."""

from __future__ import annotations

import threading
import time

import pytest
from support.assets import video_path
from support.rtsp import RtspServer, require_rtsp

from edge.capture import open_source
from edge.node.loops import CaptureLoop, FrameSlot
from edge.types import CameraState
from edge.vision.pipeline import FrameGate


class Counter:
    """Drains the frame slot like the analysis loop would, counting frames."""

    def __init__(self, slot: FrameSlot) -> None:
        self.slot = slot
        self.count = 0
        self.times: list[float] = []  # source time of each frame, in order
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self.stop.is_set():
            item = self.slot.get(0.2)
            if item is not None:
                if hasattr(item, "time"):
                    self.times.append(item.time)
                self.count += 1

    def wait_for(self, more: int, timeout: float) -> float:
        start, target = time.monotonic(), self.count + more
        while time.monotonic() - start < timeout:
            if self.count >= target:
                return time.monotonic() - start
            time.sleep(0.05)
        raise AssertionError(f"only {self.count - target + more} of {more} frames within {timeout}s")

    def time_to(self, count: int, timeout: float) -> float | None:
        """Seconds until ``count`` frames were counted in all, or None if not within ``timeout``."""
        start = time.monotonic()
        while time.monotonic() - start < timeout:
            if self.count >= count:
                return time.monotonic() - start
            time.sleep(0.01)
        return None


@pytest.fixture
def rtsp_capture():
    require_rtsp()
    server = RtspServer(video_path("highway")).start()  # 1-2 s GOP: quick to open
    source = open_source("cam", server.url, open_timeout=8, read_timeout=2)
    slot = FrameSlot(size=2, block=False)
    loop = CaptureLoop("cam", source, slot, None, live=True, reconnect_max=2.0, gate=FrameGate(10.0))
    stop = threading.Event()
    thread = threading.Thread(target=loop.run, args=(stop,), daemon=True)
    thread.start()
    counter = Counter(slot)
    yield server, loop, counter
    stop.set()
    server.kill()
    thread.join(15)
    counter.stop.set()
    assert not thread.is_alive()


RECONNECT_MAX_S = 2.0  # rtsp_capture's reconnect_max
# After a restart the loop waits at most one backoff step (reconnect_max, +20% jitter) and then opens the
# stream; the highway clip opens in about 1 s (1-2 s GOP). Bound: that sum, doubled for a busy machine.
RECONNECT_BOUND_S = 2 * (RECONNECT_MAX_S * 1.2 + 1.5)


def test_rtsp_survives_server_restart(rtsp_capture) -> None:
    server, loop, counter = rtsp_capture
    counter.wait_for(10, timeout=20)
    assert loop.state is CameraState.RUNNING
    server.kill()
    time.sleep(2.0)
    assert loop.state is CameraState.RECONNECTING
    frames_while_down = counter.count
    server.start()
    took = counter.time_to(frames_while_down + 1, timeout=60)  # measured, not bounded by the wait
    assert took is not None, "no frame within 60 s of the server's restart"
    assert took < RECONNECT_BOUND_S, f"first frame {took:.2f} s after the restart"
    assert loop.state is CameraState.RUNNING and loop.reconnects >= 1
    counter.wait_for(5, timeout=20)
    times = list(counter.times)
    backwards = [(a, b) for a, b in zip(times, times[1:], strict=False) if b <= a]
    assert not backwards, f"source time ran backwards across the reconnect: {backwards[:3]}"
    gap = max(b - a for a, b in zip(times, times[1:], strict=False))
    assert gap >= 2.0, f"the outage (>= 2 s) must show in source time, largest step {gap:.2f} s"


def test_frozen_rtsp_server_is_detected_by_timeout(rtsp_capture) -> None:
    server, loop, counter = rtsp_capture
    counter.wait_for(5, timeout=20)
    server.freeze()
    deadline = time.monotonic() + 12
    while loop.state is CameraState.RUNNING and time.monotonic() < deadline:
        time.sleep(0.1)
    assert loop.state is CameraState.RECONNECTING, "a frozen server must be noticed, not waited on forever"
    server.thaw()
    server.kill()
    server.start()
    counter.wait_for(5, timeout=15)
