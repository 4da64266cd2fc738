"""Best shots (#16.1): chosen per tracked object, cropped and stored with its clip, signed, served, retained.

Real parts: the real daemon in-process on a shared video (real model, recorder, clip store, signatures),
the real LAN API over that store, the real retention code.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import threading
import time
from pathlib import Path

import cv2
import jsonschema
import numpy as np
import pytest
from support.apinode import TOKEN, request
from support.assets import model_path, video_path
from support.clipcat import StillView
from test_web import post

from edge import assets
from edge.api.auth import hash_line
from edge.api.server import ApiServer
from edge.clips import evidence
from edge.config import parse_config
from edge.node.daemon import Daemon
from edge.node.status import best_shots_body
from edge.payload import event_body, event_message
from edge.types import Event, EventType
from edge.vision.bestshot import crop_box

STATS_SCHEMA = Path(__file__).resolve().parents[1] / "edge" / "schema" / "stats.schema.json"


class Tap:
    def __init__(self, sink) -> None:
        self.sink, self.events, self._lock = sink, [], threading.Lock()

    def submit(self, event: Event) -> None:
        with self._lock:
            self.events.append(event)
        self.sink.submit(event)


@pytest.fixture(scope="module")
def ran(tmp_path_factory):
    """8 s of the road clip through the real daemon: (events, daemon) after a clean shutdown."""
    model = model_path()
    tmp = tmp_path_factory.mktemp("best")
    short = tmp / "road8.mp4"
    subprocess.run(["ffmpeg", "-v", "error", "-i", str(video_path("road")), "-t", "8", "-c", "copy", str(short)],
                   check=True, timeout=60)
    cfg = parse_config({
        "node": {"id": "best"}, "storage": {"path": str(tmp / "state")}, "api": {"enabled": False},
        "mqtt": {"port": 1, "drain_timeout": 0}, "detector": {"model": str(model)},
        "clips": {"pre_roll": 2, "post_roll": 1, "max_clip": 60},
        "cameras": {"road": {"source": str(short), "detect_fps": 5}},
    })
    daemon = Daemon(cfg)
    daemon.start()
    cam = daemon.cameras["road"]
    tap = Tap(cam.analysis.events)
    cam.analysis.events = tap
    deadline = time.monotonic() + 240
    while not cam.done and time.monotonic() < deadline:
        time.sleep(0.2)
    daemon.request_stop()
    daemon.shutdown()
    assert cam.done, "the file did not finish"
    from edge.clips.store import ClipStore

    key = evidence.NodeKey.load_or_create(cfg.storage.path / "keys")
    store = ClipStore(cfg.storage.path, key, node="best")  # reopened after the daemon stopped
    yield tap.events, store, daemon
    store.close()


def test_every_end_names_a_stored_signed_best_shot_of_the_object(ran) -> None:
    events, store, daemon = ran
    ends = [e for e in events if e.type is EventType.END]
    assert len(ends) >= 3, [e.label for e in ends]
    assert all(e.best == e.id for e in ends), [(e.id, e.best) for e in ends]
    assert not [e for e in events if e.type is not EventType.END and e.best is not None]
    stats = daemon.best_shots.counts
    assert stats.stored == len(ends) and stats.store_failed == 0 and stats.dropped == 0
    assert stats.encoded <= stats.offered and stats.offered < 6 * len(ends) * 8  # bounded: ~2 a second a track
    published = best_shots_body(daemon.best_shots.stats())  # what the stats payload carries
    jsonschema.validate(published, json.loads(STATS_SCHEMA.read_text())["properties"]["best_shots"])
    assert (published["stored"], published["offered"], published["dropped"]) == (len(ends), stats.offered, 0)
    assert published["from_record_stream"] == 0 and published["still_cpu_s"] == 0  # one stream: no stills
    for end in ends:
        shot = store.index.best.get(end.best)
        assert shot is not None and shot["object"] == end.id and shot["clip"] == end.clip
        data = Path(store.catalog.best_path(end.best)).read_bytes()
        assert hashlib.sha256(data).hexdigest() == shot["sha256"] and len(data) == shot["bytes"]
        image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
        assert image is not None and min(image.shape[:2]) >= 16
        x1, y1, x2, y2 = shot["box"]
        assert 0 <= x1 < x2 <= 1 and 0 <= y1 < y2 <= 1 and (x2 - x1) * (y2 - y1) > 0.3  # the object fills it
        # signed with its clip: the clip's record lists it, and the record verifies
        meta = store.catalog.meta(end.clip)
        assert {"id": end.best, "sha256": shot["sha256"]} in meta["record"]["best"]
        assert shot["signed"] and [b["id"] for b in meta["best"]].count(end.best) == 1
        clip = store.catalog.file_path(end.clip).read_bytes()
        pub = evidence.NodeKey.load_or_create(store.root / "keys").public_key()
        checks = evidence.check_clip(clip, meta, pub)
        assert all(c.ok for c in checks), [c.line() for c in checks]


def test_the_end_payload_carries_best_and_stays_small(ran) -> None:
    events, _store, _daemon = ran
    end = next(e for e in events if e.type is EventType.END)
    body = event_body(end)
    assert body["best"] == end.id
    msg = event_message(body, "best", 12345)
    assert len(msg) <= 1024 and json.loads(msg)["best"] == end.id


def test_the_api_serves_best_shots_with_the_clip_rules(ran) -> None:
    events, store, _daemon = ran
    best = next(e.best for e in events if e.type is EventType.END)
    server = ApiServer(store.catalog, StillView({}), "127.0.0.1", 0, [hash_line(TOKEN, "tech")])
    server.start()
    try:
        status, headers, body = request(server.port, f"/api/v1/best/{best}.jpg")
        assert status == 200 and headers["content-type"] == "image/jpeg"
        assert body == Path(store.catalog.best_path(best)).read_bytes()
        assert request(server.port, f"/api/v1/best/{best}.jpg", token=None)[0] == 401
        assert request(server.port, f"/api/v1/best/{best}.jpg", token="wrong")[0] == 401
        for bad in ("nope", "..%2f..%2fclips.db", "a" * 300, "%00"):
            assert request(server.port, f"/api/v1/best/{bad}.jpg")[0] in (400, 404), bad
        # a ticket for an <img> opens exactly that best shot
        status, _h, body = request(server.port, f"/api/v1/ticket?path=/api/v1/best/{best}.jpg", method="POST")
        assert status == 200
        url = json.loads(body)["url"]
        status, _h, body = request(server.port, url, token=None)
        assert status == 200 and body[:2] == b"\xff\xd8"
        meta = json.loads(request(server.port, f"/api/v1/clips/{store.index.best.get(best)['clip']}/meta")[2])
        assert best in [b["id"] for b in meta["best"]]
    finally:
        server.stop()


def test_retention_deletes_best_shots_with_their_clip_and_clipless_ones_age_out(tmp_path: Path) -> None:
    from support.recorded import record_node

    store, _key = record_node(tmp_path / "node")
    clips = sorted(store.catalog.list_clips(), key=lambda c: c.start_ts)  # oldest first
    jpeg = cv2.imencode(".jpg", np.full((40, 60, 3), 128, np.uint8))[1].tobytes()
    with_clip = store.writer.add_best("obj-a", "obj-a", "cam", clips[0].id, jpeg, (0.1, 0.1, 0.9, 0.9), 1.8e9, "car")
    alone = store.writer.add_best("obj-x", "obj-x", "cam", None, jpeg, (0.1, 0.1, 0.9, 0.9), 1.8e9, "person")
    assert with_clip == alone == hashlib.sha256(jpeg).hexdigest()
    assert store.writer.add_best("../evil", "o", "cam", None, jpeg, (0, 0, 1, 1), 0.0, "car") is None
    assert store.catalog.best_path("obj-a") is not None and store.catalog.best_path("obj-x") is not None
    # a byte budget that fits one clip: the oldest goes, and its best shot with it
    store.keeper.budget = type(store.keeper.budget)(max_bytes=clips[-1].bytes + 1, max_age_s=0, min_free_bytes=0)
    removed = store.enforce_retention()
    assert clips[0].id in removed
    assert store.index.best.get("obj-a") is None and not store.index.best.path("obj-a").exists()
    assert store.index.best.get("obj-x") is not None  # clip-less: only age removes it
    store.keeper.budget = type(store.keeper.budget)(max_bytes=0, max_age_s=1e-6, min_free_bytes=0)
    store.index.age_clock.ageing_allowed = lambda: (True, "")  # type: ignore[method-assign]
    time.sleep(0.01)
    store.enforce_retention()
    assert store.index.best.get("obj-x") is None and not store.index.best.path("obj-x").exists()
    store.close()


def test_crop_keeps_the_object_whole_with_a_margin() -> None:
    image = np.zeros((1080, 1920, 3), np.uint8)
    crop, box = crop_box(image, (0.5, 0.5, 0.6, 0.7))
    assert crop.shape[:2] == (281, 250)  # 216 px high + 15% each side, 192 wide + 15% each side
    assert box[0] == pytest.approx(0.115, abs=0.01) and box[3] == pytest.approx(0.885, abs=0.01)
    edge_crop, edge_box = crop_box(image, (0.0, 0.0, 0.1, 0.1))  # clamped at the frame's corner
    assert edge_crop.shape[:2] == (124, 221) and edge_box[0] == 0.0


PLATES = assets.find("data/plates/vn")


@pytest.mark.skipif(PLATES is None, reason="needs ../shared/data/plates")
def test_a_plate_read_from_the_best_shot_comes_back_as_an_update_of_the_object() -> None:
    """A real car photo as the object's best view: the store gets the crop, the outbox an update with the plate."""
    pytest.importorskip("rapidocr")
    from edge.types import BestShot
    from edge.vision.bestshot import BestShotWorker
    from edge.vision.plate_worker import PlateWorker

    class Sink:
        def __init__(self) -> None:
            self.stored: dict[str, bytes] = {}

        def add_best(self, best_id, object_id, camera, clip_id, jpeg, box, wall, label):
            self.stored[best_id] = jpeg
            return hashlib.sha256(jpeg).hexdigest()

    class Outbox:
        def __init__(self) -> None:
            self.events: list[Event] = []

        def submit(self, event: Event) -> None:
            self.events.append(event)

    photo = cv2.imread(str(PLATES / "knnveh_19.jpg"))
    sink, outbox = Sink(), Outbox()
    worker = BestShotWorker(sink, None, outbox)
    worker.plates = PlateWorker(worker.on_plate, max_cpu=1.0)
    end = Event(id="gate-1-7", type=EventType.END, camera="gate", label="car", score=0.9, ts=1.8e9, time=5.0,
                box=(0.05, 0.05, 0.95, 0.95), clip="gate-clip", duration=3.0, best="gate-1-7", color="white")
    crop, inner = crop_box(photo, (0.05, 0.05, 0.95, 0.95))  # as the event builder hands a candidate over
    worker.offer(BestShot("gate-1-7", "gate", "car", 0.9, 100.0, 4.0, 0.0, 1.8e9 - 1, (0.05, 0.05, 0.95, 0.95),
                          crop.copy(), inner))
    worker.finish(end)
    worker.stop()
    worker.plates.stop(timeout=30)
    assert list(sink.stored) == ["gate-1-7"]
    assert [(e.type, e.id, e.plate) for e in outbox.events] == [(EventType.UPDATE, "gate-1-7", "51H-040.73")]
    update = outbox.events[0]
    assert 0.7 <= update.plate_score <= 1 and update.clip == "gate-clip" and update.duration is None
    body = event_body(update)
    assert body["plate"] == "51H-040.73" and len(event_message(body, "gate-node", 7)) <= 1024
    assert worker.counts.plates_submitted == 1 and worker.counts.plates_found == 1


