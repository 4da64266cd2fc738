"""One daemon per storage directory: an exclusive ``flock`` on ``<storage>/edgecam.lock``.

Two daemons on the same storage would give two events the same outbox seq and
two clips the same chain seq, and their MQTT clients (same client id) would
kick each other off. The kernel drops a flock when its process dies, kill -9
included, so a crash never leaves a stale lock. One-shot commands that go
through SQLite (``clips hold``/``release``, ``key show``) do not take it;
commands that replace state files behind the daemon's back (``key new``) do.
"""

from __future__ import annotations

import fcntl
import os
import time
from pathlib import Path

from .errors import UserError

LOCK_FILE = "edgecam.lock"


class StorageBusy(UserError):
    """Another process holds the storage lock; ``pid`` is its pid when it could be read."""

    def __init__(self, path: Path, pid: int | None) -> None:
        self.pid = pid
        who = f"pid {pid}" if pid else "another process (pid unknown)"
        super().__init__(f"storage {path} is in use by another edgecam daemon ({who}); stop it first")


class StorageLock:
    """Holds the lock until ``release()`` or process exit; the file keeps the holder's pid."""

    def __init__(self, storage: Path) -> None:
        self.path = Path(storage) / LOCK_FILE
        self._fd: int | None = None

    def acquire(self) -> StorageLock:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise StorageBusy(self.path.parent, _holder(self.path)) from None
        except BaseException:
            os.close(fd)
            raise
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing drops the flock; the file stays (unlinking would race a waiter)
            self._fd = None


def _holder(path: Path) -> int | None:
    """The pid the holder wrote; it writes just after locking, so give it a moment."""
    for _ in range(20):
        try:
            text = path.read_text().strip()
        except OSError:
            return None
        if text.isdigit():
            return int(text)
        time.sleep(0.01)
    return None
