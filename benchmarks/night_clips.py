"""Make night versions of the shared clips with ffmpeg, into a cache directory (never committed as media).

Usage: python benchmarks/night_clips.py [--out DIR] [--seconds S] [--force]

Per shared video: ``<stem>.night.mp4`` (``eq=brightness=-0.3:gamma=0.5`` plus temporal sensor noise
``noise=alls=20:allf=t``), ``<stem>.dim.mp4`` (a third of the light, less colour, noise) and
``<stem>.ir.mp4`` (an IR-style greyscale version: no colour, flat and a little bright, with noise).
From the first second of the street clip, where nothing moves, false-event clips with nothing in them
that should start an event:

- ``static.night.mp4``: the still night scene with sensor noise;
- ``static.irswitch.mp4``: the same, switching to IR greyscale (bright, no colour) half-way;
- ``static.headlights.mp4``: headlight sweeps: two bright soft blobs crossing, each with an elongated
  reflection below it as on a wet road, and the light cone they throw on the scene;
- ``static.insect.mp4``: an IR scene with a big out-of-focus bright blob wandering near the lens.

Files are remade only when missing (or with --force). Prints the directory on stdout.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from edge import assets  # noqa: E402

VIDEOS = ["road-overhead-640x360-24fps.mp4", "street-securitycam-640x360-10fps.mp4", "highway-640x360-30fps.mp4",
          "pedestrians-800x450-24fps.mp4"]
STATIC_FROM = "street-securitycam-640x360-10fps.mp4"
NIGHT = "eq=brightness=-0.3:gamma=0.5,noise=alls=20:allf=t"
# A camera with a third of the light: the signal scales down (it does not shift down as with the recipe above,
# which clips a dark road to black), chroma fades, and noise stays.
DIM = "eq=contrast=0.3:brightness=-0.35:saturation=0.6,noise=alls=12:allf=t"
IR = "hue=s=0,eq=brightness=-0.05:contrast=0.8:gamma=1.2,noise=alls=16:allf=t"
ENCODE = ["-c:v", "libx264", "-preset", "veryfast", "-crf", "20", "-pix_fmt", "yuv420p", "-g", "20", "-an"]


def default_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "edgecam" / "night"


def ffmpeg(args: list[str]) -> None:
    cmd = ["ffmpeg", "-hide_banner", "-loglevel", "error", "-y", *args]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"ffmpeg failed ({done.returncode}): {done.stderr.strip()[:300]}")


def blob_png(path: Path, w: int, h: int, sigma: float) -> None:
    """A white soft disc with a Gaussian alpha: what a headlight or an insect near the lens looks like."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    a = np.exp(-(((xx - w / 2) / (sigma * w / h)) ** 2 + ((yy - h / 2) / sigma) ** 2) / 2.0)
    rgba = np.zeros((h, w, 4), np.uint8)
    rgba[..., :3] = 255
    rgba[..., 3] = np.clip(a * 255, 0, 255).astype(np.uint8)
    cv2.imwrite(str(path), rgba)


def night_versions(video: Path, out: Path, force: bool, seconds: float | None) -> list[Path]:
    stem = video.name.removesuffix(".mp4")
    made = []
    for kind, chain in (("night", NIGHT), ("dim", DIM), ("ir", IR)):
        dest = out / f"{stem}.{kind}.mp4"
        if force or not dest.exists():
            limit = ["-t", str(seconds)] if seconds else []
            ffmpeg(["-i", str(video), *limit, "-vf", chain, *ENCODE, str(dest)])
        made.append(dest)
    return made


def static_clips(video: Path, out: Path, force: bool, seconds: float = 20.0) -> list[Path]:
    """Still night scenes (10 fps) with noise, an IR switch, headlight sweeps and an insect."""
    clips = {name: out / f"static.{name}.mp4" for name in ("night", "irswitch", "headlights", "insect")}
    if not force and all(p.exists() for p in clips.values()):
        return list(clips.values())
    half = seconds / 2
    with tempfile.TemporaryDirectory() as tmp:
        still = Path(tmp) / "still.png"
        ffmpeg(["-ss", "0.5", "-i", str(video), "-frames:v", "1", str(still)])
        head = Path(tmp) / "headlight.png"
        refl = Path(tmp) / "reflection.png"
        cone = Path(tmp) / "cone.png"
        bug = Path(tmp) / "insect.png"
        blob_png(head, 40, 40, 8)
        blob_png(refl, 30, 110, 22)
        blob_png(cone, 360, 180, 45)
        blob_png(bug, 180, 180, 40)
        loop = ["-loop", "1", "-framerate", "10", "-t", str(seconds), "-i", str(still)]
        ffmpeg([*loop, "-vf", NIGHT, *ENCODE, str(clips["night"])])
        ffmpeg([*loop, "-filter_complex",
                f"[0]split[a][b];[a]trim=0:{half},{NIGHT}[n];[b]trim={half}:{seconds},setpts=PTS-STARTPTS,{IR}[i];"
                "[n][i]concat=n=2:v=1", *ENCODE, str(clips["irswitch"])])
        # Two cars' lights cross from left to right and back, 6 s each, with their reflections and the
        # light cone they throw on the road (a car itself is not drawn: a light has no object shape).
        sweep = (f"[0]{NIGHT}[bg];[2]format=rgba,colorchannelmixer=aa=0.35[c];"
                 "[bg][c]overlay=x='-360+mod(t,10)*100':y=140:eval=frame[s1];"
                 "[s1][1]overlay=x='-40+mod(t,10)*100':y=170:eval=frame[s2];"
                 "[s2][3]overlay=x='-30+mod(t,10)*100':y=215:eval=frame[s3];"
                 "[s3][1]overlay=x='680-mod(t+5,10)*100':y=120:eval=frame[s4];"
                 "[s4][3]overlay=x='690-mod(t+5,10)*100':y=165:eval=frame")
        ffmpeg([*loop, "-loop", "1", "-i", str(head), "-loop", "1", "-i", str(cone), "-loop", "1", "-i", str(refl),
                "-filter_complex", sweep, "-t", str(seconds), *ENCODE, str(clips["headlights"])])
        insect = (f"[0]{IR}[bg];[1]format=rgba,colorchannelmixer=aa=0.8[b];"
                  "[bg][b]overlay=x='380+120*sin(t*1.7)+40*sin(t*5.3)':y='60+60*sin(t*1.1+1)+25*cos(t*4.1)'"
                  ":eval=frame")
        ffmpeg([*loop, "-loop", "1", "-i", str(bug), "-filter_complex", insect, "-t", str(seconds), *ENCODE,
                str(clips["insect"])])
    return list(clips.values())


def make_all(out: Path, force: bool = False, seconds: float | None = None) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    for name in VIDEOS:
        video = assets.video(name)
        if video is None:
            raise SystemExit(f"sample video {name} not available (run scripts/fetch-assets)")
        night_versions(video, out, force, seconds)
    src = assets.video(STATIC_FROM)
    assert src is not None
    static_clips(src, out, force)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=default_dir())
    ap.add_argument("--seconds", type=float, default=None, help="cut the night versions to this length")
    ap.add_argument("--force", action="store_true")
    args = ap.parse_args()
    print(make_all(args.out, args.force, args.seconds))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
