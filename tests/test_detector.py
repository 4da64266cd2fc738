"""The YOLOX-Nano detector on the real model and real COCO images."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
from support.assets import coco_dir, model_path

from edge import assets
from edge.types import Box
from edge.vision.detector import ModelError, choose_model, load_detector, read_labels
from edge.vision.regions import filter_area

# COCO val2017 000000001532: a freeway under a sign gantry. Looked at with boxes drawn: two cars at the left
# (taxi, white van), a black SUV in the middle, a dark car on the right, a small car far away.
CARS_IMAGE = "000000001532.jpg"
# COCO val2017 000000000139: a living room with people and no vehicles.
ROOM_IMAGE = "000000000139.jpg"


@pytest.fixture(scope="module")
def fp32():
    """The FP32 model file given directly (a directory without a manifest is an error, #14.13)."""
    detector, choice = load_detector(model_path())
    return detector, choice


def cars_image() -> np.ndarray:
    image = cv2.imread(str(coco_dir() / CARS_IMAGE))
    assert image is not None
    return image


def assert_inside(detections, width: int, height: int) -> None:
    for det in detections:
        box = det.box
        assert 0 <= box.x1 < box.x2 <= width and 0 <= box.y1 < box.y2 <= height, det


def test_fp32_finds_the_cars(fp32) -> None:
    detector, choice = fp32
    assert choice.precision == "fp32" and "given directly" in choice.reason
    assert choice.sha256 == assets.sha256_file(choice.path)
    assert detector.input_size == 416 and detector.provider == "CPUExecutionProvider"
    image = cars_image()
    dets = detector.detect(image)
    cars = [d for d in dets if d.label == "car"]
    assert len(cars) >= 4, dets
    assert all(d.score >= 0.4 for d in dets)
    assert {d.label for d in dets} <= {"person", "bicycle", "car", "motorcycle", "bus", "truck"}
    assert_inside(dets, image.shape[1], image.shape[0])
    # The SUV in the middle of the bottom edge: x about 225..417, y 360..480.
    suv = max(cars, key=lambda d: d.box.area)
    assert 200 < suv.box.x1 < 250 and 390 < suv.box.x2 < 440 and suv.box.y1 > 340 and suv.score > 0.7
    # Cars are on the road, in the bottom quarter of the picture; nothing in the sky.
    assert all(d.box.y1 > 330 for d in cars)


def test_room_has_people_and_no_vehicles(fp32) -> None:
    detector, _ = fp32
    image = cv2.imread(str(coco_dir() / ROOM_IMAGE))
    dets = detector.detect(image)
    assert [d.label for d in dets].count("person") >= 1
    assert not [d for d in dets if d.label in ("car", "bus", "truck", "motorcycle", "bicycle")]


def test_crops_give_crop_coordinates(fp32) -> None:
    """A crop (any size, any aspect) returns boxes in the crop's pixels, same objects as the full frame."""
    detector, _ = fp32
    image = cars_image()
    full = [d for d in detector.detect(image) if d.label == "car"]
    suv = max(full, key=lambda d: d.box.area)
    for x0, y0, x1, y1 in ((150, 250, 480, 480), (200, 330, 440, 480), (0, 0, 640, 480), (180, 200, 460, 480)):
        crop = np.ascontiguousarray(image[y0:y1, x0:x1])
        dets = detector.detect(crop)
        assert_inside(dets, x1 - x0, y1 - y0)
        best = max((d for d in dets if d.label == "car"), key=lambda d: d.box.area)
        moved = Box(best.box.x1 + x0, best.box.y1 + y0, best.box.x2 + x0, best.box.y2 + y0)
        assert moved.iou(suv.box) > 0.8, (x0, y0, best)


def test_small_crop_is_scaled_up(fp32) -> None:
    """A crop smaller than the input (scaled up about 2x) finds the car, in crop coordinates."""
    detector, _ = fp32
    image = cars_image()
    right = [d for d in detector.detect(image) if d.label == "car" and d.box.x1 > 420]  # dark car, right lane
    assert len(right) == 1
    x0, y0 = 360, 340
    crop = np.ascontiguousarray(image[y0:480, x0:560])  # 200x140 pixels
    dets = detector.detect(crop)
    assert_inside(dets, 200, 140)
    cars = [d for d in dets if d.label == "car"]
    moved = [Box(d.box.x1 + x0, d.box.y1 + y0, d.box.x2 + x0, d.box.y2 + y0) for d in cars]
    assert max(box.iou(right[0].box) for box in moved) > 0.8, cars


def test_thresholds_and_label_filter() -> None:
    path = model_path()
    labels = read_labels(assets.find(assets.MODEL_LABELS))
    assert labels[3] == "motorcycle" and len(labels) == 80
    from edge.vision.detector import Detector

    only_trucks = Detector(path, labels, keep_labels=["truck"], min_score=0.3)
    dets = only_trucks.detect(cars_image())
    assert dets and {d.label for d in dets} == {"truck"}
    strict = Detector(path, labels, scores={"car": 0.8}, min_score=0.3)
    cars = [d for d in strict.detect(cars_image()) if d.label == "car"]
    assert cars and all(d.score >= 0.8 for d in cars)


def test_corrupt_model_is_one_line_error(tmp_path: Path) -> None:
    labels = read_labels(assets.find(assets.MODEL_LABELS) or model_path())
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(np.random.default_rng(1).bytes(4096))
    from edge.vision.detector import Detector

    with pytest.raises(ModelError) as err:
        Detector(bad, labels)
    assert "\n" not in str(err.value) and "bad.onnx" in str(err.value)
    with pytest.raises(ModelError, match="not found"):
        Detector(tmp_path / "missing.onnx", labels)
    with pytest.raises(ModelError, match="output shape"):
        Detector(model_path(), labels[:10])


def test_manifest_hash_mismatch_is_refused(tmp_path: Path) -> None:
    src = model_path()
    shutil.copyfile(src, tmp_path / "m.onnx")
    manifest = {
        "models": {"fp32": {"file": "m.onnx", "sha256": "0" * 64}},
        "labels": ["person"],
        "choice": {"precision": "fp32", "reason": "test"},
    }
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ModelError, match="does not match the manifest") as err:
        choose_model(tmp_path)
    assert "\n" not in str(err.value)
    with pytest.raises(ModelError, match="no int8 model"):
        choose_model(tmp_path, "int8")


