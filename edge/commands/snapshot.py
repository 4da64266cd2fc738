"""``edgecam snapshot``: one frame from a camera, optionally with its mask, zones, lines and detections.

For aiming a camera and tuning zones: the installer sees exactly the polygons
the config holds, on what the camera sees now.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from ..config import CameraConfig, Config, DetectorConfig, load_config
from ..errors import UserError
from ..fsutil import write_atomic

if TYPE_CHECKING:  # OpenCV and numpy load when a snapshot is taken, not for `edgecam --help`
    import numpy as np

    from ..capture.grab import Grab
    from ..types import Detection


def write_jpeg(path: Path, image: np.ndarray, quality: int = 90) -> None:
    """Atomically: a half-written snapshot never replaces a good one."""
    import cv2

    ok, data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise UserError("could not encode the frame as JPEG")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(path, data.tobytes(), mode=0o644)  # meant to be copied off (scp after sudo -u edgecam)
    except OSError as err:
        raise UserError(f"cannot write {path}: {err.strerror}") from None


def pick_camera(cfg: Config, name: str | None) -> tuple[str, CameraConfig]:
    if not cfg.cameras:
        raise UserError("the config has no [cameras.NAME] section")
    if name is None:
        enabled = [n for n, cam in cfg.cameras.items() if cam.enabled] or list(cfg.cameras)
        name = enabled[0]
    if name not in cfg.cameras:
        raise UserError(f"no camera {name!r} in the config (have: {', '.join(cfg.cameras)})")
    return name, cfg.cameras[name]


def detect(det: DetectorConfig, image: np.ndarray) -> tuple[list[Detection], str]:
    """Detections on ``image`` by the model the daemon would use, or none and why not."""
    try:
        from ..node.build import detector_kwargs
        from ..vision.detector import load_detector
    except ImportError:
        return [], "detections skipped: the detector is not installed"
    try:
        detector, choice = load_detector(det.model, det.precision, **detector_kwargs(det))
        found = detector.detect(image)
    except Exception as err:  # a model problem must not cost the installer the snapshot
        return [], f"detections skipped: {str(err).splitlines()[0] if str(err) else type(err).__name__}"
    return list(found), f"{len(found)} detection{'s' if len(found) != 1 else ''} ({choice.precision})"


def overlay_for(cam: CameraConfig, image: np.ndarray, detections: list[Detection]) -> np.ndarray:
    from ..overlay import draw_overlay

    return draw_overlay(
        image,
        mask=cam.motion.mask,
        zones={name: zone.polygon for name, zone in cam.zones.items()},
        lines={name: (line.a, line.b) for name, line in cam.lines.items()},
        detections=detections,
    )


def _stream_words(grab: Grab) -> str:
    return f"{grab.width}x{grab.height} {grab.fps:.2f} fps {grab.codec}"


def snapshot(args: argparse.Namespace) -> int:
    """``edgecam snapshot -c CONFIG -o FILE [--camera NAME] [--overlay]``."""
    from ..capture.grab import GrabError, grab_frame

    cfg = load_config(args.config)
    name, cam = pick_camera(cfg, args.camera)
    try:  # the recorded stream: full size, what clips and evidence show
        grab = grab_frame(cam.source, timeout=cam.open_timeout, width=cam.encode.width, height=cam.encode.height)
    except GrabError as err:
        raise UserError(f"camera {name}: {err}") from None
    streams = ""
    if cam.detect_source is not None:  # two streams: say what the analysed one is, too
        try:
            sub = grab_frame(cam.detect_source, timeout=cam.open_timeout, decode=cam.decode)
            analysed = f"detect stream {_stream_words(sub)}, decoder {sub.decoder}"
        except GrabError as err:
            analysed = f"detect stream: {err}"
        streams = f"; record stream {_stream_words(grab)}; {analysed}"
    image, note = grab.image, ""
    if args.overlay:
        detections, note = detect(cfg.detector, image)
        image = overlay_for(cam, image, detections)
    out = Path(args.output)
    write_jpeg(out, image)
    print(f"wrote {out} ({grab.width}x{grab.height}, camera {name}{streams}" + (f"; {note})" if note else ")"))
    sys.stdout.flush()
    return 0
