"""Shared test assets (never committed): skip cleanly when a machine has none."""

from __future__ import annotations

from pathlib import Path

import pytest

from edge import assets

VIDEOS = {
    "road": "road-overhead-640x360-24fps.mp4",
    "street": "street-securitycam-640x360-10fps.mp4",
    "highway": "highway-640x360-30fps.mp4",
    "pedestrians": "pedestrians-800x450-24fps.mp4",
}


def video_path(key: str) -> Path:
    path = assets.video(VIDEOS.get(key, key))
    if path is None:
        pytest.skip(f"sample video {key} not available (run scripts/fetch-assets)")
    return path


def model_path() -> Path:
    path = assets.find(assets.MODEL_FP32)
    if path is None:
        pytest.skip("YOLOX-Nano model not available (run scripts/fetch-assets)")
    return path


def coco_dir() -> Path:
    path = assets.find(assets.COCO_DIR)
    if path is None:
        pytest.skip("COCO sample not available (run scripts/fetch-assets)")
    return path
