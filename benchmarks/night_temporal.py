"""Experiment (#19): does averaging the last N decoded frames before the detector bring night recall up?

Usage: PYTHONPATH=. nice -n 5 python benchmarks/night_temporal.py   (night clips from benchmarks/night_clips.py)

Whole frames at 1 per second, FP32 YOLOX-Nano, scored like benchmarks/night_detector.py (recall of the daylight
original's detections, same kind, IoU >= 0.3). ``n`` = the gate's frame averaged with the n-1 decoded frames
before it (what a camera's 3D noise reduction does); ``gain`` = then a 1..99 percentile stretch to 200 levels.
"""

from __future__ import annotations

import collections
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks import night_clips  # noqa: E402
from benchmarks.night_detector import frames, score  # noqa: E402
from edge import assets  # noqa: E402
from edge.capture.pyav import PyavSource  # noqa: E402
from edge.config import Config  # noqa: E402
from edge.node.build import detector_kwargs  # noqa: E402
from edge.types import Packet  # noqa: E402
from edge.vision.detector import Detector, read_labels  # noqa: E402
from edge.vision.pipeline import FrameGate  # noqa: E402

MODES = [(1, False), (3, False), (5, False), (3, True), (5, True)]


def averaged(path: Path, fps: float, n: int, gain: bool) -> dict[int, np.ndarray]:
    """Slot -> mean of the gate's frame and the n-1 decoded frames before it (optionally stretched)."""
    src = PyavSource("x", str(path))
    src.open()
    gate = FrameGate(fps)
    last: collections.deque = collections.deque(maxlen=n)
    out: dict[int, np.ndarray] = {}
    start = None
    for item in src.items():
        if isinstance(item, Packet):
            continue
        take = gate.should_analyse(item.time)
        if n > 1 or take:
            last.append(item.to_bgr().astype(np.float32))
        if not take:
            continue
        start = item.time if start is None else start
        img = sum(last) / len(last)
        if gain:
            lo, hi = np.percentile(img, 1), np.percentile(img, 99)
            img = (img - lo) * (200.0 / max(hi - lo, 8.0))
        out[round((item.time - start) * fps)] = np.clip(img, 0, 255).astype(np.uint8)
    src.close()
    return out


def main() -> int:
    model = assets.require(assets.MODEL_FP32)
    det = Detector(model, read_labels(assets.require(assets.MODEL_LABELS)), **detector_kwargs(Config().detector))
    clips, fps = night_clips.default_dir(), 1.0
    night_clips.make_all(clips)
    tot: dict[str, list[int]] = collections.defaultdict(lambda: [0, 0, 0])
    for name in night_clips.VIDEOS:
        stem = name.removesuffix(".mp4")
        day = frames(assets.require(f"{assets.VIDEO_DIR}/{name}"), fps)
        for variant in ("night", "dim"):
            for n, gain in MODES:
                other = averaged(clips / f"{stem}.{variant}.mp4", fps, n, gain)
                slots = sorted(set(day) & set(other))
                t, h, e = score([det.detect(day[k]) for k in slots], [det.detect(other[k]) for k in slots])
                key = f"{variant} n={n} gain={gain}"
                for i, v in enumerate((t, h, e)):
                    tot[key][i] += v
                print(json.dumps({"video": name, "key": key, "ref": t, "hit": h, "extra": e}), flush=True)
    for k, (t, h, e) in tot.items():
        print(f"{k:24s} recall {h / max(t, 1):.3f} ({h}/{t}) extras {e}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
