"""The systemd unit: verifies clean, keeps camera access, and scores <= 2.0 on systemd's exposure scale."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

UNIT_DIR = Path(__file__).resolve().parent.parent / "systemd"
EXEC = "/opt/edgecam/.venv/bin/edgecam"

pytestmark = pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze not installed")


def unit_text() -> str:
    return (UNIT_DIR / "edgecam.service").read_text()


def staged(tmp: Path, extra: str = "") -> Path:
    """The unit with ExecStart pointing at a binary that exists here (verify checks it), plus a drop-in."""
    path = tmp / "edgecam.service"
    path.write_text(unit_text().replace(EXEC, shutil.which("true") or "/bin/true") + extra)
    return path


def exposure(unit: Path) -> float:
    out = subprocess.run(["systemd-analyze", "security", "--offline=yes", str(unit)],
                         capture_output=True, text=True, timeout=60)
    m = re.search(r"Overall exposure level for edgecam\.service: ([0-9.]+)", out.stdout)
    assert m, out.stdout + out.stderr
    return float(m.group(1))


def directives(text: str) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for line in text.splitlines():
        if "=" in line and not line.lstrip().startswith(("#", ";")):
            key, value = line.split("=", 1)
            found.setdefault(key.strip(), []).append(value.strip())
    return found


def test_unit_has_what_the_node_needs():
    d = directives(unit_text())
    assert d["Type"] == ["notify"] and d["NotifyAccess"] == ["main"] and d["Restart"] == ["on-failure"]
    assert int(d["WatchdogSec"][0]) > 0
    assert d["User"] == ["edgecam"] and d["StateDirectory"] == ["edgecam"]
    assert d["ExecStart"] == [f"{EXEC} run -c /etc/edgecam/edgecam.toml"]
    assert d["DevicePolicy"] == ["closed"]
    assert set(d["DeviceAllow"]) == {"char-video4linux rw", "char-media rw", "char-dma_heap rw"}
    assert d["CapabilityBoundingSet"] == [""] and d["NoNewPrivileges"] == ["yes"]
    assert d["ProtectSystem"] == ["strict"] and d["PrivateTmp"] == ["yes"] and d["ProtectHome"] == ["yes"]
    assert d["SystemCallFilter"][0].split()[0] == "@system-service"


def test_unit_verifies_clean(tmp_path):
    out = subprocess.run(["systemd-analyze", "verify", str(staged(tmp_path))],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and out.stdout.strip() == "" and out.stderr.strip() == "", out.stdout + out.stderr


def test_unit_exposure_at_most_2(tmp_path):
    assert exposure(staged(tmp_path)) <= 2.0


def test_jetson_dropin_verifies_and_stays_under_2(tmp_path):
    dropin = (UNIT_DIR / "jetson-gpu.conf").read_text()
    unit = staged(tmp_path, "\n" + dropin)
    out = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and not (out.stdout + out.stderr).strip(), out.stdout + out.stderr
    assert exposure(unit) <= 2.0


WORKLOAD = r"""
import sys
from pathlib import Path
sys.path.insert(0, sys.argv[1])
from support import sandbox
sandbox.apply(sandbox.unit_syscalls(Path(sys.argv[2])), deny_write_execute=True)

import sqlite3, threading, time
import av, cv2, numpy as np, onnxruntime as ort
import paho.mqtt.client as mqtt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from edge.clock import clock_synchronised

assert clock_synchronised() is not None, "adjtimex blocked: time_ok could never be true"
with av.open(sys.argv[3]) as c:
    frames = [f.to_ndarray(format="bgr24") for _, f in zip(range(30), c.decode(video=0))]
small = cv2.resize(cv2.cvtColor(frames[-1], cv2.COLOR_BGR2GRAY), (160, 90))
opts = ort.SessionOptions(); opts.intra_op_num_threads = 2
sess = ort.InferenceSession(sys.argv[4], sess_options=opts, providers=["CPUExecutionProvider"])
out = sess.run(None, {sess.get_inputs()[0].name: np.zeros((1, 3, 416, 416), np.float32)})
db = sqlite3.connect(sys.argv[6]); db.execute("PRAGMA journal_mode=WAL"); db.execute("create table t(x)")
db.execute("insert into t values (1)"); db.commit()
sig = Ed25519PrivateKey.generate().sign(b"clip")
c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="sandbox")
c.connect("127.0.0.1", int(sys.argv[5])); c.loop_start()
info = c.publish("edgecam/sandbox/events", b"{}", qos=1); info.wait_for_publish(5)
c.loop_stop(); c.disconnect()
t = threading.Thread(target=time.sleep, args=(0.01,)); t.start(); t.join()
print("STACK-OK", len(frames), small.shape, out[0].shape, len(sig), info.is_published())
"""


def test_stack_runs_under_the_units_syscall_filter_and_wx(tmp_path, broker):
    """PyAV, OpenCV, onnxruntime, SQLite WAL, paho, cryptography, adjtimex: all under the unit's seccomp + W^X."""
    import ctypes.util
    import os
    import sys

    from support.assets import model_path, video_path

    if ctypes.util.find_library("seccomp") is None:
        pytest.skip("libseccomp not installed")
    if tuple(int(x) for x in os.uname().release.split(".")[:2]) < (6, 3):
        pytest.skip("kernel has no PR_SET_MDWE")
    video, model = video_path("road"), model_path()
    tests = Path(__file__).resolve().parent
    out = subprocess.run(
        [sys.executable, "-c", WORKLOAD, str(tests), str(UNIT_DIR / "edgecam.service"), str(video), str(model),
         str(broker.port), str(tmp_path / "w.db")],
        capture_output=True, text=True, timeout=120, cwd=tests.parent,
        env={**os.environ, "PYTHONPATH": str(tests.parent)},
    )
    assert out.returncode == 0 and "STACK-OK 30 (90, 160) (1, 3549, 85) 64 True" in out.stdout, (
        out.stdout + out.stderr[-3000:])
