"""Plate reading: Vietnamese normalisation (pure), real plate photos from ../shared, the CLI, a missing extra."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from edge import assets
from edge.vision.plates import compact, normalise

PLATES = assets.find("data/plates/vn")
HAVE_EXTRA = importlib.util.find_spec("rapidocr") is not None
needs_photos = pytest.mark.skipif(
    PLATES is None or not HAVE_EXTRA, reason="needs ../shared/data/plates and the plates extra"
)


@pytest.mark.parametrize(
    ("lines", "want"),
    [
        (["30A12345"], "30A-123.45"),
        (["30A-123.45"], "30A-123.45"),
        (["51G-79984"], "51G-799.84"),
        (["30LD1234"], "30LD-1234"),
        (["29-B1", "12345"], "29-B1 123.45"),
        (["29B1", "123.45"], "29-B1 123.45"),
        (["81-K5", "3579"], "81-K5 3579"),
        (["51A", "192.22"], "51A 192.22"),
        (["49", "019-BD"], "49 019-BD"),  # special series: kept as printed
        (["AB12CDE"], "AB12CDE"),  # another country's plate: kept as read
    ],
)
def test_normalise_vietnamese_formats(lines: list[str], want: str) -> None:
    assert normalise(lines) == want


@pytest.mark.parametrize(
    "lines", [["HONDA"], ["SALE"], ["12"], ["65745"], ["5-2227"], ["HONDA", "WAVE"], [], ["A", "B", "C"]]
)
def test_text_that_is_not_a_plate_gives_none(lines: list[str]) -> None:
    assert normalise(lines) is None


def test_compact_drops_separators() -> None:
    assert compact("29-B1 / 123.45") == "29B112345"


@pytest.fixture(scope="module")
def reader():
    from edge.vision.plates import PlateReader

    return PlateReader(threads=1)


@needs_photos
@pytest.mark.parametrize(
    ("name", "want"),
    [
        ("knn_2.jpg", ["59-V1 793.79"]),  # two-line motorbike plate
        ("knn_19_c0.png", ["51H-040.73"]),  # one-line car plate
        ("knn_14_c1.png", ["49 019-BD"]),  # special series, as printed
        ("y7_clip4_new_14_p0.png", ["51A 192.22"]),  # square two-line car plate
        ("knnveh_12.jpg", ["49-E1 644.81", "86-B1 374.49"]),  # whole 1920x1080 photo, two motorbikes
    ],
)
def test_reads_real_plates_exactly(reader, name: str, want: list[str]) -> None:
    import cv2

    plates = reader.read(cv2.imread(str(PLATES / name)))
    assert [p.text for p in plates] == want
    assert all(0.7 <= p.score <= 1.0 for p in plates)


@needs_photos
def test_motion_blurred_plate_gives_no_plate_rather_than_a_guess(reader) -> None:
    """y7_clip3_new_9_p0 is smeared by motion: the detector finds one line; the reader must not guess."""
    import cv2

    assert reader.read(cv2.imread(str(PLATES / "y7_clip3_new_9_p0.png"))) == []


@pytest.mark.skipif(not HAVE_EXTRA, reason="needs the plates extra")
def test_street_frame_with_unreadable_plates_gives_no_plate(reader) -> None:
    """At 640x360 no plate in the shared videos is readable: a whole frame full of cars must read nothing."""
    av = pytest.importorskip("av")
    path = assets.video("highway-640x360-30fps.mp4")
    if path is None:
        pytest.skip("needs ../shared videos")
    found = 0
    with av.open(str(path)) as c:
        for i, frame in enumerate(c.decode(video=0)):
            if i % 30 == 0:
                found += len(reader.read(frame.to_ndarray(format="bgr24")))
            if i >= 300:
                break
    assert found == 0


@needs_photos
def test_cli_json_one_object_per_file(tmp_path: Path) -> None:
    bad = tmp_path / "not-an-image.jpg"
    bad.write_bytes(b"nope")
    files = [str(PLATES / "knn_2.jpg"), str(bad)]
    r = subprocess.run(
        [sys.executable, "-m", "edge", "plates", "read", *files, "--json"], capture_output=True, text=True, timeout=60
    )
    assert r.returncode == 1  # one file was not an image; the other still printed
    rows = [json.loads(line) for line in r.stdout.splitlines()]
    assert [row["file"] for row in rows] == files
    assert [p["text"] for p in rows[0]["plates"]] == ["59-V1 793.79"]
    x1, y1, x2, y2 = rows[0]["plates"][0]["box"]
    assert 0 <= x1 < x2 <= 259 and 0 <= y1 < y2 <= 194  # inside the 259x194 photo
    assert rows[1] == {"file": files[1], "plates": [], "error": "not a readable image"}


@pytest.mark.parametrize("broken", ["missing", "no-models"])
def test_missing_extra_is_one_clear_line(tmp_path: Path, broken: str) -> None:
    """A node without the extra (or with a rapidocr lacking its models) gets one line, exit 1, no traceback."""
    shadow = tmp_path / "shadow"
    if broken == "missing":
        shadow.mkdir()
        (shadow / "rapidocr.py").write_text("")  # a module, not the package: no models beside it
    else:
        (shadow / "rapidocr").mkdir(parents=True)
        (shadow / "rapidocr" / "__init__.py").write_text("")
    env = {**os.environ, "PYTHONPATH": f"{shadow}{os.pathsep}{Path(__file__).resolve().parent.parent}"}
    r = subprocess.run(
        [sys.executable, "-m", "edge", "plates", "read", "x.jpg"], capture_output=True, text=True, env=env, timeout=60
    )
    assert r.returncode == 1
    assert r.stderr.strip().splitlines() == [r.stderr.strip()]
    assert "pip install 'edgecam[plates]'" in r.stderr
    assert "Traceback" not in r.stderr


@pytest.mark.skipif(not HAVE_EXTRA, reason="needs the plates extra")
def test_bad_input_gives_no_plate(reader) -> None:
    import numpy as np

    assert reader.read(None) == []
    assert reader.read(np.zeros((4, 4, 3), np.uint8)) == []  # too small
    assert reader.read(np.zeros((100, 100), np.uint8)) == []  # grey, not BGR
    assert reader.read(np.zeros((100, 100, 4), np.uint8)) == []  # BGRA
    assert reader.read(np.full((300, 400, 3), 200, np.uint8)) == []  # blank
