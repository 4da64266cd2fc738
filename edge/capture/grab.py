"""One decoded frame from a camera, within a deadline, through the same adapters the daemon reads.

Used by ``edgecam check`` (does the camera answer, at what size and rate? what does
one record-stream still cost? ``grab_gop``) and ``edgecam snapshot`` (aim the camera). It opens the source with
``open_source``, so a source string means the same kind here as in the
daemon (``usb:/dev/video0`` is USB in both, ``file:///…`` a PyAV input in
both). The grab runs on a helper thread so a driver that blocks cannot hold
the caller past its deadline.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from ..redact import redact_url
from ..types import Packet, StreamInfo
from . import SourceError, open_source, source_kind

if TYPE_CHECKING:
    import numpy as np

    from ..interfaces import Picture, Source

FPS_WINDOW = 1.0  # seconds of frames counted on a live source to measure its rate
GOP_WINDOW = 5.0  # seconds of stream time ``grab_gop`` reads at most: a longer GOP is worth a warning anyway
T = TypeVar("T")
CODEC_OF_RAW = {"usb": "v4l2", "picamera2": "picamera2"}  # sources whose pictures are not the packets' codec


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
    decoder: str = "software"  # the decoder that gave the frame: "software", a hardware decoder's name, or raw


def grab_frame(source: str, timeout: float = 10.0, width: int = 1280, height: int = 720,
               decode: str = "software") -> Grab:
    """One frame from ``source`` within ``timeout`` seconds, or ``GrabError``.

    ``width``/``height`` are asked of the Pi camera (as the daemon asks it, from ``[cameras.X.encode]``);
    ``decode`` picks the decoder as ``[cameras.X] decode`` does (hardware, or software with one log line).
    """
    kind = source_kind(source)
    if kind == "file" and "://" not in source and not Path(source).is_file():
        raise GrabError(f"{source}: no such file")
    if kind == "usb" and not Path(source.removeprefix("usb:")).exists():
        raise GrabError(f"{source.removeprefix('usb:')}: no such device")
    if kind == "picamera2":
        try:
            import picamera2  # noqa: F401  # apt python3-picamera2; the venv needs --system-site-packages
        except ImportError:
            raise GrabError(
                f"{source}: picamera2 is not installed here",
                "on a Pi: `apt install python3-picamera2`, and a venv made with --system-site-packages",
            ) from None
    encode = {"width": width, "height": height} if kind == "picamera2" else None
    src = open_source("grab", source, open_timeout=timeout, read_timeout=timeout, encode=encode, decode=decode)
    return _with_deadline(lambda: _grab(src, kind, timeout), timeout + 1.0, source)


def _grab(src: Source, kind: str, timeout: float) -> Grab:
    live = kind != "file"
    started = time.monotonic()
    try:
        info = src.open()
    except SourceError as err:
        raise GrabError(str(err)) from None
    try:
        pictures = (item for item in src.items() if not isinstance(item, Packet))
        first = next(pictures, None)
        if first is None:
            raise GrabError(f"{getattr(src, 'url', kind)}: stream ended before the first frame "
                            f"({time.monotonic() - started:.1f} s)")
        seconds = time.monotonic() - started
        image = first.to_bgr()
        nominal = info.fps if info is not None else 0.0
        fps = _measure_rate(first.time, pictures, started + timeout) if live else nominal
        codec = CODEC_OF_RAW.get(kind) or (info.codec if info is not None else kind)
        decoder = getattr(src, "decoder", None) or CODEC_OF_RAW.get(kind, "software")
        return Grab(image, image.shape[1], image.shape[0], fps or nominal, codec, seconds, live, decoder)
    except SourceError as err:
        raise GrabError(str(err)) from None
    finally:
        src.close()


def _measure_rate(first: float, pictures: Iterator[Picture], deadline: float) -> float:
    """Frames per second over up to FPS_WINDOW seconds of a live stream (0.0 if too few)."""
    end = min(deadline, time.monotonic() + FPS_WINDOW)
    stamps = [first]
    for picture in pictures:
        stamps.append(float(picture.time))
        if time.monotonic() >= end:
            break
    if len(stamps) < 3 or stamps[-1] <= stamps[0]:
        return 0.0
    return (len(stamps) - 1) / (stamps[-1] - stamps[0])


@dataclass(frozen=True)
class Gop:
    """One group of pictures of a stream, undecoded: what a record-stream still decodes at most."""

    info: StreamInfo
    packets: list[Packet]  # the keyframe first
    whole: bool  # the next keyframe was seen; False: the GOP is longer than the window (or the stream ended)


def grab_gop(source: str, timeout: float = 10.0, window: float = GOP_WINDOW) -> Gop:
    """The packets from ``source``'s first keyframe up to (not including) the next one, at most ``window``
    seconds of stream time; read as the daemon reads a record stream (packets only, nothing decoded).
    ``GrabError`` when no keyframe comes within ``timeout``."""
    src = open_source("grab", source, open_timeout=timeout, read_timeout=timeout, pictures=False)
    return _with_deadline(lambda: _gop(src, window), timeout + window + 1.0, source, "whole GOP")


def _gop(src: Source, window: float) -> Gop:
    try:
        info = src.open()
    except SourceError as err:
        raise GrabError(str(err)) from None
    if info is None:
        raise GrabError(f"{getattr(src, 'url', 'source')}: gives no packets (a raw camera)")
    packets: list[Packet] = []
    whole = False
    try:
        for item in src.items():
            if not isinstance(item, Packet) or (not packets and not item.keyframe):
                continue
            if packets and item.keyframe:
                whole = True
                break
            packets.append(item)
            if item.time - packets[0].time >= window:
                break
    except SourceError as err:
        if not packets:
            raise GrabError(str(err)) from None
    finally:
        src.close()
    if not packets:
        raise GrabError(f"{getattr(src, 'url', 'source')}: stream ended before a keyframe")
    return Gop(info, packets, whole)


def _with_deadline(fn: Callable[[], T], deadline: float, source: str, what: str = "frame") -> T:
    result: list[T] = []
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
        raise GrabError(f"{source}: no {what} within {deadline - 1.0:g} s")
    if error:
        if isinstance(error[0], GrabError):
            raise error[0]
        raise GrabError(f"{source}: {_one_line(error[0])}")
    return result[0]


def _one_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return text[0] if text else type(err).__name__
