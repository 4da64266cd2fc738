"""Colour and heading in the ``end`` event: from the builder's own track path and the analysed frames."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import numpy as np
from support.assets import model_path, video_path

from edge.payload import event_body, event_message
from edge.types import Box, EventType
from edge.vision.attributes import COLORS, HEADINGS
from edge.vision.events import EventBuilder
from edge.vision.tracker import Track

SIZE = (200, 120)
SCHEMA = json.loads((Path(__file__).resolve().parent.parent / "edge/schema/events.schema.json").read_text())


def _track(x: float, y: float, t: float) -> Track:
    return Track(7, Box(x - 20, y - 12, x + 20, y + 12), t, t, 0.8, 0.8, {"car": 0.8}, confirmed=True)


def _run(points: list[tuple[float, float]], image: np.ndarray | None = None):
    b = EventBuilder("gate", SIZE)
    events = []
    for i, (x, y) in enumerate(points):
        events += b.process([_track(x, y, i * 0.2)], [], i * 0.2, 1e9 + i * 0.2, image)
    x, y = points[-1]
    events += b.process([], [_track(x, y, len(points) * 0.2)], len(points) * 0.2, 1e9 + len(points) * 0.2, image)
    return events


def test_end_carries_heading_from_the_path_and_colour_from_the_frame() -> None:
    frame = np.full((SIZE[1], SIZE[0], 3), (95, 100, 100), np.uint8)  # grey road
    frame[40:80, 30:170] = (30, 30, 200)  # a red car's body where the track runs
    events = _run([(50 + 6 * i, 60 - 1.5 * i) for i in range(16)], frame)
    end = events[-1]
    assert end.type is EventType.END
    assert (end.heading, end.color) == ("right", "red")
    body = event_body(end)
    assert (body["heading"], body["color"]) == ("right", "red") and 0.5 <= body["color_score"] <= 1
    msg = json.loads(event_message(body, "node-01", 1))
    jsonschema.validate(msg, SCHEMA)


def test_start_and_a_still_object_carry_no_attributes_and_v1_payload_is_unchanged() -> None:
    events = _run([(100.0, 60.0)] * 10)
    assert events[0].type is EventType.START and events[-1].type is EventType.END
    assert (events[-1].heading, events[-1].color) == (None, None)  # no image given, did not move
    body = event_body(events[-1])
    assert not {"heading", "color", "color_score"} & body.keys()


def test_real_road_video_headings_agree_with_line_crossings() -> None:
    """road-overhead: "in" crossings are right-to-left lanes, "out" left-to-right (tests/data/ground_truth.toml).

    Every object that crossed the middle line in the first 10 s must end with a heading whose horizontal part
    matches (>= 90%; 22 of 22 over the whole clip, BENCHMARKS.md).
    """
    from edge.bench import analyse_file
    from edge.vision.detector import load_detector
    from edge.vision.pipeline import AnalyzerSettings, CameraAnalyzer, EventSettings

    det, _ = load_detector(model_path())
    settings = AnalyzerSettings(events=EventSettings(lines={"middle": ((0.5, 0.0), (0.5, 1.0))}))
    run = analyse_file(video_path("road"), CameraAnalyzer("road", det, settings), 5.0, stop_at=10.0)
    crossed = {e.id: e.line.direction for e in run.events if e.line is not None}
    ends = {e.id: e for e in run.events if e.type is EventType.END}
    assert len(crossed) >= 8
    agree = sum(
        1 for i, d in crossed.items()
        if i in ends and ends[i].heading and ("left" in ends[i].heading) == (d == "in")
        and ("right" in ends[i].heading) == (d == "out")
    )
    assert agree >= 0.9 * len(crossed), (agree, len(crossed))
    colours = [e.color for e in ends.values() if e.color]
    assert len(colours) >= 0.8 * len(ends) and set(colours) <= set(COLORS)
    assert {e.heading for e in ends.values() if e.heading} <= set(HEADINGS)
    for e in ends.values():
        assert len(event_message(event_body(e), "node-01", 1)) <= 1024
