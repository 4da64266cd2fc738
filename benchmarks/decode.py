"""Per-frame decode cost of each shared video through the capture stage.

Usage: .venv/bin/python benchmarks/decode.py [--json]
Measures ms/frame for demux+decode of every frame, and for the BGR conversion
that only analysed frames pay. Single process, wall clock, best of 3 passes.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from edge import assets  # noqa: E402
from edge.capture.pyav import PyavSource  # noqa: E402
from edge.types import Packet  # noqa: E402

VIDEOS = [
    "road-overhead-640x360-24fps.mp4",
    "street-securitycam-640x360-10fps.mp4",
    "highway-640x360-30fps.mp4",
    "pedestrians-800x450-24fps.mp4",
]


def measure(path: Path, convert: bool) -> tuple[int, float]:
    source = PyavSource("bench", str(path))
    source.open()
    frames = 0
    start = time.perf_counter()
    for item in source.items():
        if not isinstance(item, Packet):
            frames += 1
            if convert:
                item.to_bgr()
    elapsed = time.perf_counter() - start
    source.close()
    return frames, elapsed


def main() -> None:
    rows = []
    for name in VIDEOS:
        path = assets.video(name)
        if path is None:
            continue
        frames, decode = min((measure(path, False) for _ in range(3)), key=lambda r: r[1])
        _, with_bgr = min((measure(path, True) for _ in range(3)), key=lambda r: r[1])
        rows.append({"video": name, "frames": frames, "decode_ms": round(1000 * decode / frames, 3),
                     "decode_bgr_ms": round(1000 * with_bgr / frames, 3)})
    if "--json" in sys.argv:
        print(json.dumps(rows, indent=2))
        return
    print(f"{'video':40} {'frames':>6} {'decode ms/frame':>16} {'+to_bgr ms/frame':>17}")
    for r in rows:
        print(f"{r['video']:40} {r['frames']:>6} {r['decode_ms']:>16.3f} {r['decode_bgr_ms']:>17.3f}")


if __name__ == "__main__":
    main()
