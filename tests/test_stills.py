"""Full-size stills for best shots (#20): one decoding pass per GOP, and a CPU budget for them.

A two-stream camera's best shots are cut from its record stream, decoded on demand from the pre-roll ring.
Measured on the 4-camera bench, that decoding was most of a camera's CPU (one 1080p GOP per object); these
tests hold the two levers: objects whose best moments share a GOP share its pass, and ``still_max_cpu``.
"""

from __future__ import annotations

import subprocess
import time
from fractions import Fraction
from types import SimpleNamespace

import av
import cv2
import numpy as np
import pytest

from edge.clips import still as still_module
from edge.clips.still import FrameStill, decode_stills
from edge.types import BestShot, Event, EventType, Packet, StreamInfo
from edge.vision.bestshot import BestShotWorker, crop_box
from tests.support.assets import video_path


@pytest.fixture(scope="module", params=["ultrafast", "veryfast"])
def gop(request, tmp_path_factory) -> tuple[StreamInfo, list[Packet]]:
    """One 1080p GOP of the road clip (48 frames): no B-frames (ultrafast) and with B-frames (veryfast)."""
    path = tmp_path_factory.mktemp("stills") / f"{request.param}.mp4"
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-i", str(video_path("road")), "-t", "2", "-an",
                    "-vf", "scale=1920:1080", "-c:v", "libx264", "-preset", request.param, "-g", "48",
                    "-keyint_min", "48", "-pix_fmt", "yuv420p", str(path)], check=True, timeout=300)
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        ctx = stream.codec_context
        info = StreamInfo(ctx.name, ctx.width, ctx.height, Fraction(stream.time_base), 24.0,
                          bytes(ctx.extradata) if ctx.extradata else None)
        packets = [Packet(bytes(p), p.pts, p.dts, p.duration or 0, p.is_keyframe, float(p.pts * p.time_base),
                          100.0 + i / 24, time.time()) for i, p in enumerate(container.demux(stream)) if p.size]
    assert packets[0].keyframe and not any(p.keyframe for p in packets[1:])
    return info, packets


def decode_one(info: StreamInfo, packets: list[Packet], mono: float) -> np.ndarray | None:
    """One moment on its own pass, as a still for a single object was decoded before."""
    still = dict(decode_stills(info, packets, [mono])).get(0)
    return still.to_bgr() if still is not None else None


def test_several_moments_of_a_gop_cost_one_pass_and_match_one_by_one(gop, monkeypatch) -> None:
    info, packets = gop
    monos = [packets[30].mono, packets[5].mono + 0.001, packets[30].mono, packets[17].mono]
    alone = [decode_one(info, packets, m) for m in monos]
    assert all(a is not None and a.shape == (1080, 1920, 3) for a in alone)
    assert not np.array_equal(alone[1], alone[3])  # different moments, different pictures

    decoders: list[int] = []  # packets each decoder was fed
    real_create = av.CodecContext.create

    class Counting:
        def __init__(self, ctx) -> None:
            self.ctx, self.fed = ctx, 0
            decoders.append(0)

        def __setattr__(self, name, value) -> None:
            if name in ("ctx", "fed"):
                object.__setattr__(self, name, value)
            else:
                setattr(self.ctx, name, value)

        def decode(self, pkt=None):
            if pkt is not None:
                decoders[-1] += 1
            return self.ctx.decode(pkt)

    counting_av = SimpleNamespace(CodecContext=SimpleNamespace(create=lambda *a: Counting(real_create(*a))),
                                  Packet=av.Packet, error=av.error, VideoFrame=av.VideoFrame)
    monkeypatch.setattr(still_module, "av", counting_av)
    together = dict(decode_stills(info, packets, monos))
    assert sorted(together) == [0, 1, 2, 3]
    for k, still in together.items():
        assert np.array_equal(still.to_bgr(), alone[k]), k
    assert len(decoders) == 1 and decoders[0] <= 31  # one decoder, keyframe to the last wanted packet only


