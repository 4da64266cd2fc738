"""Colour measured on the object (not the road around it) and heading from the track, not one box."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from edge.vision.attributes import HEADINGS, color_of, heading_of

BGR = {"road": (95, 100, 100), "red": (30, 30, 200), "white": (235, 235, 235), "black": (20, 20, 22),
       "blue": (190, 60, 20), "yellow": (20, 210, 230), "green": (40, 160, 40)}


def _vehicle(body: str, background: str = "road", body_share: float = 0.55) -> np.ndarray:
    """A box: background all round, the body in the middle, with dark glass and tyres like a real car."""
    img = np.zeros((120, 200, 3), np.uint8)
    img[:] = BGR[background]
    m = (1 - body_share) / 2
    y1, y2, x1, x2 = int(120 * m), int(120 * (1 - m)), int(200 * m), int(200 * (1 - m))
    img[y1:y2, x1:x2] = BGR[body]
    img[y1 : y1 + (y2 - y1) // 4, x1 + 10 : x2 - 10] = BGR["black"]  # windscreen
    img[y2 - 8 : y2, x1 : x1 + 20] = BGR["black"]  # tyres
    img[y2 - 8 : y2, x2 - 20 : x2] = BGR["black"]
    return img


@pytest.mark.parametrize("body", ["red", "white", "blue", "yellow", "green"])
def test_colour_is_the_body_not_the_grey_road(body: str) -> None:
    name, score = color_of(_vehicle(body))
    assert name == body
    assert 0.5 <= score <= 1.0


def test_a_grey_car_on_green_grass_is_grey() -> None:
    img = _vehicle("road", background="green", body_share=0.6)  # body in the road's grey
    assert color_of(img)[0] == "grey"


def test_a_black_car_on_a_grey_road_is_black_despite_the_road_filling_the_corners() -> None:
    assert color_of(_vehicle("black", body_share=0.5))[0] == "black"


def test_too_small_or_not_an_image_gives_none() -> None:
    assert color_of(np.zeros((2, 2, 3), np.uint8)) is None
    assert color_of(np.zeros((10, 10), np.uint8)) is None


def test_labelled_real_crops_from_the_shared_videos() -> None:
    """Four labelled crops (yellow truck, red car, white car, grey car) from benchmarks/colour_labels.csv."""
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
    from attributes import load_crops

    crops = [(r, c) for r, c in load_crops() if r["source"].startswith("street-securitycam")]
    if not crops:
        pytest.skip("needs ../shared videos")
    want = {"30": "yellow", "240": "red"}  # frame -> colour, checked by eye
    got = {r["frame"]: color_of(c)[0] for r, c in crops if r["frame"] in want and r["colour"] == want[r["frame"]]}
    assert got == want


@pytest.mark.parametrize(
    ("dx", "dy", "want"),
    [(10, 0, "right"), (7, 7, "down-right"), (0, 10, "down"), (-7, 7, "down-left"), (-10, 0, "left"),
     (-7, -7, "up-left"), (0, -10, "up"), (7, -7, "up-right")],
)
def test_heading_from_track_displacement(dx: float, dy: float, want: str) -> None:
    centres = [(100 + dx * i, 100 + dy * i) for i in range(10)]
    assert heading_of(centres, box_size=20) == want


def test_one_jittery_box_does_not_decide_the_heading() -> None:
    """A car driving right whose last box jumps up-left (occlusion) still heads right."""
    centres = [(100 + 8 * i, 100.0) for i in range(12)] + [(60.0, 40.0)]
    assert heading_of(centres, box_size=20) == "right"


def test_a_parked_car_has_no_heading() -> None:
    rng = np.random.default_rng(1)
    centres = [(100 + rng.normal(0, 2), 100 + rng.normal(0, 2)) for _ in range(30)]
    assert heading_of(centres, box_size=40) is None
    assert heading_of([(1.0, 1.0)], box_size=40) is None


def test_headings_are_the_eight_interface_names() -> None:
    assert sorted(HEADINGS) == sorted(["up", "up-right", "right", "down-right", "down", "down-left", "left", "up-left"])
