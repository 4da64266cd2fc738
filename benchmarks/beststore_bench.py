"""What keeping best shots costs the clip store (#16.1): ``add_best`` and ``enforce_retention``.

Usage: nice -n 5 python benchmarks/beststore_bench.py [N ...]   (default: 300 5000)

A real picture (the shared ``highway`` video's frame at 8 s, JPEG quality 88, as the worker encodes it) is
stored N times as clip-less best shots (the worst case for retention: each is its own candidate) in a fresh
ClipStore under /tmp: each add signs the shot's own record and writes the JPEG and its record atomically
(fsync + rename). Then ``enforce_retention`` runs 20 times over the N rows. CPU is the process's (getrusage).
"""

from __future__ import annotations

import resource
import sys
import tempfile
import time
from pathlib import Path

import cv2

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT))

from support.assets import video_path  # noqa: E402

from edge.clips.evidence import NodeKey  # noqa: E402
from edge.clips.store import ClipStore  # noqa: E402


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def _jpeg() -> bytes:
    cap = cv2.VideoCapture(str(video_path("highway")))
    cap.set(cv2.CAP_PROP_POS_MSEC, 8000)
    ok, frame = cap.read()
    cap.release()
    assert ok
    return cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, 88])[1].tobytes()


def run(n: int, jpeg: bytes) -> str:
    with tempfile.TemporaryDirectory(dir="/tmp") as d:
        store = ClipStore(Path(d), NodeKey.load_or_create(Path(d) / "keys"), node="bench")
        c0, w0 = _cpu(), time.perf_counter()
        for i in range(n):
            store.writer.add_best(f"obj-{i}", f"obj-{i}", "cam", None, jpeg, (0.1, 0.1, 0.9, 0.9), 1.8e9 + i, "car")
        c1, w1 = _cpu(), time.perf_counter()
        store.keeper.budget = type(store.keeper.budget)(max_bytes=10**12, max_age_s=86400.0, min_free_bytes=0)
        for _ in range(20):
            store.enforce_retention()
        c2, w2 = _cpu(), time.perf_counter()
        store.close()
    return (f"N={n}: add_best {1000 * (c1 - c0) / n:.2f} ms CPU ({1000 * (w1 - w0) / n:.2f} ms wall) per shot;"
            f" enforce_retention {1000 * (c2 - c1) / 20:.2f} ms CPU ({1000 * (w2 - w1) / 20:.2f} ms wall)")


if __name__ == "__main__":
    picture = _jpeg()
    print(f"JPEG {len(picture)} bytes")
    for arg in sys.argv[1:] or ["300", "5000"]:
        print(run(int(arg), picture))
