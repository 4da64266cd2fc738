"""Camera sources behind one ``Source`` protocol (see ``edge.interfaces``).

``open_source`` is the one registry that picks an adapter from the source string;
heavy or platform-only dependencies are imported only inside their adapter.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..redact import redact_url

if TYPE_CHECKING:  # pragma: no cover - typing only
    from ..interfaces import Source


class SourceError(Exception):
    """A camera that cannot be opened or read, phrased as one line.

    ``retryable``: a network camera or device that may come back (reconnect with
    backoff); False for a missing or corrupt file, which will not heal itself.
    """

    def __init__(self, message: str, retryable: bool = True) -> None:
        super().__init__(redact_url(message))  # the URL may carry the camera's password
        self.retryable = retryable


LIVE_PREFIXES = ("rtsp://", "rtsps://", "rtmp://", "http://", "https://", "udp://", "tcp://")


def source_kind(url: str) -> str:
    if url.startswith("picamera2:"):
        return "picamera2"
    if url.startswith("/dev/video") or url.startswith("usb:"):
        return "usb"
    return "stream" if url.startswith(LIVE_PREFIXES) else "file"


def open_source(
    name: str,
    url: str,
    *,
    realtime: bool = False,
    loop: bool = False,
    open_timeout: float = 10.0,
    read_timeout: float = 5.0,
    encode: dict | None = None,
    packets: bool = True,
    pictures: bool = True,
    decode: str = "software",
) -> Source:
    """Build (not open) the adapter for ``url``: file, RTSP/HTTP stream, USB device or Pi camera.

    ``packets``/``pictures`` (PyAV sources): a two-stream camera's record stream is opened for packets only
    (never decoded), its detect stream for pictures only. ``decode`` picks the decoder (see ``PyavSource``).
    """
    kind = source_kind(url)
    if kind == "picamera2":
        from .picam import PicameraSource

        return PicameraSource(name, int(url.split(":", 1)[1] or 0), **(encode or {}))
    if kind == "usb":
        from .usb import UsbSource

        return UsbSource(name, url.removeprefix("usb:"), read_timeout=read_timeout)
    from .pyav import PyavSource

    return PyavSource(name, url, realtime=realtime, loop=loop, open_timeout=open_timeout, read_timeout=read_timeout,
                      packets=packets, pictures=pictures, decode=decode)
