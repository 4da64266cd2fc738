"""`make demo` as a new user meets it (#13.10): no needless pip run, a stop with the broker down says so."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from support.assets import model_path
from support.broker import free_port

ROOT = Path(__file__).resolve().parent.parent


def make_dry(target: str, venv: Path) -> str:
    proc = subprocess.run(["make", "-n", "-C", str(ROOT), target, f"VENV={venv}"], capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_install_runs_pip_only_when_the_packaging_changed(tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    (venv / "bin" / "python").touch()
    assert "pip install -q -e '.[prepare,central]'" in make_dry("install", venv)  # first time: install
    stamp = venv / ".edgecam-installed"
    stamp.touch()
    assert "pip install" not in make_dry("install", venv)  # nothing changed: no 20 s pip run
    newest = max((ROOT / "setup.py").stat().st_mtime, (ROOT / "pyproject.toml").stat().st_mtime)
    os.utime(stamp, (newest - 10, newest - 10))  # setup.py edited after the last install
    assert "pip install -q -e" in make_dry("install", venv)


def test_demo_config_is_valid(tmp_path: Path) -> None:
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        import demo
    finally:
        sys.path.remove(str(ROOT / "scripts"))
    from edge.config import doubtful, load_config, unusable

    cfg = load_config(demo.write_config(tmp_path / "demo-state", tmp_path / "video.mp4"))
    assert cfg.api.tokens and unusable(cfg) == [] and doubtful(cfg) == []


def test_stop_with_the_broker_down_says_what_it_waits_for(tmp_path: Path, caplog) -> None:
    from edge.config import parse_config
    from edge.node.daemon import Daemon
    from edge.types import Event, EventType

    model_path()
    cfg = parse_config({"storage": {"path": str(tmp_path)}, "clips": {"enabled": False},
                        "api": {"enabled": False}, "mqtt": {"port": free_port(), "drain_timeout": 1.5}})
    daemon = Daemon(cfg)
    daemon.start()
    daemon.outbox.submit(Event(id="e1", type=EventType.START, camera="gate", label="car", score=0.9, ts=time.time(),
                               time=0.0, box=(0.1, 0.1, 0.2, 0.2)))
    deadline = time.monotonic() + 10
    while daemon.outbox.outbox.depth() == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    with caplog.at_level(logging.INFO):
        began = time.monotonic()
        assert daemon.shutdown() is False
        took = time.monotonic() - began
    lines = [r.getMessage() for r in caplog.records if "waiting up to" in r.getMessage()]
    assert lines == ["outbox: the broker is not connected: waiting up to 1.5 s (mqtt.drain_timeout) for it, "
                     "then 1 event(s) stay in the outbox for the next start"]
    assert 1.4 < took < 6.0


@pytest.mark.slow  # a fresh venv, pip upgraded, a real editable install: ~40 s
def test_editable_install_prints_no_setuptools_warning(tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    # as the Makefile does: an old pip hides the build backend's warnings, a current one shows them
    subprocess.run([str(venv / "bin/pip"), "install", "-q", "--upgrade", "pip"], check=True, timeout=300,
                   capture_output=True)
    proc = subprocess.run([str(venv / "bin/pip"), "install", "-q", "--no-deps", "-e", str(ROOT)],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    assert "Editable installation" not in proc.stderr and "take precedence" not in proc.stderr, proc.stderr
    where = subprocess.run([str(venv / "bin/python"), "-c", "import edge; print(edge.__file__)"], cwd=tmp_path,
                           capture_output=True, text=True, timeout=60, check=True).stdout.strip()
    assert where == str(ROOT / "edge" / "__init__.py")
