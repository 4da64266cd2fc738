"""A file camera with a corrupt stretch, through the real daemon: it reads to the end and its clips play (#14.13)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from support.assets import model_path, video_path
from support.broker import free_port
from test_capture import corrupt_copy

ROOT = Path(__file__).resolve().parent.parent


def decoded_frames(clip: Path) -> tuple[int, float]:
    """(frames ffprobe decodes, container duration in s): what a player gets from the clip."""
    out = subprocess.run(["ffprobe", "-v", "quiet", "-count_frames", "-select_streams", "v:0", "-show_entries",
                          "stream=nb_read_frames:format=duration", "-of", "json", str(clip)],
                         capture_output=True, text=True, timeout=120, check=True)
    doc = json.loads(out.stdout)
    return int(doc["streams"][0]["nb_read_frames"]), float(doc["format"]["duration"])


@pytest.mark.slow  # ~10 s: a whole daemon run; tests/test_capture.py checks the skipping itself in the default run
def test_corrupt_file_camera_runs_to_the_end_and_records_playable_clips(tmp_path: Path) -> None:
    model_path()
    bad = corrupt_copy(video_path("road"), tmp_path / "road-corrupt.mp4")
    cfg = tmp_path / "edgecam.toml"
    cfg.write_text(f"""
[mqtt]
port = {free_port()}
drain_timeout = 1
[storage]
path = "{tmp_path / 'state'}"
[api]
enabled = false
[clips]
pre_roll = 2
post_roll = 1
[cameras.road]
source = "{bad}"
detect_fps = 2
""")
    proc = subprocess.run([sys.executable, "-m", "edge", "run", "-c", str(cfg)], cwd=ROOT, capture_output=True,
                          text=True, timeout=240)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-3000:]
    assert "camera road: finished: end of file after" in out and "undecodable packets skipped" in out, out[-3000:]
    assert "corrupt video" not in out and "Traceback" not in out
    clips = sorted((tmp_path / "state").rglob("*.mp4"))
    assert clips, out[-3000:]
    decoded = [decoded_frames(clip) for clip in clips]
    assert all(frames > 10 and duration > 1.0 for frames, duration in decoded), decoded
    assert max(frames for frames, _ in decoded) > 300, decoded  # the clip across the corrupt middle plays through
