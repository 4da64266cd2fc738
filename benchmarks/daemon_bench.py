"""The real daemon (`python -m edge run -c CFG`) on a looping file: peak RSS, CPU, and fps under downloads.

Usage:
  PYTHONPATH=. python benchmarks/daemon_bench.py rss --source FILE [--detect-source SUB] [--cameras N]
                                                      [--pre-roll 10] [--seconds 60]
  PYTHONPATH=. python benchmarks/daemon_bench.py rss --rtsp --source MAIN [--detect-source SUB] --cameras 4
  PYTHONPATH=. python benchmarks/daemon_bench.py downloads --source FILE [--seconds 30] [--rounds 2] [--flat-out]

Each run provisions a node into a temp root with scripts/provision (config, LAN token, signing key), starts a
local mosquitto, and runs the daemon as a subprocess on the file with `loop = true` (and `realtime = true`
unless --flat-out), so it behaves like a live camera. `rss` samples /proc/PID/status every 0.5 s and reports
VmHWM (peak RSS), the peaks of its private (RssAnon) and file-backed (RssFile: shared-library pages, shared with
every other process and dropped by the kernel under pressure) parts, and the daemon's CPU-s per wall-s.
`--rtsp` serves the file(s) from the RTSP test server (`tests/support/rtsp.py`, one process, mounts /main and
/sub that every camera opens) instead of looping files; the last MQTT `stats` message (sent every 10 s) gives
each camera's analysis fps and dropped frames and the shared detector's busy share.
`downloads` waits for a finished clip, then alternates
windows of no downloads and of 4 parallel unthrottled `curl` downloads of that clip through the LAN API (with
the provisioned token), and reads the analysed-frame counter from the daemon's progress log line (every 5 s).
Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from support.broker import Broker, free_port, wait_port  # noqa: E402
from support.rtsp import RtspServer  # noqa: E402

PROGRESS = re.compile(r"^(\S+ \S+) INFO\s+\S+ camera \S+: [\d.]+ s of video, (\d+) frames analysed")
CLK = os.sysconf("SC_CLK_TCK")
WARM_UP_S = 15.0  # rss: CPU is also given from here to the end (start-up's imports and model load left out)
# --spin: the daemon with onnxruntime's intra-op threads spinning between calls (onnxruntime's default, which
# edge/vision/detector.py turns off): an experiment to measure what that setting saves, not a daemon option.
SPIN = """import onnxruntime as ort, runpy, sys
_init = ort.InferenceSession.__init__
def _patched(self, path, sess_options=None, *a, **k):
    sess_options = sess_options or ort.SessionOptions()
    sess_options.add_session_config_entry("session.intra_op.allow_spinning", "1")
    _init(self, path, sess_options, *a, **k)
ort.InferenceSession.__init__ = _patched
sys.argv = ["edge", *sys.argv[1:]]
runpy.run_module("edge", run_name="__main__")
"""


class Node:
    """A provisioned node in a temp root, run as a subprocess against a local mosquitto."""

    def __init__(self, tmp: Path, source: Path, pre_roll: float, realtime: bool, spin: bool = False,
                 detect_source: Path | None = None, cameras: int = 1, rtsp: bool = False,
                 still_max_cpu: float | None = None) -> None:
        self.tmp, self.api_port, self.spin = tmp, free_port(), spin
        self.broker = Broker(tmp / "broker", persistence=False).start()
        self.rtsp: RtspServer | None = None
        main, sub, playback = str(source), str(detect_source) if detect_source else None, f"""
realtime = {str(realtime).lower()}
loop = true"""
        if rtsp:
            mounts = {"/main": source, **({"/sub": detect_source} if detect_source else {})}
            self.rtsp = RtspServer(mounts=mounts).start()
            main, sub, playback = self.rtsp.url_of("/main"), self.rtsp.url_of("/sub") if sub else None, ""
        template = tmp / "bench-template.toml"
        template.write_text(f"""
