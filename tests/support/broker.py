"""A real mosquitto broker on a free loopback port that a test can kill, restart, and give TLS or passwords."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, timeout: float = 10.0, host: str = "127.0.0.1") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listening on {host}:{port} after {timeout}s")


class Broker:
    """mosquitto with persistence in ``workdir``; ``extra`` lines are appended to its config."""

    def __init__(self, workdir: Path, port: int | None = None, extra: list[str] | None = None,
                 persistence: bool = True, autosave_interval: int = 1, autosave_on_changes: bool = True) -> None:
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self.extra = list(extra or [])
        self.persistence = persistence
        # the defaults save on every change; a periodic autosave (docs/central.md) loses what came since the last
        self.autosave = (autosave_interval, autosave_on_changes)
        self.proc: subprocess.Popen | None = None
        self.conf = self.workdir / "mosquitto.conf"

    def write_config(self) -> None:
        lines = [f"listener {self.port} 127.0.0.1"]
        if not any(line.startswith("allow_anonymous") for line in self.extra):
            lines.append("allow_anonymous true")
        if os.geteuid() == 0:
            lines.append("user root")
        if self.persistence:
            lines += [
                "persistence true",
                f"persistence_location {self.workdir}/",
                f"autosave_interval {self.autosave[0]}",
                f"autosave_on_changes {'true' if self.autosave[1] else 'false'}",
            ]
        lines += ["max_queued_messages 100000", "log_dest none"]
        lines += self.extra
        self.conf.write_text("\n".join(lines) + "\n")

    def start(self, timeout: float = 10.0) -> Broker:
        self.write_config()
        self.proc = subprocess.Popen(
            [MOSQUITTO, "-c", str(self.conf)],
            stdout=subprocess.DEVNULL,
            stderr=open(self.workdir / "mosquitto.log", "ab"),
        )
        try:
            wait_port(self.port, timeout)
        except TimeoutError:
            self.kill()
            tail = (self.workdir / "mosquitto.log").read_text()[-500:]
            raise RuntimeError("mosquitto did not start: " + tail) from None
        return self

    def kill(self) -> None:
        """SIGKILL: the broker dies without saving anything beyond its last autosave."""
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)
        self.proc = None

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self.proc = None

    def restart(self) -> None:
        self.stop()
        self.start()

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None