def test_unavailable_provider_falls_back_to_cpu(caplog) -> None:
    path = model_path()
    labels = read_labels(assets.find(assets.MODEL_LABELS))
    from edge.vision.detector import Detector

    with caplog.at_level(logging.INFO, logger="edge.vision.detector"):
        det = Detector(path, labels, providers=["TensorrtExecutionProvider", "CUDAExecutionProvider"])
    assert det.provider in ("TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider")
    lines = [r.getMessage() for r in caplog.records if "detector:" in r.getMessage()]
    assert len(lines) == 1 and det.provider in lines[0]


def test_filter_area_uses_frame_fractions(fp32) -> None:
    detector, _ = fp32
    dets = detector.detect(cars_image())
    frame = 640 * 480
    big = filter_area(dets, 640, 480, 0.05, 1.0)  # only the SUV covers >5% of the frame
    assert [d.label for d in big] == ["car"] and big[0].box.area >= 0.05 * frame
    small = filter_area(dets, 640, 480, 0.0, 0.01)
    assert small and all(d.box.area <= 0.01 * frame for d in small)
    assert len(filter_area(dets, 640, 480, 0.0, 1.0)) == len(dets)


def test_model_file_given_directly() -> None:
    choice, labels = choose_model(model_path())
    assert choice.precision == "fp32" and "given directly" in choice.reason and len(labels) == 80
    with pytest.raises(ModelError, match="no manifest"):
        choose_model(model_path().parent / "no-such-dir", "int8")


def test_a_model_directory_without_manifest_is_an_error(tmp_path) -> None:
    """It used to run the shared FP32 model instead, silently (#14.13)."""
    model_path()
    (tmp_path / "model.onnx").write_bytes(b"not the model meant")
    for precision in ("auto", "fp32"):
        with pytest.raises(ModelError) as err:
            choose_model(tmp_path, precision)
        assert str(err.value) == (f"no manifest.json in model directory {tmp_path}; "
                                  f"run `edgecam model prepare --out {tmp_path}`, or name an .onnx file")
