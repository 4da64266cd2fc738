"""Run every benchmark, keep the raw results, and write BENCHMARKS.md (``make bench``).

Usage: python benchmarks/run_all.py [--quick] [--repeats N] [--only STEP ...] [--out BENCHMARKS.md]

Each step is a command line (the same one a reader can paste) whose stdout is JSON or the per-area script's
usual lines; results go to benchmarks/results.json with the command, start time and the load average
around it, and benchmarks/report.py renders them (plus benchmarks/soak.json from `make soak`) into
BENCHMARKS.md. --quick: one repeat, shorter windows, no `model prepare` (about 8 minutes here); the full run
(2 repeats, about 25-30 minutes on 2 cores) is what BENCHMARKS.md is meant to hold. --only re-runs some steps
and keeps the other steps' stored results.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks import report  # noqa: E402
from edge import assets  # noqa: E402

PY = sys.executable
VIDEOS = ["road-overhead-640x360-24fps.mp4", "street-securitycam-640x360-10fps.mp4", "highway-640x360-30fps.mp4",
          "pedestrians-800x450-24fps.mp4"]
RESULTS = ROOT / "benchmarks" / "results.json"


def shown(argv: list[str]) -> str:
    """The command as a reader would type it from the project root (venv python, relative paths)."""
    out = []
    for a in argv:
        a = ".venv/bin/python" if a == PY else a
        a = a.replace(str(ROOT) + "/", "")
        out.append(re.sub(r"^.*/shared/", "../shared/", a))
    return " ".join(shlex.quote(a) if " " in a else a for a in out)


def run(argv: list[str], timeout: float = 1800) -> dict:
    """Run one measuring command; its parsed output with the command, time and load around it."""
    load0, started = os.getloadavg()[0], datetime.now(timezone.utc)
    t0 = time.monotonic()
    proc = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    entry = {"command": shown(argv), "at": started.strftime("%Y-%m-%d %H:%M UTC"),
             "wall_s": round(time.monotonic() - t0, 1), "load": [round(load0, 1), round(os.getloadavg()[0], 1)]}
    if proc.returncode != 0:
        entry["error"] = (proc.stderr.strip() or proc.stdout.strip())[-400:]
        print(f"  FAILED: {entry['command']}: {entry['error'][-200:]}", file=sys.stderr)
        return entry
    text = proc.stdout.strip()
    try:
        entry["result"] = json.loads(text)
    except json.JSONDecodeError:
        entry["result"] = text
    print(f"  {entry['wall_s']:6.1f} s  {entry['command']}", file=sys.stderr)
    return entry


def video(name: str) -> Path:
    path = assets.video(name)
    if path is None:
        raise SystemExit(f"sample video {name} missing: run scripts/fetch-assets (make assets)")
    return path


def make_1080p(work: Path) -> Path:
    """The road clip scaled to 1920x1080 (libx264 ultrafast, GOP 2 s), as the issue's recipe says."""
    out = work / "road-1080p.mp4"
    if not out.exists():
        subprocess.run(["ffmpeg", "-v", "error", "-y", "-i", str(video(VIDEOS[0])), "-an", "-vf", "scale=1920:1080",
                        "-c:v", "libx264", "-preset", "ultrafast", "-g", "48", "-pix_fmt", "yuv420p", str(out)],
                       check=True, timeout=300)
    return out


def make_camera_streams(work: Path) -> tuple[Path, Path]:
    """A camera's two streams from the road clip: a 1920x1080 main encoded as IP cameras do (H.264 High,
    CABAC and deblocking on, no B-frames, 4 Mbit/s, GOP 2 s) and its 640x360 sub (1 Mbit/s)."""
    out = []
    for size, rate, name in (("1920:1080", "4M", "road-main-1080p.mp4"), ("640:360", "1M", "road-sub-360p.mp4")):
        path = work / name
        if not path.exists():
            subprocess.run(["ffmpeg", "-v", "error", "-y", "-i", str(video(VIDEOS[0])), "-an", "-vf", f"scale={size}",
                            "-c:v", "libx264", "-preset", "veryfast", "-profile:v", "high", "-bf", "0", "-g", "48",
                            "-b:v", rate, "-maxrate", rate, "-bufsize", rate, "-pix_fmt", "yuv420p", str(path)],
                           check=True, timeout=600)
        out.append(path)
    return out[0], out[1]