def test_a_still_converts_only_the_crop_and_it_matches_the_whole_frame_conversion(gop, monkeypatch) -> None:
    """A best shot from a 1080p still converts its crop from the decoder's YUV planes: the same pixels as cutting
    the whole-frame BGR conversion (within chroma rounding), without the 6 MB whole-frame copy."""
    import tracemalloc

    from edge.vision.bestshot import crop_still

    info, packets = gop
    still = dict(decode_stills(info, packets, [packets[20].mono]))[0]
    whole = still.to_bgr()
    boxes = [(0.1003, 0.2007, 0.3311, 0.5123), (0.0, 0.0, 0.05, 0.05), (0.9, 0.85, 1.0, 1.0),
             (0.5, 0.5, 0.5007, 0.5011)]
    frame = still._frame
    # planar 4:2:0 (software decoders), NV12 (what hardware decoders hand over), and any other layout
    for s in (still, FrameStill(frame.reformat(format="nv12")), FrameStill(frame.reformat(format="yuv444p"))):
        for box in boxes:
            got, inner = crop_still(s, box)
            want, want_inner = crop_box(whole, box)
            assert got.shape == want.shape and inner == want_inner, box
            diff = np.abs(got.astype(np.int16) - want.astype(np.int16))
            assert diff.mean() < 2.0 and np.percentile(diff, 99) <= 12, (box, diff.mean(), diff.max())
    tracemalloc.start()  # what one crop allocates (numpy reports its buffers to tracemalloc)
    with monkeypatch.context() as m:  # and the whole frame is never converted for it
        m.setattr(FrameStill, "to_bgr", lambda self: pytest.fail("a crop converted the whole frame"))
        crop_still(still, (0.4, 0.4, 0.6, 0.7))  # 384 x 324 px, ~442 x 421 with the margin
    crop_peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert crop_peak < 2_000_000 < whole.nbytes, crop_peak  # a whole 1080p BGR frame is 6.2 MB


class Sink:
    def __init__(self) -> None:
        self.stored: dict[str, tuple[int, int]] = {}

    def add_best(self, best_id, object_id, camera, clip_id, jpeg, box, wall, label):
        image = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
        self.stored[best_id] = image.shape[:2]
        return "0" * 64


class Stills:
    """A record stream that hands out 1080p stills (all grey) and notes what each call asked for."""

    def __init__(self, cost_s: float = 0.0) -> None:
        self.calls: list[tuple[str, list[float]]] = []
        self.cost_s = cost_s

    def __call__(self, camera, monos):
        self.calls.append((camera, list(monos)))
        end = time.thread_time() + self.cost_s
        while time.thread_time() < end:  # the CPU a decoding pass would take
            pass
        return [(k, ArrayStill(np.full((1080, 1920, 3), 128, np.uint8))) for k in range(len(monos))]


class ArrayStill:
    """``edge.interfaces.Still`` over an array already in BGR (what a fake record stream hands out)."""

    def __init__(self, image: np.ndarray) -> None:
        self.image, self.height, self.width = image, image.shape[0], image.shape[1]

    def crop(self, x1: int, y1: int, x2: int, y2: int) -> np.ndarray:
        return self.image[y1:y2, x1:x2].copy()

    def to_bgr(self) -> np.ndarray:
        return self.image


def shot_and_end(n: int, camera: str = "gate") -> tuple[BestShot, Event]:
    frame = np.full((360, 640, 3), 90, np.uint8)
    box = (0.25, 0.25, 0.5, 0.5)
    oid = f"{camera}-1-{n}"
    crop, inner = crop_box(frame, box)  # as the event builder hands a candidate over
    shot = BestShot(oid, camera, "car", 0.9, 100.0, 5.0, 50.0 + n, 1.8e9 + n, box, crop.copy(), inner)
    end = Event(id=oid, type=EventType.END, camera=camera, label="car", score=0.9, ts=1.8e9 + n, time=5.0,
                box=box, clip=None, duration=3.0, best=oid)
    return shot, end


def run_worker(worker: BestShotWorker, objects: list[tuple[BestShot, Event]]) -> None:
    for shot, _ in objects:
        worker.offer(shot)
    for _, end in objects:
        worker.finish(end)
    worker.stop()


def test_ends_that_arrive_together_share_one_still_pass_per_camera() -> None:
    sink, stills = Sink(), Stills()
    worker = BestShotWorker(sink, stills, batch_s=5.0)
    run_worker(worker, [shot_and_end(1), shot_and_end(2), shot_and_end(3, "yard")])
    assert sorted(stills.calls) == [("gate", [51.0, 52.0]), ("yard", [53.0])]
    assert worker.counts.from_record_stream == 3 and worker.counts.stored == 3
    h, w = sink.stored["gate-1-1"]
    assert (h, w) > (200, 300)  # cut from the 1080p still: the analysed crop is 126 x 210


def test_stills_over_budget_fall_back_to_the_analysed_crop_and_are_counted() -> None:
    sink, stills = Sink(), Stills(cost_s=0.3)
    worker = BestShotWorker(sink, stills, still_max_cpu=0.01, batch_s=0.0)
    objects = [shot_and_end(i, f"cam{i}") for i in range(6)]
    run_worker(worker, objects)
    assert worker.counts.stored == 6
    # the 1 s burst pays for ~3 passes of 0.3 s, then the budget (0.01 CPU-s per s) is spent
    assert 3 <= worker.counts.from_record_stream <= 4 and len(stills.calls) == worker.counts.from_record_stream
    assert worker.counts.stills_over_budget == 6 - worker.counts.from_record_stream
    assert worker.counts.still_cpu_s >= 0.3 * worker.counts.from_record_stream
    small = [oid for oid, (h, w) in sink.stored.items() if (h, w) < (200, 300)]
    assert len(small) == worker.counts.stills_over_budget


