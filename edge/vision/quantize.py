"""``edgecam model prepare``: make a static INT8 (QDQ) YOLOX model, measure it against FP32, write the manifest.

Naive INT8 destroys this model (raw 0-255 input: the stem's outputs span about +-137),
so the recipe quantizes only the Convs (SiLUs stay FP32), keeps the stem Convs and
the prediction Convs in FP32, and uses per-channel weights and percentile
calibration (benchmarks/quantization.md has every recipe tried). INT8 only pays on
CPUs with int8 dot products, so the choice is made by measuring both models on the
machine that runs them (see NOTES.md).
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import platform
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from .. import assets
from ..fsutil import write_atomic
from .detector import MANIFEST, PAD_VALUE, Detector, ModelError, letterbox, read_labels
from .model_eval import (
    EVAL_SCORE,
    MATCH_IOU,
    MIN_AGREEMENT,
    MIN_AGREEMENT_HIGH,
    VIDEO_FRAMES,
    Agreement,
    choose,
    cpu_flags,
    interleaved_latency,
    load_images,
    measure_agreement,
    video_frames,
)

INT8_NAME = "yolox_nano_int8.onnx"
FP32_NAME = "yolox_nano_fp32.onnx"
LABELS_NAME = "yolox_nano.labels.txt"
PREPARE_ESTIMATE_S = 30  # measured: 32 s for `make demo` on 2 busy cores (issue #13.10)


@dataclass(frozen=True)
class Recipe:
    """Quantization settings; written into the manifest as they are."""

    format: str = "QDQ"
    per_channel: bool = True
    activation_type: str = "QUInt8"
    weight_type: str = "QInt8"
    calibrate_method: str = "Percentile"
    percentile: float = 99.999
    symmetric: bool = True  # onnxruntime's default for Percentile: range [-t, t]
    fp32_stem_convs: int = 3  # first N Convs (with their SiLU) kept in FP32
    fp32_head_tail: bool = False  # keep the output Sigmoids/Concats/Reshapes in FP32
    fp32_head_preds: bool = True  # keep the 9 prediction Convs (box, objectness, class) in FP32
    extra_fp32_nodes: tuple[str, ...] = ()
    # Only Convs: quantized SiLU (QLinearSigmoid + QLinearMul) is slower than FP32's fused one and less exact.
    op_types: tuple[str, ...] = ("Conv",)  # () = every op type onnxruntime can quantize
    opset: int = 13
    calib_images: int = 50


class ImageReader:
    """A CalibrationDataReader feeding letterboxed images exactly as the detector sees them."""

    def __init__(self, images: list[np.ndarray], size: int, input_name: str = "images") -> None:
        self._images = images
        self._size = size
        self._name = input_name
        self._i = 0
        self._end = len(images)

    def __len__(self) -> int:
        return len(self._images)

    def set_range(self, start_index: int, end_index: int) -> None:
        """Used by onnxruntime's strided calibration: feed images in chunks to bound memory."""
        self._i, self._end = start_index, min(end_index, len(self._images))

    def get_next(self) -> dict[str, np.ndarray] | None:
        if self._i >= self._end:
            return None
        canvas = np.full((self._size, self._size, 3), PAD_VALUE, dtype=np.uint8)
        tensor = np.zeros((1, 3, self._size, self._size), dtype=np.float32)
        letterbox(self._images[self._i], canvas, tensor)
        self._i += 1
        return {self._name: tensor}

    def __iter__(self):  # noqa: ANN204 (onnxruntime's debug tools iterate readers)
        while (item := self.get_next()) is not None:
            yield item

    def rewind(self) -> None:
        self._i, self._end = 0, len(self._images)


def fp32_nodes(model, recipe: Recipe) -> list[str]:  # noqa: ANN001 (onnx.ModelProto)
    """Names of nodes to keep in FP32: the stem Convs with their SiLU, the head tail, extras."""
    consumers: dict[str, list] = {}
    for node in model.graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    keep: list[str] = []
    convs = [n for n in model.graph.node if n.op_type == "Conv"][: recipe.fp32_stem_convs]
    for conv in convs:
        keep.append(conv.name)
        for user in consumers.get(conv.output[0], []):
            if user.op_type in ("Sigmoid", "Mul"):
                keep.append(user.name)
    if recipe.fp32_head_tail:
        keep += _head_tail(model)
    if recipe.fp32_head_preds:
        keep += [n.name for n in model.graph.node if n.op_type == "Conv" and _is_prediction(n)]
    keep += list(recipe.extra_fp32_nodes)
    return list(dict.fromkeys(keep))


