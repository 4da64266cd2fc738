"""``[plates] enabled = true`` without the extra: one warning line at start, the node runs on and exits 0."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from support.assets import model_path, video_path
from test_daemon import ROOT, write_config


def test_missing_plates_extra_is_one_line_and_the_node_runs_on(tmp_path: Path) -> None:
    model_path()
    short = tmp_path / "short.mp4"
    subprocess.run(["ffmpeg", "-v", "error", "-i", str(video_path("street")), "-t", "3", "-c", "copy", str(short)],
                   check=True, timeout=60)
    cfg = write_config(tmp_path, f'[cameras.street]\nsource = "{short}"\ndetect_fps = 2\n'
                                 "[clips]\nenabled = false\n[plates]\nenabled = true\n")
    shadow = tmp_path / "shadow"
    shadow.mkdir()
    (shadow / "rapidocr.py").write_text("")  # what a node without the extra resolves: no package, no models
    env = {**os.environ, "PYTHONPATH": f"{shadow}{os.pathsep}{ROOT}"}
    proc = subprocess.run([sys.executable, "-m", "edge", "run", "-c", str(cfg)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-3000:]
    lines = [ln for ln in out.splitlines() if "plates:" in ln]
    assert len(lines) == 1, lines
    assert "pip install 'edgecam[plates]'" in lines[0] and "runs on without plates" in lines[0]
    assert "end of file" in out and "Traceback" not in out
