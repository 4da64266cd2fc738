"""Night benchmark (issue 19): events found at night vs daylight, false events, motion cost per frame.

Usage: nice -n 10 python benchmarks/night_bench.py [--clips DIR] [--motion-night on|off]
       [--detector-night off|gamma|clahe] [--only STEM ...] [--repeats N] [--json OUT]

Makes the night clips first (benchmarks/night_clips.py, cached). For each shared video, runs the daemon's
pipeline (default config, detect_fps 5, the FP32 YOLOX-Nano) over the daylight original, its night version
its dim and its IR version, and matches events: a night event matches a daylight one when both have the same kind
(person; two-wheeler; vehicle) and their [start, end] source times overlap. Then the still clips with
nothing in them (noise, IR switch, headlight sweeps, an insect at the lens): every event there is false.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks import night_clips  # noqa: E402
from edge import assets  # noqa: E402
from edge.bench import analyse_file, iter_frames  # noqa: E402
from edge.config import CameraConfig, Config  # noqa: E402
from edge.node.build import analyzer_settings, detector_kwargs  # noqa: E402
from edge.types import EventType  # noqa: E402
from edge.vision.detector import load_detector  # noqa: E402
from edge.vision.motion import MotionDetector  # noqa: E402
from edge.vision.pipeline import CameraAnalyzer  # noqa: E402

KIND = {"person": "person", "bicycle": "two", "motorcycle": "two", "car": "vehicle", "bus": "vehicle",
        "truck": "vehicle"}
VARIANTS = ("night", "dim", "ir")
STATIC = ("night", "irswitch", "headlights", "insect")


def intervals(events: list) -> list[tuple[str, float, float]]:
    """(kind, start, end) source times per event id."""
    start: dict[str, tuple[str, float]] = {}
    out = []
    for e in events:
        if e.type == EventType.START:
            start[e.id] = (KIND.get(e.label, e.label), e.time)
        elif e.type == EventType.END and e.id in start:
            kind, t0 = start.pop(e.id)
            out.append((kind, t0, e.time))
    out += [(kind, t0, t0) for kind, t0 in start.values()]
    return out


def matched(day: list[tuple[str, float, float]], night: list[tuple[str, float, float]], slack: float = 0.5) -> int:
    """Daylight events that some night event of the same kind overlaps in time (each night event used once)."""
    free = list(night)
    hits = 0
    for kind, a, b in sorted(day, key=lambda x: x[1]):
        for i, (k, c, d) in enumerate(free):
            if k == kind and c <= b + slack and a - slack <= d:
                hits += 1
                del free[i]
                break
    return hits


def run_one(path: Path, detector: Any, low_light: bool, min_hits: int | None = None) -> dict[str, Any]:
    cfg = Config()
    cam = CameraConfig(source=str(path), detect_fps=5.0)
    settings = analyzer_settings(cam, cfg)
    settings = replace(settings, motion=replace(settings.motion, low_light=low_light))
    if min_hits is not None:
        settings = replace(settings, tracker=replace(settings.tracker, min_hits=min_hits))
    analyzer = CameraAnalyzer("night", detector, settings)
    run = analyse_file(path, analyzer, 5.0)
    s = run.stats
    assert s is not None  # analyse_file sets them
    # Times from the first decoded frame: the street clip decodes from its first keyframe at 1.86 s, its
    # re-encoded versions start that same picture at 0 s.
    start = next(iter_frames(path, 5.0))[1]
    return {
        "events": [(kind, a - start, b - start) for kind, a, b in intervals(run.events)],
        "motion_ms": s.ms_total.get("motion", 0.0) / max(1, run.analysed),
        "motion_frames": s.motion_frames, "analysed": run.analysed, "detector_calls": s.detector_calls,
        "resets": s.lightning_resets, "cpu_s_per_video_s": run.cpu_s / max(run.video_s, 1e-9),
    }


def motion_cost(clips: Path, passes: int = 5, frames: int = 100) -> list[dict[str, Any]]:
    """Motion alone, ms per frame (median of ``passes`` over the same decoded frames), per version and
    with the low-light adaptation on and off: the pipeline runs' motion figures share the CPU with decode
    and inference, this one does not."""
    out = []
    for name in night_clips.VIDEOS:
        stem = name.removesuffix(".mp4")
        for variant in ("day", *VARIANTS):
            path = assets.video(name) if variant == "day" else clips / f"{stem}.{variant}.mp4"
            images = [img for _, _, img in iter_frames(Path(path), 5.0, stop_at=frames / 5.0)]
            row: dict[str, Any] = {"video": name, "variant": variant, "frames": len(images)}
            for low in (False, True):
                times = []
                for _ in range(passes):
                    md = MotionDetector((images[0].shape[1], images[0].shape[0]), low_light=low)
                    t0 = time.perf_counter()
                    for img in images:
                        md.detect(img)
                    times.append((time.perf_counter() - t0) * 1000 / len(images))
                row["on" if low else "off"] = round(statistics.median(times), 3)
            out.append(row)
            print(json.dumps(row), flush=True)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clips", type=Path, default=night_clips.default_dir())
    ap.add_argument("--motion-night", choices=("on", "off"), default="on")
    ap.add_argument("--detector-night", choices=("off", "gamma", "clahe"), default=None,
                    help="detector crop pre-processing (default: the detector's own default)")
    ap.add_argument("--only", nargs="*", default=None, help="video stems or static clip names to run")
    ap.add_argument("--repeats", type=int, default=1, help="median motion ms over this many passes")
    ap.add_argument("--json", type=Path, default=None, help="also write the results here")
    ap.add_argument("--motion-cost", action="store_true", help="only time motion alone (on and off, per version)")
    ap.add_argument("--night-min-score", type=float, default=None,
                    help="experiment: the night versions and still scenes with this detector score threshold")
    ap.add_argument("--night-min-hits", type=int, default=None,
                    help="experiment: the night versions and still scenes with this tracker min_hits")
    args = ap.parse_args()
    night_clips.make_all(args.clips)
    if args.motion_cost:
        rows = motion_cost(args.clips)
        if args.json:
            doc = {"command": " ".join(["python", "benchmarks/night_bench.py", *sys.argv[1:]]), "rows": rows,
                   "load": os.getloadavg()}
            args.json.write_text(json.dumps(doc, indent=1) + "\n", encoding="utf-8")
        return 0
    kwargs = detector_kwargs(Config().detector)
    if args.detector_night is not None:
        kwargs["low_light"] = args.detector_night
    detector, choice = load_detector(assets.find(assets.MODEL_FP32), "auto", **kwargs)
    low = args.motion_night == "on"
    night_detector = detector
    if args.night_min_score is not None:
        night_detector, _ = load_detector(assets.find(assets.MODEL_FP32), "auto",
                                          **{**kwargs, "min_score": args.night_min_score})
    rows, static = [], []
    for name in night_clips.VIDEOS:
        stem = name.removesuffix(".mp4")
        if args.only and stem.split("-")[0] not in args.only:
            continue
        runs = {}
        for variant in ("day", *VARIANTS):
            path = assets.video(name) if variant == "day" else args.clips / f"{stem}.{variant}.mp4"
            night = variant != "day"
            passes = [run_one(Path(path), night_detector if night else detector, low,
                              args.night_min_hits if night else None) for _ in range(args.repeats)]
            r = passes[0]
            r["motion_ms"] = statistics.median(p["motion_ms"] for p in passes)
            runs[variant] = r
        day = runs["day"]["events"]
        row: dict[str, Any] = {"video": name, "day_events": len(day),
                               "day_motion_ms": round(runs["day"]["motion_ms"], 3)}
        for variant in VARIANTS:
            ev = runs[variant]["events"]
            hit = matched(day, ev)
            row[variant] = {"events": len(ev), "matched": hit, "recall": round(hit / max(1, len(day)), 2),
                            "unmatched": len(ev) - matched(ev, day), "motion_ms": round(runs[variant]["motion_ms"], 3),
                            "motion_frames": runs[variant]["motion_frames"], "analysed": runs[variant]["analysed"],
                            "detector_calls": runs[variant]["detector_calls"]}
        rows.append(row)
        print(json.dumps(row), flush=True)
    for clip in STATIC:
        if args.only and clip not in args.only:
            continue
        r = run_one(args.clips / f"static.{clip}.mp4", night_detector, low, args.night_min_hits)
        item = {"clip": f"static.{clip}", "false_events": len(r["events"]), "motion_frames": r["motion_frames"],
                "analysed": r["analysed"], "detector_calls": r["detector_calls"], "resets": r["resets"],
                "motion_ms": round(r["motion_ms"], 3), "labels": sorted({k for k, _, _ in r["events"]})}
        static.append(item)
        print(json.dumps(item), flush=True)
    if args.json:
        doc = {"command": " ".join(["python", "benchmarks/night_bench.py", *sys.argv[1:]]),
               "model": choice.path.name, "load": os.getloadavg(), "videos": rows, "static": static}
        args.json.write_text(json.dumps(doc, indent=1) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
