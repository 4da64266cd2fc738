"""Render benchmarks/results.json (from run_all.py) and benchmarks/soak.json into BENCHMARKS.md."""

from __future__ import annotations

import os
import platform
import re
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from . import night_report, pi_estimate


def machine() -> dict[str, Any]:
    import av
    import cv2
    import numpy
    import onnxruntime

    cpuinfo = Path("/proc/cpuinfo").read_text()
    model = re.search(r"model name\s*:\s*(.*)", cpuinfo)
    found = re.search(r"(?:flags|Features)\s*:\s*(.*)", cpuinfo)
    flags = set(found.group(1).split()) if found else set()
    mem = re.search(r"MemTotal:\s*(\d+)", Path("/proc/meminfo").read_text())
    osr = Path("/etc/os-release").read_text() if Path("/etc/os-release").exists() else ""
    pretty = re.search(r'PRETTY_NAME="(.*)"', osr)
    return {"cpu": model.group(1).strip() if model else platform.processor(), "cores": os.cpu_count(),
            "simd": " ".join(sorted(flags & {"avx2", "avx512f", "avx512_vnni", "avx_vnni", "asimddp", "neon"})),
            "ram_gb": round(int(mem.group(1)) / 1024 / 1024, 1) if mem else None,
            "os": f"{pretty.group(1) if pretty else platform.system()}, kernel {platform.release()}",
            "python": platform.python_version(), "onnxruntime": onnxruntime.__version__, "pyav": av.__version__,
            "opencv": cv2.__version__, "numpy": numpy.__version__,
            "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")}


def rng(values: list[float], fmt: str = "{:g}") -> str:
    """'a' when one value or all equal, else 'lo-hi' (the spread of repeats on a noisy machine)."""
    values = [v for v in values if v is not None]
    if not values:
        return "-"
    lo, hi = min(values), max(values)
    return fmt.format(lo) if lo == hi else f"{fmt.format(lo)}-{fmt.format(hi)}"


def ok(entries: list[dict] | None) -> list[dict]:
    return [e for e in entries or [] if "result" in e]


def cmds(entries: list[dict]) -> str:
    seen: list[str] = []
    for e in entries:
        c = tmp(e["command"])
        if c not in seen:
            seen.append(c)
    return "\n".join(f"    {c}" for c in seen)


def tmp(command: str) -> str:
    """run_all's temporary work folder shown as $TMP."""
    return re.sub(r"/tmp/edgecam-bench-\w+", "$TMP", command)


def when(entries: list[dict]) -> str:
    loads = [x for e in entries for x in e.get("load", [])]
    ats = sorted(e["at"] for e in entries)
    span = ats[0] if ats[0] == ats[-1] else f"{ats[0]} to {ats[-1][11:]}"
    return f"Measured {span}, load average {rng(loads)} on {os.cpu_count()} cores"


def failures(entries: list[dict] | None) -> str:
    bad = [e for e in entries or [] if "error" in e]
    return "".join(f"\n\nFAILED: `{e['command']}`: {e['error'][-200:]}" for e in bad)


