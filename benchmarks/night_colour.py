"""What IR costs the detector (#19): greyscale against noise, and spatial denoise before the detector.

Usage: nice -n 5 python benchmarks/night_colour.py [--clips DIR] [--json OUT]

Whole frames, 1 per second, through the FP32 YOLOX-Nano; the daylight original's detections (score >= 0.4) are
the reference (matched: same kind, IoU >= 0.3, as ``night_detector.py``). ``colour``: each version is made from
the daylight frame itself (greyscale = BGR -> grey -> BGR; noise = Gaussian, sigma 9 grey levels, seeded), beside
the made IR clip (``night_clips.py``), at score thresholds 0.4, 0.3 and 0.25. ``denoise``: the night, dim and IR
clips (and daylight, for what a filter costs there) through Gaussian, median and bilateral filters first.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks import night_clips  # noqa: E402
from benchmarks.night_detector import frames, score  # noqa: E402
from edge import assets  # noqa: E402
from edge.config import Config  # noqa: E402
from edge.node.build import detector_kwargs  # noqa: E402
from edge.vision.detector import Detector, read_labels  # noqa: E402

THRESHOLDS = (0.4, 0.3, 0.25)
FILTERS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "none": lambda f: f,
    "gauss3": lambda f: cv2.GaussianBlur(f, (3, 3), 0),
    "gauss5": lambda f: cv2.GaussianBlur(f, (5, 5), 0),
    "median3": lambda f: cv2.medianBlur(f, 3),
    "median5": lambda f: cv2.medianBlur(f, 5),
    "bilateral": lambda f: cv2.bilateralFilter(f, 5, 40, 5),
}


def grey(image: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(cv2.cvtColor(image, cv2.COLOR_BGR2GRAY), cv2.COLOR_GRAY2BGR)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clips", type=Path, default=night_clips.default_dir())
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    night_clips.make_all(args.clips)
    det = Detector(assets.require(assets.MODEL_FP32), read_labels(assets.require(assets.MODEL_LABELS)),
                   **{**detector_kwargs(Config().detector), "min_score": min(THRESHOLDS)})
    rng = np.random.default_rng(1)

    def noisy(image: np.ndarray) -> np.ndarray:
        return np.clip(image.astype(np.float32) + rng.normal(0, 9.0, image.shape[:2])[..., None], 0, 255).astype(
            np.uint8)

    colour: dict[str, list[int]] = {}
    denoise: dict[str, list[float]] = {}
    per_clip = []
    for name in night_clips.VIDEOS:
        stem = name.removesuffix(".mp4")
        day = frames(assets.require(f"{assets.VIDEO_DIR}/{name}"), 1.0)
        made = {v: frames(args.clips / f"{stem}.{v}.mp4", 1.0) for v in ("night", "dim", "ir")}
        slots = sorted(set(day) & set(made["ir"]))
        ref = [[d for d in det.detect(day[k]) if d.score >= 0.4] for k in slots]
        versions = {"colour+noise9": [noisy(day[k]) for k in slots], "grey": [grey(day[k]) for k in slots],
                    "grey+noise9": [noisy(grey(day[k])) for k in slots], "ir (made)": [made["ir"][k] for k in slots]}
        for version, images in versions.items():
            got = [det.detect(i) for i in images]
            for t in THRESHOLDS:
                total, hits, extra = score(ref, [[d for d in g if d.score >= t] for g in got])
                acc = colour.setdefault(f"{version}@{t:g}", [0, 0, 0])
                acc[0], acc[1], acc[2] = acc[0] + total, acc[1] + hits, acc[2] + extra
                if t == THRESHOLDS[0]:
                    per_clip.append({"video": name, "version": version, "reference": total, "matched": hits})
        for variant in ("day", "night", "dim", "ir"):
            source = day if variant == "day" else made[variant]
            keys = sorted(set(day) & set(source))
            vref = [[d for d in det.detect(day[k]) if d.score >= 0.4] for k in keys]
            for mode, fn in FILTERS.items():
                t0 = time.perf_counter()
                images = [fn(source[k]) for k in keys]
                ms = (time.perf_counter() - t0) * 1000
                total, hits, extra = score(vref, [[d for d in det.detect(i) if d.score >= 0.4] for i in images])
                acc2 = denoise.setdefault(f"{variant}/{mode}", [0, 0, 0, 0.0, 0])
                acc2[0] += total
                acc2[1] += hits
                acc2[2] += extra
                acc2[3] += ms
                acc2[4] += len(keys)
    doc = {
        "command": "python benchmarks/night_colour.py " + " ".join(sys.argv[1:]),
        "colour": {k: {"recall": round(h / max(1, r), 3), "matched": h, "reference": r, "extras": e}
                   for k, (r, h, e) in colour.items()},
        "colour_per_clip": per_clip,
        "denoise": {k: {"recall": round(h / max(1, r), 3), "matched": int(h), "reference": int(r), "extras": int(e),
                        "ms_per_frame": round(ms / max(1, n), 2)} for k, (r, h, e, ms, n) in denoise.items()},
    }
    print(json.dumps(doc, indent=1))
    if args.json:
        args.json.write_text(json.dumps(doc, indent=1) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
