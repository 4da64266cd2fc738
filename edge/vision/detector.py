"""YOLOX-Nano object detector on onnxruntime: letterbox, one inference, grid decode, per-class NMS.

The model takes BGR 0-255 pixels letterboxed top-left with pad 114 and returns raw
grid outputs, so the decode (strides 8/16/32) lives here. ``load_detector`` picks
INT8 or FP32 from the manifest written by ``edgecam model prepare``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import onnxruntime as ort

from .. import assets
from ..types import Box, Detection
from .settings import DetectorSettings

log = logging.getLogger(__name__)

DEFAULT_KEEP = DetectorSettings.labels
STRIDES = (8, 16, 32)
PAD_VALUE = 114
MANIFEST = "manifest.json"
CPU = "CPUExecutionProvider"  # the fallback provider (the default is DetectorSettings.providers)
# COCO's VOC-style names in the YOLOX label file -> the COCO 2017 names INTERFACE.md uses.
RENAME = {
    "motorbike": "motorcycle",
    "aeroplane": "airplane",
    "sofa": "couch",
    "pottedplant": "potted plant",
    "diningtable": "dining table",
    "tvmonitor": "tv",
}


# Low light (issue 19): what a dark crop gets before inference. "stretch" maps the crop's 1..99 percentile grey
# range onto 0..255 (gain capped), "gamma" lifts dark tones with a 0.5 gamma LUT, "clahe" equalises the
# lightness locally; each only when the crop is dark (mean grey below DARK_MEAN), so daylight is untouched.
LOW_LIGHT_MODES = ("off", "stretch", "gamma", "clahe")
DARK_MEAN = 60.0
_MAX_STRETCH = 4.0


class ModelError(ValueError):
    """The model cannot be used (missing, not ONNX, wrong shape, hash mismatch); one-line message."""


@dataclass(frozen=True)
class ModelChoice:
    """Which model ``load_detector`` picked and why (for the log line and ``edgecam check``)."""

    path: Path
    precision: str  # "int8" | "fp32"
    reason: str
    sha256: str
    from_manifest: bool = False  # True: sha256 was checked against the manifest


def read_labels(path: Path) -> list[str]:
    """One label per line, in model output order, with COCO 2017 names."""
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except OSError as err:
        raise ModelError(f"cannot read labels {path}: {err.strerror or err}") from None
    labels = [RENAME.get(name.strip(), name.strip()) for name in lines if name.strip()]
    if not labels:
        raise ModelError(f"labels file {path} is empty")
    return labels


def pick_providers(requested: Sequence[str]) -> list[str]:
    """The requested providers that this onnxruntime has, always ending with the CPU fallback."""
    available = set(ort.get_available_providers())
    chosen = [p for p in requested if p in available and p != CPU]
    return chosen + [CPU]


def _grids(size: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-anchor grid offsets (N, 2) and strides (N, 1) in the model's output order."""
    cells, strides = [], []
    for stride in STRIDES:
        n = size // stride
        ys, xs = np.meshgrid(np.arange(n), np.arange(n), indexing="ij")
        cells.append(np.stack((xs, ys), axis=-1).reshape(-1, 2))
        strides.append(np.full((n * n, 1), stride))
    return np.concatenate(cells).astype(np.float32), np.concatenate(strides).astype(np.float32)


def letterbox(image: np.ndarray, canvas: np.ndarray, tensor: np.ndarray) -> float:
    """Resize ``image`` into the top-left of ``canvas`` (SxSx3 uint8), pad with 114, fill ``tensor`` (1x3xSxS).

    Both buffers are reused between calls; returns the scale applied to the image.
    """
    size = canvas.shape[0]
    h, w = image.shape[:2]
    ratio = min(size / h, size / w)
    nh, nw = min(size, max(1, int(h * ratio))), min(size, max(1, int(w * ratio)))
    if (nh, nw) == (h, w):
        canvas[:nh, :nw] = image
    else:
        interp = cv2.INTER_AREA if ratio < 1 else cv2.INTER_LINEAR
        canvas[:nh, :nw] = cv2.resize(image, (nw, nh), interpolation=interp)
    canvas[nh:, :] = PAD_VALUE
    canvas[:nh, nw:] = PAD_VALUE
    np.copyto(tensor[0], canvas.transpose(2, 0, 1))
    return ratio