@pytest.mark.browser
def test_the_page_shows_each_clip_by_its_best_shot_with_the_box(ran, tmp_path: Path) -> None:
    """Debian's chromium on the real store: every clip with a best shot shows it on a canvas, box drawn."""
    if not Path("/usr/bin/chromium").exists():
        pytest.skip("chromium not installed (/usr/bin/chromium)")
    sync_api = pytest.importorskip("playwright.sync_api")
    _events, store, _daemon = ran
    ids = [c.id for c in store.catalog.list_clips()]
    with_best = {cid for cid, shots in store.catalog.best_by_clip(ids).items() if shots}
    assert with_best
    server = ApiServer(store.catalog, StillView({}), "127.0.0.1", 0, [hash_line(TOKEN, "tech")])
    server.start()
    try:
        with sync_api.sync_playwright() as p:
            browser = p.chromium.launch(executable_path="/usr/bin/chromium", headless=True)
            for tag, viewport in (("desktop", {"width": 1280, "height": 900}),
                                  ("phone", {"width": 390, "height": 844})):
                ctx = browser.new_context(viewport=viewport)
                page = ctx.new_page()
                console: list[str] = []
                page.on("console", lambda m, console=console: console.append(m.text))
                page.goto(server.url + "/")
                page.fill("#token", TOKEN)
                page.click("#signin-form button[type=submit]")
                page.wait_for_function("n => document.querySelectorAll('#clips canvas.best').length === n",
                                       arg=len(with_best), timeout=20000)
                shown = page.eval_on_selector_all("#clips .clip", "els => els.filter(e => e.querySelector("
                                                  "'canvas.best')).map(e => e.dataset.id)")
                assert set(shown) == with_best
                # the box is drawn: the canvas holds the yellow stroke colour somewhere on its box's edge
                yellow = page.evaluate("""() => { const c = document.querySelector('#clips canvas.best');
                    const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data; let n = 0;
                    for (let i = 0; i < d.length; i += 4) if (d[i] > 220 && d[i+1] > 180 && d[i+2] < 60) n++;
                    return n; }""")
                assert yellow > 50
                page.screenshot(path=str(tmp_path / f"best-{tag}.png"), full_page=True)
                page.screenshot(path=f"/tmp/edgecam-best-{tag}.png", full_page=True)
                assert not [c for c in console if "Content Security Policy" in c], console
                ctx.close()
            browser.close()
    finally:
        server.stop()


