"""Peak RSS of the recorder with a 1080p source and a 10 s pre-roll stays well under 200 MB."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from support.assets import video_path  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "benchmarks" / "clips_bench.py"


def test_1080p_ten_second_pre_roll_rss(tmp_path: Path):
    source = tmp_path / "1080p.mp4"
    subprocess.run([sys.executable, str(BENCH), "make-1080p", "--source", str(video_path("street")),
                    "--out", str(source), "--seconds", "14"], check=True, timeout=300)
    out = subprocess.run([sys.executable, str(BENCH), "rss", "--source", str(source), "--pre-roll", "10"],
                         check=True, capture_output=True, text=True, timeout=300)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["height"] == 1080
    assert result["ring_s_peak"] >= 10.0  # the ring really held 10 s of 1080p packets
    assert result["peak_rss_mb"] < 200, result
