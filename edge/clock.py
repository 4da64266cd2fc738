"""Is the wall clock synchronised? Events carry the answer as ``time_ok``.

A Pi has no battery-backed clock: until NTP has synchronised it, ``time.time()``
may be days off, and events stamped with it must say so. The kernel knows:
``adjtimex`` reports the maximum error it assumes and the ``STA_UNSYNC`` flag.
We follow systemd's ``timedatectl`` (``NTPSynchronized``): synchronised when
the kernel's maximum error is below 16 s. The call is a cheap syscall with no
privileges needed, so the daemon may ask every few seconds. Where a sandbox
blocks it (systemd's ``ProtectClock=``), systemd-timesyncd's flag file, then
``timedatectl`` answer instead.
"""

from __future__ import annotations

import ctypes
import shutil
import subprocess
import sys
from pathlib import Path

STA_UNSYNC = 0x0040
TIME_ERROR = 5
MAX_ERROR_US = 16_000_000  # the kernel's NTP_PHASE_LIMIT: beyond it the clock counts as unsynchronised
TIMESYNCD_DIR = Path("/run/systemd/timesync")  # systemd-timesyncd creates "synchronized" here once synced


class _Timex(ctypes.Structure):
    """``struct timex`` from <sys/timex.h> (Linux, glibc), with the kernel's spare padding."""

    _fields_ = [
        ("modes", ctypes.c_uint),
        ("offset", ctypes.c_long),
        ("freq", ctypes.c_long),
        ("maxerror", ctypes.c_long),
        ("esterror", ctypes.c_long),
        ("status", ctypes.c_int),
        ("constant", ctypes.c_long),
        ("precision", ctypes.c_long),
        ("tolerance", ctypes.c_long),
        ("time_sec", ctypes.c_long),
        ("time_usec", ctypes.c_long),
        ("tick", ctypes.c_long),
        ("ppsfreq", ctypes.c_long),
        ("jitter", ctypes.c_long),
        ("shift", ctypes.c_int),
        ("stabil", ctypes.c_long),
        ("jitcnt", ctypes.c_long),
        ("calcnt", ctypes.c_long),
        ("errcnt", ctypes.c_long),
        ("stbcnt", ctypes.c_long),
        ("tai", ctypes.c_int),
        ("_spare", ctypes.c_int * 11),
    ]


def _from_adjtimex() -> bool | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(None, use_errno=True)  # the C library already loaded: no search, no subprocess
        tx = _Timex()  # modes = 0: read only, no privileges needed
        state = libc.adjtimex(ctypes.byref(tx))
    except (OSError, AttributeError):
        return None
    if state < 0:
        return None
    return tx.maxerror < MAX_ERROR_US


def _from_timesyncd() -> bool | None:
    if not TIMESYNCD_DIR.is_dir():
        return None  # timesyncd is not the NTP client here
    return (TIMESYNCD_DIR / "synchronized").exists()


def _from_timedatectl() -> bool | None:
    exe = shutil.which("timedatectl")
    if exe is None:
        return None
    try:
        out = subprocess.run(
            [exe, "show", "-p", "NTPSynchronized", "--value"], capture_output=True, text=True, timeout=3
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    value = out.stdout.strip()
    return {"yes": True, "no": False}.get(value) if out.returncode == 0 else None


SOURCES = (("kernel adjtimex", _from_adjtimex), ("systemd-timesyncd", _from_timesyncd),
           ("timedatectl NTPSynchronized", _from_timedatectl))


def clock_status() -> tuple[bool | None, str]:
    """The answer (None: cannot tell) and what it rests on, for ``edgecam check``."""
    for name, source in SOURCES:
        answer = source()
        if answer is not None:
            return answer, name
    return None, "cannot tell: adjtimex blocked, no systemd-timesyncd, no timedatectl"


def clock_synchronised() -> bool | None:
    """True when synchronised, False when known not to be, None when it cannot be told."""
    return clock_status()[0]
