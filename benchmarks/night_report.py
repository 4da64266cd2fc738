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
    det, thr = _load("night_detector.json"), _load("night_thresholds.json")
    out = ["## Night (issue 19): motion and detection in the dark", ""]
    out += summary_lines if summary_lines is not None else NIGHT_NOTES
    if on:
        out += ["", "### Events at night against the daylight original", ""] + _events(on, off)
        out += ["", "### False events: still night scenes with noise, an IR switch, headlights, an insect", ""]
        out += _static(on, off)
    if det:
        out += ["", "### Detector crop pre-processing in the dark (whole frames, 1 per second)", ""] + _detector(det)
    if thr:
        out += ["", "### Night score thresholds (plain detector)", ""] + _thresholds(thr)
    return "\n".join(out)


NIGHT_NOTES: list[str] = []  # filled in below once the figures are read