def section_vision(entries: list[dict]) -> str:
    rows = ok(entries)
    base = [e for e in rows if "baselines" in e["result"]]
    if not base:
        return "## Vision pipeline per video\n\nnot run" + failures(entries)
    stages = sorted({k for e in base for k in e["result"]["ms_per_analysed_frame"]},
                    key=lambda s: ["decode", "motion", "detect", "track"].index(s) if s in
                    ["decode", "motion", "detect", "track"] else 9)
    lines = ["## Vision pipeline per video (`edgecam bench`)", "",
             "Flat out on each file, detect_fps 5, the model `prepare` chose (FP32 where no manifest). ms per "
             "*analysed* frame; decode includes decoding every frame of the file. Ranges = the repeats. "
             + when(rows) + ".", "", cmds(rows), "",
             "| video | size | video s | analysed | " + " | ".join(f"{s} ms" for s in stages)
             + " | ms/detector call | CPU-s per video-s | peak RSS MB |",
             "|" + "---|" * (7 + len(stages))]
    by_video: dict[str, list[dict]] = {}
    for e in base:
        by_video.setdefault(e["video"], []).append(e["result"])
    for v, rs in by_video.items():
        r0 = rs[0]
        ms = [rng([r["ms_per_analysed_frame"].get(s) for r in rs]) for s in stages]
        lines.append(f"| {v} | {r0['size']} | {r0['video_s']} | {r0['analysed']} | " + " | ".join(ms)
                     + f" | {rng([r['detect_ms_per_call'] for r in rs])} | "
                     f"**{rng([r['cpu_s_per_video_s'] for r in rs])}** | {rng([r['peak_rss_mb'] for r in rs])} |")
    lines += ["", "### Detector calls with and without motion gating; baselines (same runs)", "",
              "*Gated* = the pipeline (motion first, detector only on motion crops). *Not gated* = a full-frame "
              "detection on every analysed frame (5/s). *Every frame* = a full-frame detection on every decoded "
              "frame (no gating, no rate limit). MOG2 = OpenCV's `createBackgroundSubtractorMOG2` at full "
              "resolution vs our motion stage (downscaled running average).", "",
              "| video | calls gated | frames with motion | calls not gated | CPU-s/video-s not gated | "
              "calls every frame | CPU-s/video-s every frame | MOG2 ms/frame | our motion ms/frame |",
              "|---|---|---|---|---|---|---|---|---|"]
    for v, rs in by_video.items():
        bl = [r["baselines"] for r in rs]
        lines.append(
            f"| {v} | {rng([r['detector_calls'] for r in rs])} | {rng([r['motion_frames'] for r in rs])} | "
            f"{bl[0]['full_frame_at_detect_fps']['detector_calls']} | "
            f"{rng([b['full_frame_at_detect_fps']['cpu_s_per_video_s'] for b in bl])} | "
            f"{bl[0]['full_frame_every_frame']['detector_calls']} | "
            f"{rng([b['full_frame_every_frame']['cpu_s_per_video_s'] for b in bl])} | "
            f"{rng([b['mog2_ms_per_frame'] for b in bl])} | "
            f"{rng([r['ms_per_analysed_frame'].get('motion') for r in rs])} |")
    ten = [e for e in rows if "baselines" not in e["result"]]
    for e in ten:
        r = e["result"]
        lines += ["", f"Street clip analysed at 10 fps (every frame of the 10 fps camera; `{e['command']}`): "
                  f"{r['analysed']} analysed frames, {r['detector_calls']} detector calls, "
                  f"**{r['cpu_s_per_video_s']} CPU-s per video-s**."]
    return "\n".join(lines) + failures(entries)


def section_decode(entries: list[dict]) -> str:
    rows = ok(entries)
    if not rows:
        return "## Decode\n\nnot run" + failures(entries)
    lines = ["## Decode (capture stage, PyAV)", "", "Best of 3 passes. " + when(rows) + ".", "", cmds(rows), "",
             "| video | frames | decode ms/frame | + BGR conversion ms/frame |", "|---|---|---|---|"]
    for r in rows[0]["result"]:
        lines.append(f"| {r['video']} | {r['frames']} | {r['decode_ms']} | {r['decode_bgr_ms']} |")
    return "\n".join(lines)


def section_int8(entries: list[dict] | None) -> str:
    rows = ok(entries)
    head = "## INT8 vs FP32 (`edgecam model prepare`)"
    if not rows or not isinstance(rows[0]["result"], dict) or "agreement" not in rows[0]["result"]:
        return (head + "\n\nNot re-run in this run (quick mode). Last measured figures: "
                "[benchmarks/quantization.md](benchmarks/quantization.md) (2026-11-29 13:50-14:02 UTC: FP32 "
                "28.6-62 ms vs INT8 30.2-73 ms median at 2 threads under load; agreement 93.3%, 99.1% for "
                "detections >= 0.5)." + failures(entries))
    m = rows[0]["result"]
    lat, agr = m.get("latency", {}), m["agreement"]
    lat_ms = {k: v for k, v in lat.items() if k not in ("threads", "provider", "what")}
    return "\n".join([
        head, "", when(rows) + ".", "", cmds(rows), "",
        f"- latency ({lat.get('what', 'median detect()')}, {lat.get('threads')} threads, {lat.get('provider')}): "
        + ", ".join(f"{k} **{v}**" for k, v in lat_ms.items()),
        f"- agreement with FP32 ({agr['match']}, {agr['images']} images): **{agr['share'] * 100:.1f}%** "
        f"({agr['matched']} matched); detections scoring >= 0.5: **{agr['share_high'] * 100:.1f}%**",
        f"- choice: **{m['choice']['precision']}** ({m['choice']['reason']}); prepare took "
        f"{m.get('prepare_seconds')} s",
        "", "Recipes tried and more latency runs: [benchmarks/quantization.md](benchmarks/quantization.md)."])