def _is_prediction(node) -> bool:  # noqa: ANN001
    return any(w.startswith(("head.cls_preds", "head.reg_preds", "head.obj_preds")) for w in node.input)


def _head_tail(model) -> list[str]:  # noqa: ANN001
    """The nodes after the last Convs: score Sigmoids and the Concat/Reshape/Transpose to the output."""
    producers = {out: node for node in model.graph.node for out in node.output}
    tail, todo = [], [model.graph.output[0].name]
    while todo:
        node = producers.get(todo.pop())
        if node is None or node.op_type == "Conv" or node.name in tail:
            continue
        tail.append(node.name)
        todo += list(node.input)
    return tail


def quantize(fp32: Path, out: Path, calib: list[np.ndarray], size: int, recipe: Recipe) -> list[str]:
    """Write the static INT8 QDQ model for ``fp32`` to ``out``; returns the nodes kept in FP32."""
    import onnx
    from onnx import version_converter
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    model = onnx.load(str(fp32))
    if model.opset_import[0].version < recipe.opset:
        model = version_converter.convert_version(model, recipe.opset)  # per-channel QDQ needs opset 13
    exclude = fp32_nodes(model, recipe)
    with tempfile.TemporaryDirectory() as tmp, _quiet():
        src = Path(tmp) / "fp32_opset.onnx"
        onnx.save(model, str(src))
        quantize_static(
            str(src),
            str(out),
            ImageReader(calib, size, model.graph.input[0].name),
            quant_format=QuantFormat[recipe.format],
            per_channel=recipe.per_channel,
            activation_type=QuantType[recipe.activation_type],
            weight_type=QuantType[recipe.weight_type],
            calibrate_method=CalibrationMethod[recipe.calibrate_method],
            nodes_to_exclude=exclude,
            op_types_to_quantize=list(recipe.op_types) or None,
            extra_options={
                "CalibPercentile": recipe.percentile,
                "CalibTensorRangeSymmetric": recipe.symmetric,
                "CalibStridedMinMax": _chunk(len(calib)),  # bounds memory: all activations of a chunk
            },
        )
    return exclude


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """onnxruntime's quantizer prints progress and a pre-processing hint: keep the CLI output ours."""
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            yield
    finally:
        root.setLevel(level)


def _chunk(n: int, most: int = 10) -> int:
    """The largest divisor of ``n`` up to ``most`` (onnxruntime wants equal chunks)."""
    return max(d for d in range(1, min(n, most) + 1) if n % d == 0)


def copy_atomic(src: Path, dst: Path) -> None:
    tmp = dst.with_name(dst.name + ".tmp")
    shutil.copyfile(src, tmp)
    os.replace(tmp, dst)


@dataclass(frozen=True)
class PrepareInputs:
    """Everything ``prepare`` reads: the FP32 model, its labels, calibration and agreement images."""

    fp32: Path
    labels: Path
    calib: list[Path]
    eval_images: list[Path]
    video_frames: int = VIDEO_FRAMES


@dataclass(frozen=True)
class Measured:
    """What ``prepare`` measured, for the manifest."""

    input_size: int
    provider: str
    calib_images: int
    kept_fp32: list[str]
    video_frames: int
    agreement: Agreement
    fp32_ms: float
    int8_ms: float