class Detector:
    """YOLOX detector: ``detect(bgr image of any size) -> detections in that image's pixels``."""

    def __init__(
        self,
        model_path: Path,
        labels: list[str],
        keep_labels: Sequence[str] = DetectorSettings.labels,
        min_score: float = DetectorSettings.min_score,
        scores: Mapping[str, float] | None = None,
        nms_iou: float = DetectorSettings.nms_iou,
        threads: int = DetectorSettings.threads,
        providers: Sequence[str] = DetectorSettings.providers,
        low_light: str = "off",
    ) -> None:
        if low_light not in LOW_LIGHT_MODES:
            raise ModelError(f"low_light {low_light!r} is not one of {', '.join(LOW_LIGHT_MODES)}")
        self.low_light = low_light
        self._gamma_lut = np.clip((np.arange(256) / 255.0) ** 0.5 * 255.0 + 0.5, 0, 255).astype(np.uint8)
        self._clahe = cv2.createCLAHE(clipLimit=2.0, tileGridSize=(8, 8)) if low_light == "clahe" else None
        self.model_path = Path(model_path)
        self.labels = list(labels)
        self.nms_iou = nms_iou
        self._session = _open_session(self.model_path, threads, pick_providers(providers))
        self.provider = self._session.get_providers()[0]
        self.input_size, n_anchors = _check_shapes(self._session, self.model_path, len(self.labels))
        self._input_name = self._session.get_inputs()[0].name
        self._grid, self._stride = _grids(self.input_size)
        if len(self._grid) != n_anchors:
            raise ModelError(f"{self.model_path.name}: {n_anchors} outputs, expected {len(self._grid)} for YOLOX")
        scores = dict(scores or {})
        keep = set(keep_labels)
        # Per-class threshold; labels not kept get +inf so they never pass.
        self._thresholds = np.array(
            [scores.get(name, min_score) if name in keep else np.inf for name in self.labels], dtype=np.float32
        )
        self._floor = float(self._thresholds.min()) if np.isfinite(self._thresholds).any() else np.inf
        size = self.input_size
        self._canvas = np.full((size, size, 3), PAD_VALUE, dtype=np.uint8)
        self._input = np.zeros((1, 3, size, size), dtype=np.float32)
        self._run()  # warm-up: first inference allocates arenas and picks kernels
        log.info("detector: %s on %s, %d threads", self.model_path.name, self.provider, threads)

    def detect(self, image: np.ndarray) -> list[Detection]:
        """Detections in ``image`` (BGR uint8 HxWx3), boxes in its pixel coordinates, best first."""
        h, w = image.shape[:2]
        if self.low_light != "off":
            image = self._brighten(image)
        ratio = letterbox(image, self._canvas, self._input)
        out = self._run()
        return self._decode(out, ratio, w, h)

    def _brighten(self, image: np.ndarray) -> np.ndarray:
        """The crop as the model sees it best in the dark; unchanged (same array) when it is not dark."""
        sample = cv2.cvtColor(np.ascontiguousarray(image[::4, ::4]), cv2.COLOR_BGR2GRAY)
        if float(sample.mean()) >= DARK_MEAN:
            return image
        if self.low_light == "gamma":
            return cv2.LUT(image, self._gamma_lut)
        if self.low_light == "clahe" and self._clahe is not None:
            lab = cv2.cvtColor(image, cv2.COLOR_BGR2LAB)
            lab[..., 0] = self._clahe.apply(lab[..., 0])
            return cv2.cvtColor(lab, cv2.COLOR_LAB2BGR)
        lo, hi = np.percentile(sample, (1, 99))
        gain = min(_MAX_STRETCH, 255.0 / max(1.0, float(hi - lo)))
        return cv2.convertScaleAbs(image, alpha=gain, beta=-float(lo) * gain)

    def _run(self) -> np.ndarray:
        return self._session.run(None, {self._input_name: self._input})[0][0]

    def _decode(self, out: np.ndarray, ratio: float, width: int, height: int) -> list[Detection]:
        rows = np.flatnonzero(out[:, 4] >= self._floor)  # objectness bounds the score: cheap pre-filter
        if rows.size == 0:
            return []
        pred = out[rows]
        cls = pred[:, 5:].argmax(axis=1)
        score = pred[:, 4] * pred[np.arange(len(rows)), 5 + cls]
        ok = score >= self._thresholds[cls]
        if not ok.any():
            return []
        rows, pred, cls, score = rows[ok], pred[ok], cls[ok], score[ok]
        stride = self._stride[rows]
        centre = (pred[:, :2] + self._grid[rows]) * stride / ratio
        half = np.exp(pred[:, 2:4]) * stride / ratio / 2.0
        x1y1 = np.maximum(centre - half, 0.0)
        x2y2 = np.minimum(centre + half, (width, height))
        wh = x2y2 - x1y1
        keep = cv2.dnn.NMSBoxesBatched(
            np.concatenate((x1y1, wh), axis=1).tolist(), score.tolist(), cls.tolist(), 0.0, self.nms_iou
        )
        order = sorted(np.asarray(keep, dtype=int).reshape(-1), key=lambda i: -score[i])
        return [
            Detection(
                label=self.labels[cls[i]],
                score=float(score[i]),
                box=Box(float(x1y1[i, 0]), float(x1y1[i, 1]), float(x2y2[i, 0]), float(x2y2[i, 1])),
            )
            for i in order
            if wh[i, 0] > 0 and wh[i, 1] > 0
        ]