def section_memory(entries: list[dict] | None) -> str:
    rows = ok(entries)
    if not rows:
        return "## Memory\n\nnot run" + failures(entries)
    lines = ["## Memory: peak RSS of the real daemon", "",
             "`edgecam run` as a subprocess on a looping file (`realtime = true`, `loop = true`, detect_fps 5, "
             "a local mosquitto, LAN API on), provisioned by `scripts/provision`; peak RSS = VmHWM from "
             "/proc/PID/status; CPU = utime+stime from /proc/PID/stat over the run. " + when(rows) + ".", "",
             cmds(rows), "", "road-1080p is the road clip scaled by run_all.py: `ffmpeg -i "
             "../shared/data/video/road-overhead-640x360-24fps.mp4 -an -vf scale=1920:1080 -c:v libx264 -preset "
             "ultrafast -g 48 -pix_fmt yuv420p $TMP/road-1080p.mp4` (20 s, 24 fps, ~3.2 Mbit/s).", "",
             "| source | pre-roll s | run s | peak RSS MB | threads | daemon CPU-s per s |",
             "|---|---|---|---|---|---|"]
    for e in rows:
        r = e["result"]
        if "cpu_s_per_wall_s" in r:
            lines.append(f"| {e['video']} | {r['pre_roll']:g} | {r['seconds']} | **{r['peak_rss_mb']}** | "
                         f"{r['threads']} | {r['cpu_s_per_wall_s']} |")
    for e in rows:
        r = e["result"]
        if "ring_s_peak" in r:
            lines += ["", f"Clip recorder alone (`{tmp(e['command'])}`): peak RSS **{r['peak_rss_mb']} MB** with a "
                      f"{r['pre_roll']:g} s pre-roll at {r['width']}x{r['height']} "
                      f"(ring peak {r['ring_s_peak']:.1f} s, {r['ring_bytes_peak'] / 1e6:.1f} MB of packets)."]
    return "\n".join(lines) + failures(entries)


def section_spin(entries: list[dict] | None) -> str:
    rows = [e for e in ok(entries) if isinstance(e["result"], dict)]
    if not rows:
        return ""
    on = [e["result"]["cpu_s_per_wall_s"] for e in rows if e["result"].get("spin")]
    off = [e["result"]["cpu_s_per_wall_s"] for e in rows if not e["result"].get("spin")]
    frames_on = [e["result"]["frames_analysed"] for e in rows if e["result"].get("spin")]
    frames_off = [e["result"]["frames_analysed"] for e in rows if not e["result"].get("spin")]
    return "\n".join([
        "### onnxruntime thread spinning (the daemon's biggest CPU lever found)", "",
        "The same daemon run on the street clip (640x360 10 fps, real time) with the detector's onnxruntime threads "
        "spinning between calls (onnxruntime's default, forced with `--spin`) and not spinning (what "
        "edge/vision/detector.py sets since commit ec89ae4). " + when(rows) + ".", "", cmds(rows), "",
        f"- daemon CPU-s per s: spinning **{rng(on)}**, not spinning **{rng(off)}**; frames analysed in 30 s: "
        f"{rng(frames_on)} vs {rng(frames_off)} (the same work)"])


def _num(text: str, pattern: str) -> float | None:
    m = re.search(pattern, text)
    return float(m.group(1).replace(",", "")) if m else None


def section_outbox(entries: list[dict] | None) -> str:
    rows = [e for e in ok(entries) if isinstance(e["result"], str)]
    if not rows:
        return "## Outbox\n\nnot run" + failures(entries)
    texts = [e["result"] for e in rows]
    single = [_num(t, r"per event: \*\*([\d,.]+) events/s") for t in texts]
    batched = [_num(t, r"until flush\(\): \*\*([\d,.]+) events/s") for t in texts]
    drain = [_num(t, r"drained .*?\*\*([\d.]+) s\*\*") for t in texts]
    return "\n".join(["## Outbox (durable SQLite WAL, `synchronous=FULL`)", "", when(rows) + ".", "", cmds(rows), "",
                      f"- enqueue via the writer thread (batched transactions): **{rng(batched, '{:,.0f}')} events/s**",
                      f"- one transaction (fsync) per event, for comparison: {rng(single, '{:,.0f}')} events/s",
                      f"- 10,000-event backlog drained to a local mosquitto (QoS 1): **{rng(drain)} s**"])


