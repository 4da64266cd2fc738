"""Detector in low light (issue 19): which crop pre-processing finds most of what daylight finds.

Usage: nice -n 10 python benchmarks/night_detector.py [--clips DIR] [--fps F] [--json OUT]

For each shared video, frames at ``--fps`` (the same source times in every version) go through the FP32
YOLOX-Nano on the whole frame. The daylight original's detections (score >= 0.4, the kept labels) are the
reference; on the night, dim and IR versions each ``low_light`` mode of ``edge.vision.detector.Detector`` is
scored by recall (reference detections matched: same kind, IoU >= 0.3), extras (detections matching nothing
in daylight: false positives or objects daylight missed) and the ms per call it adds.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks import night_clips  # noqa: E402
from benchmarks.night_bench import KIND  # noqa: E402
from edge import assets  # noqa: E402
from edge.bench import iter_frames  # noqa: E402
from edge.config import Config  # noqa: E402
from edge.node.build import detector_kwargs  # noqa: E402
from edge.vision.detector import LOW_LIGHT_MODES, Detector, read_labels  # noqa: E402

VARIANTS = ("night", "dim", "ir")


def frames(path: Path, fps: float) -> dict[int, object]:
    """Images by 1/fps slot of time since the first decoded frame: the street clip decodes from its first
    keyframe at 1.86 s, its re-encoded versions start that same picture at 0 s."""
    out: dict[int, object] = {}
    start = None
    for _, t, image in iter_frames(path, fps):
        start = t if start is None else start
        out[round((t - start) * fps)] = image
    return out


def score(ref: list[list], got: list[list]) -> tuple[int, int, int]:
    """(reference detections, matched, extras) over paired frames."""
    total = hits = extra = 0
    for r, g in zip(ref, got, strict=False):
        free = list(g)
        total += len(r)
        for d in r:
            for i, e in enumerate(free):
                if KIND[e.label] == KIND[d.label] and e.box.iou(d.box) >= 0.3:
                    hits += 1
                    del free[i]
                    break
        extra += len(free)
    return total, hits, extra


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clips", type=Path, default=night_clips.default_dir())
    ap.add_argument("--fps", type=float, default=1.0)
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--thresholds", type=float, nargs="*", default=None,
                    help="instead of the modes: recall and extras of the plain detector at these score thresholds")
    args = ap.parse_args()
    if args.thresholds:
        return thresholds(args)
    night_clips.make_all(args.clips)
    model = assets.require(assets.MODEL_FP32)
    labels = read_labels(assets.require(assets.MODEL_LABELS))
    kwargs = detector_kwargs(Config().detector)
    dets = {mode: Detector(model, labels, **{**kwargs, "low_light": mode}) for mode in LOW_LIGHT_MODES}
    rows = []
    for name in night_clips.VIDEOS:
        stem = name.removesuffix(".mp4")
        day_all = frames(assets.require(f"{assets.VIDEO_DIR}/{name}"), args.fps)
        for variant in VARIANTS:
            other = frames(args.clips / f"{stem}.{variant}.mp4", args.fps)
            slots = sorted(set(day_all) & set(other))
            ref = [dets["off"].detect(day_all[k]) for k in slots]
            imgs = [other[k] for k in slots]
            for mode, det in dets.items():
                t0 = time.perf_counter()
                got = [det.detect(f) for f in imgs]
                ms = (time.perf_counter() - t0) * 1000 / max(1, len(imgs))
                total, hits, extra = score(ref, got)
                row = {"video": name, "variant": variant, "mode": mode, "reference": total, "matched": hits,
                       "recall": round(hits / max(1, total), 3), "extras": extra, "ms_per_call": round(ms, 1)}
                rows.append(row)
                print(json.dumps(row), flush=True)
    summary = {}
    for variant in VARIANTS:
        for mode in LOW_LIGHT_MODES:
            sel = [r for r in rows if r["variant"] == variant and r["mode"] == mode]
            ref, hit, extra = (sum(r[k] for r in sel) for k in ("reference", "matched", "extras"))
            summary[f"{variant}/{mode}"] = {"recall": round(hit / max(1, ref), 3), "matched": hit, "reference": ref,
                                            "extras": extra}
    print(json.dumps(summary, indent=1))
    if args.json:
        args.json.write_text(json.dumps({"command": "python benchmarks/night_detector.py " + " ".join(sys.argv[1:]),
                                         "rows": rows, "summary": summary}, indent=1) + "\n", encoding="utf-8")
    return 0


def thresholds(args: argparse.Namespace) -> int:
    """Night score thresholds: what lowering ``min_score`` in the dark finds, and what else it lets in."""
    night_clips.make_all(args.clips)
    kwargs = {**detector_kwargs(Config().detector), "min_score": min(args.thresholds)}
    det = Detector(assets.require(assets.MODEL_FP32), read_labels(assets.require(assets.MODEL_LABELS)), **kwargs)
    ref_score = Config().detector.min_score
    totals: dict[str, list[int]] = {}
    for name in night_clips.VIDEOS:
        stem = name.removesuffix(".mp4")
        day_all = frames(assets.require(f"{assets.VIDEO_DIR}/{name}"), args.fps)
        day_got = {k: det.detect(v) for k, v in day_all.items()}
        for variant in ("day", *VARIANTS):
            other = day_all if variant == "day" else frames(args.clips / f"{stem}.{variant}.mp4", args.fps)
            slots = sorted(set(day_all) & set(other))
            ref = [[d for d in day_got[k] if d.score >= ref_score] for k in slots]
            got = [day_got[k] for k in slots] if variant == "day" else [det.detect(other[k]) for k in slots]
            for t in args.thresholds:
                total, hits, extra = score(ref, [[d for d in g if d.score >= t] for g in got])
                acc = totals.setdefault(f"{variant}@{t:g}", [0, 0, 0])
                acc[0], acc[1], acc[2] = acc[0] + total, acc[1] + hits, acc[2] + extra
    summary = {k: {"recall": round(h / max(1, r), 3), "matched": h, "reference": r, "extras": e}
               for k, (r, h, e) in totals.items()}
    print(json.dumps(summary, indent=1))
    if args.json:
        args.json.write_text(json.dumps({"command": "python benchmarks/night_detector.py " + " ".join(sys.argv[1:]),
                                         "summary": summary}, indent=1) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