def _open_session(path: Path, threads: int, providers: list[str]) -> ort.InferenceSession:
    if not path.is_file():
        raise ModelError(f"model file {path} not found; run `edgecam model prepare` or scripts/fetch-assets")
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.log_severity_level = 3  # keep onnxruntime's own warnings out of the journal
    # Worker threads that spin between calls burn a core the other stages (and cameras) need: measured here
    # 16.5 vs 25.4 ms CPU per inference with spinning off, at the same latency within noise.
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    try:
        return ort.InferenceSession(str(path), sess_options=opts, providers=providers)
    except Exception as err:  # onnxruntime raises its own exception types for every load failure
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ModelError(f"model {path} cannot be loaded (not a valid ONNX model?): {first[:200]}") from None


def _check_shapes(session: ort.InferenceSession, path: Path, n_labels: int) -> tuple[int, int]:
    """Input must be [1,3,S,S] and output [1,N,5+labels]; returns (S, N)."""
    inputs, outputs = session.get_inputs(), session.get_outputs()
    shape = inputs[0].shape if len(inputs) == 1 else None
    if not shape or len(shape) != 4 or shape[1] != 3 or not isinstance(shape[2], int) or shape[2] != shape[3]:
        raise ModelError(f"model {path.name}: input shape {shape} is not [1,3,S,S] (YOLOX)")
    out = outputs[0].shape
    if len(out) != 3 or out[2] != 5 + n_labels or not isinstance(out[1], int):
        raise ModelError(f"model {path.name}: output shape {out} does not fit YOLOX with {n_labels} labels")
    return int(shape[2]), int(out[1])


def load_manifest(model_dir: Path) -> dict | None:
    """The manifest written by ``edgecam model prepare``, or None when there is none."""
    path = Path(model_dir) / MANIFEST
    if not path.is_file():
        return None
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise ModelError(f"manifest {path} unreadable: {err}") from None
    if not isinstance(manifest, dict) or "models" not in manifest or "choice" not in manifest:
        raise ModelError(f"manifest {path} lacks 'models' or 'choice'; run `edgecam model prepare` again")
    return manifest