def section_disk(entries: list[dict] | None) -> str:
    rows = ok(entries)
    if not rows:
        return "## Disk writes\n\nnot run" + failures(entries)
    lines = ["## Bytes written (clip recorder; `/proc/self/io` write_bytes)", "", when(rows) + ".", "", cmds(rows), ""]
    for e in rows:
        r = e["result"]
        if e.get("what") == "idle":
            lines.append(f"- idle (1080p fed in real time, no event, {r['idle_s']} s): {r['write_bytes']} bytes → "
                         f"**{r['per_hour']:,} bytes per idle hour**")
        else:
            src = e["command"].split("--source ")[-1].rsplit("/", 1)[-1]
            lines.append(f"- recording {src} ({r['recorded_s']} s, clip {r['clip_bytes'] / 1e6:.2f} MB): "
                         f"**{r['per_recorded_minute'] / 1e6:.1f} MB per recorded minute** (write amplification "
                         f"{r['write_amplification']}x: `.part` + final MP4 + index), "
                         f"{r['cpu_s_per_recorded_minute']} CPU-s per recorded minute")
    return "\n".join(lines) + failures(entries)


def section_api(api: list[dict] | None, downloads: list[dict] | None) -> str:
    lines = ["## LAN API: clip downloads and their cost to analysis", ""]
    rows = [e for e in ok(api) if isinstance(e["result"], str)]
    if rows:
        texts = [e["result"] for e in rows]
        one = rng([_num(t, r"loopback: (\d+) MB/s") for t in texts])
        cpu = rng([_num(t, r"server CPU ([\d.]+) s") for t in texts])
        pull = rng([_num(t, r"pull .*?: (\d+) MB/s") for t in texts])
        lines += [when(rows) + ".", "", cmds(rows), "",
                  f"- one curl client, loopback: **{one} MB/s**; server CPU {cpu} s per 100 MB",
                  f"- `edgecam clips pull` (Python client, sha256 checked): **{pull} MB/s**", ""]
    runs = ok(downloads)
    if runs:
        lines += ["**Analysis fps during 4 parallel downloads, real daemon.** The daemon runs on the looping highway "
                  "clip (640x360, 30 fps) with the LAN API on; windows alternate between no download and 4 "
                  "unthrottled `curl` clients fetching a finished clip in a loop with the provisioned token. "
                  "Analysed frames/s come from the daemon's progress log line (every 5 s). " + when(runs) + ".", "",
                  cmds(runs), "", "| mode | window s | clip MB | fps idle (windows) | fps with 4 downloads (windows) "
                  "| drop | MB/s served | daemon CPU-s/s idle → downloading |", "|---|---|---|---|---|---|---|---|"]
        for e in runs:
            r = e["result"]
            idle = [w for w in r["windows"] if w["clients"] == 0]
            busy = [w for w in r["windows"] if w["clients"] == 4]
            mode = "live camera (realtime, detect_fps 5)" if r["realtime"] else "flat out (realtime = false)"
            lines.append(f"| {mode} | {r['seconds']:g} | {(r['clip_bytes'] or 0) / 1e6:.1f} | {r['fps_idle']} "
                         f"({', '.join(str(w['analysed_fps']) for w in idle)}) | {r['fps_downloads']} "
                         f"({', '.join(str(w['analysed_fps']) for w in busy)}) | **{r['fps_drop_pct']}%** | "
                         f"{rng([w['mb_per_s'] for w in busy])} | {rng([w['daemon_cpu_s_per_s'] for w in idle])} → "
                         f"{rng([w['daemon_cpu_s_per_s'] for w in busy])} |")
        lines += ["", "Loopback downloads at 100+ MB/s are far above what a node's network gives (a Pi's Wi-Fi: a "
                  "few MB/s), so this is a worst case for the CPU the server takes; on 2 shared cores the fps "
                  "windows also move with other processes' load."]
    return "\n".join(lines) + failures(api) + failures(downloads)


