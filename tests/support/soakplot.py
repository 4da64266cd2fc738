"""Soak samples: summary figures and a PNG drawn with OpenCV (no matplotlib on the node's dependency list)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np


@dataclass(frozen=True)
class Sample:
    t: float  # seconds since the daemon started
    rss_kb: int
    fds: int
    threads: int


def read_proc(pid: int, t: float) -> Sample | None:
    """VmRSS and Threads from /proc/PID/status and the number of open fds; None once the process is gone."""
    try:
        fields = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines()
                      if ":" in line)
        fds = len(os.listdir(f"/proc/{pid}/fd"))
    except (OSError, ValueError):
        return None
    return Sample(t, int(fields["VmRSS"].split()[0]), fds, int(fields["Threads"]))


def slope_per_hour(xs: list[float], ys: list[float]) -> float:
    """Least-squares slope of ys against xs (seconds), per hour; 0 with fewer than 3 points."""
    if len(xs) < 3:
        return 0.0
    return float(np.polyfit(np.asarray(xs), np.asarray(ys), 1)[0]) * 3600.0


def summarise(samples: list[Sample], warmup_s: float) -> dict:
    after = [s for s in samples if s.t >= warmup_s] or samples
    rss_mb = [s.rss_kb / 1024 for s in after]
    slope = slope_per_hour([s.t for s in after], rss_mb)
    span_h = (after[-1].t - after[0].t) / 3600 if len(after) > 1 else 0.0
    return {
        "samples": len(samples),
        "duration_s": round(samples[-1].t, 1) if samples else 0.0,
        "warmup_s": warmup_s,
        "rss_mb_at_warmup": round(rss_mb[0], 1),
        "rss_mb_end": round(rss_mb[-1], 1),
        "rss_mb_max": round(max(s.rss_kb for s in samples) / 1024, 1),
        "rss_slope_mb_per_h": round(slope, 2),
        "rss_growth_mb_fitted": round(slope * span_h, 2),
        "fds_at_warmup": after[0].fds,
        "fds_end": after[-1].fds,
        "fds_max": max(s.fds for s in samples),
        "threads_at_warmup": after[0].threads,
        "threads_end": after[-1].threads,
        "threads_max": max(s.threads for s in samples),
    }


PANELS = (("RSS (MB)", lambda s: s.rss_kb / 1024, (200, 80, 30)), ("open fds", lambda s: s.fds, (40, 140, 40)),
          ("threads", lambda s: s.threads, (30, 60, 200)))


def plot(samples: list[Sample], faults: list[tuple[float, str]], warmup_s: float, path: Path, title: str) -> None:
    """Three stacked panels (RSS, fds, threads) against minutes; faults as grey lines, warm-up end dashed."""
    width, panel_h, left, top = 1000, 220, 80, 40
    img = np.full((top + panel_h * len(PANELS) + 40, width, 3), 255, np.uint8)
    cv2.putText(img, title, (left, 26), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (0, 0, 0), 1, cv2.LINE_AA)
    t_max = max(samples[-1].t if samples else 1.0, 1.0)
    plot_w = width - left - 20

    def x_of(t: float) -> int:
        return left + int(plot_w * t / t_max)

    for i, (name, value, colour) in enumerate(PANELS):
        y0 = top + i * panel_h + 10
        h = panel_h - 40
        ys = [value(s) for s in samples] or [0.0]
        lo, hi = min(ys), max(ys)
        pad = max((hi - lo) * 0.1, 1.0)
        lo, hi = max(lo - pad, 0.0), hi + pad
        cv2.rectangle(img, (left, y0), (left + plot_w, y0 + h), (0, 0, 0), 1)
        for t, kind in faults:
            cv2.line(img, (x_of(t), y0), (x_of(t), y0 + h), (170, 170, 170), 1)
            if i == 0:
                cv2.putText(img, kind[0].upper(), (x_of(t) + 2, y0 + 12), cv2.FONT_HERSHEY_SIMPLEX, 0.35,
                            (120, 120, 120), 1, cv2.LINE_AA)
        for y in range(y0, y0 + h, 8):
            cv2.line(img, (x_of(warmup_s), y), (x_of(warmup_s), y + 3), (0, 0, 0), 1)
        pts = np.array([[x_of(s.t), y0 + h - int(h * (v - lo) / (hi - lo))] for s, v in zip(samples, ys, strict=True)],
                       np.int32)
        if len(pts) > 1:
            cv2.polylines(img, [pts], False, colour, 2, cv2.LINE_AA)
        cv2.putText(img, name, (left + 6, y0 + h - 8), cv2.FONT_HERSHEY_SIMPLEX, 0.5, colour, 1, cv2.LINE_AA)
        for v, y in ((hi, y0 + 10), (lo, y0 + h)):
            cv2.putText(img, f"{v:.0f}", (6, y), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 0, 0), 1, cv2.LINE_AA)
    base = top + panel_h * len(PANELS)
    for m in range(0, int(t_max // 60) + 1, max(1, int(t_max // 600))):
        cv2.putText(img, f"{m}", (x_of(m * 60) - 4, base), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 0, 0), 1,
                    cv2.LINE_AA)
    cv2.putText(img, "minutes (grey: B = broker killed 20 s, C = camera server restarted; dashed: end of warm-up)",
                (left, base + 24), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 1, cv2.LINE_AA)
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), img)
