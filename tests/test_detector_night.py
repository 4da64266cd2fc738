"""Detector crop pre-processing for the dark (issue 19): measured, off by default, never touching daylight."""

from __future__ import annotations

import numpy as np
import pytest
from support.assets import model_path

from edge.vision.detector import LOW_LIGHT_MODES, Detector, ModelError, read_labels


def detector(mode: str) -> Detector:
    path = model_path()
    return Detector(path, read_labels(path.with_suffix(".labels.txt")), low_light=mode)


def test_unknown_mode_is_a_one_line_error():
    with pytest.raises(ModelError, match="low_light 'night' is not one of off, stretch, gamma, clahe"):
        detector("night")


@pytest.mark.parametrize("mode", [m for m in LOW_LIGHT_MODES if m != "off"])
def test_dark_crops_are_lifted_and_bright_ones_left_alone(mode):
    det = detector(mode)
    rng = np.random.default_rng(0)
    dark = rng.integers(5, 40, (120, 200, 3), dtype=np.uint8)
    bright = rng.integers(60, 200, (120, 200, 3), dtype=np.uint8)
    assert det._brighten(bright) is bright  # daylight crops go to the model untouched
    lifted = det._brighten(dark)
    assert lifted.shape == dark.shape and lifted.dtype == np.uint8
    assert lifted.mean() > dark.mean() + 15  # the dark crop's tones are spread upwards


def test_default_is_off():
    assert detector("off").low_light == "off"
    path = model_path()
    assert Detector(path, read_labels(path.with_suffix(".labels.txt"))).low_light == "off"
