"""Test-only wall-clock step for a child process (tests/test_faults.py), loaded through PYTHONPATH.

edgecam reads wall time with ``time.time()`` and has no offset of its own (edge/clock.py only asks the
kernel whether the clock is synchronised). To step the clock of a running daemon without root or
libfaketime, a test puts this directory on the child's PYTHONPATH and names a file in
``EDGECAM_TEST_WALL_OFFSET_FILE``; the file holds seconds to add to ``time.time()``/``time.time_ns()``
and is re-read every 0.2 s, so writing it steps the clock of the running process. Monotonic clocks,
C-level callers and SQLite's own ``now`` are not affected.
"""

from __future__ import annotations

import os
import threading
import time

_FILE = os.environ.get("EDGECAM_TEST_WALL_OFFSET_FILE")

if _FILE:
    _real_time, _real_time_ns = time.time, time.time_ns
    _offset = [0.0]

    def _read() -> None:
        try:
            with open(_FILE) as f:
                _offset[0] = float(f.read().strip() or 0)
        except (OSError, ValueError):
            pass

    def _poll() -> None:
        while True:
            _read()
            time.sleep(0.2)

    def _time() -> float:
        return _real_time() + _offset[0]

    def _time_ns() -> int:
        return _real_time_ns() + int(_offset[0] * 1e9)

    _read()
    time.time, time.time_ns = _time, _time_ns
    threading.Thread(target=_poll, name="test-wall-offset", daemon=True).start()
