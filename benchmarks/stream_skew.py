"""How well the two streams of one camera line up: the skew of edgecam's arrival-time alignment, measured.

Usage:
  PYTHONPATH=. python benchmarks/stream_skew.py [--video road] [--seconds 30] [--json OUT]

One RTSP test server process (tests/support/rtsp.py) serves a 1920x1080 main and a 640x360 sub made from the
same clip (ffmpeg, same frame rate), as a camera does. Both are opened through edge's own capture adapter
(``edge.capture.open_source``, the record stream packets-only as the daemon opens it, plus a bench-only
decode of it for the ground truth) and timed exactly as the capture loops time them: every item's source
time and monotonic arrival feed one ``StreamClock`` per stream. For each analysed (sub) frame the alignment
says which record-stream time it is (``translate``, with the clocks as they stood at that moment); the truth is
the record-stream time of the main frame showing the same picture (nearest 32x18 grey thumbnail within
+-3 s). Skew = alignment - truth, in ms and in frames. A clip's pre-roll must cover that skew (it is seconds).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from support.assets import VIDEOS  # noqa: E402
from support.rtsp import RtspServer  # noqa: E402

from edge import assets  # noqa: E402
from edge.capture import open_source  # noqa: E402
from edge.node.loops import StreamClock  # noqa: E402

THUMB = (32, 18)


def made(src: Path, size: str, out: Path) -> Path:
    if not out.exists():
        subprocess.run(["ffmpeg", "-v", "error", "-y", "-i", str(src), "-an", "-vf", f"scale={size}", "-c:v",
                        "libx264", "-preset", "ultrafast", "-g", "24", "-pix_fmt", "yuv420p", str(out)],
                       check=True, timeout=600)
    return out


def thumb(bgr: np.ndarray) -> np.ndarray:
    grey = cv2.cvtColor(cv2.resize(bgr, THUMB, interpolation=cv2.INTER_AREA), cv2.COLOR_BGR2GRAY)
    return grey.astype(np.float32)


def read(url: str, seconds: float, clock: StreamClock, frames: list, other: StreamClock | None,
         aligned: list, started: threading.Event) -> None:
    """Read like the daemon's loops: the record stream's clock sees its packets (the daemon never decodes it;
    the pictures here are the bench's ground truth only), the detect stream's its decoded pictures."""
    record = other is None
    src = open_source("skew", url, open_timeout=10, read_timeout=5, packets=record)
    src.open()
    started.set()
    end = time.monotonic() + seconds
    try:
        for item in src.items():
            if item.mono > end:
                break
            picture = hasattr(item, "to_bgr")
            if picture != record:
                clock.observe(item.time, item.mono)
            if picture:
                frames.append((item.time, thumb(item.to_bgr())))
                if other is not None:  # the detect stream: where the alignment puts this frame, now
                    mono = clock.to_mono(item.time)
                    aligned.append(other.to_time(mono) if mono is not None else None)
    finally:
        src.close()


def measure(main: Path, sub: Path, seconds: float, one_feeder: bool = True) -> dict:
    server = RtspServer(mounts={"/main": main, "/sub": sub}, one_feeder=one_feeder).start()
    try:
        main_clock, sub_clock = StreamClock(), StreamClock()
        main_frames: list = []
        sub_frames: list = []
        aligned: list = []
        go = [threading.Event(), threading.Event()]
        threads = [threading.Thread(target=read, args=(server.url_of("/main"), seconds, main_clock, main_frames,
                                                       None, [], go[0])),
                   threading.Thread(target=read, args=(server.url_of("/sub"), seconds, sub_clock, sub_frames,
                                                       main_clock, aligned, go[1]))]
        for t in threads:
            t.start()
        for t in threads:
            t.join(seconds + 60)
    finally:
        server.kill()
    times = np.array([t for t, _ in main_frames])
    stack = np.stack([im for _, im in main_frames])
    skews, ambiguous = [], 0
    warm = sub_frames[0][0] + 2.0 if sub_frames else 0.0  # the clocks' first two seconds are the warm-up
    for (t_sub, im), t_aligned in zip(sub_frames, aligned, strict=True):
        if t_aligned is None or t_sub < warm:
            continue
        near = np.nonzero(np.abs(times - t_aligned) < 3.0)[0]
        if len(near) < 3:
            continue
        err = ((stack[near] - im) ** 2).mean(axis=(1, 2))
        order = np.argsort(err)
        if err[order[1]] < err[order[0]] * 1.15:  # two frames look the same (a still moment): no truth
            ambiguous += 1
            continue
        skews.append(t_aligned - times[near[order[0]]])
    fps = (len(times) - 1) / (times[-1] - times[0]) if len(times) > 1 else 0.0
    ms = [1000 * s for s in skews]
    absms = sorted(abs(x) for x in ms)
    return {
        "one_feeder": one_feeder, "main": main.name, "sub": sub.name, "seconds": seconds,
        "main_frames": len(main_frames),
        "sub_frames": len(sub_frames), "compared": len(ms), "ambiguous": ambiguous, "fps": round(fps, 2),
        "skew_ms_median": round(statistics.median(ms), 1) if ms else None,
        "abs_skew_ms_p95": round(absms[int(0.95 * (len(absms) - 1))], 1) if absms else None,
        "abs_skew_ms_max": round(absms[-1], 1) if absms else None,
        "frame_ms": round(1000 / fps, 1) if fps else None,
        "within_one_frame": round(sum(1 for x in absms if x <= 1000 / fps * 1.01) / len(absms), 3) if absms else None,
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--video", default="road")
    ap.add_argument("--seconds", type=float, default=30.0)
    ap.add_argument("--work", type=Path, default=Path.home() / ".cache" / "edgecam" / "streams")
    ap.add_argument("--json", type=Path)
    ap.add_argument("--two-feeders", action="store_true", help="each mount its own ffmpeg (start-up skew)")
    args = ap.parse_args()
    src = assets.video(VIDEOS.get(args.video, args.video))
    if src is None:
        raise SystemExit(f"sample video {args.video} missing: run scripts/fetch-assets")
    args.work.mkdir(parents=True, exist_ok=True)
    main_file = made(src, "1920:1080", args.work / f"{args.video}-1080p.mp4")
    sub_file = made(src, "640:360", args.work / f"{args.video}-360p.mp4")
    result = measure(main_file, sub_file, args.seconds, one_feeder=not args.two_feeders)
    text = json.dumps(result)
    print(text)
    if args.json:
        args.json.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
