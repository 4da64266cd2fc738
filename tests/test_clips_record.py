"""Clips from the shared videos: playable, H.264, long enough, and the source's packets bit for bit."""

from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from support.assets import VIDEOS, video_path  # noqa: E402
from support.packets import clip_packets, demux, event, ffprobe  # noqa: E402

from edge.clips.evidence import NodeKey  # noqa: E402
from edge.clips.mux import avcc_parameter_sets, length_prefixed_to_annexb  # noqa: E402
from edge.clips.planner import Attach, ClipPlanner, Close, Open  # noqa: E402
from edge.clips.recorder import ClipRecorder  # noqa: E402
from edge.clips.ring import PacketRing  # noqa: E402
from edge.clips.store import ClipStore  # noqa: E402
from edge.types import Packet, StreamInfo  # noqa: E402

PRE, POST = 2.0, 1.5


@pytest.fixture
def store(tmp_path: Path):
    s = ClipStore(tmp_path / "storage", NodeKey.load_or_create(tmp_path / "storage" / "keys"), node="n1")
    yield s
    s.close()


def _pkt(t: float, key: bool) -> Packet:
    return Packet(b"x" * 10, int(t * 100), int(t * 100), 10, key, t, t, t)


def test_ring_starts_at_a_keyframe_and_covers_pre_roll():
    ring = PacketRing(3.0)
    for i in range(200):  # 10 packets/s, keyframe every 2 s
        ring.push(_pkt(i / 10, i % 20 == 0))
        kept = ring.since(-1)
        assert kept[0].keyframe
        if i / 10 >= 5:
            assert ring.seconds >= 3.0 - 1e-9 and ring.seconds <= 3.0 + 2.0
    assert ring.since(17.0)[0].time == 16.0  # last keyframe at or before the requested time


def test_planner_overlap_post_roll_split_and_restart():
    ids = iter(f"c{i}" for i in range(10))
    p = ClipPlanner(pre_roll=2, post_roll=3, max_clip=30, new_id=lambda wall: next(ids))
    cid, acts = p.on_event(event("start", 10.0))
    assert cid == "c0" and isinstance(acts[0], Open) and acts[0].since == 8.0
    assert p.on_event(event("start", 11.0, "o2"))[0] == "c0"  # overlapping: same clip
    assert p.on_event(event("end", 12.0))[0] == "c0"
    assert p.on_packet(20.0, False, 0) == ()  # o2 still active
    assert p.on_event(event("end", 14.0, "o2"))[0] == "c0"
    assert p.on_packet(17.0, False, 0) == ()  # within post-roll (14 + 3)
    assert p.on_packet(17.1, False, 0) == (Close("c0"),)
    assert p.on_event(event("end", 18.0))[0] is None
    cid, _ = p.on_event(event("start", 20.0, "o3"))
    assert cid == "c1"
    split = p.on_packet(48.0, True, 0)  # 18 + 30: a keyframe past max_clip splits
    assert split[0] == Close("c1") and split[1] == Open("c2", None, 0, continues="c1")
    assert isinstance(split[2], Attach) and split[2].event.id == "o3"
    restart = p.on_stream(0)
    assert restart[0] == Close("c2") and restart[1].continues == "c2"
    assert p.on_event(event("start", 1.0, "o4"), allowed=False)[0] == "c3"  # joins the open continuation
    assert p.finish() == (Close("c3"),)
    assert p.on_event(event("start", 5.0, "o5"), allowed=False) == (None, ())


def _record(store: ClipStore, name: str, start: float, end: float):
    info, pk = demux(video_path(name))
    rec = ClipRecorder("cam", store.writer, PRE, POST, 300.0, lossless=True)
    rec.start()
    rec.start_stream(info)
    ids, times = [], []
    for p in pk:
        rec.feed(p)
        for kind, at in (("start", start), ("update", (start + end) / 2), ("end", end)):
            if len(ids) == len(times) == ("start", "update", "end").index(kind) and p.time >= at:
                ids.append(rec.on_event(event(kind, p.time)))
                times.append(p.time)
    rec.close(30)
    return info, pk, ids, times, rec.stats()


