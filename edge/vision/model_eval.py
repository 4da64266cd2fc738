"""Measuring an INT8 model against FP32 on this machine: detection agreement and latency.

Used by ``edgecam model prepare`` to decide whether the daemon may run INT8, and by
benchmarks/quantization_recipes.py. Agreement is measured on images not used for calibration.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from .. import assets
from ..types import Detection
from .detector import Detector, ModelError

MIN_AGREEMENT = 0.93  # share of FP32 detections (score >= 0.3) matched by INT8
MIN_AGREEMENT_HIGH = 0.98  # share of FP32 detections scoring >= 0.5 matched
MATCH_IOU = 0.5
EVAL_SCORE = 0.3
HIGH_SCORE = 0.5
VIDEO_FRAMES = 10  # frames taken from each shared video for the agreement set


@dataclass
class Agreement:
    fp32_detections: int = 0
    matched: int = 0
    fp32_high: int = 0
    matched_high: int = 0
    int8_detections: int = 0
    images: int = 0
    per_source: dict[str, int] = field(default_factory=dict)

    @property
    def share(self) -> float:
        return self.matched / self.fp32_detections if self.fp32_detections else 1.0

    @property
    def share_high(self) -> float:
        return self.matched_high / self.fp32_high if self.fp32_high else 1.0


def load_images(paths: list[Path]) -> list[np.ndarray]:
    images = []
    for path in paths:
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if image is None:
            raise ModelError(f"cannot read image {path}")
        images.append(image)
    return images


def video_frames(per_video: int = VIDEO_FRAMES) -> list[tuple[str, np.ndarray]]:
    """Evenly spaced frames from each shared video (none when the videos are absent)."""
    frames = []
    video_dir = assets.find(assets.VIDEO_DIR)
    for path in sorted(video_dir.glob("*.mp4")) if video_dir else []:
        cap = cv2.VideoCapture(str(path))
        total = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
        for k in range(per_video):
            cap.set(cv2.CAP_PROP_POS_FRAMES, (k * total) // per_video)
            ok, image = cap.read()
            if ok:
                frames.append((path.stem, image))
        cap.release()
    return frames


def match(ref: list[Detection], got: list[Detection], agreement: Agreement, source: str) -> None:
    """Greedy same-label IoU matching of ``got`` against the FP32 reference ``ref``; adds to ``agreement``."""
    used = [False] * len(got)
    for det in sorted(ref, key=lambda d: -d.score):
        best, best_iou = -1, MATCH_IOU
        for j, other in enumerate(got):
            if not used[j] and other.label == det.label:
                iou = det.box.iou(other.box)
                if iou >= best_iou:
                    best, best_iou = j, iou
        high = det.score >= HIGH_SCORE
        agreement.fp32_detections += 1
        agreement.fp32_high += high
        if best >= 0:
            used[best] = True
            agreement.matched += 1
            agreement.matched_high += high
        else:
            agreement.per_source[source] = agreement.per_source.get(source, 0) + 1
    agreement.int8_detections += len(got)
    agreement.images += 1


def measure_agreement(fp32: Detector, int8: Detector, images: list[tuple[str, np.ndarray]]) -> Agreement:
    agreement = Agreement()
    for source, image in images:
        match(fp32.detect(image), int8.detect(image), agreement, source)
    return agreement


def interleaved_latency(a: Detector, b: Detector, image: np.ndarray, runs: int) -> tuple[float, float]:
    """Median ms of one full detect() (letterbox, inference, decode) of both models.

    Calls alternate a, b, a, b... so that load from other processes hits both alike.
    """
    times: tuple[list[float], list[float]] = ([], [])
    for _ in range(runs):
        for detector, out in ((a, times[0]), (b, times[1])):
            t0 = time.perf_counter()
            detector.detect(image)
            out.append((time.perf_counter() - t0) * 1000.0)
    return statistics.median(times[0]), statistics.median(times[1])


def cpu_flags() -> list[str]:
    """The int8 dot-product flags this CPU reports (x86 VNNI, ARM dotprod/i8mm)."""
    try:
        text = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return []
    words = set(text.split())
    wanted = ("avx_vnni", "avx512_vnni", "amx_int8", "asimddp", "i8mm", "avx2")
    return [w for w in wanted if w in words]


def choose(agreement: Agreement, fp32_ms: float, int8_ms: float) -> tuple[str, str]:
    """The precision the daemon should run, and why: INT8 only when faithful and not slower."""
    figures = (
        f"agreement {agreement.share:.1%} (all), {agreement.share_high:.1%} (score>={HIGH_SCORE}); "
        f"INT8 {int8_ms:.1f} ms vs FP32 {fp32_ms:.1f} ms"
    )
    if agreement.share < MIN_AGREEMENT or agreement.share_high < MIN_AGREEMENT_HIGH:
        return "fp32", f"INT8 not faithful ({figures}; needs >={MIN_AGREEMENT:.0%} and >={MIN_AGREEMENT_HIGH:.0%})"
    if int8_ms > fp32_ms:
        return "fp32", f"INT8 faithful but slower on this machine ({figures})"
    return "int8", f"INT8 faithful and not slower ({figures})"
