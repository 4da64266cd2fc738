"""``edgecam plates read FILE... [--json]``: read plates in still images (installer checks, measurements)."""

from __future__ import annotations

import argparse
import json
import sys

import cv2

from .plates import PlateReader


def read_command(args: argparse.Namespace) -> int:
    """Print each file's plates; exit 1 if any file could not be read as an image (the others still print)."""
    reader = PlateReader(threads=args.threads)  # PlatesUnavailable is a UserError: one line, exit 1
    failed = 0
    for name in args.files:
        img = cv2.imread(name, cv2.IMREAD_COLOR)
        if img is None:
            failed += 1
            if args.json:
                print(json.dumps({"file": name, "plates": [], "error": "not a readable image"}, ensure_ascii=False))
            else:
                print(f"edgecam: {name}: not a readable image", file=sys.stderr)
            continue
        plates = reader.read(img)
        if args.json:
            out = {"file": name, "plates": [{"text": p.text, "score": p.score, "box": list(p.box)} for p in plates]}
            print(json.dumps(out, ensure_ascii=False), flush=True)
        elif not plates:
            print(f"{name}: no readable plate", flush=True)
        else:
            for p in plates:
                x1, y1, x2, y2 = p.box
                print(f"{name}: {p.text}  score {p.score:.2f}  box {x1},{y1},{x2},{y2}", flush=True)
    return 1 if failed else 0
