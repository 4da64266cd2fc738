"""Model probe: the model the daemon will use (``edge.vision.detector.choose_model``), its sha256, one inference.

The detector owns the manifest logic; this probe only loads the detector the
same way the daemon does and times one frame through it.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np

from .result import FAIL, OK, Result

PREPARE = "run `edgecam model prepare --out <model dir>`"
PROBE_SIZE = (416, 416, 3)  # one frame of the model's input size; the letterbox makes any size work


def probe_model(setting: Path | None, precision: str, providers: list[str], threads: int) -> Result:
    """Choose, verify, load and run the model once, exactly as the daemon's detector would."""
    try:
        from ..vision.detector import ModelError, load_detector  # onnxruntime: only this probe needs it
    except ImportError as err:
        return Result("model", FAIL, f"cannot load the detector: {err}", "install edgecam with its dependencies")
    det_log = logging.getLogger("edge.vision.detector")
    level = det_log.level
    det_log.setLevel(logging.WARNING)  # the checklist line says it all; keep the daemon's info lines out
    try:
        detector, choice = load_detector(setting, precision, threads=threads, providers=providers)
    except ModelError as err:
        advice = PREPARE if "sha256" in str(err) else "fix detector.model, or " + PREPARE
        return Result("model", FAIL, str(err), advice)
    finally:
        det_log.setLevel(level)
    frame = np.zeros(PROBE_SIZE, dtype=np.uint8)
    detector.detect(frame)  # one warm-up frame through letterbox and decode too, then time the next
    started = time.perf_counter()
    detector.detect(frame)
    ms = (time.perf_counter() - started) * 1000.0
    provider = detector.provider
    missing = [p for p in providers if p != provider and p != "CPUExecutionProvider"]
    note = f"; {', '.join(missing)} not available" if missing and provider == "CPUExecutionProvider" else ""
    hashed = "sha256 matches manifest" if choice.from_manifest else "no manifest to check sha256 against"
    detail = (f"{choice.precision.upper()} {choice.path.name} ({choice.reason}); {hashed}; "
              f"{ms:.1f} ms per inference on {provider}{note}")
    data = {"path": str(choice.path), "precision": choice.precision, "sha256": choice.sha256, "ms": round(ms, 2),
            "provider": provider, "reason": choice.reason}
    return Result("model", OK, detail, data=data)
