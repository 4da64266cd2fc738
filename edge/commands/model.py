"""``edgecam model prepare``: the INT8 model and its manifest (needs the prepare extra)."""

from __future__ import annotations

import argparse
from pathlib import Path

from .. import assets
from ..errors import UserError


def _images_in(directory: Path) -> list[Path]:
    return sorted(p for p in directory.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png"))


def prepare(args: argparse.Namespace) -> int:
    """``edgecam model prepare``: INT8 model, both measured, manifest written."""
    from ..vision.detector import MANIFEST, ModelError
    from ..vision.model_eval import HIGH_SCORE
    from ..vision.quantize import PREPARE_ESTIMATE_S, PrepareInputs, Recipe, prepare

    fp32 = Path(args.fp32) if args.fp32 else assets.find(assets.MODEL_FP32)
    if fp32 is None or not fp32.is_file():
        raise UserError(f"FP32 model {fp32 or assets.MODEL_FP32} not found; run scripts/fetch-assets or give --fp32")
    labels = fp32.with_suffix(".labels.txt")
    if not labels.is_file():
        labels = assets.find(assets.MODEL_LABELS) or labels
    calib_dir = Path(args.calib) if args.calib else assets.find(assets.COCO_DIR)
    if calib_dir is None or not calib_dir.is_dir():
        raise UserError(f"calibration directory {calib_dir or assets.COCO_DIR} not found; give --calib DIR")
    images = _images_in(calib_dir)
    count = getattr(args, "calib_count", None) or Recipe.calib_images
    if not images:
        raise UserError(f"no .jpg/.png images in {calib_dir}")
    eval_count = getattr(args, "eval_count", None) or 50
    inputs = PrepareInputs(fp32, labels, images[:count], images[count : count + eval_count])
    try:
        print(f"model prepare: making an INT8 model from {fp32.name} and measuring it against FP32; "
              f"about {PREPARE_ESTIMATE_S} s on an idle 2-core x86 machine, a few minutes on a Raspberry Pi 4",
              flush=True)
        manifest = prepare(inputs, Path(args.out), threads=args.threads, recipe=Recipe(calib_images=count),
                           progress=lambda line: print(f"model prepare: {line}", flush=True))
    except ModelError as err:
        raise UserError(str(err)) from None
    except ImportError as err:
        raise UserError(
            f"{err.name or err}: missing; install the prepare extra: pip install 'edgecam[prepare]'"
        ) from None
    agreement, latency, choice = manifest["agreement"], manifest["latency"], manifest["choice"]
    print(f"calibrated on {manifest['quantization']['calib_images']} images from {calib_dir}")
    print(
        f"agreement on {agreement['images']} images: {agreement['share']:.1%} of {agreement['fp32_detections']} "
        f"FP32 detections, {agreement['share_high']:.1%} of {agreement['fp32_high']} scoring >={HIGH_SCORE}"
    )
    print(f"latency at {latency['threads']} threads: FP32 {latency['fp32_ms']} ms, INT8 {latency['int8_ms']} ms")
    print(f"choice: {choice['precision']}: {choice['reason']}")
    print(f"wrote {Path(args.out) / MANIFEST}")
    return 0