def section_soak(soak: dict | None) -> str:
    if not soak:
        return "## Soak\n\nNo soak result yet: run `make soak` (writes benchmarks/soak.json and docs/soak.png)."
    faults = ", ".join(f"{k} at {t / 60:.1f} min" for t, k in soak["faults"])
    passed = (soak["exit_code"] == 0 and soak["seq_gaps"] == 0 and soak["events_central"] == soak["events_node"]
              and soak["rss_growth_mb_fitted"] < soak["rss_bound_mb"])
    return "\n".join([
        "## Soak (`make soak`, tests/test_soak.py)", "",
        f"Run {soak['date']}" + (f" (code at commit {soak['commit']})" if soak.get("commit") else "")
        + f": {soak['minutes']:g} minutes, {soak.get('cameras', 1)} camera(s) of the {soak['video']} clip looping "
        "over RTSP (tests/support/rtsp_server.py, gst-rtsp-server) into `python -m edge run`, a real mosquitto, and "
        "`edgecam central run` (SQLite, persistent QoS-1 session) as the consumer. Faults: " + faults +
        " (broker = SIGKILL, down 20 s; camera = RTSP server killed and restarted after 3 s). Sampled every 10 s "
        "from /proc/PID/status (VmRSS, Threads) and /proc/PID/fd.", "",
        "![soak: RSS, open fds and threads over time](docs/soak.png)", "",
        f"- RSS: {soak['rss_mb_at_warmup']} MB after the {soak['warmup_s'] / 60:g}-min warm-up, "
        f"{soak['rss_mb_end']} MB at the end, max {soak['rss_mb_max']} MB; least-squares slope after warm-up "
        f"**{soak['rss_slope_mb_per_h']} MB/hour** (fitted growth over the run {soak['rss_growth_mb_fitted']} MB; "
        f"bound {soak['rss_bound_mb']:g} MB)",
        f"- open fds: {soak['fds_at_warmup']} after warm-up, {soak['fds_end']} at the end, max **{soak['fds_max']}**",
        f"- threads: {soak['threads_at_warmup']} after warm-up, {soak['threads_end']} at the end, max "
        f"**{soak['threads_max']}**",
        f"- events: node gave seq 1..{soak['events_node']}, central holds {soak['events_central']}, "
        f"gaps {soak['seq_gaps']}; daemon exit code {soak['exit_code']}",
        f"- result: **{'PASS' if passed else 'FAIL'}** (pass = fitted RSS growth after warm-up below the bound, "
        "fds/threads at the end within 16/8 of their warm-up level, every seq at central, clean exit, no "
        "traceback)"])