[node]
id = "bench"
[mqtt]
host = "127.0.0.1"
port = 1883
stats_interval = 10
[storage]
path = "{tmp / 'root/var/lib/edgecam'}"
[clips]
pre_roll = {pre_roll}
post_roll = 2
max_clip = 30
{f"still_max_cpu = {still_max_cpu}" if still_max_cpu is not None else ""}
[api]
listen = "127.0.0.1:{self.api_port}"
tokens = []
""" + "".join(f"""
[cameras.cam{i if i else ""}]
source = "{main}"
{f'detect_source = "{sub}"' if sub else ""}{playback}
detect_fps = 5
""" for i in range(cameras)))
        run = subprocess.run([sys.executable, str(ROOT / "scripts/provision"), "--template", str(template),
                              "--node-id", "bench", "--broker", f"127.0.0.1:{self.broker.port}", "--no-tls",
                              "--root", str(tmp / "root")], capture_output=True, text=True, timeout=120)
        if run.returncode != 0:
            raise SystemExit("provision failed: " + run.stderr.strip()[-300:])
        self.token = next(ln for ln in run.stdout.splitlines() if "LAN API token" in ln).rsplit(" ", 1)[1]
        self.config = tmp / "root/etc/edgecam/edgecam.toml"
        self.log = tmp / "node.log"
        self.proc: subprocess.Popen | None = None

    def start(self) -> Node:
        entry = ["-c", SPIN] if self.spin else ["-m", "edge"]
        self.proc = subprocess.Popen([sys.executable, *entry, "run", "-c", str(self.config)], cwd=ROOT,
                                     stdout=open(self.log, "w"), stderr=subprocess.STDOUT)
        return self

    def status(self) -> dict[str, int]:
        assert self.proc is not None
        fields = dict(ln.split(":", 1) for ln in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines()
                      if ":" in ln)
        return {k: int(fields[k].split()[0]) for k in ("VmHWM", "VmRSS", "RssAnon", "RssFile", "Threads")}

    def cpu_s(self) -> float:
        assert self.proc is not None
        parts = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(parts[11]) + int(parts[12])) / CLK

    def progress(self) -> list[tuple[float, int]]:
        """(unix time, frames analysed) from the daemon's progress lines."""
        out = []
        for line in self.log.read_text(errors="replace").splitlines():
            m = PROGRESS.match(line)
            if m:
                out.append((datetime.strptime(m.group(1), "%Y-%m-%d %H:%M:%S,%f").timestamp(), int(m.group(2))))
        return out

    def stop(self) -> int:
        rc = -1
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                rc = self.proc.wait(90)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                rc = self.proc.wait(10)
        self.broker.stop()
        if self.rtsp is not None:
            self.rtsp.kill()
        return rc


def last_stats(port: int, into: dict, stop: threading.Event) -> None:
    """Keep the newest ``stats`` body the node publishes (signed envelope or plain body)."""
    import paho.mqtt.client as mqtt

    def on_message(_c: object, _u: object, msg: mqtt.MQTTMessage) -> None:
        try:
            body = json.loads(msg.payload)
        except ValueError:
            return
        into.clear()
        into.update(body.get("body", body) if isinstance(body.get("body"), dict) else body)

    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="bench-stats")
    client.on_message = on_message
    client.on_connect = lambda c, *_: c.subscribe("edgecam/bench/stats", qos=0)
    client.connect("127.0.0.1", port)
    client.loop_start()
    stop.wait()
    client.loop_stop()
    client.disconnect()


def mode_rss(source: Path, pre_roll: float, seconds: float, realtime: bool, spin: bool,
             detect_source: Path | None = None, cameras: int = 1, rtsp: bool = False,
             still_max_cpu: float | None = None) -> dict:
    with tempfile.TemporaryDirectory(prefix="daemon-bench-") as tmp:
        node = Node(Path(tmp), source, pre_roll, realtime, spin, detect_source, cameras, rtsp,
                    still_max_cpu).start()
        peak: dict[str, int] = {}
        top = {"RssAnon": 0, "RssFile": 0}
        stats: dict = {}
        done = threading.Event()
        listener = threading.Thread(target=last_stats, args=(node.broker.port, stats, done), daemon=True)
        listener.start()
        t0, cpu0 = time.monotonic(), 0.0
        warm: tuple[float, float] | None = None  # (wall, cpu) once start-up (imports, model, connect) is over
        try:
            while time.monotonic() - t0 < seconds and node.proc.poll() is None:
                peak = node.status()
                top = {k: max(v, peak[k]) for k, v in top.items()}
                cpu0 = node.cpu_s()
                if warm is None and time.monotonic() - t0 >= WARM_UP_S:
                    warm = (time.monotonic(), cpu0)
                time.sleep(0.5)
            wall = time.monotonic() - t0
            steady = (cpu0 - warm[1]) / max(time.monotonic() - warm[0], 1e-9) if warm else None
        finally:
            done.set()
            rc = node.stop()
        frames = node.progress()
        det = stats.get("detector") or {}
    return {"source": source.name, "detect_source": detect_source.name if detect_source else None,
            "cameras": cameras, "pre_roll": pre_roll, "seconds": round(wall, 1), "realtime": realtime,
            "peak_rss_mb": round(peak.get("VmHWM", 0) / 1024, 1), "rss_end_mb": round(peak.get("VmRSS", 0) / 1024, 1),
            "peak_anon_mb": round(top["RssAnon"] / 1024, 1), "peak_file_mb": round(top["RssFile"] / 1024, 1),
            "threads": peak.get("Threads", 0), "cpu_s_per_wall_s": round(cpu0 / max(wall, 1e-9), 3),
            "cpu_s_per_s_after_warm_up": round(steady, 3) if steady is not None else None,
            "cpu_s_per_s_per_camera_after_warm_up": round(steady / cameras, 3) if steady is not None else None,
            "frames_analysed": frames[-1][1] if frames else 0, "spin": spin, "exit_code": rc, "rtsp": rtsp,
            "still_max_cpu": still_max_cpu,
            "fps": stats.get("fps"), "dropped_frames": stats.get("dropped_frames"),
            "detector_busy_share": det.get("busy_share"), "detector_cameras": det.get("cameras")}


