"""Plate reading on the shared photos: exact-match rates, false plates on unreadable vehicles, CPU per read.

    nice -n 10 .venv/bin/python benchmarks/plates.py [--json OUT.json] [--threads 1] [--save-false DIR]

Positives: ``data/plates/vn`` (labels.csv: one-line, two-line crops and whole-vehicle photos) and
``data/plates/cn`` (Chinese one-line crops, kept as read). A read matches when its text equals the label
after removing spaces, '-', '.', '/'; "within one" allows one edit. A vehicle photo matches when every
labelled plate, left to right, is read and nothing else is.

Negatives: vehicles (car, motorcycle, bus, truck) that YOLOX-Nano finds in the shared videos (640x360:
no plate there is readable, see NOTES.md) and in the COCO sample, cropped with a 10% margin. Any plate
read on them is a false plate (``--save-false`` writes those crops as PNG for a look by eye).

CPU is ``time.process_time()`` around ``PlateReader.read`` with onnxruntime on ``--threads`` (1 = what
the node budgets), wall ms beside it; the machine is shared, so take medians.
"""

from __future__ import annotations

import argparse
import csv
import json
import platform
import statistics
import sys
import time
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from edge import assets  # noqa: E402
from edge.vision.plates import PlateReader, compact  # noqa: E402

VEHICLES = ("car", "motorcycle", "bus", "truck")
# COCO vehicles whose plate IS readable (checked by eye on the crop): not negatives; the read must match.
READABLE = {"000000001584#0-bus": "ALM89B", "000000002006#0-bus": "NA52BUU"}
PI4_SLOWDOWN = (4.0, 6.0)  # one Cortex-A72 core vs one core here (see benchmarks/pi_estimate.py)


def edit_distance(a: str, b: str) -> int:
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        cur = [i]
        for j, cb in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb)))
        prev = cur
    return prev[-1]


def timed_read(reader: PlateReader, img: np.ndarray) -> tuple[list, float, float]:
    w0, c0 = time.perf_counter(), time.process_time()
    plates = reader.read(img)
    return plates, (time.perf_counter() - w0) * 1000, (time.process_time() - c0) * 1000


def positives(reader: PlateReader, root: Path) -> dict:
    """Per kind: n, exact, within one edit, misread (a wrong plate given), none (no plate given), CPU ms."""
    out: dict[str, dict] = {}
    rows = []
    for sub in ("vn", "cn"):
        labels = root / sub / "labels.csv"
        if labels.exists():
            for row in csv.DictReader(labels.open(encoding="utf-8")):
                kind = row["kind"] if sub == "vn" else "cn-one-line"
                rows.append((root / sub / row["file"], row["text"], kind))
    for path, text, kind in rows:
        img = cv2.imread(str(path))
        plates, wall, cpu = timed_read(reader, img)
        want = [compact(t) for t in text.split("|")]
        got = [compact(p.text) for p in plates]
        k = out.setdefault(kind, {"n": 0, "exact": 0, "within_one": 0, "misread": 0, "none": 0, "cpu_ms": [],
                                  "wall_ms": [], "failures": []})
        k["n"] += 1
        k["cpu_ms"].append(cpu)
        k["wall_ms"].append(wall)
        if got == want:
            k["exact"] += 1
            k["within_one"] += 1
            continue
        if not got:
            k["none"] += 1
        elif len(got) == len(want) and all(edit_distance(g, w) <= 1 for g, w in zip(got, want, strict=True)):
            k["within_one"] += 1
            k["misread"] += 1
        else:
            k["misread"] += 1
        k["failures"].append({"file": path.name, "want": text, "got": [p.text for p in plates]})
    return out


def vehicle_crops(limit_per_video: int = 60) -> list[tuple[str, np.ndarray]]:
    """Vehicle crops from the shared videos (every 2 s) and the COCO sample, found by YOLOX-Nano FP32."""
    import av

    from edge.vision.detector import load_detector

    det, _ = load_detector(None, precision="fp32", keep_labels=VEHICLES, min_score=0.4, threads=1)
    crops: list[tuple[str, np.ndarray]] = []

    def add(name: str, img: np.ndarray) -> None:
        h, w = img.shape[:2]
        for i, d in enumerate(det.detect(img)):
            b = d.box
            mx, my = 0.1 * b.width, 0.1 * b.height
            x1, y1 = int(max(0, b.x1 - mx)), int(max(0, b.y1 - my))
            x2, y2 = int(min(w, b.x2 + mx)), int(min(h, b.y2 + my))
            if x2 - x1 >= 24 and y2 - y1 >= 24:
                crops.append((f"{name}#{i}-{d.label}", img[y1:y2, x1:x2].copy()))

    video_dir = assets.find(assets.VIDEO_DIR)
    for path in sorted(video_dir.glob("*.mp4")) if video_dir else []:
        before = len(crops)
        with av.open(str(path)) as c:
            stream = c.streams.video[0]
            step = max(1, round(2 * float(stream.average_rate or 25)))
            for n, frame in enumerate(c.decode(stream)):
                if n % step == 0:
                    add(f"{path.stem}@{n}", frame.to_ndarray(format="bgr24"))
                if len(crops) - before >= limit_per_video:
                    break
    coco = assets.find(assets.COCO_DIR)
    for path in sorted(coco.glob("*.jpg")) if coco else []:
        img = cv2.imread(str(path))
        if img is not None:
            add(path.stem, img)
    return crops


