"""``check``'s plates line: whether licence plates are read, and what one read costs on this machine."""

from __future__ import annotations

import time

import numpy as np

from .result import FAIL, OK, SKIP, WARN, Result


def probe_plates(enabled: bool, max_cpu: float, clips_enabled: bool) -> Result:
    """Off, on (models found, ms per vehicle crop measured here, vehicles a minute the budget allows), or why not."""
    if not enabled:
        return Result("plates", SKIP, "off ([plates] enabled = false)")
    from ..vision.plates import PlateReader, PlatesUnavailable, model_dir

    try:
        root = model_dir()
        reader = PlateReader(threads=1)
    except PlatesUnavailable as err:
        return Result("plates", WARN, f"enabled but unavailable: {err}",
                      "install the extra (pip install 'edgecam[plates]') or set [plates] enabled = false; "
                      "the node runs without plates")
    except Exception as err:  # a broken model file: the daemon runs on without plates, say so here
        return Result("plates", FAIL, f"plate models do not load: {' '.join(str(err).split())[:120]}",
                      "reinstall the plates extra")
    crop = np.full((360, 480, 3), 110, np.uint8)  # a vehicle-sized crop: the localisation pass every read pays
    crop[200:260, 160:320] = 235
    reader.read(crop)  # warm-up (first call builds the sessions' buffers)
    t0, c0 = time.perf_counter(), time.thread_time()
    reader.read(crop)
    # Round once, so the figure shown and the rate derived from it agree.
    ms, cpu_ms = round((time.perf_counter() - t0) * 1000, 1), round((time.thread_time() - c0) * 1000, 1)
    per_min = 60_000 * max_cpu / max(cpu_ms, 1.0)
    detail = (f"on: models in {root}; {cpu_ms:.0f} ms CPU per vehicle here ({ms:.0f} ms wall); max_cpu {max_cpu:g}"
              f" of a core ≈ {per_min:.0f} vehicles a minute (a Pi 4 core is 4-6x slower)")
    data = {"ms": ms, "cpu_ms": cpu_ms, "max_cpu": max_cpu, "vehicles_per_min": round(per_min)}
    if not clips_enabled:
        return Result("plates", WARN, detail, "plates are read from best shots, kept in the clip store: "
                      "[clips] enabled = false turns plates off", data=data)
    return Result("plates", OK, detail, data=data)
