"""Clip recorder figures for benchmarks/clips.md: peak RSS, bytes written idle and per recorded minute.

    python benchmarks/clips_bench.py rss --source 1080p.mp4 [--pre-roll 10]
    python benchmarks/clips_bench.py idle --source FILE --seconds 180
    python benchmarks/clips_bench.py record --source FILE
    python benchmarks/clips_bench.py make-1080p --source SHARED.mp4 --out 1080p.mp4

Each mode runs in its own process so RSS and /proc/self/io count this work only.
Packets come from PyAV demux exactly as capture copies them.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from support.packets import demux, event  # noqa: E402

from edge.clips.evidence import NodeKey  # noqa: E402
from edge.clips.recorder import ClipRecorder  # noqa: E402
from edge.clips.store import ClipStore  # noqa: E402
from edge.node.status import peak_rss_mb  # noqa: E402


def write_bytes() -> int:
    for line in Path("/proc/self/io").read_text().splitlines():
        if line.startswith("write_bytes:"):
            return int(line.split()[1])
    return 0


def _recorder(root: Path, info, pre_roll: float, lossless: bool) -> tuple[ClipStore, ClipRecorder]:
    store = ClipStore(root, NodeKey.load_or_create(root / "keys"), node="bench")
    rec = ClipRecorder("cam", store.writer, pre_roll, 5.0, 120.0, lossless=lossless)
    rec.start()
    rec.start_stream(info)
    return store, rec


def mode_rss(source: Path, pre_roll: float) -> dict:
    """Feed a whole file with one long event in the middle; report peak RSS and the ring's size."""
    with tempfile.TemporaryDirectory() as tmp:
        info, pk = demux(source)
        store, rec = _recorder(Path(tmp), info, pre_roll, lossless=True)
        ring_peak = 0.0
        ring_bytes = 0
        mid = pk[-1].time / 2
        started = ended = False
        for p in pk:
            rec.feed(p)
            if not started and p.time >= mid:
                rec.on_event(event("start", p.time))
                started = True
            if started and not ended and p.time >= mid + 3:
                rec.on_event(event("end", p.time))
                ended = True
            st = rec.stats()
            ring_peak, ring_bytes = max(ring_peak, st.ring_s), max(ring_bytes, st.ring_bytes)
        rec.close(60)
        st = rec.stats()  # the writer lags the feeder: its ring is fullest at the end
        ring_peak, ring_bytes = max(ring_peak, st.ring_s), max(ring_bytes, st.ring_bytes)
        store.close()
        del pk
    return {"source": str(source), "width": info.width, "height": info.height, "pre_roll": pre_roll,
            "ring_s_peak": ring_peak, "ring_bytes_peak": ring_bytes,
            "peak_rss_mb": peak_rss_mb()}


def mode_idle(source: Path, seconds: float) -> dict:
    """Feed packets in real time with no events for ``seconds``; nothing should reach the disk."""
    info, pk = demux(source)
    with tempfile.TemporaryDirectory() as tmp:
        store, rec = _recorder(Path(tmp), info, 5.0, lossless=False)
        before = write_bytes()
        t0 = time.monotonic()
        span = pk[-1].time + 0.1
        loop = 0
        while time.monotonic() - t0 < seconds:
            for p in pk:
                when = loop * span + p.time
                delay = t0 + when - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                rec.feed(type(p)(p.data, p.pts, p.dts, p.duration, p.keyframe, when, p.mono, p.wall))
                if time.monotonic() - t0 >= seconds:
                    break
            loop += 1
        written = write_bytes() - before
        rec.close(10)
        store.close()
    elapsed = time.monotonic() - t0
    return {"idle_s": round(elapsed, 1), "write_bytes": written, "per_hour": round(written * 3600 / elapsed)}


def mode_record(source: Path) -> dict:
    """One event covering the whole file: bytes written (part + final + index) per recorded minute."""
    info, pk = demux(source)
    with tempfile.TemporaryDirectory() as tmp:
        store, rec = _recorder(Path(tmp), info, 5.0, lossless=True)
        before = write_bytes()
        cpu0 = time.process_time()
        rec.on_event(event("start", pk[0].time))
        for p in pk:
            rec.feed(p)
        rec.on_event(event("end", pk[-1].time))
        rec.close(60)
        cpu = time.process_time() - cpu0
        written = write_bytes() - before
        clips = store.catalog.list_clips()
        seconds = sum(c.end_ts - c.start_ts for c in clips)
        clip_bytes = sum(c.bytes for c in clips)
        store.close()
    return {"recorded_s": round(seconds, 2), "clip_bytes": clip_bytes, "write_bytes": written,
            "per_recorded_minute": round(written * 60 / seconds), "write_amplification": round(written / clip_bytes, 2),
            "cpu_s_per_recorded_minute": round(cpu * 60 / seconds, 3), "packets": len(pk)}


def make_1080p(source: Path, out: Path, seconds: float = 20.0) -> None:
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-t", str(seconds), "-i", str(source), "-an", "-vf",
                    "scale=1920:1080", "-c:v", "libx264", "-preset", "ultrafast", "-b:v", "4M", "-g", "60",
                    "-pix_fmt", "yuv420p", str(out)], check=True, timeout=300)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("mode", choices=["rss", "idle", "record", "make-1080p"])
    ap.add_argument("--source", required=True, type=Path)
    ap.add_argument("--pre-roll", type=float, default=10.0)
    ap.add_argument("--seconds", type=float, default=180.0)
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    if args.mode == "make-1080p":
        make_1080p(args.source, args.out, args.seconds if args.seconds != 180.0 else 20.0)
        return
    result = {"rss": lambda: mode_rss(args.source, args.pre_roll), "idle": lambda: mode_idle(args.source, args.seconds),
              "record": lambda: mode_record(args.source)}[args.mode]()
    print(json.dumps(result))


if __name__ == "__main__":
    main()
