"""Soak (``make soak``): looping RTSP cameras into the real daemon for a while.

EDGECAM_SOAK_CAMERAS cameras (default 4) for EDGECAM_SOAK_MINUTES (default 30).

Faults every few minutes, alternating: the broker killed for 20 s, the camera
server restarted (one gst-rtsp-server, one shared mount that every camera reads: a restart drops all
of them at once). The daemon's RSS, open fds and threads are sampled every 10 s
and drawn to ``docs/soak.png`` (matplotlib: ``pip install -e '.[bench]'``), the report's figure
(samples in ``benchmarks/soak.csv``, summary in
``benchmarks/soak.json``, which ``benchmarks/run_all.py`` folds into BENCHMARKS.md; EDGECAM_SOAK_OUT moves all three).
Pass: RSS grows less than EDGECAM_SOAK_RSS_MB (20) after the warm-up (5 min, or a
third of a shorter run) by a least-squares fit; fds and threads end within a
small margin of their warm-up level; the daemon survives and exits cleanly; and
a persistent QoS-1 consumer (`edgecam central run`, SQLite) holds every seq the
node's outbox ever gave, with no gap.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

import pytest
from support.assets import model_path, video_path
from support.broker import Broker, free_port
from support.node import extra_cameras, provision_node
from support.rtsp import RtspServer, require_rtsp
from support.soakplot import Sample, plot, read_proc, summarise

MINUTES = float(os.environ.get("EDGECAM_SOAK_MINUTES", "30"))
CAMERAS = int(os.environ.get("EDGECAM_SOAK_CAMERAS", "4"))
RSS_BOUND_MB = float(os.environ.get("EDGECAM_SOAK_RSS_MB", "20"))
FD_MARGIN, THREAD_MARGIN = 16, 8
SAMPLE_EVERY_S = 10.0
ROOT = Path(__file__).resolve().parent.parent
OUT = Path(os.environ.get("EDGECAM_SOAK_OUT", ROOT / "benchmarks"))
PLOT = OUT / "soak.png" if "EDGECAM_SOAK_OUT" in os.environ else ROOT / "docs" / "soak.png"

pytestmark = [pytest.mark.slow, pytest.mark.timeout(int(MINUTES * 60 + 900))]


def spawn(args: list[str], log: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "edge", *args], cwd=ROOT, stdout=open(log, "a"),
                            stderr=subprocess.STDOUT)


def stop(proc: subprocess.Popen, timeout: float = 90) -> int:
    proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(10)
        return -9


def central_seqs(db: Path) -> list[int]:
    if not db.exists():
        return []
    with sqlite3.connect(db) as conn:
        return [r[0] for r in conn.execute("SELECT seq FROM events WHERE node='soak' ORDER BY seq")]


def node_last_seq(state: Path) -> int:
    with sqlite3.connect(state / "outbox.db") as conn:
        row = conn.execute("SELECT value FROM meta WHERE key='last_seq'").fetchone()
    return int(row[0]) if row else 0


class Sampler(threading.Thread):
    """Reads /proc for one pid every SAMPLE_EVERY_S until told to stop."""

    def __init__(self, pid: int) -> None:
        super().__init__(name="soak-sampler", daemon=True)
        self.pid, self.t0 = pid, time.monotonic()
        self.samples: list[Sample] = []
        self.halt = threading.Event()

    def run(self) -> None:
        while not self.halt.is_set():
            sample = read_proc(self.pid, time.monotonic() - self.t0)
            if sample is not None:
                self.samples.append(sample)
            self.halt.wait(SAMPLE_EVERY_S)


def fault_times(total_s: float) -> list[float]:
    """Every few minutes (at most 4, at least 30 s apart), leaving a quiet tail (a minute, or a quarter)."""
    period = max(30.0, min(240.0, total_s / 8))
    times, t = [], period
    while t < total_s - min(60.0, total_s / 4):
        times.append(t)
        t += period
    return times


def test_soak(tmp_path: Path) -> None:
    model_path()
    require_rtsp()
    total_s = MINUTES * 60
    warmup_s = min(300.0, total_s / 3)
    broker = Broker(tmp_path / "broker").start()
    camera = RtspServer(video_path("highway")).start()
    config, _token = provision_node(tmp_path, "soak", camera.url, broker.port, free_port(),
                                    camera_extra=extra_cameras(camera.url, CAMERAS))
    state = tmp_path / "root/var/lib/edgecam"
    db = tmp_path / "central.db"
    (tmp_path / "central.toml").write_text(f'[mqtt]\nhost = "127.0.0.1"\nport = {broker.port}\n'
                                           f'client_id = "soak-central"\n[database]\nurl = "sqlite:///{db}"\n'
                                           '\n[trust]\naccept_unsigned_until = "2100-01-01T00:00Z"\n')
    central = spawn(["central", "run", "-c", str(tmp_path / "central.toml")], tmp_path / "central.log")
    node = spawn(["run", "-c", str(config)], tmp_path / "node.log")
    sampler = Sampler(node.pid)
    sampler.start()
    faults: list[tuple[float, str]] = []
    started = datetime.now(timezone.utc)
    try:
        for i, at in enumerate(fault_times(total_s)):
            time.sleep(max(0.0, at - (time.monotonic() - sampler.t0)))
            assert node.poll() is None, "daemon died during the soak"
            kind = "broker" if i % 2 == 0 else "camera"
            faults.append((time.monotonic() - sampler.t0, kind))
            if kind == "broker":
                broker.kill()
                time.sleep(20)
                broker.start()
            else:
                camera.kill()
                time.sleep(3)
                camera.start()
        time.sleep(max(0.0, total_s - (time.monotonic() - sampler.t0)))
        assert node.poll() is None, "daemon died during the soak"
    finally:
        sampler.halt.set()
        sampler.join(15)
        rc = stop(node) if node.poll() is None else node.returncode
        camera.kill()
    try:
        last = node_last_seq(state)
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and len(central_seqs(db)) < last:
            time.sleep(1)
        seqs = central_seqs(db)
    finally:
        stop(central)
        broker.stop()

    summary = summarise(sampler.samples, warmup_s)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True)
    summary.update({"date": started.strftime("%Y-%m-%d %H:%M UTC"), "minutes": MINUTES, "video": "highway",
                    "cameras": CAMERAS, "commit": commit.stdout.strip() or None,
                    "faults": [[round(t, 1), k] for t, k in faults], "events_node": last,
                    "events_central": len(seqs), "seq_gaps": last - len(set(seqs)), "exit_code": rc,
                    "rss_bound_mb": RSS_BOUND_MB})
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "soak.json").write_text(json.dumps(summary, indent=2) + "\n")
    (OUT / "soak.csv").write_text("t_s,rss_kb,fds,threads\n" + "".join(
        f"{s.t:.1f},{s.rss_kb},{s.fds},{s.threads}\n" for s in sampler.samples))
    plot(sampler.samples, faults, warmup_s, PLOT,
         f"edgecam soak {summary['date']}: {MINUTES:g} min, {CAMERAS} camera(s) of highway 640x360 over RTSP, "
         f"RSS slope after warm-up {summary['rss_slope_mb_per_h']} MB/h", summary["rss_slope_mb_per_h"])
    log = (tmp_path / "node.log").read_text(errors="replace")

    assert rc == 0, f"daemon exit code {rc}"
    assert "Traceback" not in log
    assert last > 0, "the node produced no event"
    assert seqs == list(range(1, last + 1)), f"central holds {len(seqs)} of {last} seqs"
    assert summary["rss_growth_mb_fitted"] < RSS_BOUND_MB, summary
    assert summary["fds_end"] <= summary["fds_at_warmup"] + FD_MARGIN, summary
    assert summary["threads_end"] <= summary["threads_at_warmup"] + THREAD_MARGIN, summary