def steps(args: argparse.Namespace, work: Path) -> dict:
    """Step name -> function returning a list of entries (one per repeat or variant)."""
    reps = args.repeats or (1 if args.quick else 2)
    window = 15 if args.quick else 30
    edge = [PY, "-m", "edge"]
    b = "benchmarks/"

    def vision() -> list[dict]:
        out = [run([*edge, "bench", "--source", str(video(v)), "--json", "--baselines"]) | {"video": v}
               for _ in range(reps) for v in VIDEOS]
        street = str(video(VIDEOS[1]))
        return out + [run([*edge, "bench", "--source", street, "--json", "--detect-fps", "10"]) | {"video": VIDEOS[1]}]

    def int8() -> list[dict]:
        entry = run([*edge, "model", "prepare", "--out", str(work / "models")])
        manifest = work / "models" / "manifest.json"
        if manifest.exists():
            entry["result"] = json.loads(manifest.read_text())
        return [entry]

    def daemon_rss() -> list[dict]:
        seconds = str(30 if args.quick else 45)
        out = []
        for v in (VIDEOS[2], VIDEOS[1]):
            out += [run([PY, b + "daemon_bench.py", "rss", "--source", str(video(v)), "--seconds", seconds])
                    | {"video": v} for _ in range(reps)]
        big = str(make_1080p(work))
        out += [run([PY, b + "daemon_bench.py", "rss", "--source", big, "--pre-roll", "10", "--seconds", seconds])
                | {"video": "road-1080p"} for _ in range(reps)]
        out += [run([PY, b + "clips_bench.py", "rss", "--source", big, "--pre-roll", "10"]) | {"video": "road-1080p"}]
        return out

    def spin() -> list[dict]:
        street = [PY, b + "daemon_bench.py", "rss", "--source", str(video(VIDEOS[1])), "--seconds", "30"]
        return [run([*street, *flag]) | {"video": VIDEOS[1]} for _ in range(reps) for flag in ([], ["--spin"])]

    def outbox() -> list[dict]:
        return [run([PY, b + "outbox.py", "--dir", str(work)]) for _ in range(reps)]

    def disk() -> list[dict]:
        big = str(make_1080p(work))
        idle = str(30 if args.quick else 180)
        return [run([PY, b + "clips_bench.py", "idle", "--source", big, "--seconds", idle]) | {"what": "idle"},
                run([PY, b + "clips_bench.py", "record", "--source", str(video(VIDEOS[1]))]) | {"what": "record"},
                run([PY, b + "clips_bench.py", "record", "--source", big]) | {"what": "record"}]

    def api() -> list[dict]:
        return [run([PY, b + "api_bench.py", "--seconds", "10"]) for _ in range(reps)]

    def downloads() -> list[dict]:
        src = str(video(VIDEOS[2]))
        common = [PY, b + "daemon_bench.py", "downloads", "--source", src, "--seconds", str(window), "--rounds", "2"]
        return [run(common), run([*common, "--flat-out"])]

    def decode() -> list[dict]:
        return [run([PY, b + "decode.py", "--json"])]

    def streams() -> list[dict]:
        """#20: 1 and 4 cameras on the RTSP test server, main + sub against main only; the two clocks' skew."""
        main, sub = make_camera_streams(work)
        seconds = str(30 if args.quick else 60)
        out = []
        for cameras in ("1", "4"):
            # split with best-shot stills at the default budget, split without stills (the analysis alone),
            # main only (its best shots are cut from the decoded 1080p frames, free)
            for split, stills in ((True, None), (True, "0"), (False, None)):
                cmd = [PY, b + "daemon_bench.py", "rss", "--rtsp", "--source", str(main), "--cameras", cameras,
                       "--pre-roll", "10", "--seconds", seconds, *(["--detect-source", str(sub)] if split else []),
                       *(["--still-max-cpu", stills] if stills is not None else [])]
                out.append(run(cmd) | {"what": "node", "split": split})
        for feeders in ([], ["--two-feeders"]):
            out.append(run([PY, b + "stream_skew.py", "--seconds", "30", "--work", str(work), *feeders])
                       | {"what": "skew"})
        return out

    table = {"vision": vision, "decode": decode, "daemon_rss": daemon_rss, "spin": spin, "outbox": outbox, "disk": disk,
             "api": api, "downloads": downloads, "streams": streams}
    if not args.quick:
        table["int8"] = int8
    return table


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--repeats", type=int, default=0)
    ap.add_argument("--only", nargs="*", default=[])
    ap.add_argument("--out", type=Path, default=ROOT / "BENCHMARKS.md")
    ap.add_argument("--render-only", action="store_true", help="rewrite BENCHMARKS.md from stored results")
    args = ap.parse_args()
    stored = json.loads(RESULTS.read_text()) if RESULTS.exists() else {"steps": {}}
    if not args.render_only:
        with tempfile.TemporaryDirectory(prefix="edgecam-bench-") as tmp:
            table = steps(args, Path(tmp))
            for name, fn in table.items():
                if args.only and name not in args.only:
                    continue
                print(f"{name}:", file=sys.stderr)
                stored["steps"][name] = fn()
        if not args.only:
            stored.pop("notes", None)  # hand-written remarks about a previous run (results.json "notes")
        stored["machine"] = report.machine()
        stored["mode"] = "quick" if args.quick else "full"
        RESULTS.write_text(json.dumps(stored, indent=1) + "\n")
    soak = ROOT / "benchmarks" / "soak.json"
    stored["soak"] = json.loads(soak.read_text()) if soak.exists() else None
    args.out.write_text(report.render(stored))
    print(f"wrote {args.out.relative_to(ROOT) if args.out.is_relative_to(ROOT) else args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
