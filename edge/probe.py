"""Grab one decoded frame from a camera source, within a deadline.

Used by ``edgecam check`` (does the camera answer, at what size and rate?) and
``edgecam snapshot`` (aim the camera). It is deliberately thin and separate from
``edge.capture``: a one-shot open, a frame or two, close. Every source kind the
config accepts is handled: files and URLs through PyAV, ``/dev/videoN`` through
OpenCV's V4L2 backend, ``picamera2:N`` through Picamera2 (imported only here,
only when asked for). A grab runs on a helper thread so that a driver that
blocks cannot hold the caller past its deadline.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .capture.plain import plain_error
from .redact import redact_url

FPS_WINDOW = 1.0  # seconds of frames counted on a live source to measure its rate


class GrabError(Exception):
    """The source gave no frame; the message is one line an installer can act on."""

    def __init__(self, message: str, advice: str = "") -> None:
        super().__init__(redact_url(message))  # the URL may carry the camera's password
        self.advice = advice  # what to do, when the cause is known for sure


@dataclass(frozen=True)
class Grab:
    """One frame and what was seen while getting it."""

    image: np.ndarray  # BGR, HxWx3, uint8
    width: int
    height: int
    fps: float  # nominal rate for files, measured for live sources (0.0 when unknown)
    codec: str  # e.g. "h264", "v4l2", "picamera2"
    seconds: float  # from open to the first frame
    live: bool


def source_kind(source: str) -> str:
    """``picamera2``, ``v4l2``, ``url`` or ``file``."""
    if source.startswith("picamera2:"):
        return "picamera2"
    if re.fullmatch(r"/dev/video\d+", source):
        return "v4l2"
    if "://" in source:
        return "url"
    return "file"


def grab_frame(source: str, timeout: float = 10.0, width: int = 1280, height: int = 720) -> Grab:
    """One frame from ``source`` within ``timeout`` seconds, or ``GrabError``.

    ``width``/``height`` are asked of sources that let us choose (USB, Pi camera).
    """
    kind = source_kind(source)
    if kind == "file" and not Path(source).is_file():
        raise GrabError(f"{source}: no such file")
    if kind == "v4l2" and not Path(source).exists():
        raise GrabError(f"{source}: no such device")
    grabbers: dict[str, Callable[[], Grab]] = {
        "file": lambda: _grab_pyav(source, timeout, live=False),
        "url": lambda: _grab_pyav(source, timeout, live=True),
        "v4l2": lambda: _grab_v4l2(source, timeout, width, height),
        "picamera2": lambda: _grab_picamera2(source, width, height),
    }
    return _with_deadline(grabbers[kind], timeout + 1.0, source)


def _with_deadline(fn: Callable[[], Grab], deadline: float, source: str) -> Grab:
    result: list[Grab] = []
    error: list[BaseException] = []

    def work() -> None:
        try:
            result.append(fn())
        except BaseException as err:  # noqa: BLE001 - reported to the caller below
            error.append(err)

    worker = threading.Thread(target=work, name="probe-grab", daemon=True)
    worker.start()
    worker.join(deadline)
    if worker.is_alive():
        raise GrabError(f"{source}: no frame within {deadline - 1.0:g} s")
    if error:
        if isinstance(error[0], GrabError):
            raise error[0]
        raise GrabError(f"{source}: {_one_line(error[0])}")
    return result[0]


def _one_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return text[0] if text else type(err).__name__


def _pyav_options(source: str, timeout: float) -> dict[str, str]:
    if not source.startswith(("rtsp://", "rtsps://")):
        return {}
    # PyAV gives up after about twice the socket timeout; small probes open in about a second.
    return {
        "rtsp_transport": "tcp",
        "timeout": str(int(timeout / 2 * 1_000_000)),
        "probesize": "32768",
        "analyzeduration": "100000",
    }


def _grab_pyav(source: str, timeout: float, live: bool) -> Grab:
    import av

    started = time.monotonic()
    try:
        container = av.open(source, options=_pyav_options(source, timeout))
    except av.error.FFmpegError as err:
        raise GrabError(f"{source}: cannot open: {plain_error(err, source)}") from None
    try:
        if not container.streams.video:
            raise GrabError(f"{source}: no video stream")
        stream = container.streams.video[0]
        nominal = float(stream.average_rate or stream.guessed_rate or 0.0)
        frames = container.decode(stream)
        first = _next_frame(frames, source, started, timeout)
        seconds = time.monotonic() - started
        image = first.to_ndarray(format="bgr24")
        fps = _measure_rate(frames, started + timeout) if live else nominal
        return Grab(image, image.shape[1], image.shape[0], fps or nominal, stream.codec_context.name, seconds, live)
    except av.error.FFmpegError as err:
        raise GrabError(f"{source}: {plain_error(err, source)}") from None
    finally:
        container.close()


def _next_frame(frames, source: str, started: float, timeout: float):
    for frame in frames:
        return frame
    raise GrabError(f"{source}: stream ended before the first frame ({time.monotonic() - started:.1f} s)")


def _measure_rate(frames, deadline: float) -> float:
    """Frames per second over up to FPS_WINDOW seconds of a live stream (0.0 if too few)."""
    end = min(deadline, time.monotonic() + FPS_WINDOW)
    stamps: list[float] = []
    for frame in frames:
        if frame.time is not None:
            stamps.append(float(frame.time))
        if time.monotonic() >= end:
            break
    if len(stamps) < 3 or stamps[-1] <= stamps[0]:
        return 0.0
    return (len(stamps) - 1) / (stamps[-1] - stamps[0])


def _grab_v4l2(source: str, timeout: float, width: int, height: int) -> Grab:
    import cv2

    started = time.monotonic()
    index = int(source.removeprefix("/dev/video"))
    cap = cv2.VideoCapture(index, cv2.CAP_V4L2)
    try:
        if not cap.isOpened():
            raise GrabError(f"{source}: cannot open (busy, not a capture device, or no permission)")
        cap.set(cv2.CAP_PROP_FRAME_WIDTH, width)
        cap.set(cv2.CAP_PROP_FRAME_HEIGHT, height)
        ok, image = cap.read()
        if not ok or image is None:
            raise GrabError(f"{source}: opened but gave no frame")
        seconds = time.monotonic() - started
        count, t0 = 0, time.monotonic()
        while time.monotonic() - t0 < min(FPS_WINDOW, max(0.0, timeout - seconds)) and cap.read()[0]:
            count += 1
        elapsed = time.monotonic() - t0
        fps = count / elapsed if count >= 2 and elapsed > 0 else float(cap.get(cv2.CAP_PROP_FPS) or 0.0)
        return Grab(image, image.shape[1], image.shape[0], fps, "v4l2", seconds, True)
    finally:
        cap.release()


def _grab_picamera2(source: str, width: int, height: int) -> Grab:
    try:
        from picamera2 import Picamera2  # apt python3-picamera2; the venv needs --system-site-packages
    except ImportError:
        raise GrabError(
            f"{source}: picamera2 is not installed here",
            "on a Pi: `apt install python3-picamera2`, and a venv made with --system-site-packages",
        ) from None
    started = time.monotonic()
    index = int(source.split(":", 1)[1] or 0)
    try:
        cam = Picamera2(index)
    except (IndexError, RuntimeError) as err:
        raise GrabError(f"{source}: no such camera ({_one_line(err)})") from None
    try:
        # "RGB888" is B, G, R byte order in memory: what OpenCV calls BGR.
        cam.configure(cam.create_video_configuration(main={"size": (width, height), "format": "RGB888"}))
        cam.start()
        image = cam.capture_array("main")
        seconds = time.monotonic() - started
        duration_us = cam.capture_metadata().get("FrameDuration") or 0
        fps = 1_000_000 / duration_us if duration_us else 0.0
        return Grab(np.ascontiguousarray(image[:, :, :3]), image.shape[1], image.shape[0], fps, "picamera2",
                    seconds, True)
    finally:
        cam.close()