def choose_model(model_dir: Path | None, precision: str = "auto") -> tuple[ModelChoice, list[str]]:
    """Pick the model file and its labels per the manifest (or the FP32 fallback); verify its sha256.

    ``model_dir``: a directory holding manifest.json (None: the project's models/), or an .onnx file.
    """
    if precision not in ("auto", "int8", "fp32"):
        raise ModelError(f"precision {precision!r} is not auto, int8 or fp32")
    given = model_dir is not None
    if model_dir is None:
        model_dir = assets.PROJECT_ROOT / "models"  # where `make model` / `edgecam model prepare` write
    manifest = load_manifest(model_dir) if Path(model_dir).suffix != ".onnx" else None
    if manifest is None and given and Path(model_dir).suffix != ".onnx":
        # a directory named on purpose holds the model meant: never quietly run another one instead
        what = " (the directory does not exist)" if not Path(model_dir).exists() else ""
        raise ModelError(f"no manifest.json in model directory {model_dir}{what}; "
                         f"run `edgecam model prepare --out {model_dir}`, or name an .onnx file")
    if manifest is None:
        return _fallback(model_dir, precision)
    if precision == "auto":
        precision = manifest["choice"]["precision"]
        reason = manifest["choice"]["reason"]
    else:
        reason = f"forced {precision} by config"
    entry = manifest["models"].get(precision)
    if not entry:
        raise ModelError(f"manifest in {model_dir} has no {precision} model; run `edgecam model prepare`")
    path = Path(model_dir) / entry["file"]
    if not path.is_file():
        raise ModelError(f"model file {path} is missing (the manifest names it); run `edgecam model prepare`")
    got = assets.sha256_file(path)
    if got != entry["sha256"]:
        raise ModelError(
            f"model {path} sha256 {got[:12]}... does not match the manifest's {entry['sha256'][:12]}...; "
            "run `edgecam model prepare` again"
        )
    labels = [RENAME.get(name, name) for name in manifest.get("labels") or []]
    return ModelChoice(path, precision, reason, got, from_manifest=True), labels


def _fallback(model_dir: Path | None, precision: str) -> tuple[ModelChoice, list[str]]:
    """No manifest: a model file given directly, or the shared FP32 model."""
    if model_dir is not None and Path(model_dir).suffix == ".onnx":
        path = Path(model_dir)
        guessed = "int8" if "int8" in path.name else "fp32"
        reason = f"model file given directly ({guessed} by its name)"
    else:
        if precision == "int8":
            raise ModelError(f"no manifest in {model_dir}; run `edgecam model prepare` to make the INT8 model")
        found = assets.find(assets.MODEL_FP32)
        if found is None:
            raise ModelError(f"no manifest in {model_dir} and no FP32 model; run scripts/fetch-assets")
        path, guessed, reason = found, "fp32", "no manifest: FP32"
    if not path.is_file():
        raise ModelError(f"model file {path} is missing")
    label_file = path.with_suffix(".labels.txt")
    if not label_file.is_file():
        label_file = assets.find(assets.MODEL_LABELS) or label_file
    return ModelChoice(path, guessed, reason, assets.sha256_file(path)), read_labels(label_file)


def load_detector(model_dir: Path | None, precision: str = "auto", **detector_kwargs) -> tuple[Detector, ModelChoice]:
    """Build the detector the manifest in ``model_dir`` chose (INT8 when faithful and fast), or FP32."""
    choice, labels = choose_model(model_dir, precision)
    detector = Detector(choice.path, labels, **detector_kwargs)
    log.info("detector model: %s (%s): %s", choice.path.name, choice.precision, choice.reason)
    return detector, choice
