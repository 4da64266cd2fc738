"""A camera's two streams made from one shared video: a 1920x1080 main and a 640x360 sub (same frames, same GOP)."""

from __future__ import annotations

import subprocess
from pathlib import Path

GOP = 24  # frames: one keyframe a second at the road clip's 23.98 fps (opens fast, short pre-roll GOPs)


def make_streams(video: Path, out: Path) -> tuple[Path, Path]:
    """(main, sub) beside each other in ``out``; libx264 ultrafast, so a few CPU-seconds for the 20 s road clip."""
    out.mkdir(parents=True, exist_ok=True)
    made = []
    for name, size in (("main", "1920:1080"), ("sub", "640:360")):
        path = out / f"{name}.mp4"
        if not path.exists():
            subprocess.run(["ffmpeg", "-v", "error", "-y", "-i", str(video), "-an", "-vf", f"scale={size}",
                            "-c:v", "libx264", "-preset", "ultrafast", "-g", str(GOP), "-pix_fmt", "yuv420p",
                            str(path)], check=True, timeout=300)
        made.append(path)
    return made[0], made[1]


def video_size(path: Path) -> tuple[int, int]:
    """(width, height) of the first video stream, as ffprobe reads it."""
    run = subprocess.run(["ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries",
                          "stream=width,height", "-of", "csv=p=0", str(path)],
                         capture_output=True, text=True, check=True, timeout=60)
    w, h = run.stdout.strip().split(",")[:2]
    return int(w), int(h)
