"""Camera errors in plain words, no FFmpeg errno (#13.9): what the daemon logs and what `check` prints."""

from __future__ import annotations

import pytest
from support.assets import video_path
from support.broker import free_port
from support.rtsp import RtspServer, require_rtsp

from edge.capture import SourceError
from edge.capture.grab import GrabError, grab_frame
from edge.capture.plain import plain_error
from edge.capture.pyav import PyavSource


def open_error(url: str) -> str:
    with pytest.raises(SourceError) as info:
        PyavSource("cam", url, open_timeout=3, read_timeout=3).open()
    return str(info.value)


def grab_error(url: str) -> str:
    with pytest.raises(GrabError) as info:
        grab_frame(url, timeout=3)
    return str(info.value)


def test_rtsp_404_and_wrong_scheme_in_plain_words() -> None:
    require_rtsp()
    server = RtspServer(video_path("highway")).start()
    try:
        wrong_path = server.url.replace("/cam", "/Streaming/Channels/101")
        for message in (open_error(wrong_path), grab_error(wrong_path)):
            assert "the camera answered 404 Not Found: check the stream path" in message, message
            assert "Errno" not in message and message.startswith(wrong_path)
    finally:
        server.kill()
    typo = f"rtps://127.0.0.1:{free_port()}/cam"
    for message in (open_error(typo), grab_error(typo)):
        assert "unknown URL scheme 'rtps' (did you mean rtsp?)" in message, message
        assert "Errno" not in message


def test_refused_and_unresolvable() -> None:
    refused = f"rtsp://127.0.0.1:{free_port()}/cam"
    assert open_error(refused) == (f"{refused}: cannot open (connection refused: nothing listens on that address "
                                   "and port (is it the camera's RTSP port?))")
    unknown = "rtsp://no-such-camera.invalid/cam"
    assert "cannot resolve the host name 'no-such-camera.invalid'" in open_error(unknown)


@pytest.mark.parametrize(
    ("strerror", "expected"),
    [
        ("Server returned 401 Unauthorized",
         "the camera answered 401 Unauthorized: check the user and password in the URL"),
        ("HTTP error 403 Forbidden", "the camera answered 403 Forbidden: this user may not open that stream"),
        ("Server returned 500 Internal Server Error", "the camera answered 500 Internal Server Error"),
        ("Connection timed out", "no answer in time: camera off, wrong address, or a firewall in between"),
        ("Invalid data found when processing input",
         "invalid data: not a video stream or file the decoder understands"),
        ("Something new", "Something new"),
    ],
)
def test_phrases(strerror: str, expected: str) -> None:
    err = OSError(1, strerror)
    assert plain_error(err, "rtsp://cam/x") == expected
