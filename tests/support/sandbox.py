"""Apply edgecam.service's system-call filter and W^X rule to this process, without systemd.

PID 1 on a test machine is often not systemd, so the unit cannot be started for real. This
builds the same allow list from the unit's ``SystemCallFilter=`` lines (groups expanded by
``systemd-analyze syscall-filter``), loads it with libseccomp (default action EPERM, as
``SystemCallErrorNumber=EPERM``), and sets the kernel's memory-deny-write-execute flag
(PR_SET_MDWE, Linux >= 6.3): what the unit's ``MemoryDenyWriteExecute=yes`` enforces.
Irreversible: use it in a child process.
"""

from __future__ import annotations

import ctypes
import errno
import re
import subprocess
from pathlib import Path

SCMP_ACT_ALLOW = 0x7FFF0000
SCMP_ACT_ERRNO = 0x00050000
PR_SET_MDWE = 65
PR_MDWE_REFUSE_EXEC_GAIN = 1


def syscall_groups() -> dict[str, list[str]]:
    """Every ``@group`` systemd knows, with its direct members (syscalls or other groups)."""
    text = subprocess.run(["systemd-analyze", "syscall-filter", "--no-pager"], capture_output=True, text=True,
                          check=True, timeout=30).stdout
    groups: dict[str, list[str]] = {}
    current: str | None = None
    for line in text.splitlines():
        if line.startswith("@"):
            current = line.split()[0]
            groups[current] = []
        elif current and line.strip() and not line.strip().startswith("#"):
            groups[current].append(line.split()[0])
    return groups


def expand(names: list[str], groups: dict[str, list[str]]) -> set[str]:
    out: set[str] = set()
    for name in names:
        out |= expand(groups[name], groups) if name.startswith("@") else {name}
    return out


def unit_syscalls(unit: Path) -> set[str]:
    """The allow list that the unit's SystemCallFilter= lines add up to."""
    groups = syscall_groups()
    allowed: set[str] = set()
    for value in re.findall(r"^SystemCallFilter=(.*)$", unit.read_text(), re.M):
        if value.startswith("~"):
            allowed -= expand(value[1:].split(), groups)
        else:
            allowed |= expand(value.split(), groups)
    return allowed


def apply(allowed: set[str], deny_write_execute: bool) -> None:
    lib = ctypes.CDLL("libseccomp.so.2", use_errno=True)
    lib.seccomp_init.restype = ctypes.c_void_p
    lib.seccomp_init.argtypes = [ctypes.c_uint32]
    lib.seccomp_syscall_resolve_name.argtypes = [ctypes.c_char_p]
    lib.seccomp_rule_add.argtypes = [ctypes.c_void_p, ctypes.c_uint32, ctypes.c_int, ctypes.c_uint]
    lib.seccomp_load.argtypes = [ctypes.c_void_p]
    ctx = lib.seccomp_init(SCMP_ACT_ERRNO | errno.EPERM)
    for name in sorted(allowed):
        nr = lib.seccomp_syscall_resolve_name(name.encode())
        if nr >= 0:
            lib.seccomp_rule_add(ctx, SCMP_ACT_ALLOW, nr, 0)
    if deny_write_execute:
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "PR_SET_MDWE not supported by this kernel")
    if lib.seccomp_load(ctx) != 0:
        raise OSError("seccomp_load failed")
