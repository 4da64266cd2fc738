"""Zones, counting lines and the event builder, as pure functions and values."""

from __future__ import annotations

from edge.types import Box, EventType
from edge.vision.events import EventBuilder, crossing, in_polygon, side
from edge.vision.pipeline import FrameGate
from edge.vision.tracker import Track

SIZE = (100, 100)


def track(tid: int, x: float, y: float, t: float, confirmed: bool = True, score: float = 0.6) -> Track:
    """A 10x10 px track whose bottom centre is at (x, y) pixels."""
    return Track(tid, Box(x - 5, y - 10, x + 5, y), t, t, score, score, {"car": score}, confirmed=confirmed)


def test_side_of_a_line_as_seen_on_screen():
    a, b = (0.0, 0.5), (1.0, 0.5)  # drawn left to right: the upper half is on the left
    assert side(a, b, (0.5, 0.2)) < 0
    assert side(a, b, (0.5, 0.8)) > 0


def test_crossing_direction_and_extent():
    a, b = (0.0, 0.5), (1.0, 0.5)
    assert crossing(a, b, (0.5, 0.4), (0.5, 0.6)) == "in"  # moving down the image
    assert crossing(a, b, (0.5, 0.6), (0.5, 0.4)) == "out"
    assert crossing(a, b, (0.5, 0.1), (0.5, 0.3)) is None  # same side
    short = ((0.0, 0.5), (0.4, 0.5))
    assert crossing(*short, (0.8, 0.4), (0.8, 0.6)) is None  # beside the segment
    vertical = ((0.5, 0.0), (0.5, 1.0))  # pointing down: screen right is its left side
    assert crossing(*vertical, (0.7, 0.5), (0.3, 0.5)) == "in"
    assert crossing(*vertical, (0.3, 0.5), (0.7, 0.5)) == "out"


def test_zone_membership():
    square = [(0.2, 0.2), (0.8, 0.2), (0.8, 0.8), (0.2, 0.8)]
    assert in_polygon((0.5, 0.5), square)
    assert not in_polygon((0.1, 0.5), square)
    triangle = [(0.0, 0.0), (1.0, 0.0), (0.0, 1.0)]
    assert in_polygon((0.2, 0.2), triangle)
    assert not in_polygon((0.8, 0.8), triangle)


def test_start_update_end_with_line_zone_and_stable_id():
    b = EventBuilder("gate", SIZE, zones={"right": [(0.5, 0), (1, 0), (1, 1), (0.5, 1)]},
                     lines={"mid": ((0.5, 0.0), (0.5, 1.0))})
    events = []
    for i in range(12):
        t = i * 0.2
        events += b.process([track(1, 20 + 6 * i, 50, t)], [], t, 1000 + t)
    events += b.process([], [track(1, 86, 50, 2.2)], 2.4, 1002.4)
    kinds = [e.type for e in events]
    assert kinds[0] is EventType.START and kinds[-1] is EventType.END
    assert len({e.id for e in events}) == 1 and events[0].id.startswith("gate-")
    lines = [e.line for e in events if e.line]
    assert [(c.name, c.direction) for c in lines] == [("mid", "out")]
    assert b.line_counts == {"mid": {"in": 0, "out": 1}}
    assert "right" in events[-1].zones and events[0].zones == ()
    assert events[-1].duration == 0.0  # the test track's first/last time are equal
    assert b.started == {"car": 1}


def test_unconfirmed_tracks_make_no_events_but_their_crossings_count_when_real():
    b = EventBuilder("c", SIZE, lines={"mid": ((0.5, 0.0), (0.5, 1.0))})
    assert b.process([track(1, 40, 50, 0.0, confirmed=False)], [], 0.0, 0.0) == []
    assert b.process([track(1, 60, 50, 0.2, confirmed=False)], [], 0.2, 0.2) == []
    assert b.line_counts["mid"] == {"in": 0, "out": 0}
    out = b.process([track(1, 70, 50, 0.4)], [], 0.4, 0.4)
    assert [e.type for e in out] == [EventType.START]
    assert b.line_counts["mid"] == {"in": 0, "out": 1}
    out = b.process([], [track(1, 70, 50, 0.4)], 0.6, 0.6)
    assert [e.type for e in out] == [EventType.UPDATE, EventType.END]  # the pending crossing is not lost
    assert out[0].line is not None and out[0].line.direction == "out"


def test_score_updates_are_rate_limited():
    b = EventBuilder("c", SIZE, update_interval=1.0, score_step=0.1)
    out = []
    for i, score in enumerate([0.5, 0.65, 0.8, 0.9, 0.95, 0.99]):
        out += b.process([track(1, 50, 50, i * 0.2, score=score)], [], i * 0.2, i * 0.2)
    assert [e.type for e in out] == [EventType.START, EventType.UPDATE]
    assert out[1].time >= 1.0


def test_ids_differ_across_restarts_and_objects():
    a = EventBuilder("c", SIZE).process([track(1, 50, 50, 0)], [], 0.0, 1000.0)
    b = EventBuilder("c", SIZE).process([track(1, 50, 50, 0)], [], 0.0, 1000.5)
    c = EventBuilder("c", SIZE).process([track(1, 50, 50, 0), track(2, 20, 20, 0)], [], 0.0, 1000.0)
    assert a[0].id != b[0].id
    assert len({e.id for e in c}) == 2


def test_frame_gate_picks_by_source_time():
    gate = FrameGate(5.0)
    times = [i / 24 for i in range(48)]  # two seconds of a 24 fps file
    picked = [t for t in times if gate.should_analyse(t)]
    assert len(picked) == 10
    again = FrameGate(5.0)
    assert picked == [t for t in times if again.should_analyse(t)]  # deterministic
    assert gate.should_analyse(0.0)  # a jump back (loop) starts again