def test_check_says_whether_plates_are_on_and_what_a_read_costs() -> None:
    from edge.check.plates import probe_plates

    off = probe_plates(False, 0.25, True)
    assert off.status == "skip" and "enabled = false" in off.detail
    pytest.importorskip("rapidocr")
    on = probe_plates(True, 0.25, True)
    assert on.status == "ok" and "ms CPU per vehicle" in on.detail and on.data["cpu_ms"] > 0
    assert on.data["vehicles_per_min"] == round(60_000 * 0.25 / max(on.data["cpu_ms"], 1.0))
    no_clips = probe_plates(True, 0.25, False)
    assert no_clips.status == "warn" and "[clips] enabled = false" in no_clips.advice


def test_evidence_bundles_carry_the_best_shots_and_one_altered_byte_fails(ran, tmp_path: Path) -> None:
    import zipfile

    from edge.clips.evidence import verify_bundle

    events, store, _daemon = ran
    clip = next(e.clip for e in events if e.type is EventType.END and e.clip)
    shots = store.catalog.meta(clip)["record"]["best"]
    server = ApiServer(store.catalog, StillView({}), "127.0.0.1", 0, [hash_line(TOKEN, "tech")])
    server.start()
    try:
        status, _h, body = post(server.port, "/api/v1/bundle", json.dumps({"ids": [clip]}).encode())
    finally:
        server.stop()
    assert status == 200
    good = tmp_path / "good.zip"
    good.write_bytes(body)
    with zipfile.ZipFile(good) as zf:
        names = set(zf.namelist())
        manifest = json.loads(zf.read("manifest.json"))
    assert {f"best/{s['id']}.jpg" for s in shots} <= names <= names | set(manifest["files"])
    assert all(f"best/{s['id']}.jpg" in manifest["files"] for s in shots)
    assert verify_bundle(good) == []
    # one byte of one best shot changed, manifest and SHA256SUMS rewritten to match: the signed record catches it
    bad = tmp_path / "bad.zip"
    target = f"best/{shots[0]['id']}.jpg"
    with zipfile.ZipFile(good) as src, zipfile.ZipFile(bad, "w") as dst:
        altered = src.read(target)
        altered = altered[:100] + bytes([altered[100] ^ 1]) + altered[101:]
        for info in src.infolist():
            data = src.read(info.filename)
            if info.filename == target:
                data = altered
            elif info.filename == "manifest.json":
                m = json.loads(data)
                m["files"][target] = hashlib.sha256(altered).hexdigest()
                data = json.dumps(m).encode()
            dst.writestr(info.filename, data)
    failures = verify_bundle(bad)
    assert any("does not match the sha256 in the signed record" in f for f in failures), failures
