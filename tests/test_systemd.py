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
    assert d["SystemCallFilter"][0] == "@system-service"


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