def api_get(node: Node, path: str) -> bytes:
    req = urllib.request.Request(f"http://127.0.0.1:{node.api_port}{path}",
                                 headers={"Authorization": f"Bearer {node.token}"})
    with urllib.request.urlopen(req, timeout=10) as resp:
        return resp.read()


def wait_for_clip(node: Node, timeout: float, min_bytes: int = 1_000_000) -> dict:
    """The biggest finished clip once one reaches ``min_bytes`` (or the biggest at the timeout)."""
    deadline, clips = time.monotonic() + timeout, []
    while time.monotonic() < deadline:
        try:
            clips = json.loads(api_get(node, "/api/v1/clips"))
        except OSError:
            clips = []
        clips = clips.get("clips", clips) if isinstance(clips, dict) else clips
        if clips and max(c.get("bytes", 0) for c in clips) >= min_bytes:
            break
        time.sleep(2)
    if not clips:
        raise SystemExit("no clip was recorded")
    return max(clips, key=lambda c: c.get("bytes", 0))


def downloading(node: Node, clip_id: str, stop: threading.Event, served: list[int]) -> None:
    """One client: curl fetching the clip 10 times per process over one keep-alive connection, until told."""
    url = f"http://127.0.0.1:{node.api_port}/api/v1/clips/{clip_id}.mp4"
    while not stop.is_set():
        urls = [a for _ in range(10) for a in (url, "-o", "/dev/null")]
        out = subprocess.run(["curl", "-s", "-w", "%{size_download}\\n", "-H", f"Authorization: Bearer {node.token}",
                              *urls], capture_output=True, text=True)
        served[0] += sum(int(float(x)) for x in out.stdout.split())


def fps_between(points: list[tuple[float, int]], start: float, end: float) -> float:
    inside = [p for p in points if start <= p[0] <= end]
    if len(inside) < 2:
        return 0.0
    return (inside[-1][1] - inside[0][1]) / (inside[-1][0] - inside[0][0])


def mode_downloads(source: Path, seconds: float, rounds: int, realtime: bool) -> dict:
    windows: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="daemon-bench-") as tmp:
        node = Node(Path(tmp), source, 2.0, realtime).start()
        try:
            wait_port(node.api_port, 90)
            clip = wait_for_clip(node, 180)
            time.sleep(5)
            for _ in range(rounds):
                for clients in (0, 4):
                    stop, served = threading.Event(), [0]
                    workers = [threading.Thread(target=downloading, args=(node, clip["id"], stop, served))
                               for _ in range(clients)]
                    for w in workers:
                        w.start()
                    start, cpu0 = time.time(), node.cpu_s()
                    time.sleep(seconds)
                    end, cpu1 = time.time(), node.cpu_s()
                    stop.set()
                    for w in workers:
                        w.join(60)
                    windows.append({"clients": clients, "start": start, "end": end,
                                    "mb_per_s": round(served[0] / (end - start) / 1e6, 1),
                                    "daemon_cpu_s_per_s": round((cpu1 - cpu0) / (end - start), 3)})
                    time.sleep(1)
            time.sleep(6)  # one more progress line after the last window
        finally:
            rc = node.stop()
        points = node.progress()
    for w in windows:
        w["analysed_fps"] = round(fps_between(points, w.pop("start"), w.pop("end")), 2)
    idle = [w["analysed_fps"] for w in windows if w["clients"] == 0]
    busy = [w["analysed_fps"] for w in windows if w["clients"] == 4]
    base, loaded = sum(idle) / len(idle), sum(busy) / len(busy)
    return {"source": source.name, "realtime": realtime, "seconds": seconds, "clip_bytes": clip.get("bytes"),
            "windows": windows, "fps_idle": round(base, 2), "fps_downloads": round(loaded, 2),
            "fps_drop_pct": round((1 - loaded / base) * 100, 1) if base else None, "exit_code": rc}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("mode", choices=["rss", "downloads"])
    ap.add_argument("--source", required=True, type=Path)
    ap.add_argument("--pre-roll", type=float, default=2.0)
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--flat-out", action="store_true", help="realtime = false: decode as fast as possible")
    ap.add_argument("--spin", action="store_true", help="rss: onnxruntime threads spin (its default; experiment)")
    ap.add_argument("--detect-source", type=Path, help="rss: a second stream analysed (source is then only recorded)")
    ap.add_argument("--cameras", type=int, default=1, help="rss: this many cameras, each on the same file(s)")
    ap.add_argument("--rtsp", action="store_true", help="rss: serve the file(s) from the RTSP test server")
    ap.add_argument("--still-max-cpu", type=float, help="rss: [clips] still_max_cpu (0: best shots never decode "
                    "the record stream)")
    args = ap.parse_args()
    if args.mode == "rss":
        detect = args.detect_source.resolve() if args.detect_source else None
        result = mode_rss(args.source.resolve(), args.pre_roll, args.seconds, not args.flat_out, args.spin,
                          detect, args.cameras, args.rtsp, args.still_max_cpu)
    else:
        result = mode_downloads(args.source.resolve(), args.seconds, args.rounds, not args.flat_out)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