@pytest.mark.parametrize("name", sorted(VIDEOS))
def test_clip_from_video_is_playable_and_bit_identical(store: ClipStore, name: str):
    start, end = 8.0, 11.0
    info, pk, ids, times, stats = _record(store, name, start, end)
    assert len(set(ids)) == 1 and ids[0] is not None
    assert stats.dropped == 0 and stats.clips == 1 and stats.errors == 0
    path = store.catalog.file_path(ids[0])
    assert path is not None and path.suffix == ".mp4"
    errors, facts = ffprobe(path)
    assert errors == ""
    assert facts["streams"][0]["codec_name"] == "h264"
    got = clip_packets(path)
    assert got[0][1], "first packet must be a keyframe"
    payloads = [p.data for p in pk]
    first = payloads.index(got[0][0])
    assert pk[first].keyframe and pk[first].time <= start - PRE + 1e-6
    assert [g[0] for g in got] == payloads[first:first + len(got)], "packets must be copied bit for bit"
    keys = [p.time for p in pk if p.keyframe]
    gop = max(b - a for a, b in zip(keys, keys[1:], strict=False)) if len(keys) > 1 else pk[-1].time
    duration = float(facts["format"]["duration"])
    wanted = PRE + (end - start) + POST
    last = pk[first + len(got) - 1]
    frame = 4.0 / info.fps  # B-frame reordering: source time advances by up to a few frames per packet
    assert last.time >= min(times[-1] + POST - frame, pk[-1].time) - 1e-6  # post-roll after the end event
    assert pk[first].time <= times[0] - PRE + 1e-6  # pre-roll before the start event
    if pk[-1].time > end + POST + 1:
        assert wanted - 0.2 <= duration <= wanted + gop + 0.5
    rec = store.catalog.get(ids[0])
    assert rec.labels == ("car",) and rec.events == ("obj-1",) and rec.bytes == path.stat().st_size
    assert store.catalog.thumbnail_path(ids[0]).read_bytes()[:2] == b"\xff\xd8"
    assert [e["type"] for e in store.catalog.meta(ids[0])["events"]] == ["start", "update", "end"]


def test_stream_restart_closes_and_continues(store: ClipStore):
    info, pk = demux(video_path("highway"))
    rec = ClipRecorder("cam", store.writer, PRE, POST, 300.0, lossless=True)
    rec.start()
    rec.start_stream(info)
    half = len(pk) // 2
    cid = None
    for p in pk[:half]:
        rec.feed(p)
        if cid is None and p.time >= 4.0:
            cid = rec.on_event(event("start", p.time))
    rec.start_stream(info)  # reconnect: timestamps start again
    second = rec.on_event(event("update", 0.5))
    for p in pk[:half]:
        rec.feed(p)
    assert rec.on_event(event("end", pk[half - 1].time)) == second
    rec.close(30)
    assert second != cid
    clips = store.catalog.list_clips()
    assert [c.id for c in clips] == [second, cid]
    assert store.catalog.meta(second)["record"]["continues"] == cid
    for c in clips:
        assert ffprobe(store.catalog.file_path(c.id))[0] == ""


def test_annexb_stream_like_rtsp_comes_out_length_prefixed(store: ClipStore):
    """RTSP gives Annex-B packets and Annex-B parameter sets; the MP4 holds the same NAL units."""
    info, pk = demux(video_path("road"))
    header, size = avcc_parameter_sets(info.extradata)
    rtsp_info = StreamInfo("h264", info.width, info.height, info.time_base, info.fps, header)
    rec = ClipRecorder("cam", store.writer, PRE, POST, 300.0, lossless=True)
    rec.start()
    rec.start_stream(rtsp_info)
    cid = None
    for p in pk:
        rec.feed(replace(p, data=length_prefixed_to_annexb(p.data, size)))
        if cid is None and p.time >= 3.0:
            cid = rec.on_event(event("start", p.time))
    rec.close(30)
    path = store.catalog.file_path(cid)
    assert ffprobe(path)[0] == ""
    got = [g[0] for g in clip_packets(path)]
    assert got == [p.data for p in pk[:len(got)]] and len(got) == len(pk)


def test_timestamps_going_back_inside_a_clip_stay_playable(store: ClipStore):
    """A looped file without a new stream: pts restart, source time keeps rising; the clip stays valid."""
    info, pk = demux(video_path("road"))
    span = pk[-1].time + 0.05
    rec = ClipRecorder("cam", store.writer, PRE, POST, 300.0, lossless=True)
    rec.start()
    rec.start_stream(info)
    cid = rec.on_event(event("start", 0.0))
    for loop in range(2):
        for p in pk:
            rec.feed(replace(p, time=p.time + loop * span))
    rec.close(30)
    errors, facts = ffprobe(store.catalog.file_path(cid))
    assert errors == "" and float(facts["format"]["duration"]) >= 2 * pk[-1].time - 0.5


def test_ring_is_bounded_by_bytes_too_and_still_starts_at_a_keyframe():
    """A 10 s GOP at a high bit rate would hold far more than the pre-roll: the byte bound drops old GOPs."""
    ring = PacketRing(pre_roll_s=20.0, max_bytes=50_000)
    unbounded = PacketRing(pre_roll_s=20.0, max_bytes=10**9)
    t = 0.0
    for _gop in range(6):  # GOPs of 10 s, 25 packets of 1 KB each
        for i in range(25):
            p = Packet(data=b"x" * 1000, pts=int(t * 1000), dts=int(t * 1000), duration=400, keyframe=i == 0,
                       time=t, mono=t, wall=t)
            ring.push(p)
            unbounded.push(p)
            assert ring.bytes <= 50_000
            t += 0.4
    assert unbounded.bytes == 75_000 and unbounded.trimmed_by_bytes == 0  # 20 s of pre-roll + the open GOP
    assert ring.bytes == 50_000 and ring.trimmed_by_bytes > 0  # two whole GOPs: 10 s less than asked
    assert ring.since(0.0)[0].keyframe and len(ring.since(0.0)) == 50
    assert PacketRing(pre_roll_s=10.0).max_bytes == 40 * 1024 * 1024  # 2 x 10 s at 16 Mbit/s
