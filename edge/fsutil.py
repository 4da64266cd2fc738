"""Writing files so that a crash or power cut leaves the old file or the new one, never half of either."""

from __future__ import annotations

import os
import stat
import tempfile
from pathlib import Path


def write_atomic(path: Path, data: bytes, mode: int | None = None) -> None:
    """Write to a temp file beside ``path``, fsync, then rename over it (atomic on POSIX)."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        if mode is not None:
            os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def regular_file_in(folder: Path, path: Path) -> Path | None:
    """``path`` resolved, when it is a regular file directly in ``folder`` (resolved); else None.

    Symlinks are never followed: what a store serves is what it wrote, not what a link points at.
    """
    try:
        st = os.lstat(path)
    except OSError:
        return None
    resolved = Path(path).resolve()
    if not stat.S_ISREG(st.st_mode) or resolved.parent != Path(folder).resolve():
        return None
    return resolved
