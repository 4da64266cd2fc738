"""Where a running node's anonymous memory is (#20.4): smaps by kind of mapping, and what Python holds.

Usage:
  python benchmarks/memory_where.py smaps PID        anonymous MB of a running daemon by kind of mapping
  PYTHONPATH=. python benchmarks/memory_where.py traced MAIN.mp4 SUB.mp4 [--cameras 4] [--seconds 40] [--json OUT]

``smaps`` reads ``/proc/PID/smaps`` (e.g. of ``daemon_bench.py rss``'s daemon): glibc's main heap, its other
arena's used part, Python's 1 MiB object arenas, other large blocks (mmap), thread stacks, libraries' own data.
``traced`` serves MAIN and SUB from the RTSP test server (/main, /sub; every camera opens both), runs the daemon
in this process (``Daemon(cfg)``: 10 s pre-roll, clips on, no broker) with ``tracemalloc`` on from the start and
prints, after ``--seconds``, what it sees (Python objects and numpy buffers) biggest first by where they were
made. ``tracemalloc``'s own bookkeeping swells this process's heaps, so read its smaps from a real daemon.
What ``tracemalloc`` does not see is C: onnxruntime, FFmpeg, OpenCV, and the heaps' free space.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import sys
import tempfile
import time
import tracemalloc
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))


def smaps_kinds(pid: str = "self") -> dict[str, float]:
    """Anonymous MB per kind of mapping of process ``pid``."""
    kinds: Counter[str] = Counter()
    current = ""
    size_kb = 0
    for line in open(f"/proc/{pid}/smaps"):
        parts = line.split()
        if re.match(r"^[0-9a-f]+-[0-9a-f]+ ", line):
            start, end = (int(x, 16) for x in parts[0].split("-"))
            size_kb = (end - start) // 1024
            name = parts[5] if len(parts) > 5 else ""
            if name == "[heap]":
                current = "glibc main heap"
            elif name.startswith("/"):
                current = "libraries' own data"
            elif name.startswith("["):
                current = "other " + name
            elif 8180 <= size_kb <= 8200:
                current = "thread stacks"
            elif size_kb == 1024:
                current = "Python object arenas (1 MiB)"
            elif size_kb > 16 * 1024:
                current = "glibc arena (used part) or reservation"
            elif size_kb > 1024:
                current = "large blocks (> 1 MiB: mmap)"
            else:
                current = "small mappings"
        elif parts[0] == "Anonymous:":
            kinds[current] += int(parts[1]) / 1024
    return {k: round(v, 1) for k, v in kinds.most_common()}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="mode", required=True)
    sm = sub.add_parser("smaps")
    sm.add_argument("pid")
    tr = sub.add_parser("traced")
    tr.add_argument("main", type=Path)
    tr.add_argument("sub", type=Path)
    tr.add_argument("--cameras", type=int, default=4)
    tr.add_argument("--seconds", type=float, default=40.0)
    tr.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    if args.mode == "smaps":
        print(json.dumps(smaps_kinds(args.pid), indent=1))
        return 0
    tracemalloc.start(8)
    from support.rtsp import RtspServer

    from edge import assets
    from edge.config import parse_config
    from edge.node.daemon import Daemon

    server = RtspServer(mounts={"/main": args.main, "/sub": args.sub}).start()
    tmp = Path(tempfile.mkdtemp(prefix="edgecam-memwhere-"))
    cams = {f"cam{i}": {"source": server.url_of("/main"), "detect_source": server.url_of("/sub"), "detect_fps": 5}
            for i in range(args.cameras)}
    cfg = parse_config({"node": {"id": "memwhere"}, "storage": {"path": str(tmp / "state")},
                        "api": {"enabled": False}, "mqtt": {"port": 1, "drain_timeout": 0},
                        "detector": {"model": str(assets.require(assets.MODEL_FP32))},
                        "clips": {"pre_roll": 10, "post_roll": 2, "max_clip": 60}, "cameras": cams})
    daemon = Daemon(cfg)
    try:
        daemon.start()
        time.sleep(args.seconds)
        snap = tracemalloc.take_snapshot()
        traced, peak = tracemalloc.get_traced_memory()
        status = dict(line.split(":", 1) for line in open("/proc/self/status") if ":" in line)
        top = []
        for stat in snap.statistics("traceback")[:12]:
            frames = [f"{f.filename.replace(str(ROOT) + '/', '')}:{f.lineno}" for f in stat.traceback]
            ours = [f for f in frames if f.startswith("edge/")]
            top.append({"mb": round(stat.size / 2**20, 2), "blocks": stat.count,
                        "where": (ours[-1] if ours else frames[-1])})
        doc = {"command": "python benchmarks/memory_where.py " + " ".join(sys.argv[1:]), "cameras": args.cameras,
               "seconds": args.seconds, "rss_anon_mb": round(int(status["RssAnon"].split()[0]) / 1024, 1),
               "vm_hwm_mb": round(int(status["VmHWM"].split()[0]) / 1024, 1),
               "traced_mb": round(traced / 2**20, 1), "traced_peak_mb": round(peak / 2**20, 1), "traced_top": top}
    finally:
        daemon.request_stop()
        daemon.shutdown()
        server.kill()
        shutil.rmtree(tmp, ignore_errors=True)
    print(json.dumps(doc, indent=1))
    if args.json:
        args.json.write_text(json.dumps(doc, indent=1) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
