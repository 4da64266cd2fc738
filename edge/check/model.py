"""Model probe: find the model the daemon will use, verify its sha256, time one inference.

The choice follows ``edge.vision.detector.choose_model``: the manifest written
by ``edgecam model prepare`` in the model directory decides INT8 or FP32 (unless
the config forces one); with no manifest, the FP32 model from the assets. Only
``_model_from_manifest`` knows the manifest's layout.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .. import assets
from .result import FAIL, OK, Result

PREPARE = "run `edgecam model prepare --out <model dir>`"
DEFAULT_SIZE = 416


class ModelProblem(Exception):
    """The model cannot be used; one line."""


@dataclass(frozen=True)
class ModelPick:
    path: Path
    precision: str  # "int8" | "fp32"
    reason: str
    expected_sha256: str | None  # None: no manifest to compare with


def _model_from_manifest(model_dir: Path, precision: str) -> ModelPick | None:
    """The entry of ``<model_dir>/manifest.json`` to use, or None when there is no manifest."""
    path = model_dir / "manifest.json"
    if not path.is_file():
        return None
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
        choice, models = manifest["choice"], manifest["models"]
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise ModelProblem(f"manifest {path} unreadable ({err}); {PREPARE} again") from None
    if precision == "auto":
        precision, reason = choice["precision"], choice.get("reason", "manifest choice")
    else:
        reason = f"forced {precision} by detector.precision"
    entry = models.get(precision)
    if not entry:
        raise ModelProblem(f"manifest {path} has no {precision} model; {PREPARE}")
    return ModelPick(model_dir / entry["file"], precision, reason, entry["sha256"])


def find_model(setting: Path | None, precision: str) -> ModelPick:
    """Where ``detector.model`` (a directory, a file, or unset) leads, as load_detector will see it."""
    if setting is not None and setting.suffix == ".onnx":
        guessed = "int8" if "int8" in setting.name else "fp32"
        return ModelPick(setting, guessed, f"model file given directly ({guessed} by its name)", None)
    model_dir = setting if setting is not None else assets.PROJECT_ROOT / "models"
    pick = _model_from_manifest(model_dir, precision)
    if pick is not None:
        return pick
    if precision == "int8":
        raise ModelProblem(f"no manifest in {model_dir}, so no INT8 model; {PREPARE}")
    found = assets.find(assets.MODEL_FP32)
    if found is None:
        raise ModelProblem(f"no manifest in {model_dir} and no FP32 model; run scripts/fetch-assets")
    return ModelPick(found, "fp32", f"no manifest in {model_dir}", None)


def _verify(pick: ModelPick) -> str:
    if not pick.path.is_file():
        raise ModelProblem(f"model file {pick.path} is missing; {PREPARE}")
    got = assets.sha256_file(pick.path)
    if pick.expected_sha256 is not None and got != pick.expected_sha256:
        raise ModelProblem(
            f"{pick.path.name}: sha256 {got[:12]}… does not match the manifest's {pick.expected_sha256[:12]}…"
        )
    return got


def _time_inference(path: Path, providers: list[str], threads: int) -> tuple[float, str]:
    """Milliseconds for one inference on a zero image (after one warm-up run), and the provider used."""
    import onnxruntime as ort

    available = set(ort.get_available_providers())
    usable = [p for p in providers if p in available] or ["CPUExecutionProvider"]
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.log_severity_level = 3
    try:
        session = ort.InferenceSession(str(path), sess_options=opts, providers=usable)
    except Exception as err:  # onnxruntime raises its own untyped errors for bad files
        raise ModelProblem(f"{path.name} does not load: {str(err).splitlines()[0][:160]}") from None
    spec = session.get_inputs()[0]
    shape = [d if isinstance(d, int) else DEFAULT_SIZE for d in spec.shape]
    shape[0] = 1
    feed = {spec.name: np.zeros(shape, dtype=np.float32)}
    session.run(None, feed)
    started = time.perf_counter()
    session.run(None, feed)
    return (time.perf_counter() - started) * 1000.0, session.get_providers()[0]


def probe_model(setting: Path | None, precision: str, providers: list[str], threads: int) -> Result:
    """Find, verify and run the model once."""
    try:
        pick = find_model(setting, precision)
        sha = _verify(pick)
        ms, provider = _time_inference(pick.path, providers, threads)
    except ModelProblem as err:
        advice = PREPARE if "sha256" in str(err) else "fix detector.model, or " + PREPARE
        return Result("model", FAIL, str(err), advice)
    missing = [p for p in providers if p != provider and p != "CPUExecutionProvider"]
    note = f"; {', '.join(missing)} not available" if missing and provider == "CPUExecutionProvider" else ""
    hashed = "sha256 matches manifest" if pick.expected_sha256 else "no manifest to check sha256 against"
    detail = (f"{pick.precision.upper()} {pick.path.name} ({pick.reason}); {hashed}; "
              f"{ms:.1f} ms per inference on {provider}{note}")
    data = {"path": str(pick.path), "precision": pick.precision, "sha256": sha, "ms": round(ms, 2),
            "provider": provider, "reason": pick.reason}
    return Result("model", OK, detail, data=data)
