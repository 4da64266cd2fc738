"""What grows at each fault (#20.5): the real daemon, one fault repeated N times, VmRSS after each.

Usage: python benchmarks/fault_growth.py --fault broker|camera [-n 10] [--cameras 1] [--settle 20] [--json OUT]

Starts a real mosquitto, the RTSP test server (the highway clip, looping) and ``python -m edge run`` on a
provisioned node (tests/support/node.py), waits ``--warmup`` seconds, then triggers the same fault N times
(broker: SIGKILL, down ``--down`` s, restarted; camera: the RTSP server killed and restarted after 3 s),
and reads VmRSS, fds and threads from /proc after each one has settled. The daemon's environment is
passed through, so ``MALLOC_ARENA_MAX=2 python benchmarks/fault_growth.py ...`` measures a mitigation.
Output: one JSON object (per-fault rows and the mean MB per fault after the first two).
"""

from __future__ import annotations

import argparse
import gc
import json
import logging
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import tracemalloc
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT))

from support.assets import video_path  # noqa: E402
from support.broker import Broker, free_port  # noqa: E402
from support.node import extra_cameras, provision_node  # noqa: E402
from support.rtsp import RtspServer  # noqa: E402
from support.soakplot import read_proc  # noqa: E402


class InProcess:
    """The daemon in this process (what ``edgecam run`` builds), so tracemalloc sees its Python heap."""

    def __init__(self, config: Path, log: Path) -> None:
        from edge.config import load_config
        from edge.node.daemon import Daemon

        handler = logging.FileHandler(log)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s"))
        logging.basicConfig(level=logging.INFO, handlers=[handler])
        tracemalloc.start(8)
        self.pid = os.getpid()
        self.daemon = Daemon(load_config(config))
        self.daemon.start()
        self.thread = threading.Thread(target=self.daemon.supervise, name="supervise", daemon=True)
        self.thread.start()

    def send_signal(self, _sig: int) -> None:
        self.daemon.request_stop()

    def wait(self, timeout: float) -> int:
        self.thread.join(timeout)
        self.daemon.shutdown()
        return 0

    def kill(self) -> None:
        pass


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--fault", choices=["broker", "camera", "none"], required=True)
    ap.add_argument("-n", type=int, default=10)
    ap.add_argument("--cameras", type=int, default=1)
    ap.add_argument("--warmup", type=float, default=60)
    ap.add_argument("--settle", type=float, default=20, help="seconds after each fault before sampling")
    ap.add_argument("--down", type=float, default=5, help="seconds the broker stays down")
    ap.add_argument("--json", type=Path)
    ap.add_argument("--keep", type=Path, help="work directory to keep (logs); default a temp dir")
    ap.add_argument("--tracemalloc", type=int, metavar="N", default=0,
                    help="run the daemon in this process (edge.node.Daemon, built by edge/node/build.py) with "
                         "tracemalloc, and print the N source lines whose Python allocations grew most from "
                         "the second fault to the last")
    args = ap.parse_args()

    tmp = args.keep or Path(tempfile.mkdtemp(prefix="edgecam-faults-"))
    tmp.mkdir(parents=True, exist_ok=True)
    broker = Broker(tmp / "broker").start()
    camera = RtspServer(video_path("highway")).start()
    config, _ = provision_node(tmp, "faults", camera.url, broker.port, free_port(),
                               camera_extra=extra_cameras(camera.url, args.cameras, 5))
    if args.tracemalloc:
        node: Any = InProcess(config, tmp / "node.log")
    else:
        node = subprocess.Popen([sys.executable, "-m", "edge", "run", "-c", str(config)], cwd=ROOT,
                                stdout=open(tmp / "node.log", "a"), stderr=subprocess.STDOUT, env=os.environ.copy())
    t0 = time.monotonic()
    rows: list[dict] = []
    snaps: list[tracemalloc.Snapshot] = []

    def sample(label: str) -> None:
        if args.tracemalloc:
            gc.collect()
            snaps.append(tracemalloc.take_snapshot().filter_traces(
                [tracemalloc.Filter(False, tracemalloc.__file__)]))
        s = read_proc(node.pid, time.monotonic() - t0)
        assert s is not None, "daemon died"
        rows.append({"t": round(s.t, 1), "after": label, "rss_mb": round(s.rss_kb / 1024, 2), "fds": s.fds,
                     "threads": s.threads})
        print(json.dumps(rows[-1]), file=sys.stderr, flush=True)

    try:
        time.sleep(args.warmup)
        sample("warmup")
        for i in range(args.n):
            if args.fault == "broker":
                broker.kill()
                time.sleep(args.down)
                broker.start()
            elif args.fault == "camera":
                camera.kill()
                time.sleep(3)
                camera.start()
            time.sleep(args.settle)
            sample(f"{args.fault} {i + 1}")
    finally:
        node.send_signal(signal.SIGTERM)
        try:
            node.wait(60)
        except subprocess.TimeoutExpired:
            node.kill()
        camera.kill()
        broker.stop()
    steps = [b["rss_mb"] - a["rss_mb"] for a, b in zip(rows[2:], rows[3:], strict=False)]
    top: list[str] = []
    if args.tracemalloc and len(snaps) >= 3:
        for stat in snaps[-1].compare_to(snaps[2], "lineno")[:args.tracemalloc]:
            top.append(f"{stat.size_diff / 1024:+.1f} KiB {stat.count_diff:+d} blocks  {stat.traceback}")
            print(top[-1], file=sys.stderr)
        rows[-1]["traced_mb"] = round(sum(t.size for t in snaps[-1].traces) / 2**20, 2)
    out = {"fault": args.fault, "n": args.n, "cameras": args.cameras, "rows": rows,
           "mb_per_fault_after_2": round(sum(steps) / len(steps), 3) if steps else None,
           "malloc_arena_max": os.environ.get("MALLOC_ARENA_MAX"), "workdir": str(tmp), "tracemalloc_top": top}
    text = json.dumps(out, indent=2)
    if args.json:
        args.json.write_text(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
