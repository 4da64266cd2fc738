"""The ``[plates]`` config section: defaults off, the Pi and Jetson templates turn it on, bad values are one line."""

from __future__ import annotations

from pathlib import Path

import pytest

from edge.config import ConfigError, load_config, parse_config

PROJECT = Path(__file__).resolve().parent.parent


def test_plates_default_off() -> None:
    cfg = parse_config({})
    assert (cfg.plates.enabled, cfg.plates.max_cpu) == (False, 0.25)


@pytest.mark.parametrize("template", ["pi-rtsp-camera", "pi-camera-module", "jetson-multi-rtsp"])
def test_templates_turn_plates_on(template: str) -> None:
    cfg = load_config(PROJECT / "firmware_config" / f"{template}.toml")
    assert cfg.plates.enabled is True
    assert cfg.plates.max_cpu == 0.25


@pytest.mark.parametrize(
    ("section", "needle"),
    [({"max_cpu": 0}, "plates.max_cpu: 0 is invalid"), ({"max_cpu": 1.5}, "plates.max_cpu: 1.5 is invalid"),
     ({"cpu": 0.2}, "plates.cpu: unknown key")],
)
def test_bad_plates_values_are_one_line(section: dict, needle: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_config({"plates": section})
    assert needle in str(err.value)
    assert "\n" not in str(err.value)