def prepare(inputs: PrepareInputs, out_dir: Path, threads: int = 2, recipe: Recipe = Recipe(),
            progress: Callable[[str], None] | None = None) -> dict:
    """Quantize, measure both models here, write models + labels + manifest into ``out_dir``; returns the manifest.

    ``progress`` gets one line per step (the whole run takes tens of seconds: say what is going on).
    """
    started = time.monotonic()

    def step(what: str) -> None:
        if progress is not None:
            progress(f"[{time.monotonic() - started:5.1f} s] {what}")

    out_dir.mkdir(parents=True, exist_ok=True)
    labels = read_labels(inputs.labels)
    fp32_path, int8_path = out_dir / FP32_NAME, out_dir / INT8_NAME
    step(f"copying {inputs.fp32.name} and its labels into {out_dir}")
    copy_atomic(inputs.fp32, fp32_path)
    copy_atomic(inputs.labels, out_dir / LABELS_NAME)
    ref = Detector(fp32_path, labels, keep_labels=labels, min_score=EVAL_SCORE, threads=threads)
    tmp_int8 = out_dir / (INT8_NAME + ".tmp")
    calib = load_images(inputs.calib[: recipe.calib_images])
    step(f"quantizing to INT8, calibrated on {len(calib)} images (the longest step)")
    kept_fp32 = quantize(fp32_path, tmp_int8, calib, ref.input_size, recipe)
    os.replace(tmp_int8, int8_path)
    quantized = Detector(int8_path, labels, keep_labels=labels, min_score=EVAL_SCORE, threads=threads)
    frames = video_frames(inputs.video_frames) if inputs.video_frames else []
    evals = [("coco", image) for image in load_images(inputs.eval_images)] + frames
    if not evals:
        raise ModelError("no images left to measure agreement on (all used for calibration)")
    step(f"comparing INT8 with FP32 on {len(evals)} images")
    agreement = measure_agreement(ref, quantized, evals)
    step("timing both models (100 runs each)")
    fp32_ms, int8_ms = interleaved_latency(ref, quantized, evals[0][1], runs=100)
    measured = Measured(ref.input_size, ref.provider, len(calib), kept_fp32, len(frames), agreement, fp32_ms, int8_ms)
    manifest = build_manifest(inputs, out_dir, labels, recipe, measured, threads)
    manifest["prepare_seconds"] = round(time.monotonic() - started, 1)
    write_atomic(out_dir / MANIFEST, (json.dumps(manifest, indent=2) + "\n").encode())
    step(f"done: {manifest['choice']['precision'].upper()} chosen")
    return manifest


def build_manifest(
    inputs: PrepareInputs, out_dir: Path, labels: list[str], recipe: Recipe, measured: Measured, threads: int
) -> dict:
    """The manifest's contents (schema 1); ``choice`` is what the daemon runs."""
    import onnxruntime

    agreement = measured.agreement
    precision, reason = choose(agreement, measured.fp32_ms, measured.int8_ms)
    return {
        "schema": 1,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "input_size": measured.input_size,
        "input": "images [1,3,S,S] BGR 0-255, letterboxed top-left, pad 114",
        "labels": labels,
        "labels_file": LABELS_NAME,
        "models": {
            "fp32": {"file": FP32_NAME, "sha256": assets.sha256_file(out_dir / FP32_NAME), "source": str(inputs.fp32)},
            "int8": {"file": INT8_NAME, "sha256": assets.sha256_file(out_dir / INT8_NAME)},
        },
        "quantization": {
            **asdict(recipe),
            "fp32_nodes": measured.kept_fp32,
            "calib_dir": str(inputs.calib[0].parent) if inputs.calib else None,
            "calib_images": measured.calib_images,
            "onnxruntime": onnxruntime.__version__,
        },
        "agreement": {
            "images": agreement.images,
            "coco_images": len(inputs.eval_images),
            "video_frames": measured.video_frames,
            "match": f"same label, IoU>={MATCH_IOU}, both scores>={EVAL_SCORE}",
            "fp32_detections": agreement.fp32_detections,
            "matched": agreement.matched,
            "share": round(agreement.share, 4),
            "fp32_high": agreement.fp32_high,
            "matched_high": agreement.matched_high,
            "share_high": round(agreement.share_high, 4),
            "int8_detections": agreement.int8_detections,
            "missed_by_source": agreement.per_source,
        },
        "latency": {
            "threads": threads,
            "provider": measured.provider,
            "fp32_ms": round(measured.fp32_ms, 2),
            "int8_ms": round(measured.int8_ms, 2),
            "what": "median detect() (letterbox + inference + decode) on one held-out image, calls alternating",
        },
        "machine": {"machine": platform.machine(), "cpu_flags": cpu_flags(), "cpus": os.cpu_count()},
        "rule": {"min_agreement": MIN_AGREEMENT, "min_agreement_high": MIN_AGREEMENT_HIGH, "int8_not_slower": True},
        "choice": {"precision": precision, "reason": reason},
    }


