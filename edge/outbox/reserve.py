"""A preallocated file that keeps disk space for the outbox when the disk fills with things no one may delete.

Clips that are held, other programs' files, a full SD card: when SQLite reports the disk full, the outbox
deletes this file and goes on storing events in the space it held; once the disk has room again the file is
made again. Without it, events would wait in RAM and be lost at shutdown.
"""

from __future__ import annotations

import errno
import logging
import os
from pathlib import Path

log = logging.getLogger("edge.outbox")

DEFAULT_RESERVE_BYTES = 16 * 1024 * 1024
RESERVE_SHARE = 10  # at most a tenth of the file system: a small card or partition still gets a reserve


def is_disk_full(err: BaseException) -> bool:
    """SQLite's SQLITE_FULL or an ENOSPC from the file system."""
    if isinstance(err, OSError) and err.errno in (errno.ENOSPC, errno.EDQUOT):
        return True
    return getattr(err, "sqlite_errorcode", None) == 13 or "disk is full" in str(err)


def free_bytes(path: Path) -> int:
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize


def fitted_size(path: Path, wanted: int) -> int:
    """``wanted``, or a tenth of the file system holding ``path`` when that is smaller.

    A fixed 16 MiB reserve that must fit twice into the free space is never made on a small partition
    (a 24 MiB state tmpfs, a nearly full card), which is exactly where it is needed.
    """
    try:
        st = os.statvfs(path)
    except OSError:
        return wanted
    return max(0, min(wanted, st.f_blocks * st.f_frsize // RESERVE_SHARE))


class Reserve:
    """``ensure()`` makes the file when there is room for it twice over; ``release()`` frees it."""

    def __init__(self, path: Path, size: int = DEFAULT_RESERVE_BYTES) -> None:
        self.path = Path(path)
        self.size = fitted_size(self.path.parent, size) if size > 0 else 0
        self.released_total = 0

    @property
    def present(self) -> bool:
        try:
            return self.path.stat().st_size >= self.size
        except FileNotFoundError:
            return False

    def ensure(self) -> bool:
        """Make (or complete) the reserve; True when it is in place. Never fills the disk to do so."""
        if self.size <= 0 or self.present:
            return self.size > 0
        try:
            if free_bytes(self.path.parent) < 2 * self.size:
                return False
            tmp = self.path.with_name(self.path.name + ".tmp")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            try:
                os.posix_fallocate(fd, 0, self.size)  # real blocks, not a sparse file
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(tmp, self.path)
        except OSError as err:
            log.warning("outbox: cannot make the %s MiB disk reserve %s: %s", format(self.size / 2**20, ".3g"),
                        self.path,
                        err.strerror or err)
            try:
                self.path.with_name(self.path.name + ".tmp").unlink(missing_ok=True)
            except OSError:
                pass
            return False
        return True

    def release(self) -> bool:
        """Free the space; True when there was a reserve to free."""
        try:
            self.path.unlink()
        except FileNotFoundError:
            return False
        self.released_total += 1
        log.error("outbox: disk full; released the %s MiB outbox reserve %s so events can still be stored",
                  format(self.size / 2**20, ".3g"), self.path)
        return True
