"""`edgecam snapshot [--overlay]` on a real video: a JPEG of the frame's size, the zone visibly drawn."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
from support.assets import video_path

from edge.cli import main
from edge.overlay import in_direction

ZONE = [[0.10, 0.40], [0.45, 0.40], [0.45, 0.90], [0.10, 0.90]]


def config(tmp: Path) -> Path:
    road = video_path("road")
    path = tmp / "edgecam.toml"
    path.write_text(f"""
[cameras.road]
source = "{road}"
[cameras.road.motion]
mask = [[[0.0, 0.0], [1.0, 0.0], [1.0, 0.15], [0.0, 0.15]]]
[cameras.road.zones.kerb]
polygon = {ZONE}
[cameras.road.lines.count]
a = [0.55, 0.60]
b = [0.95, 0.60]
[cameras.usb]
source = "/dev/video99"
""")
    return path


def region(image: np.ndarray, x1: float, y1: float, x2: float, y2: float) -> np.ndarray:
    h, w = image.shape[:2]
    return image[int(y1 * h):int(y2 * h), int(x1 * w):int(x2 * w)].astype(np.int16)


def test_overlay_draws_inside_the_zone(tmp_path, capsys):
    cfg = config(tmp_path)
    plain, drawn = tmp_path / "plain.jpg", tmp_path / "overlay.jpg"
    assert main(["snapshot", "-c", str(cfg), "-o", str(plain)]) == 0
    assert main(["snapshot", "-c", str(cfg), "-o", str(drawn), "--overlay"]) == 0
    assert "640x360, camera road" in capsys.readouterr().out
    assert plain.read_bytes()[:3] == b"\xff\xd8\xff" and drawn.read_bytes()[:3] == b"\xff\xd8\xff"
    a, b = cv2.imread(str(plain)), cv2.imread(str(drawn))
    assert a.shape == b.shape == (360, 640, 3)
    inside = np.abs(region(a, 0.15, 0.50, 0.40, 0.85) - region(b, 0.15, 0.50, 0.40, 0.85)).mean()
    masked = np.abs(region(a, 0.1, 0.02, 0.9, 0.12) - region(b, 0.1, 0.02, 0.9, 0.12)).mean()
    untouched = np.abs(region(a, 0.50, 0.70, 0.54, 0.95) - region(b, 0.50, 0.70, 0.54, 0.95)).mean()
    assert inside > 15  # the translucent fill tints the zone
    assert masked > 15  # the mask is shaded
    assert untouched < 3  # nothing drawn there: only JPEG noise


def test_in_arrow_points_to_the_right_of_a_to_b():
    assert np.allclose(in_direction((0.1, 0.5), (0.9, 0.5), 640, 360), [0.0, 1.0])  # a→b rightwards: "in" is down
    assert np.allclose(in_direction((0.5, 0.1), (0.5, 0.9), 640, 360), [-1.0, 0.0])  # a→b downwards: "in" is left


def test_unknown_camera_and_missing_device(tmp_path, capsys):
    cfg = config(tmp_path)
    assert main(["snapshot", "-c", str(cfg), "-o", str(tmp_path / "x.jpg"), "--camera", "nope"]) == 1
    assert "no camera 'nope'" in capsys.readouterr().err
    assert main(["snapshot", "-c", str(cfg), "-o", str(tmp_path / "x.jpg"), "--camera", "usb"]) == 1
    assert "camera usb: /dev/video99: no such device" in capsys.readouterr().err
    assert not (tmp_path / "x.jpg").exists()


def test_snapshot_is_readable_by_others(tmp_path, capsys):
    """The README's "copy /tmp/aim.jpg to a laptop" after ``sudo -u edgecam``: 0644, not mkstemp's 0600."""
    import os
    import stat

    out = tmp_path / "aim.jpg"
    old = os.umask(0o022)
    try:
        assert main(["snapshot", "-c", str(config(tmp_path)), "-o", str(out)]) == 0
    finally:
        os.umask(old)
    assert stat.S_IMODE(out.stat().st_mode) == 0o644
