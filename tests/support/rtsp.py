"""Start, kill, freeze and restart the test RTSP server from a test."""

from __future__ import annotations

import os
import select
import signal
import subprocess
import time
from pathlib import Path

import pytest

from .broker import free_port

SERVER = Path(__file__).with_name("rtsp_server.py")
SYSTEM_PYTHON = "/usr/bin/python3"


def rtsp_available() -> bool:
    if not os.path.exists(SYSTEM_PYTHON):
        return False
    probe = subprocess.run(
        [SYSTEM_PYTHON, "-c", "import gi; gi.require_version('GstRtspServer', '1.0');"
         "from gi.repository import GstRtspServer"], capture_output=True)
    return probe.returncode == 0


class RtspServer:
    """One server process; ``mounts`` ({"/main": A, "/sub": B}) serves several streams from it instead."""

    def __init__(self, video: Path | None = None, port: int | None = None, path: str = "/cam",
                 mounts: dict[str, Path] | None = None, one_feeder: bool = False) -> None:
        """``one_feeder``: every mount paced by one ffmpeg (one clock, like a camera's main and sub)."""
        self.video = video
        self.one_feeder = one_feeder
        self.port = port or free_port()
        self.path = path
        self.mounts = dict(mounts or {})
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"rtsp://127.0.0.1:{self.port}{self.path if self.video is not None else next(iter(self.mounts))}"

    def url_of(self, mount: str) -> str:
        return f"rtsp://127.0.0.1:{self.port}{mount}"

    def start(self, timeout: float = 15.0) -> RtspServer:
        args = ["--path", self.path, "--video", str(self.video)] if self.video is not None else []
        for mount, video in self.mounts.items():
            args += ["--mount", f"{mount}={video}"]
        if self.one_feeder:
            args.append("--one-feeder")
        self.proc = subprocess.Popen(
            [SYSTEM_PYTHON, str(SERVER), "--port", str(self.port), *args],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
        )
        deadline = time.monotonic() + timeout
        assert self.proc.stdout is not None
        while time.monotonic() < deadline:
            ready, _, _ = select.select([self.proc.stdout], [], [], 0.2)
            if ready and self.proc.stdout.readline().startswith("READY"):
                return self
            if self.proc.poll() is not None:
                break
        self.kill()
        raise RuntimeError("RTSP test server did not start")

    def kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)
            self.proc.kill()
            self.proc.wait(10)
        self.proc = None

    def freeze(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGSTOP)

    def thaw(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGCONT)


def require_rtsp() -> None:
    if not rtsp_available():
        pytest.skip("gst-rtsp-server (python3-gi, gir1.2-gst-rtsp-server-1.0) not installed")
