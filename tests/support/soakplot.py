"""Soak samples: summary figures and a PNG drawn with matplotlib (the ``bench`` extra, not a node dependency)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

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


PANELS = (("RSS (MB)", lambda s: s.rss_kb / 1024, "tab:red"), ("open fds", lambda s: s.fds, "tab:green"),
          ("threads", lambda s: s.threads, "tab:blue"))
FAULT_STYLE = {"broker": ("tab:purple", "broker killed (down 20 s)"),
               "camera": ("tab:orange", "camera server restarted")}


def plot(samples: list[Sample], faults: list[tuple[float, str]], warmup_s: float, path: Path, title: str,
         slope_mb_per_h: float | None = None) -> None:
    """Three stacked panels (RSS, fds, threads) against minutes, faults as coloured lines, warm-up end dashed,
    and the least-squares RSS fit after warm-up; matplotlib (the ``bench`` extra), never on a node."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    minutes = [s.t / 60 for s in samples]
    fig, axes = plt.subplots(len(PANELS), 1, figsize=(11, 8), sharex=True, constrained_layout=True)
    for ax, (name, value, colour) in zip(axes, PANELS, strict=True):
        ax.plot(minutes, [value(s) for s in samples], color=colour, lw=1.3)
        ax.set_ylabel(name)
        ax.grid(True, alpha=0.3)
        ax.axvline(warmup_s / 60, color="black", ls="--", lw=1, label="end of warm-up")
        for t, kind in faults:
            ax.axvline(t / 60, color=FAULT_STYLE.get(kind, ("grey", kind))[0], lw=0.8, alpha=0.8)
    after = [s for s in samples if s.t >= warmup_s]
    if len(after) >= 3:
        xs = np.asarray([s.t for s in after])
        fit = np.polyfit(xs, np.asarray([s.rss_kb / 1024 for s in after]), 1)
        label = f"fit after warm-up: {fit[0] * 3600 if slope_mb_per_h is None else slope_mb_per_h:.2f} MB/h"
        axes[0].plot(xs / 60, np.polyval(fit, xs), color="black", lw=1, alpha=0.7, label=label)
    for kind, (colour, text) in FAULT_STYLE.items():
        if any(k == kind for _t, k in faults):
            axes[0].plot([], [], color=colour, lw=0.8, label=text)
    axes[0].legend(loc="lower right", fontsize=8)
    axes[-1].set_xlabel("minutes since the daemon started")
    fig.suptitle(title, fontsize=10)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
