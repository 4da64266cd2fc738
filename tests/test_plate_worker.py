"""The plate worker: bounded queue with counted drops, CPU budget, runner-up shots, a missing extra."""

from __future__ import annotations

import importlib.util
import logging
import threading
import time

import numpy as np
import pytest

from edge import assets
from edge.vision.plate_worker import PlateWorker
from edge.vision.plates import Plate, PlatesUnavailable

PLATES = assets.find("data/plates/vn")


class BusyReader:
    """Burns a fixed CPU time per read and records when each read ran (wall clock)."""

    def __init__(self, cpu_s: float = 0.03) -> None:
        self.cpu_s = cpu_s
        self.spans: list[tuple[float, float]] = []

    def read(self, img: np.ndarray) -> list[Plate]:
        start = time.perf_counter()
        t0 = time.thread_time()
        while time.thread_time() - t0 < self.cpu_s:
            pass
        self.spans.append((start, time.perf_counter()))
        return []


def test_cpu_budget_idles_between_reads() -> None:
    """At max_cpu 0.25 a read costing c CPU-s is followed by >= 3c of idle before the next one starts."""
    reader = BusyReader(0.03)
    worker = PlateWorker(lambda k, p: None, max_cpu=0.25, queue_size=8, reader_factory=lambda: reader)
    for i in range(5):
        assert worker.submit(i, [np.zeros((8, 8, 3), np.uint8)])
    worker.stop(timeout=30)
    assert worker.stats.read == 5 and worker.stats.dropped == 0
    gaps = [reader.spans[i + 1][0] - reader.spans[i][1] for i in range(4)]
    assert min(gaps) >= 0.9 * 3 * 0.03, gaps
    assert worker.stats.cpu_s >= 5 * 0.03


def test_full_queue_drops_and_counts_without_blocking() -> None:
    started, release = threading.Event(), threading.Event()

    class Stuck:
        def read(self, img: np.ndarray) -> list[Plate]:
            started.set()
            release.wait(10)
            return []

    worker = PlateWorker(lambda k, p: None, max_cpu=1.0, queue_size=2, reader_factory=Stuck)
    assert worker.submit("a", [np.zeros((8, 8, 3), np.uint8)])
    assert started.wait(10)  # the worker holds "a"; the queue is empty again
    t0 = time.perf_counter()
    accepted = [worker.submit(k, [np.zeros((8, 8, 3), np.uint8)]) for k in "bcde"]
    assert time.perf_counter() - t0 < 0.5  # submit never waits for the reader
    assert accepted == [True, True, False, False]
    release.set()
    worker.stop(timeout=10)
    s = worker.stats
    assert (s.submitted, s.read, s.dropped) == (5, 3, 2)


def test_unavailable_extra_logs_one_line_and_counts_drops(caplog) -> None:
    def missing():
        raise PlatesUnavailable("plate reading needs the plates extra: pip install 'edgecam[plates]'")

    with caplog.at_level(logging.WARNING, logger="edge.vision.plate_worker"):
        worker = PlateWorker(lambda k, p: None, reader_factory=missing)
        assert worker.submit("a", [np.zeros((8, 8, 3), np.uint8)]) is False
        worker.stop()
    assert [r.getMessage() for r in caplog.records] == [
        "plates: plate reading needs the plates extra: pip install 'edgecam[plates]'; the node runs on without plates"
    ]
    assert (worker.stats.submitted, worker.stats.dropped, worker.stats.read) == (1, 1, 0)


@pytest.mark.skipif(
    PLATES is None or importlib.util.find_spec("rapidocr") is None, reason="needs ../shared plates and the extra"
)
def test_real_reads_use_runner_up_when_best_shot_is_unreadable() -> None:
    import cv2

    results: dict[str, Plate | None] = {}
    worker = PlateWorker(lambda k, p: results.__setitem__(k, p), max_cpu=1.0)
    blurred = cv2.imread(str(PLATES / "y7_clip3_new_9_p0.png"))
    worker.submit("moto", [cv2.imread(str(PLATES / "knn_2.jpg"))])
    worker.submit("car", [blurred, cv2.imread(str(PLATES / "knn_19_c0.png"))])
    worker.submit("none", [blurred, np.full((120, 200, 3), 128, np.uint8)])
    worker.stop(timeout=60)
    assert {k: p.text if p else None for k, p in results.items()} == {
        "moto": "59-V1 793.79", "car": "51H-040.73", "none": None
    }
    assert (worker.stats.read, worker.stats.found) == (3, 2)
