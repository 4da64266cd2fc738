"""LAN API cost: loopback download speed, server CPU per MB, and detector fps with 4 downloads running.

Run:  PYTHONPATH=. .venv/bin/python benchmarks/api_bench.py [--seconds 20]
The server runs in this process on its own thread, as in the daemon; the detector stand-in is YOLOX-Nano
on onnxruntime (2 threads) in this process too; the 4 clients are curl processes (as a laptop would be).
"""

from __future__ import annotations

import argparse
import hashlib
import resource
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from support.clipcat import DictCatalog, StillView  # noqa: E402

from edge import assets  # noqa: E402
from edge.api.auth import hash_line  # noqa: E402
from edge.api.server import ApiServer  # noqa: E402

TOKEN = "bench-token-abcdefghijklmnopqrstuvwxyz0123456789"


def make_clip(cat: DictCatalog) -> Path:
    src = assets.video("highway-640x360-30fps.mp4")
    out = cat.root / "cam" / "big.mp4"
    out.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-stream_loop", "15", "-i", str(src), "-map", "0:v:0",
                    "-c", "copy", str(out)], check=True)
    cat.add_file("big", "cam/big.mp4", "cam", 0.0, 1.0, ("car",))
    return out


def curl(port: int, rate: str | None, out: str = "/dev/null") -> subprocess.Popen:
    url = f"http://127.0.0.1:{port}/api/v1/clips/big.mp4"
    cmd = ["curl", "-s", "-o", out, "-H", f"Authorization: Bearer {TOKEN}", url]
    if rate:
        cmd[1:1] = ["--limit-rate", rate]
    return subprocess.Popen(cmd)


def cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def single_download(port: int, size: int) -> tuple[float, float]:
    """(MB/s, server CPU s per 100 MB) for sequential full downloads by curl."""
    c0, t0, n = cpu(), time.perf_counter(), 0
    while time.perf_counter() - t0 < 5 or n < 3:
        curl(port, None).wait()
        n += 1
    dt, dc = time.perf_counter() - t0, cpu() - c0
    return n * size / dt / 1e6, dc / (n * size / 1e8)


def detector_fps(seconds: float, stop_clients: threading.Event | None = None) -> float:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 2
    sess = ort.InferenceSession(str(assets.find(assets.MODEL_FP32)), opts, providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name
    x = np.random.default_rng(0).integers(0, 255, (1, 3, 416, 416)).astype(np.float32)
    sess.run(None, {name: x})
    t0, n = time.perf_counter(), 0
    while time.perf_counter() - t0 < seconds:
        sess.run(None, {name: x})
        n += 1
    return n / (time.perf_counter() - t0)


def with_downloads(port: int, rate: str | None, seconds: float) -> tuple[float, float]:
    """Detector fps while 4 curl clients download in a loop; also total MB/s served."""
    stop, served = threading.Event(), [0]

    def loop() -> None:
        while not stop.is_set():
            p = curl(port, rate)
            p.wait()
            served[0] += 1

    threads = [threading.Thread(target=loop, daemon=True) for _ in range(4)]
    for t in threads:
        t.start()
    time.sleep(1.0)
    t0 = time.perf_counter()
    fps = detector_fps(seconds)
    elapsed = time.perf_counter() - t0
    stop.set()
    for t in threads:
        t.join()
    return fps, elapsed


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=15.0)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        cat = DictCatalog(Path(tmp) / "store")
        clip = make_clip(cat)
        size = clip.stat().st_size
        server = ApiServer(cat, StillView({}), "127.0.0.1", 0, [hash_line(TOKEN, "bench")])
        server.start()
        try:
            got = subprocess.run(["curl", "-s", "-H", f"Authorization: Bearer {TOKEN}",
                                  f"http://127.0.0.1:{server.port}/api/v1/clips/big.mp4"], capture_output=True).stdout
            assert hashlib.sha256(got).hexdigest() == cat.get("big").sha256
            mbps, cpu_per_100mb = single_download(server.port, size)
            print(f"clip {size / 1e6:.1f} MB; one client, loopback: {mbps:.0f} MB/s; "
                  f"server CPU {cpu_per_100mb:.2f} s per 100 MB")
            from edge.api.client import NodeClient, download

            t0 = time.perf_counter()
            download(NodeClient(server.url, TOKEN), "big", Path(tmp))
            rate = size / (time.perf_counter() - t0) / 1e6
            print(f"edgecam clips pull (python client, sha256 checked): {rate:.0f} MB/s")
            base = detector_fps(args.seconds)
            print(f"detector alone: {base:.1f} inferences/s (YOLOX-Nano FP32 416, 2 threads)")
            for rate in ("3M", None):
                fps, _ = with_downloads(server.port, rate, args.seconds)
                label = f"4 clients at {rate}B/s each" if rate else "4 unthrottled loopback clients"
                print(f"detector with {label}: {fps:.1f}/s ({(fps / base - 1) * 100:+.1f}%)")
        finally:
            server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
