"""Re-measure the INT8 recipes in benchmarks/quantization.md: agreement vs FP32 and latency.

Usage: PYTHONPATH=. python benchmarks/quantization_recipes.py [RECIPE ...] [--threads N]
Same sets as `edgecam model prepare`: first 50 COCO sample images calibrate; the other 50
plus 10 frames of each shared video measure agreement. Latency: median of detect() on
one image, calls alternating between FP32 and the INT8 model.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import onnx

from edge import assets
from edge.vision.detector import Detector, read_labels
from edge.vision.model_eval import EVAL_SCORE, interleaved_latency, load_images, measure_agreement, video_frames
from edge.vision.quantize import Recipe, quantize

_ALL_OPS = {"op_types": (), "fp32_head_preds": False}  # the NOTES.md recipe: every op quantized


def _silu_from(index: int) -> tuple[str, ...]:
    model = onnx.load(str(assets.require(assets.MODEL_FP32)))
    return tuple(n.name for i, n in enumerate(model.graph.node) if i >= index and n.op_type in ("Sigmoid", "Mul"))


SENSITIVE = ("Conv_119", "Conv_59", "Conv_73", "Conv_240", "Conv_175", "Conv_165", "Conv_305", "Conv_56",
             "Conv_250", "Conv_215")  # fmt: skip
RECIPES = {
    "notes": lambda: Recipe(**_ALL_OPS),
    "notes+tail": lambda: Recipe(**_ALL_OPS, fp32_head_tail=True),
    "notes+stem5": lambda: Recipe(**_ALL_OPS, fp32_stem_convs=5),
    "notes+p99.99": lambda: Recipe(**_ALL_OPS, percentile=99.99),
    "notes+minmax": lambda: Recipe(**_ALL_OPS, calibrate_method="MinMax"),
    "notes+entropy": lambda: Recipe(**_ALL_OPS, calibrate_method="Entropy"),
    "notes+asym": lambda: Recipe(**_ALL_OPS, symmetric=False),
    "notes+preds": lambda: Recipe(op_types=()),
    "notes+preds+silu200": lambda: Recipe(op_types=(), extra_fp32_nodes=_silu_from(200)),
    "notes+preds+silu120": lambda: Recipe(op_types=(), extra_fp32_nodes=_silu_from(120)),
    "convs": lambda: Recipe(fp32_head_preds=False),
    "convs+asym": lambda: Recipe(fp32_head_preds=False, symmetric=False),
    "convs+preds (default)": lambda: Recipe(),
    "convs+preds+p99.9999": lambda: Recipe(percentile=99.9999),
    "convs+preds+stem2": lambda: Recipe(fp32_stem_convs=2),
    "convs+preds+sens5": lambda: Recipe(extra_fp32_nodes=SENSITIVE[:5]),
    "convs+preds+sens10": lambda: Recipe(extra_fp32_nodes=SENSITIVE),
}


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("recipes", nargs="*", default=["convs+preds (default)"], help=", ".join(RECIPES))
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    unknown = [name for name in args.recipes if name not in RECIPES]
    if unknown:
        parser.error(f"unknown recipe {unknown[0]!r}; known: {', '.join(RECIPES)}")
    fp32 = assets.require(assets.MODEL_FP32)
    labels = read_labels(assets.require(assets.MODEL_LABELS))
    coco = sorted(assets.require(assets.COCO_DIR).glob("*.jpg"))
    calib = load_images(coco[:50])
    evals = [("coco", image) for image in load_images(coco[50:])] + video_frames()
    ref = Detector(fp32, labels, keep_labels=labels, min_score=EVAL_SCORE, threads=args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.recipes:
            out = Path(tmp) / "int8.onnx"
            started = time.monotonic()
            quantize(fp32, out, calib, ref.input_size, RECIPES[name]())
            seconds = time.monotonic() - started
            int8 = Detector(out, labels, keep_labels=labels, min_score=EVAL_SCORE, threads=args.threads)
            a = measure_agreement(ref, int8, evals)
            fp32_ms, int8_ms = interleaved_latency(ref, int8, evals[0][1], runs=100)
            print(
                f"| {name} | {a.share:.1%} ({a.matched}/{a.fp32_detections}) | {a.share_high:.1%} "
                f"({a.matched_high}/{a.fp32_high}) | {fp32_ms:.1f} | {int8_ms:.1f} | {seconds:.0f} s |",
                flush=True,
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
