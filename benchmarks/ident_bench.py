"""What identification costs in the pipeline (#16): best shots, and plates read from them, on the shared videos.

Usage: nice -n 10 python benchmarks/ident_bench.py [--json OUT] [--videos road street ...]

Per video, three passes of the daemon's own analysis (``edge.bench.analyse_file``: FrameGate at 5 fps, the
real FP32 YOLOX-Nano, motion gating): plain; with best shots (the event builder's choice, and the worker
thread that crops and JPEG-encodes them into an in-memory sink); with best shots and plates (the real
``PlateWorker`` at ``max_cpu`` 1.0, so its cost is counted, not deferred). CPU time is the process's
(getrusage: every thread, the workers' included), measured after the workers finished. Target (issue #16):
at most 0.25 CPU-s per video-s with plates on.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT))

from support.assets import model_path, video_path  # noqa: E402

from edge.bench import _cpu, analyse_file  # noqa: E402
from edge.config import parse_config  # noqa: E402
from edge.node.build import detector_kwargs  # noqa: E402
from edge.vision.detector import load_detector  # noqa: E402
from edge.vision.pipeline import AnalyzerSettings, CameraAnalyzer, EventSettings  # noqa: E402


class MemorySink:
    def __init__(self) -> None:
        self.stored: dict[str, int] = {}

    def add_best(self, best_id, object_id, camera, clip_id, jpeg, box, wall, label) -> str:
        self.stored[best_id] = len(jpeg)
        return hashlib.sha256(jpeg).hexdigest()


class Updates:
    def __init__(self) -> None:
        self.plates: list[str] = []

    def submit(self, event) -> None:
        if event.plate:
            self.plates.append(event.plate)


def one(video: str, detector: Any, mode: str) -> dict[str, Any]:
    from edge.vision.bestshot import BestShotWorker
    from edge.vision.plate_worker import PlateWorker

    shots = mode != "plain"
    settings = AnalyzerSettings(events=EventSettings(best_shots=shots))
    analyzer = CameraAnalyzer("bench", detector, settings)
    sink, updates = MemorySink(), Updates()
    worker = BestShotWorker(sink, None, updates) if shots else None
    if worker is not None and mode == "plates":
        worker.plates = PlateWorker(worker.on_plate, max_cpu=1.0, queue_size=64)
    cpu0 = _cpu()
    original = analyzer.process

    def process(frame):  # the analysis loop's part: candidates to the worker, ends told after routing
        events = original(frame)
        if worker is not None:
            for shot in analyzer.take_shots():
                worker.offer(shot)
            for e in events:
                if e.type.value == "end" and e.best:
                    worker.finish(e)
        return events

    analyzer.process = process  # type: ignore[method-assign]
    run = analyse_file(video_path(video), analyzer)
    if worker is not None:
        for e in run.events[-50:]:
            if e.type.value == "end" and e.best and e.id not in sink.stored:
                worker.finish(e)  # ends from the final flush
        worker.stop(60)
        if worker.plates is not None:
            worker.plates.stop(120)
    cpu = _cpu() - cpu0
    ends = sum(e.type.value == "end" for e in run.events)
    out = {"video": video, "mode": mode, "video_s": round(run.video_s, 1), "ends": ends,
           "cpu_s_per_video_s": round(cpu / max(run.video_s, 1e-9), 3)}
    if worker is not None:
        s = worker.counts
        out.update({"offered": s.offered, "encoded": s.encoded, "stored": s.stored, "dropped": s.dropped,
                    "jpeg_kb_mean": round(sum(sink.stored.values()) / max(1, len(sink.stored)) / 1024, 1)})
        if worker.plates is not None:
            p = worker.plates.stats
            out.update({"plate_jobs": p.read, "plates": len(updates.plates),
                        "plate_ms_mean": round(1000 * p.cpu_s / max(1, p.read), 1), "plate_texts": updates.plates})
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--json", type=Path)
    ap.add_argument("--videos", nargs="*", default=["road", "street", "highway", "pedestrians"])
    args = ap.parse_args()
    cfg = parse_config({})  # the daemon's defaults (labels, thresholds, threads)
    found, _ = load_detector(model_path(), "fp32", **detector_kwargs(cfg.detector))
    rows = []
    for video in args.videos:
        for mode in ("plain", "best", "plates"):
            row = one(video, found, mode)
            print(json.dumps(row), flush=True)
            rows.append(row)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1) + "\n")


if __name__ == "__main__":
    main()
