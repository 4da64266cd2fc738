"""`edgecam model prepare` on the real model and real COCO images: INT8 model, measurements, manifest."""

from __future__ import annotations

import contextlib
import io
import json
import shutil
from pathlib import Path

import cv2
import pytest
from support.assets import coco_dir, model_path

from edge import assets
from edge.cli import main
from edge.vision.detector import ModelError, load_detector
from edge.vision.model_eval import Agreement, choose
from edge.vision.quantize import FP32_NAME, INT8_NAME, LABELS_NAME

CARS_IMAGE = "000000001532.jpg"  # see test_detector.py: five cars on a freeway
PREPARE_OUTPUT: list[str] = []  # what the session's one prepare printed


@pytest.fixture(scope="session")
def prepared(tmp_path_factory) -> Path:
    """One prepare per session, with a small calibration set to keep the suite fast."""
    model_path()
    coco_dir()
    out = tmp_path_factory.mktemp("models")
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        rc = main(["model", "prepare", "--out", str(out), "--calib-count", "10", "--eval-count", "10"])
    assert rc == 0
    PREPARE_OUTPUT[:] = printed.getvalue().splitlines()
    return out


def test_prepare_says_what_it_is_doing_and_how_long(prepared: Path) -> None:
    """#13.10: it used to be 32 s of silence in `make demo`."""
    lines = [line for line in PREPARE_OUTPUT if line.startswith("model prepare: ")]
    assert lines[0].startswith("model prepare: making an INT8 model from yolox_nano.onnx")
    assert " s on an idle 2-core" in lines[0]
    steps = [line.split("] ", 1)[1] for line in lines[1:]]
    assert [s.split(" ")[0] for s in steps] == ["copying", "quantizing", "comparing", "timing", "done:"]
    assert "calibrated on 10 images" in steps[1] and steps[2].startswith("comparing INT8 with FP32 on ")
    seconds = [float(line.split("[", 1)[1].split(" s]")[0]) for line in lines[1:]]
    assert seconds == sorted(seconds) and seconds[0] < seconds[-1]


def test_manifest_contents(prepared: Path) -> None:
    manifest = json.loads((prepared / "manifest.json").read_text())
    for name in (INT8_NAME, FP32_NAME, LABELS_NAME):
        assert (prepared / name).is_file()
    assert not list(prepared.glob("*.tmp"))
    models = manifest["models"]
    assert models["int8"]["sha256"] == assets.sha256_file(prepared / INT8_NAME)
    assert models["fp32"]["sha256"] == assets.sha256_file(prepared / FP32_NAME)
    assert models["fp32"]["sha256"] == assets.sha256_file(model_path())
    assert manifest["input_size"] == 416
    assert len(manifest["labels"]) == 80 and manifest["labels"][3] == "motorcycle"
    quant = manifest["quantization"]
    assert quant["format"] == "QDQ" and quant["per_channel"] and quant["calib_images"] == 10
    assert "Conv_41" in quant["fp32_nodes"]
    agreement = manifest["agreement"]
    assert agreement["images"] == 10 + agreement["video_frames"]
    assert agreement["fp32_detections"] > 20 and 0 <= agreement["matched"] <= agreement["fp32_detections"]
    latency = manifest["latency"]
    assert latency["threads"] == 2 and latency["fp32_ms"] > 0 and latency["int8_ms"] > 0
    assert manifest["machine"]["machine"]
    choice = manifest["choice"]
    assert choice["precision"] in ("int8", "fp32") and choice["reason"]
    # The choice follows the rule from the recorded figures.
    figures = Agreement(
        fp32_detections=agreement["fp32_detections"],
        matched=agreement["matched"],
        fp32_high=agreement["fp32_high"],
        matched_high=agreement["matched_high"],
    )
    assert choose(figures, latency["fp32_ms"], latency["int8_ms"])[0] == choice["precision"]


def test_int8_finds_the_cars(prepared: Path) -> None:
    detector, choice = load_detector(prepared, precision="int8")
    assert choice.precision == "int8" and choice.path.name == INT8_NAME
    image = cv2.imread(str(coco_dir() / CARS_IMAGE))
    dets = detector.detect(image)
    cars = [d for d in dets if d.label == "car"]
    assert len(cars) >= 3, dets
    suv = max(cars, key=lambda d: d.box.area)
    assert 200 < suv.box.x1 < 250 and 390 < suv.box.x2 < 440 and suv.box.y1 > 340
    for det in dets:
        assert 0 <= det.box.x1 < det.box.x2 <= 640 and 0 <= det.box.y1 < det.box.y2 <= 480


def test_load_detector_follows_the_manifest(prepared: Path) -> None:
    manifest = json.loads((prepared / "manifest.json").read_text())
    detector, choice = load_detector(prepared)
    want = manifest["choice"]["precision"]
    assert choice.precision == want and choice.reason == manifest["choice"]["reason"]
    assert choice.sha256 == manifest["models"][want]["sha256"]
    _, forced = load_detector(prepared, precision="fp32")
    assert forced.path.name == FP32_NAME and "forced" in forced.reason


def test_tampered_model_is_refused(prepared: Path, tmp_path: Path) -> None:
    copy = tmp_path / "models"
    shutil.copytree(prepared, copy)
    data = bytearray((copy / INT8_NAME).read_bytes())
    data[-100] ^= 0xFF
    (copy / INT8_NAME).write_bytes(bytes(data))
    with pytest.raises(ModelError, match="does not match the manifest") as err:
        load_detector(copy, precision="int8")
    assert "\n" not in str(err.value)


def test_prepare_without_model_is_one_line(tmp_path: Path, capsys) -> None:
    rc = main(["model", "prepare", "--out", str(tmp_path), "--fp32", str(tmp_path / "none.onnx")])
    assert rc == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("edgecam: FP32 model") and "\n" not in err
