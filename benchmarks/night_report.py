"""Render the night measurements (issue 19) into BENCHMARKS.md's "Night" section.

Inputs, in benchmarks/ (raw JSON, committed like results.json): night_motion.json and night_motion_off.json
(benchmarks/night_bench.py with low-light motion on and off), night_detector.json (night_detector.py: crop
pre-processing modes) and night_thresholds.json (night_detector.py --thresholds). A missing file leaves its
table out.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent


def _load(name: str) -> dict[str, Any] | None:
    path = HERE / name
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


def _events(on: dict, off: dict | None) -> list[str]:
    offs = {r["video"]: r for r in (off or {}).get("videos", [])}
    lines = [f"Command: `nice -n 10 {on['command']}` (and the same with `--motion-night off`); load average at "
             f"the end {', '.join(f'{x:.1f}' for x in on['load'])}.", "",
             "| video | daylight events | version | events | matched (recall) | recall, motion low-light off | "
             "not in daylight | motion frames / analysed | motion ms/frame (daylight ms) |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in on["videos"]:
        for variant in ("night", "dim", "ir"):
            v = r.get(variant)
            if v is None:
                continue
            o = offs.get(r["video"], {}).get(variant)
            was = f"{o['recall']:.0%}" if o else "-"
            lines.append(f"| {r['video']} | {r['day_events']} | {variant} | {v['events']} | {v['matched']} "
                         f"({v['recall']:.0%}) | {was} | "
                         f"{v['unmatched']} | {v['motion_frames']} / {v['analysed']} | {v['motion_ms']:.2f} "
                         f"({r['day_motion_ms']:.2f}) |")
    return lines


def _static(on: dict, off: dict | None) -> list[str]:
    offs = {r["clip"]: r for r in (off or {}).get("static", [])}
    lines = ["| clip (20 s, 10 fps, nothing to find) | false events | motion frames / analysed | detector calls | "
             "resets | motion ms/frame | same, low-light off: false events, motion frames |",
             "|---|---|---|---|---|---|---|"]
    for r in on["static"]:
        o = offs.get(r["clip"])
        lines.append(f"| {r['clip']} | **{r['false_events']}** | {r['motion_frames']} / {r['analysed']} | "
                     f"{r['detector_calls']} | {r['resets']} | {r['motion_ms']:.2f} | "
                     + (f"{o['false_events']}, {o['motion_frames']} |" if o else "- |"))
    return lines


def _cost(doc: dict) -> list[str]:
    lines = [f"Command: `nice -n 10 {doc['command']}` (motion alone over the same decoded frames, median of 5 "
             f"passes; load average {', '.join(f'{x:.1f}' for x in doc['load'])}).", "",
             "| video | version | frames | ms/frame, low-light off (the previous algorithm) | ms/frame, on |",
             "|---|---|---|---|---|"]
    for r in doc["rows"]:
        lines.append(f"| {r['video']} | {r['variant']} | {r['frames']} | {r['off']:.3f} | {r['on']:.3f} |")
    return lines


def _detector(doc: dict) -> list[str]:
    lines = [f"Command: `nice -n 10 {doc['command']}`.", "",
             "| version | mode | recall of daylight detections | matched / reference | extras |",
             "|---|---|---|---|---|"]
    for key, v in doc["summary"].items():
        variant, mode = key.split("/")
        lines.append(f"| {variant} | {mode} | {v['recall']:.1%} | {v['matched']} / {v['reference']} | {v['extras']} |")
    return lines


def _thresholds(doc: dict) -> list[str]:
    lines = [f"Command: `nice -n 10 {doc['command']}`.", "",
             "| version @ score threshold | recall of daylight detections (>= 0.4) | matched / reference | extras |",
             "|---|---|---|---|"]
    for key, v in doc["summary"].items():
        lines.append(f"| {key} | {v['recall']:.1%} | {v['matched']} / {v['reference']} | {v['extras']} |")
    return lines


def section(summary_lines: list[str] | None = None) -> str:
    """The whole section; ``summary_lines`` (the reading of the figures) come from NIGHT_NOTES."""
    on, off = _load("night_motion.json"), _load("night_motion_off.json")
    det, thr, cost = _load("night_detector.json"), _load("night_thresholds.json"), _load("night_motion_cost.json")
    out = ["## Night (issue 19): motion and detection in the dark", ""]
    out += summary_lines if summary_lines is not None else NIGHT_NOTES
    if on:
        out += ["", "### Events at night against the daylight original", ""] + _events(on, off)
        out += ["", "### False events: still night scenes with noise, an IR switch, headlights, an insect", ""]
        out += _static(on, off)
    if cost:
        out += ["", "### Motion cost per frame", ""] + _cost(cost)
    if det:
        out += ["", "### Detector crop pre-processing in the dark (whole frames, 1 per second)", ""] + _detector(det)
    if thr:
        out += ["", "### Night score thresholds (plain detector)", ""] + _thresholds(thr)
    return "\n".join(out)


NIGHT_NOTES: list[str] = [
    "Events and false events re-measured 2026-12-03 15:38-15:44 UTC (night clips regenerated on a fresh machine, "
    "a 4-camera soak running beside it, load 3-4); motion cost, detector pre-processing and thresholds measured "
    "2026-12-02 04:53-05:06 UTC (load 3-9). 2-core dev VM, FP32 YOLOX-Nano, default config, "
    "detect_fps 5. **No real night footage was available**: every night clip below is made from the shared daylight "
    "clips by `python benchmarks/night_clips.py` (ffmpeg, into `~/.cache/edgecam/night`, never committed): "
    "`night` = the issue's recipe `eq=brightness=-0.3:gamma=0.5,noise=alls=20:allf=t`; `dim` = a third of the light "
    "(`eq=contrast=0.3:brightness=-0.35:saturation=0.6`, noise 12); `ir` = greyscale, flat, noise 16; and four "
    "20 s still scenes from the street clip's first second (noise only; an IR switch half-way; two headlight sweeps "
    "with wet-road reflections and light cones; a big soft blob wandering at the lens). A night event matches a "
    "daylight one when both have the same kind (person / two-wheeler / vehicle) and their times overlap (0.5 s "
    "slack); times count from each file's first decoded frame (the street clip decodes from 1.86 s, its "
    "re-encoded versions from 0 s).",
    "",
    "**What motion does now (`cameras.NAME.motion.low_light`, default on), and why.** In a dark scene (mean grey "
    "of the 120-row analysis frame < 50) the threshold is divided by the gain a contrast stretch of the scene's "
    "1..99 percentile range to 200 grey levels would give (at most 4x): stretching by g and thresholding at T is "
    "the same test as thresholding the unstretched difference at T/g, so this costs no per-pixel stretch. The "
    "threshold never goes below 5 grey levels, 3x the 90th percentile of |frame - background| (a global noise "
    "figure) nor, per pixel, 6x that pixel's running mean |frame - background| learnt where nothing changed "
    "(lit parts of a night scene carry the shot noise; a crowd must not teach it that people are noise). "
    "Scene statistics are refreshed every 5 frames (two 256-bin histograms). A changed area that is the same "
    "scene 1.2x brighter or darker (normalised correlation with the background > 0.8) is dropped as light "
    "(a headlight cone on parked cars). Whole-frame exposure steps (median ratio 1.05-1.5, when > 10% of the "
    "frame changed) rescale the background; bigger jumps (IR on) relearn it like the lightning reset. With "
    "mean grey >= 50 the threshold is the configured one (gain 1), so daylight motion is the previous "
    "algorithm except for that exposure-step rule.",
    "",
    "**Reading it.**",
    "- Targets met: **0 false events on all four still night scenes**: the noisy still scene, the IR switch and "
    "the insect at the lens (2 motion frames of 100 each, during the noise map's warm-up; the IR switch is one "
    "reset), and the headlight sweeps. There a parked white car lit by a passing reflection is detected (score "
    "0.42 -> 0.76 under the light) inside a motion box; its box grows under the light but never moves. In a dark "
    "scene (the motion stage's contrast gain > 1) a new track must move its centre, not only grow, before it "
    "starts an event (tracker, commit 5ac882d), so the glow starts none. With low-light off that rule is off too "
    "and the 1 false event is back (last column).",
    "- Target missed: **events found at night are far below 80%** except highway IR (84%): road 0%, street 0%, "
    "highway 6% (night) / 3% (dim), pedestrians 4% / 7% / 33% (IR). Motion is not what limits it: with the "
    "low-light adaptation, motion fires on 95-98% of the analysed frames of the night road, highway and pedestrian "
    "clips and 60% of the quiet street (without it: road 57%, street 47%). "
    "The detector is: on whole frames YOLOX-Nano finds 17% (night), 20% (dim) and 22% (IR) of what it finds "
    "in daylight at the same times. The issue's recipe clips a dark road to black (road night: median grey 2, "
    "cars gone): no motion or detector setting brings those cars back. The IR versions lose to colour more than "
    "to noise: greyscale alone takes YOLOX-Nano from 100% to 44% of its daylight detections (the street's parked "
    "cars: 12 of 312), colour with the same noise keeps 87% (night_experiments.md, 2026-12-03).",
    "- Re-run on regenerated clips, the same code gives pedestrians IR 9 events, not 13 (48%) as on 2026-12-02; "
    "commit beda45d (the code of the first table) also gives 9 on today's clips, so the 4 events are the made "
    "footage and library versions, not the code. These small event counts move by that much.",
    "- Pedestrians night/dim: 1 / 2 events with low-light on vs 3 / 7 off (events from 1-7 matches are noisy, "
    "but this is a loss); daylight pedestrians 27 vs 28 starts (the hand count is 36, the test's tolerance 30%): "
    "the exposure-step rule also acts in daylight crowds. The other three daylight clips give the same events.",
    "- Detector crop pre-processing (`Detector(low_light=stretch|gamma|clahe)`, applied only to crops with mean "
    "grey < 60): no mode is better everywhere. On `night` all three lose (stretch 8%, gamma 9%, CLAHE 14% vs 17% "
    "plain); on `dim` they gain 2-4 points (CLAHE 24% vs 20%); on IR (bright) they never trigger. **Kept off by "
    "default**; the option stays for measuring on real footage.",
    "- Night score thresholds: 0.3 instead of 0.4 raises recall by 4-7 points (night 22%, dim 26%, IR 28%) and "
    "lets in 8-23 more unmatched detections per version (166 more on daylight frames, unverified): nowhere near "
    "80%, and not per-label either, so **kept at 0.4**.",
    "- Motion cost (motion alone, median of 5 passes): daylight 0.41-0.57 ms/frame (median over the 4 clips "
    "0.49) vs 0.32-0.47 (0.46) before (the statistics every 5 frames and the exposure check); night 0.37-0.74 "
    "(median 0.67) vs 0.27-0.43 (0.37), dim 0.41-0.90 vs 0.27-0.46 (the per-pixel floor, the light test per "
    "changed area, the exposure step). Noisy machine: the same run repeated differs by up to 0.1 ms.",
    "- What would close the gap, not done: denoise before detection (averaging decoded frames over time gains "
    "3-11 points but smears fast cars; whole-frame spatial filters on all four clips gain 1-7: "
    "night_experiments.md), a larger, night- or greyscale-trained model, "
    "and real night footage (a camera's own noise reduction makes its night frames far smoother than these made ones).",
]
