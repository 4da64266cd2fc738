"""The stage reports are frozen snapshots; ``edge.node.status`` alone writes them out, with the published keys."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from edge.node.status import best_shots_body, clips_body, outbox_body, recorder_body
from edge.outbox.publisher import MqttSettings
from edge.outbox.service import OutboxService
from edge.types import (
    AnalyzerStats,
    ClipStoreStats,
    DetectorStats,
    IdentificationStats,
    OutboxStats,
    RecorderStats,
)

SCHEMA = Path(__file__).resolve().parents[1] / "edge" / "schema" / "stats.schema.json"

RECORDER = RecorderStats(packets=1, dropped=2, clips=3, lost=4, errors=5, queued=6, ring_s=7.5, ring_bytes=8,
                         recording="gate-20260101-000001", paused=True, streaming=False, down="record stream down")
CLIPS = ClipStoreStats(clips=1, bytes=2, held=3, lost=4, best_bytes=5, quarantined=6, paused=True,
                       pause_reason="disk full", free_bytes=7)
OUTBOX = OutboxStats(depth=1, oldest_age_s=2.5, evicted=3, trimmed=4, published=5, replayed=6, connected=True,
                     blocked_submits=7, last_seq=8, unsent=9, end_to_end=False, central_seq=10, resent=11,
                     unstored=12, disk_reserve=True)
SHOTS = IdentificationStats(offered=1, dropped=2, stored=3, store_failed=4, from_record_stream=5, stills_over_budget=6,
                            still_cpu_s=7.5, plates_submitted=8, plates_read=9, plates_found=10, plates_dropped=11,
                            plates_cpu_s=12.5)


def test_recorder_body_keys_values_and_order_are_todays() -> None:
    assert list(recorder_body(RECORDER).items()) == [
        ("packets", 1), ("dropped", 2), ("clips", 3), ("lost", 4), ("errors", 5), ("queued", 6), ("ring_s", 7.5),
        ("ring_bytes", 8), ("recording", "gate-20260101-000001"), ("paused", True), ("streaming", False),
        ("down", "record stream down")]


def test_clips_body_keys_values_and_order_are_todays() -> None:
    assert list(clips_body(CLIPS).items()) == [
        ("clips", 1), ("bytes", 2), ("held", 3), ("lost", 4), ("best_bytes", 5), ("quarantined", 6),
        ("paused", True), ("pause_reason", "disk full"), ("free_bytes", 7)]


def test_outbox_body_keys_values_and_order_are_todays_and_the_schemas() -> None:
    body = outbox_body(OUTBOX)
    assert list(body.items()) == [
        ("depth", 1), ("oldest_age_s", 2.5), ("evicted", 3), ("trimmed", 4), ("published", 5), ("replayed", 6),
        ("connected", True), ("blocked_submits", 7), ("last_seq", 8), ("unsent", 9), ("end_to_end", False),
        ("central_seq", 10), ("resent", 11), ("unstored", 12), ("disk_reserve", True)]
    schema = json.loads(SCHEMA.read_text())["properties"]["outbox"]
    assert list(body) == list(schema["properties"]) and set(schema["required"]) <= set(body)


def test_best_shots_body_carries_every_field_once_as_the_schema_names_them() -> None:
    body = best_shots_body(SHOTS)
    assert list(body.items()) == [
        ("offered", 1), ("dropped", 2), ("stored", 3), ("store_failed", 4), ("from_record_stream", 5),
        ("stills_over_budget", 6), ("still_cpu_s", 7.5),
        ("plates", {"submitted": 8, "read": 9, "found": 10, "dropped": 11, "cpu_s": 12.5})]
    flat = [k for k in body if k != "plates"] + [f"plates_{k}" for k in body["plates"]]
    assert flat == [f.name for f in dataclasses.fields(SHOTS)]  # a new counter must be published on purpose
    schema = json.loads(SCHEMA.read_text())["properties"]["best_shots"]
    assert list(body) == list(schema["properties"]) and set(schema["required"]) <= set(body)
    assert list(body["plates"]) == list(schema["properties"]["plates"]["properties"])


@pytest.mark.parametrize("report, body", [(RECORDER, recorder_body), (CLIPS, clips_body), (OUTBOX, outbox_body)])
def test_every_field_is_published(report, body) -> None:
    """A field added to a report must be added to its body (or this test) on purpose, not dropped silently."""
    assert list(body(report)) == [f.name for f in dataclasses.fields(report)]


@pytest.mark.parametrize("report", [
    RECORDER, CLIPS, OUTBOX, SHOTS,
    DetectorStats(calls={"analysis-gate": 1}, waited_s={"analysis-gate": 0.5}, busy_s=1.0),
    AnalyzerStats(frames=1, motion_frames=1, detector_calls=1, ms={}, ms_total={}, tracks=0, short_tracks=0,
                  median_track_s=0.0, ghosts=0, live_tracks=0, started={}, events={}, lines={}, lightning_resets=0,
                  best_shots_offered=0)])
def test_reports_are_frozen_with_slots(report) -> None:
    name = dataclasses.fields(report)[0].name
    with pytest.raises(dataclasses.FrozenInstanceError):
        setattr(report, name, 0)
    assert not hasattr(report, "__dict__")


def test_publish_stats_refuses_a_body_without_its_outbox_part(tmp_path: Path) -> None:
    """``outbox`` is required by the stats schema: a body not written by ``stats_body`` is not sent."""
    svc = OutboxService(tmp_path / "outbox.db", "n1", MqttSettings(port=1, client_id="edgecam-n1"))
    with pytest.raises(ValueError, match="outbox"):
        svc.publish_stats({"fps": {"gate": 5.0}})
    assert outbox_body(svc.stats())["depth"] == 0
