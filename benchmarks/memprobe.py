"""Where the daemon's memory goes, step by step in one process (#20.4): imports, detector, a running camera.

Usage: python benchmarks/memprobe.py MODEL.onnx MAIN.mp4 SUB.mp4   (NOBEST=1: without the best-shot worker)

Prints VmRSS / VmHWM after each import, after loading a detector and 5 calls, after the daemon started (it
loads its own detector: subtract one session), and every 5 s for 30 s of one two-stream camera (the files
played in real time, 10 s pre-roll). Imports are timed in order, so each line is what that import added.
"""

from __future__ import annotations

import importlib
import os
import sys
import tempfile
import time


def rss() -> str:
    fields = dict(line.split(":", 1) for line in open("/proc/self/status") if ":" in line)
    return (f"RSS {int(fields['VmRSS'].split()[0]) / 1024:.0f} MB"
            f" HWM {int(fields['VmHWM'].split()[0]) / 1024:.0f} MB")


def main() -> None:
    model, main_video, sub_video = sys.argv[1:4]
    print("start", rss())
    for name in ("numpy", "cv2", "av", "onnxruntime", "aiohttp", "edge.node.daemon"):
        importlib.import_module(name)
        print(name, rss())
    import numpy as np

    from edge.config import parse_config
    from edge.node import build
    from edge.node.daemon import Daemon

    state = tempfile.mkdtemp(prefix="memprobe-")
    cfg = parse_config({
        "node": {"id": "m"}, "storage": {"path": state}, "api": {"enabled": False},
        "mqtt": {"port": 1, "drain_timeout": 0}, "detector": {"model": model},
        "clips": {"pre_roll": 10, "post_roll": 2, "max_clip": 60},
        "cameras": {"c": {"source": main_video, "detect_source": sub_video, "realtime": True, "loop": True,
                          "detect_fps": 5}},
    })
    detector = build.detector(cfg)
    print("detector loaded", rss())
    for _ in range(5):
        detector.detect(np.zeros((416, 416, 3), np.uint8))
    print("detector 5 calls", rss())
    if os.environ.get("NOBEST"):
        build.best_shots = lambda *a, **k: None  # type: ignore[assignment]
    daemon = Daemon(cfg)
    daemon.start()
    print("daemon started", rss())
    for step in range(6):
        time.sleep(5)
        ring = daemon.cameras["c"].recorder.stats().ring_bytes // 1024  # type: ignore[union-attr]
        print(f"t={5 * (step + 1)}s", rss(), "ring", ring, "kB")
    daemon.request_stop()
    daemon.shutdown()


if __name__ == "__main__":
    main()
