"""Plate reading off the hot path: one thread, a bounded queue, a CPU budget (``plates.max_cpu``).

The caller (the event stage, once plates are wired in) hands over a tracked object's best shot and a
few runner-ups; ``submit`` never blocks: when the queue is full the job is dropped and counted, so
capture, recording and events never wait for plates. After each read the thread sleeps long enough
that its own CPU time stays within ``max_cpu`` of one core over time (CPU measured with
``time.thread_time``, so other threads' work does not count against it).
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from .plates import Plate, PlateReader, PlatesUnavailable

log = logging.getLogger(__name__)


class Reader(Protocol):
    def read(self, img: np.ndarray) -> list[Plate]: ...


@dataclass
class PlateStats:
    """Counters for stats payloads and ``check``: what the budget let through and what it cost."""

    submitted: int = 0
    read: int = 0  # jobs finished (with or without a plate)
    found: int = 0  # jobs that gave a plate
    dropped: int = 0  # jobs refused because the queue was full (or plates are unavailable)
    cpu_s: float = 0.0  # CPU seconds spent reading


class PlateWorker:
    """``submit(key, shots)`` -> later ``on_result(key, plate or None)`` on the worker thread."""

    def __init__(
        self,
        on_result: Callable[[Hashable, Plate | None], None],
        max_cpu: float = 0.25,
        queue_size: int = 8,
        reader_factory: Callable[[], Reader] = PlateReader,
    ) -> None:
        if not 0 < max_cpu <= 1:
            raise ValueError("max_cpu must be in (0, 1]")
        self.max_cpu = max_cpu
        self.stats = PlateStats()
        self._on_result = on_result
        self._factory = reader_factory
        self._queue: queue.Queue[tuple[Hashable, Sequence[np.ndarray]] | None] = queue.Queue(maxsize=queue_size)
        self._lock = threading.Lock()
        self._available = True
        self._thread = threading.Thread(target=self._run, name="plates", daemon=True)
        self._started = threading.Event()
        self._thread.start()
        self._started.wait()

    def submit(self, key: Hashable, shots: Sequence[np.ndarray]) -> bool:
        """Queue one object's shots (best first); False (and counted as dropped) if full or unavailable."""
        with self._lock:
            self.stats.submitted += 1
            if not self._available:
                self.stats.dropped += 1
                return False
            try:
                self._queue.put_nowait((key, list(shots)))
            except queue.Full:
                self.stats.dropped += 1
                return False
            return True

    def stop(self, timeout: float = 10.0) -> None:
        """Finish what is queued (within ``timeout``), then end the thread."""
        try:
            self._queue.put(None, timeout=timeout)
        except queue.Full:
            log.warning("plates: queue still full at stop; %d jobs not read", self._queue.qsize())
        self._thread.join(timeout)

    def _run(self) -> None:
        reader: Reader | None = None
        try:
            reader = self._factory()
        except PlatesUnavailable as err:
            log.warning("plates: %s; the node runs on without plates", err)
            with self._lock:
                self._available = False
        finally:
            self._started.set()
        while True:
            job = self._queue.get()
            if job is None:
                return
            if reader is None:
                continue
            key, shots = job
            t0 = time.thread_time()
            plate = None
            try:
                for shot in shots:  # best shot first; runner-ups only while unreadable
                    plates = reader.read(shot)
                    if plates:
                        plate = max(plates, key=lambda p: p.score)
                        break
            except Exception:  # a bad image or a model fault must not end the thread
                log.exception("plates: read failed for %r", key)
            cpu = time.thread_time() - t0
            with self._lock:
                self.stats.read += 1
                self.stats.found += plate is not None
                self.stats.cpu_s += cpu
            try:
                self._on_result(key, plate)
            except Exception:
                log.exception("plates: result handler failed for %r", key)
            if self.max_cpu < 1:
                time.sleep(cpu * (1 / self.max_cpu - 1))  # idle so that cpu / (cpu + idle) <= max_cpu
