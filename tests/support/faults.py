"""Harness for the fault suite (tests/test_faults.py): tmpfs mounts, full disks, nodes and central as processes."""

from __future__ import annotations

import errno
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent.parent
EDGECAM = [sys.executable, "-m", "edge"]
WALLCLOCK = Path(__file__).resolve().parent / "wallclock"
EVENT_LINE = re.compile(r"edge\.camera: event (start|update|end) ")


def edgecam(*args: str, timeout: float = 120, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([*EDGECAM, *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})})


class Proc:
    """A long-running edgecam subprocess (node or central) whose output is kept in a log file."""

    def __init__(self, args: list[str], log: Path, env: dict | None = None) -> None:
        self.args, self.log, self.env = args, log, env
        self.proc: subprocess.Popen | None = None
        self._offset = 0

    def start(self) -> Proc:
        self._offset = self.log.stat().st_size if self.log.exists() else 0  # a restart appends to the same log
        with open(self.log, "a") as out:
            self.proc = subprocess.Popen([*EDGECAM, *self.args], cwd=ROOT, stdout=out, stderr=subprocess.STDOUT,
                                         env={**os.environ, **(self.env or {})})
        return self

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout: float = 90) -> int | None:
        """SIGTERM and wait; None when it was not running."""
        if not self.running():
            return self.proc.returncode if self.proc else None
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
            raise

    def text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def this_run(self) -> str:
        """What the current (latest) start wrote to the log."""
        return self.text()[self._offset:]

    def wait_log(self, needle: str, timeout: float) -> None:
        """Wait for ``needle`` in what this start logged; fail at once if the process ends first."""
        wait_until(lambda: needle in self.this_run(), timeout, f"{needle!r} in {self.log.name}",
                   stop=lambda: not self.running())


def wait_until(check: Callable[[], bool], timeout: float, what: str, step: float = 0.25,
               stop: Callable[[], bool] | None = None) -> None:
    """Poll ``check``; fail with ``what`` after ``timeout`` s, or at once when ``stop()`` says it cannot come."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        if stop is not None and stop():
            if check():
                return
            raise AssertionError(f"gave up waiting for {what}: the process ended")
        time.sleep(step)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def event_lines(*logs: str) -> int:
    """How many events the node's cameras emitted (one ``edge.camera: event ...`` INFO line each)."""
    return sum(len(EVENT_LINE.findall(text)) for text in logs)


# ---- full disks ---------------------------------------------------------------------------------------------


@contextmanager
def tmpfs(path: Path, size: str) -> Iterator[Path]:
    """A real tmpfs of ``size`` mounted at ``path`` (needs root; the test skips when mounting is refused)."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    path.mkdir(parents=True, exist_ok=True)
    mount = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs", str(path)],
                           capture_output=True, text=True, timeout=30)
    if mount.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs at {path}: {mount.stderr.strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], capture_output=True, timeout=30)


def fill(directory: Path, name: str = "filler") -> Path:
    """Write ``directory/name`` until the filesystem refuses (ENOSPC); free it again by unlinking the file."""
    filler = directory / name
    with open(filler, "wb", buffering=0) as f:
        for chunk in (1 << 20, 1 << 12, 1 << 9):
            block = b"\0" * chunk
            while True:
                try:
                    f.write(block)
                except OSError as err:
                    if err.errno != errno.ENOSPC:
                        raise
                    break
    os.sync()
    # No "no room left" check afterwards: the filler stops at ENOSPC like a clip writer that pauses on a full
    # disk, and the node may rightly free space at that moment (its outbox reserve gives way).
    return filler


# ---- central ------------------------------------------------------------------------------------------------


def central_config(path: Path, broker_port: int, db_url: str, client_id: str = "fault-central") -> Path:
    path.write_text(f'[mqtt]\nhost = "127.0.0.1"\nport = {broker_port}\nclient_id = "{client_id}"\n'
                    f'[database]\nurl = "{db_url}"\n')
    return path


def central_status(cfg: Path, node: str) -> dict:
    """``edgecam central status --json``'s object for ``node`` (empty when central has not seen it)."""
    out = edgecam("central", "status", "-c", str(cfg), "--json", timeout=60)
    for line in out.stdout.splitlines():
        line = line.strip()
        if line.startswith("{"):
            obj = json.loads(line)
            if obj.get("node") == node:
                return obj
    return {}


def register(central_cfg: Path, node_cfg: Path, node: str) -> None:
    """Record the node's public key at central, as an installer does (register-node)."""
    key = edgecam("key", "show", "-c", str(node_cfg))
    assert key.returncode == 0, key.stderr
    reg = edgecam("central", "register-node", "-c", str(central_cfg), "--node", node, "--pubkey",
                  key.stdout.strip().splitlines()[-1])
    assert reg.returncode == 0, reg.stdout + reg.stderr


def holds_everything(status: dict, last_seq: int) -> bool:
    return status.get("contiguous_seq", 0) >= last_seq and not status.get("missing")
