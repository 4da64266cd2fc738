"""glibc heap hygiene for a daemon that runs for weeks.

Why: with ~34 threads (4 cameras: capture, analysis and clip writer each, FFmpeg decoder threads, paho, outbox,
API) glibc gives threads up to 8 malloc arenas per core, and each arena keeps the high-water of what was freed in
it. A camera reconnect starts new decoder threads whose frame buffers land in other arenas, so RSS steps up at
each fault without any object leaking (BENCHMARKS.md, "Soak"). Two arenas and a periodic ``malloc_trim(0)``
(which also hands back free pages in the middle of each arena, glibc >= 2.8) keep RSS at the live size.
A fixed mmap threshold of 1 MiB: glibc otherwise raises it after each large free (up to 32 MiB), so the
full-size frames of a record-stream still (3-6 MB each, a fresh decoder per pass) move into the heap and
stay there as high-water; fixed, they are mapped and handed back when freed (measured on the 1-camera
two-stream bench: peak anonymous memory 144 -> 123 MB, benchmarks/streams.md). Smaller blocks (a 640x360
frame, Python objects) stay on the heap. Elsewhere (musl, macOS) all calls are no-ops.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os

log = logging.getLogger("edgecam")

M_ARENA_MAX = -8  # glibc's mallopt parameter numbers (malloc.h)
M_MMAP_THRESHOLD = -3
ARENAS = 2
MMAP_THRESHOLD = 1024 * 1024
TRIM_EVERY_S = 60.0


def _glibc() -> ctypes.CDLL | None:
    name = ctypes.util.find_library("c")
    if not name:
        return None
    try:
        libc = ctypes.CDLL(name)
        libc.gnu_get_libc_version  # noqa: B018 - only glibc has it
    except (OSError, AttributeError):
        return None
    return libc


class Heap:
    """Caps glibc's arenas at start (unless ``MALLOC_ARENA_MAX`` says otherwise) and trims on request."""

    def __init__(self) -> None:
        self._libc = _glibc()
        self.trims = 0
        self.arena_cap: int | None = None
        self.mmap_threshold: int | None = None

    def cap_arenas(self) -> None:
        """Call before the worker threads start: arenas made earlier stay. Fixes the mmap threshold too."""
        if self._libc is None:
            return
        threshold = os.environ.get("MALLOC_MMAP_THRESHOLD_")  # glibc's own variable: the operator's value wins
        if threshold:
            self.mmap_threshold = int(threshold) if threshold.isdigit() else None
        elif self._libc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1:
            self.mmap_threshold = MMAP_THRESHOLD
        wanted = os.environ.get("MALLOC_ARENA_MAX")
        if wanted:  # glibc read it itself at start-up; the operator's value wins
            self.arena_cap = int(wanted) if wanted.isdigit() else None
            return
        if self._libc.mallopt(M_ARENA_MAX, ARENAS) == 1:
            self.arena_cap = ARENAS

    def trim(self) -> None:
        if self._libc is not None:
            self._libc.malloc_trim(0)
            self.trims += 1
