"""Colour accuracy on hand-labelled vehicle crops: a confusion table for BENCHMARKS.md.

    nice -n 10 .venv/bin/python benchmarks/attributes.py

``benchmarks/colour_labels.csv`` lists crops (source video + frame number, or COCO sample file; box
x1,y1,x2,y2 in that image's pixels, as YOLOX-Nano found them) and the colour a person gave the object
by eye. The images stay in ../shared; only the labels are committed. Many video crops are the same car
in successive frames (every 3 s), so the set has fewer distinct vehicles than rows.
"""

from __future__ import annotations

import csv
import statistics
import sys
import time
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from edge import assets  # noqa: E402
from edge.vision.attributes import COLORS, color_of  # noqa: E402

LABELS = Path(__file__).resolve().parent / "colour_labels.csv"


def load_crops(labels: Path = LABELS) -> list[tuple[dict, np.ndarray]]:
    """(label row, BGR crop) for every row whose source is at hand."""
    import av

    rows = list(csv.DictReader(labels.open(encoding="utf-8")))
    frames: dict[tuple[str, int], np.ndarray] = {}
    wanted = {(r["source"], int(r["frame"])) for r in rows if r["frame"]}
    for source in sorted({s for s, _ in wanted}):
        path = assets.video(source)
        if path is None:
            continue
        need = {f for s, f in wanted if s == source}
        with av.open(str(path)) as c:
            for n, frame in enumerate(c.decode(video=0)):
                if n in need:
                    frames[(source, n)] = frame.to_ndarray(format="bgr24")
                if n >= max(need):
                    break
    coco = assets.find(assets.COCO_DIR)
    out = []
    for r in rows:
        if r["frame"]:
            img = frames.get((r["source"], int(r["frame"])))
        else:
            img = cv2.imread(str(coco / r["source"])) if coco else None
        if img is None:
            continue
        x1, y1, x2, y2 = (int(r[k]) for k in ("x1", "y1", "x2", "y2"))
        out.append((r, img[y1:y2, x1:x2]))
    return out


def main() -> int:
    crops = load_crops()
    if not crops:
        print("benchmarks/attributes.py: the shared videos / COCO sample are missing", file=sys.stderr)
        return 1
    table = {t: dict.fromkeys(COLORS, 0) for t in COLORS}
    ms, wrong = [], []
    for r, crop in crops:
        t0 = time.process_time()
        got = color_of(crop)
        ms.append((time.process_time() - t0) * 1000)
        name = got[0] if got else "none"
        table[r["colour"]][name] = table[r["colour"]].get(name, 0) + 1
        if name != r["colour"]:
            wrong.append(f"{r['source']}@{r['frame'] or '-'} {r['label']}: labelled {r['colour']}, got {got}")
    right = sum(table[c][c] for c in COLORS)
    print(f"{right}/{len(crops)} correct ({100 * right / len(crops):.0f}%), "
          f"CPU {statistics.median(ms):.2f} ms median per crop\n")
    print("| labelled \\ measured | " + " | ".join(COLORS) + " | n |")
    print("|---" * (len(COLORS) + 2) + "|")
    for c in COLORS:
        n = sum(table[c].values())
        if n:
            print(f"| {c} | " + " | ".join(str(table[c][m] or "") for m in COLORS) + f" | {n} |")
    for w in wrong:
        print("  " + w)
    return 0


if __name__ == "__main__":
    sys.exit(main())