def negatives(reader: PlateReader, save_false: Path | None) -> dict:
    crops = vehicle_crops()
    false, cpu, wall, sizes, readable = [], [], [], [], {}
    for name, img in crops:
        plates, w, c = timed_read(reader, img)
        cpu.append(c)
        wall.append(w)
        sizes.append(max(img.shape[:2]))
        if name in READABLE:
            readable[name] = {"want": READABLE[name], "got": [p.text for p in plates]}
            continue
        if plates:
            false.append({"crop": name, "plates": [p.text for p in plates], "scores": [p.score for p in plates]})
            if save_false:
                save_false.mkdir(parents=True, exist_ok=True)
                cv2.imwrite(str(save_false / (name.replace("/", "_").replace("#", "_") + ".png")), img)
    from_videos = sum("@" in name for name, _ in crops)
    return {"n": len(crops) - len(readable), "from_videos": from_videos, "readable": readable,
            "false_plates": len(false), "false": false, "cpu_ms": cpu, "wall_ms": wall,
            "median_side_px": statistics.median(sizes) if sizes else None}


def _med(xs: list[float]) -> float:
    return round(statistics.median(xs), 1) if xs else float("nan")


def report(pos: dict, neg: dict, threads: int) -> str:
    lines = [
        f"Machine: {platform.machine()}, {platform.python_version()}, onnxruntime threads={threads}.",
        "",
        "| set | n | exact | within one edit | misread | no plate | CPU ms median (p90) | wall ms median | "
        "Pi 4 est. ms |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for kind in ("one-line", "two-line", "vehicle", "cn-one-line"):
        if kind not in pos:
            continue
        k = pos[kind]
        p90 = float(np.percentile(k["cpu_ms"], 90))
        med = _med(k["cpu_ms"])
        lines.append(
            f"| {kind} | {k['n']} | {k['exact']} ({100 * k['exact'] / k['n']:.0f}%) | "
            f"{k['within_one']} ({100 * k['within_one'] / k['n']:.0f}%) | {k['misread']} | {k['none']} | "
            f"{med} ({p90:.0f}) | {_med(k['wall_ms'])} | {med * PI4_SLOWDOWN[0]:.0f}-{med * PI4_SLOWDOWN[1]:.0f} |"
        )
    crops = [pos[k] for k in ("one-line", "two-line") if k in pos]
    if crops:
        n, ex = sum(k["n"] for k in crops), sum(k["exact"] for k in crops)
        lines.append(f"| VN crops together | {n} | {ex} ({100 * ex / n:.0f}%) | | | | | | |")
    if neg["n"]:
        med = _med(neg["cpu_ms"])
        lines.append(
            f"| unreadable vehicles (false plates) | {neg['n']} | {neg['false_plates']} false "
            f"({100 * neg['false_plates'] / neg['n']:.1f}%) | | | | {med} ({np.percentile(neg['cpu_ms'], 90):.0f}) | "
            f"{_med(neg['wall_ms'])} | {med * PI4_SLOWDOWN[0]:.0f}-{med * PI4_SLOWDOWN[1]:.0f} |"
        )
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--json", type=Path, help="write the raw results here")
    ap.add_argument("--save-false", type=Path, help="write crops that gave a false plate here (PNG)")
    ap.add_argument("--no-negatives", action="store_true")
    args = ap.parse_args()
    root = assets.find("data/plates")
    if root is None:
        print("benchmarks/plates.py: ../shared/data/plates not found", file=sys.stderr)
        return 1
    reader = PlateReader(threads=args.threads)
    pos = positives(reader, root)
    neg = {"n": 0, "false_plates": 0, "false": [], "cpu_ms": [], "wall_ms": []}
    if not args.no_negatives:
        neg = negatives(reader, args.save_false)
    print(report(pos, neg, args.threads))
    for kind, k in pos.items():
        for f in k["failures"]:
            print(f"  {kind} miss: {f['file']}: want {f['want']!r}, got {f['got']}")
    if neg["n"]:
        print(f"  negatives: {neg.get('from_videos', 0)} crops from the shared videos, the rest from COCO")
    for name, r in neg.get("readable", {}).items():
        print(f"  readable plate (not a negative): {name}: want {r['want']}, got {r['got']}")
    for f in neg["false"]:
        print(f"  false plate: {f['crop']}: {f['plates']} {f['scores']}")
    if args.json:
        args.json.write_text(json.dumps({"positives": pos, "negatives": neg}, indent=1, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