def section_streams(entries: list[dict] | None) -> str:
    """#20: a node of 1 and 4 two-stream cameras on the RTSP test server, against main streams only."""
    out = ["## Two streams per camera on the RTSP test server (`make bench`, step `streams`)", ""]
    good = ok(entries)
    if not good:
        return "\n".join(out + ["Not run (`python benchmarks/run_all.py --only streams`)." + failures(entries)])
    nodes = [e for e in good if e.get("what") == "node" and isinstance(e.get("result"), dict)]
    skews = [e for e in good if e.get("what") == "skew" and isinstance(e.get("result"), dict)]
    out += [f"{when(good)}. Each camera opens `/main` (1920x1080, H.264 High as IP cameras encode it, "
            "4 Mbit/s, made from the road clip by `run_all.make_camera_streams`) and, split, `/sub` (640x360, "
            "1 Mbit/s) of one RTSP test server process; 10 s pre-roll, detect_fps 5, best shots on, plates off. "
            "CPU is the daemon's own (the server stands for the cameras). RssAnon is the daemon's private memory; "
            "RssFile its shared-library pages (shared with every process using the same libraries, dropped by "
            "the kernel under pressure); VmHWM counts both.", "",
            "| cameras | analysed stream | CPU-s per s, node (after a 15 s warm-up) | per camera "
            "| analysis fps per camera | dropped frames "
            "| detector busy | VmHWM | RssAnon peak | RssFile peak |", "|---|---|---|---|---|---|---|---|---|---|"]

    def stream(e: dict) -> str:
        if not e.get("split"):
            return "main 1920x1080"
        stills = e["result"].get("still_max_cpu")
        return "sub 640x360, " + ("no record-stream stills" if stills == 0 else
                                  f"stills within still_max_cpu {stills if stills is not None else 'default'}")

    for e in nodes:
        r = e["result"]
        fps = ", ".join(f"{v:g}" for v in (r.get("fps") or {}).values())
        dropped = sum((r.get("dropped_frames") or {}).values())
        out.append(f"| {r['cameras']} | {stream(e)} | "
                   f"{r['cpu_s_per_s_after_warm_up']} | {r['cpu_s_per_s_per_camera_after_warm_up']} | {fps or '-'} | "
                   f"{dropped} | "
                   f"{r.get('detector_busy_share', '-')} | {r['peak_rss_mb']} MB | {r.get('peak_anon_mb', '-')} MB | "
                   f"{r.get('peak_file_mb', '-')} MB |")
    for cams in (1, 4):
        main_only = [e["result"] for e in nodes if e["result"]["cameras"] == cams and not e.get("split")]
        if not main_only or not main_only[0]["cpu_s_per_s_after_warm_up"]:
            continue
        for e in (e for e in nodes if e["result"]["cameras"] == cams and e.get("split")):
            ratio = e["result"]["cpu_s_per_s_after_warm_up"] / main_only[0]["cpu_s_per_s_after_warm_up"]
            out.append(f"- {cams} camera(s), {stream(e)}: **{ratio:.2f}x** the CPU of analysing the main "
                       "streams (target: at most 0.5)")
    for e in skews:
        r = e["result"]
        kind = "one ffmpeg paces both (one clock, as a camera)" if r.get("one_feeder") else \
            "each mount its own ffmpeg (their start-up differs)"
        out.append(f"- clock skew, {kind}: median {r['skew_ms_median']} ms, |skew| p95 {r['abs_skew_ms_p95']} ms, "
                   f"max {r['abs_skew_ms_max']} ms over {r['compared']} analysed frames (a frame is {r['frame_ms']} "
                   f"ms; within one frame: {r['within_one_frame']:.0%})")
    out.append("\nCommands:\n\n" + cmds(good))
    return "\n".join(out)


HAND_RUN = ("night_experiments.md", "plates.md", "identification.md", "streams.md", "central.md")


def render(data: dict) -> str:
    s = data.get("steps", {})
    m = data.get("machine", {})
    head = [
        "# edgecam benchmarks", "",
        f"Generated by `make bench` (`python benchmarks/run_all.py`, {data.get('mode', '?')} run) on {m.get('date')}. "
        "Raw results with every command, start time and load: [benchmarks/results.json](benchmarks/results.json); "
        "re-render with `python benchmarks/run_all.py --render-only`.", "",
        f"**Machine:** {m.get('cpu')} ({m.get('simd')}), {m.get('cores')} cores, {m.get('ram_gb')} GB RAM; "
        f"{m.get('os')}; Python {m.get('python')}, onnxruntime {m.get('onnxruntime')}, PyAV {m.get('pyav')}, "
        f"OpenCV {m.get('opencv')}, numpy {m.get('numpy')}.", "",
        "**Noise:** this is a 2-core VM shared with other builds and test suites while measuring (the load "
        "average is given per section). Wall-clock figures (ms, fps, MB/s) are pessimistic and move between "
        "repeats; ranges show the repeats. CPU seconds (getrusage, /proc) are steadier. Every figure below was "
        "measured by the command shown next to it, except the Pi 4 section, which is an estimate.", ""]
    head += [f"**Note on this run:** {n}" for n in data.get("notes", [])] + ([""] if data.get("notes") else [])
    body = [section_vision(s.get("vision")), section_decode(s.get("decode")), section_int8(s.get("int8")),
            section_memory(s.get("daemon_rss")) + "\n\n" + section_spin(s.get("spin")),
            section_outbox(s.get("outbox")), section_disk(s.get("disk")),
            section_api(s.get("api"), s.get("downloads")), section_streams(s.get("streams")),
            section_soak(data.get("soak")),
            night_report.section(), pi_estimate.section(s), pi_estimate.EARLIER]
    here = Path(__file__).resolve().parent
    for name in HAND_RUN:  # hand-run sections (they need extras, PostgreSQL or hours): kept as written
        if (here / name).exists():
            body.append((here / name).read_text(encoding="utf-8").rstrip())
    return "\n".join(head) + "\n" + "\n\n".join(body) + "\n"
