"""Tracker association and lifecycle, and region planning, on plain values."""

from __future__ import annotations

from edge.types import Box, Detection
from edge.vision.regions import merge_detections, plan_regions, to_frame
from edge.vision.tracker import Tracker

FRAME = (640, 360)
ALL = [Box(0, 0, 640, 360)]  # the whole frame was looked at


def car(x: float, y: float = 100, label: str = "car", score: float = 0.7, w: float = 60, h: float = 30) -> Detection:
    return Detection(label, score, Box(x, y, x + w, y + h))


def test_fast_car_keeps_one_id_thanks_to_prediction():
    """60 px wide, 70 px per analysed frame: no overlap between frames, one track all the same."""
    tr = Tracker(FRAME, min_hits=3)
    for i in range(7):
        tr.update([car(10 + 70 * i)], i * 0.2, ALL)
    assert len(tr.tracks) == 1 and tr.tracks[0].confirmed and tr.tracks[0].hits == 7


def test_two_crossing_paths_stay_apart():
    tr = Tracker(FRAME, min_hits=2)
    for i in range(6):
        tr.update([car(20 + 40 * i, 50), car(500 - 40 * i, 250)], i * 0.2, ALL)
    ids = sorted(t.id for t in tr.tracks)
    assert len(ids) == 2
    top = min(tr.tracks, key=lambda t: t.box.y1)
    assert top.box.x1 == 220  # the top track followed the top car


def test_one_frame_ghost_never_becomes_real():
    tr = Tracker(FRAME, min_hits=3)
    tr.update([car(300)], 0.0, ALL)
    ended = []
    for i in range(1, 12):
        ended += tr.update([], i * 0.2, ALL)
    assert ended == [] and tr.tracks == []
    assert tr.stats().ghosts == 1


def test_parked_car_is_tracked_but_never_real():
    tr = Tracker(FRAME, min_hits=3)
    for i in range(20):
        tr.update([car(300)], i * 0.2, ALL)
    assert len(tr.tracks) == 1 and not tr.tracks[0].confirmed


def test_label_is_a_vote_over_the_track():
    tr = Tracker(FRAME, min_hits=2)
    labels = ["car", "truck", "car", "car", "truck", "car"]
    for i, label in enumerate(labels):
        tr.update([car(10 + 30 * i, label=label)], i * 0.2, ALL)
    assert len(tr.tracks) == 1 and tr.tracks[0].label == "car"


def test_person_and_car_never_swap():
    tr = Tracker(FRAME, min_hits=2)
    tr.update([car(100, label="person")], 0.0, ALL)
    tr.update([car(102, label="car")], 0.2, ALL)
    assert len(tr.tracks) == 2


def test_stopped_car_stays_without_detections_and_is_rechecked():
    tr = Tracker(FRAME, min_hits=3, max_lost=1.5, stationary_recheck=5.0)
    t = 0.0
    for i in range(5):  # drives in
        tr.update([car(100 + 40 * i)], t, ALL)
        t += 0.2
    for _ in range(15):  # parks: detected still for 3 s
        tr.update([car(260)], t, ALL)
        t += 0.2
    assert tr.tracks[0].stationary
    ended = []
    for _ in range(20):  # no motion, nobody looks: it stays
        ended += tr.update([], t, [])
        t += 0.2
    assert ended == [] and len(tr.tracks) == 1
    assert tr.due_for_check(t + 5.0) == [tr.tracks[0].box]
    for _ in range(10):  # looked at and gone: ends after max_lost
        ended += tr.update([], t, ALL)
        t += 0.2
    assert len(ended) == 1 and ended[0].confirmed and tr.tracks == []


def test_track_ends_after_max_lost_when_looked_at():
    tr = Tracker(FRAME, min_hits=2, max_lost=1.0)
    for i in range(4):
        tr.update([car(100 + 30 * i)], i * 0.2, ALL)
    ended, t = [], 0.6
    while not ended and t < 5:
        t += 0.2
        ended = tr.update([], t, ALL)
    assert ended and 1.6 < t <= 2.0  # last seen at 0.6 s, max_lost 1 s
    assert tr.stats().tracks == 1


def test_regions_are_squares_of_model_size_and_merge():
    small = [Box(100, 100, 120, 120)]
    (r,) = plan_regions(small, FRAME, 416)
    assert (r.width, r.height) == (416, 360) and r.x1 <= 100 and r.x2 >= 120
    big = Box(0, 0, 1920, 1080)
    two = plan_regions([Box(100, 100, 140, 140), Box(1700, 900, 1750, 950)], (big.x2, big.y2), 416)
    assert len(two) == 2 and all(b.width == 416 and b.height == 416 for b in two)
    near = plan_regions([Box(100, 100, 140, 140), Box(300, 300, 340, 340)], (1920, 1080), 416)
    assert len(near) == 1


def test_detections_mapped_back_and_deduplicated_across_crops():
    region = Box(200, 0, 616, 360)
    (d,) = to_frame([car(10, 10)], region)
    assert d.box == Box(210, 10, 270, 40)
    whole = Detection("car", 0.6, Box(400, 100, 480, 140))
    cut = Detection("car", 0.8, Box(400, 100, 430, 140))  # cut by the other crop's edge
    merged = merge_detections([[cut], [whole]])
    assert len(merged) == 1 and merged[0].box == whole.box
    people = [Detection("person", 0.8, Box(0, 0, 20, 60)), Detection("person", 0.7, Box(10, 0, 30, 60))]
    assert len(merge_detections([people])) == 2  # one crop: the detector's NMS already decided