def test_still_max_cpu_zero_never_decodes() -> None:
    sink, stills = Sink(), Stills()
    worker = BestShotWorker(sink, stills, still_max_cpu=0.0, batch_s=0.0)
    run_worker(worker, [shot_and_end(1)])
    assert stills.calls == [] and worker.counts.stored == 1 and worker.counts.from_record_stream == 0


def test_a_hardware_still_decoder_that_does_not_open_falls_back_to_software_once(gop, tmp_path, caplog) -> None:
    """The camera's ``decode`` reaches the record stream's stills: each hardware decoder is tried once, the
    software one decodes what they could not, and one line says so (this machine has no decoding hardware)."""
    from edge.capture.pyav import hardware_decoders
    from edge.clips.evidence import NodeKey
    from edge.clips.recorder import ClipRecorder
    from edge.clips.store import ClipStore
    from edge.node.build import still_decoders

    info, packets = gop
    store = ClipStore(tmp_path / "s", NodeKey.load_or_create(tmp_path / "s" / "keys"), node="n1")
    asked: list[str] = []

    def names(codec: str) -> list[str]:
        asked.append(codec)
        return ["h264_no_such_decoder", *hardware_decoders(codec)]

    rec = ClipRecorder("gate", store.writer, 10.0, 1.0, 300.0, thumbnails=False, still_decoders=names)
    rec.start()
    try:
        rec.start_stream(info)
        for p in packets:
            rec.feed(p)
        deadline = time.monotonic() + 20
        while rec.stats().packets < len(packets) and time.monotonic() < deadline:
            time.sleep(0.05)
        with caplog.at_level("INFO", logger="edge.clips.recorder"):
            first = dict(rec.stills_at([packets[10].mono, packets[40].mono]))
            again = rec.still_at(packets[20].mono)
    finally:
        rec.close(5.0)
        store.close()
    assert sorted(first) == [0, 1] and (first[0].height, first[0].width) == (1080, 1920) and again is not None
    assert np.array_equal(first[0].to_bgr(), decode_one(info, packets, packets[10].mono))
    said = [r.getMessage() for r in caplog.records if "stills decode in software" in r.getMessage()]
    assert len(said) == 1 and "h264_no_such_decoder" in said[0], said
    assert asked == ["h264"]  # tried once, not at every still
    # what the camera's `decode` gives the recorder
    assert still_decoders("software") is None
    assert still_decoders("h264_v4l2m2m")("h264") == ["h264_v4l2m2m"]
    assert still_decoders("h264_v4l2m2m")("hevc") == []  # a decoder of another codec is never tried
    assert still_decoders("auto") is hardware_decoders


def test_a_candidate_carries_a_copy_of_its_crop_not_the_frame() -> None:
    """Candidates wait in the worker's queue while a still pass runs: each must hold its object's crop (a few
    KB), never the analysed frame (64 queued 640x360 frames were a 44 MB spike on a 4-camera node)."""
    from edge.types import Box
    from edge.vision.events import EventBuilder
    from edge.vision.tracker import Track

    rng = np.random.default_rng(3)
    frame = rng.integers(0, 255, (360, 640, 3), np.uint8)  # texture: the sharpness term is not zero
    builder = EventBuilder("gate", (640, 360), best_shots=True)
    track = Track(id=1, box=Box(200.0, 100.0, 300.0, 220.0), first_time=0.0, last_time=1.0, score=0.9,
                  best_score=0.9, votes={"car": 0.9}, hits=5, confirmed=True)
    builder.process([track], [], 1.0, 1.8e9, image=frame, mono=50.0)
    [shot] = builder.take_shots()
    want, inner = crop_box(frame, shot.box)
    assert shot.inner == inner and shot.image.shape == want.shape and np.array_equal(shot.image, want)
    assert shot.image.nbytes < frame.nbytes / 10 and shot.image.base is None  # its own memory, not a view
    expected = want.copy()
    frame[:] = 0  # whatever happens to the frame afterwards, the candidate keeps its pixels
    assert np.array_equal(shot.image, expected)
    sink = Sink()
    worker = BestShotWorker(sink, None, batch_s=0.0)
    shot_end = Event(id=shot.object_id, type=EventType.END, camera="gate", label="car", score=0.9, ts=1.8e9 + 1,
                     time=2.0, box=shot.box, clip=None, duration=1.0, best=shot.object_id)
    run_worker(worker, [(shot, shot_end)])
    assert sink.stored == {shot.object_id: want.shape[:2]}  # stored from the crop it carried
