"""The vision pipeline on the real sample videos with the real YOLOX-Nano model.

Each scenario runs once per session (cached) at detect_fps 5; the hand counts
it is compared with are in tests/data/ground_truth.toml, with how they were made.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tomllib
from support.assets import model_path, video_path

from edge.bench import FileRun, analyse_file
from edge.types import EventType, Frame
from edge.vision.detector import load_detector
from edge.vision.pipeline import AnalyzerSettings, CameraAnalyzer, EventSettings, MotionSettings
from edge.vision.shared import SharedDetector
from edge.vision.tracker import label_group

TRUTH = tomllib.loads((Path(__file__).parent / "data" / "ground_truth.toml").read_text())
ROAD_LINE = {"middle": ((0.5, 0.0), (0.5, 1.0))}
ROAD_ZONE = {"bottom": ((0.0, 0.35), (1.0, 0.35), (1.0, 1.0), (0.0, 1.0))}
ROAD_MASK = (((0.0, 0.35), (1.0, 0.35), (1.0, 1.0), (0.0, 1.0)),)
SCENARIOS = {
    "road": ("road", AnalyzerSettings(events=EventSettings(zones=ROAD_ZONE, lines=ROAD_LINE))),
    "road-masked": ("road", AnalyzerSettings(motion=MotionSettings(mask=ROAD_MASK))),
    "street": ("street", AnalyzerSettings()),
    "highway": ("highway", AnalyzerSettings()),
    "pedestrians": ("pedestrians", AnalyzerSettings()),
}


@pytest.fixture(scope="session")
def detector():
    det, _ = load_detector(model_path())
    return det


@pytest.fixture(scope="session")
def runs(detector):
    cache: dict[str, FileRun] = {}

    def get(name: str) -> FileRun:
        if name not in cache:
            video, settings = SCENARIOS[name]
            cache[name] = analyse_file(video_path(video), CameraAnalyzer(name, detector, settings), 5.0)
        return cache[name]

    return get


def starts(run: FileRun) -> dict[str, int]:
    groups: dict[str, int] = {}
    for e in run.events:
        if e.type is EventType.START:
            g = label_group(e.label)
            groups[g] = groups.get(g, 0) + 1
    return groups


@pytest.mark.parametrize("name", ["road", "street", "highway", "pedestrians"])
def test_start_events_match_hand_count(runs, name):
    run = runs(name)
    got = starts(run)
    truth = TRUTH[name]
    for group in ("vehicle", "person"):
        want = truth[group]
        have = got.get(group, 0)
        if want == 0:
            assert have == 0, f"{name}: {have} {group} starts, expected none ({got})"
        else:
            assert abs(have - want) <= 0.3 * want, f"{name}: {have} {group} starts vs {want} counted ({got})"


@pytest.mark.parametrize("name", ["road", "street", "highway", "pedestrians"])
def test_every_object_gets_start_then_end_with_one_id(runs, name):
    run = runs(name)
    by_id: dict[str, list[EventType]] = {}
    for e in run.events:
        by_id.setdefault(e.id, []).append(e.type)
        assert all(0.0 <= v <= 1.0 for v in e.box)
    for kinds in by_id.values():
        assert kinds[0] is EventType.START and kinds[-1] is EventType.END
        assert kinds.count(EventType.START) == 1 and kinds.count(EventType.END) == 1
    ends = [e for e in run.events if e.type is EventType.END]
    assert all(e.duration is not None and e.duration >= 0 for e in ends)


def test_updates_are_rate_limited(runs):
    run = runs("road")
    last: dict[str, float] = {}
    for e in run.events:
        if e.type is EventType.UPDATE and e.line is None:
            assert e.time - last.get(e.id, -9.0) >= 1.0 - 1e-6
        if e.type is not EventType.END:
            last[e.id] = e.time


def test_line_counts_match_hand_count(runs):
    run = runs("road")
    counts = run.stats.lines["middle"]
    truth = TRUTH["road"]
    assert abs(counts["in"] - truth["line_in"]) <= max(2, 0.25 * truth["line_in"]), counts
    assert abs(counts["out"] - truth["line_out"]) <= max(2, 0.25 * truth["line_out"]), counts
    crossings = [e for e in run.events if e.line is not None]
    assert len(crossings) == counts["in"] + counts["out"]
    assert {e.line.direction for e in crossings} == {"in", "out"}


def test_zone_membership_matches_hand_count(runs):
    run = runs("road")
    in_zone = {e.id for e in run.events if "bottom" in e.zones}
    want = TRUTH["road"]["zone_bottom"]
    assert abs(len(in_zone) - want) <= 0.3 * want, len(in_zone)


def test_motion_mask_removes_vehicle_events_under_it(runs):
    masked, plain = runs("road-masked"), runs("road")
    bottoms = [e.box[3] for e in masked.events if e.type is EventType.START]
    assert all(b < 0.35 for b in bottoms), bottoms  # nothing starts in the masked lanes
    unmasked_top = [e for e in plain.events if e.type is EventType.START and e.box[3] < 0.35]
    assert len(bottoms) >= 0.7 * len(unmasked_top) > 0  # the open lanes still give their cars


def test_static_scene_costs_no_detector_call(detector):
    """One real frame repeated with sensor noise: motion stays quiet, so nothing runs."""
    from edge.bench import iter_frames

    _, _, image = next(iter_frames(video_path("street"), 5.0))
    analyzer = CameraAnalyzer("static", SharedDetector(detector))  # as the daemon shares one
    rng = np.random.default_rng(1)
    events = []
    for i in range(60):
        noisy = np.clip(image.astype(np.int16) + rng.normal(0, 4, image.shape), 0, 255).astype(np.uint8)
        events += analyzer.process(Frame("static", i, i / 5, i / 5, 1e9 + i / 5, noisy))
    events += analyzer.flush(12.0, 1e9 + 12)
    assert analyzer.stats().detector_calls == 0
    assert events == []


def test_brightness_step_makes_no_event_of_its_own(detector, runs):
    """The street clip with the light jumping at 20 s (a cloud, an IR switch) gives the same objects."""

    def brighter(index, t, image):
        return np.clip(image.astype(np.int16) + 70, 0, 255).astype(np.uint8) if t >= 20.0 else image

    step = CameraAnalyzer("step", detector)
    stepped = analyse_file(video_path("street"), step, 5.0, transform=brighter, stop_at=30.0)
    plain = runs("street")  # the same frames up to 30 s: analysis is deterministic by source time
    assert stepped.stats.lightning_resets >= 1
    assert plain.stats.lightning_resets == 0
    times = sorted(e.time for e in stepped.events if e.type is EventType.START)
    assert not [t for t in times if 20.0 <= t < 21.5], times  # nothing born of the step itself
    assert len(times) <= len([e for e in plain.events if e.type is EventType.START and e.time < 30.0])
