"""Best shots in the node's clip store (#16.1): signed with their clip or on their own, retained, recovered,
served, bundled and verified.

Real parts: clips recorded by the real ClipRecorder into the real ClipStore (SQLite, Ed25519 chain), best
shots that are real crops of the recorded video, added while their clip is still open (as the node's worker
does at the object's end) or after it was signed; the real LAN API server, the CLI as a subprocess, chromium.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest
from support.apinode import TOKEN, request
from support.clipcat import StillView
from support.recorded import best_jpeg, record_node
from test_web import post

from edge.api.auth import hash_line
from edge.api.server import ApiServer
from edge.clips import evidence
from edge.clips.evidence import check_best, check_clip, record_hash, verify_bundle
from edge.clips.retention import Budget
from edge.clips.store import ClipStore

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def node(tmp_path_factory):
    """Two recorded clips (car "a", bus "b"), each object's best shot added while its clip was open, and one
    late best shot ("a-late", for clip a) added after every clip was signed; the LAN API over the store."""
    root = tmp_path_factory.mktemp("bestnode")
    store, key = record_node(root, node="best-node", best=True)
    clips = sorted(store.catalog.list_clips(), key=lambda c: c.start_ts)
    jpeg, box = best_jpeg("highway", 8.0, (0.1, 0.2, 0.5, 0.6))
    assert store.writer.add_best("a-late", "a", "cam", clips[0].id, jpeg, box, 1.8e9 + 8, "car") == \
        hashlib.sha256(jpeg).hexdigest()
    server = ApiServer(store.catalog, StillView({}), "127.0.0.1", 0, [hash_line(TOKEN, "tech")])
    server.start()
    yield store, key, clips, server
    server.stop()
    store.close()


def _reader(store: ClipStore):
    best = store.index.best
    return lambda best_id: best.path(best_id).read_bytes() if best.path(best_id).is_file() else None


def test_a_best_shot_added_while_its_clip_is_open_is_signed_in_the_clip_record(node) -> None:
    store, key, clips, _server = node
    pub = key.public_key()
    first = None
    for clip, oid in zip(clips, ("a", "b"), strict=True):
        meta = store.catalog.meta(clip.id)
        jpeg = store.index.best.path(oid).read_bytes()
        sha = hashlib.sha256(jpeg).hexdigest()
        assert meta["record"]["best"] == [{"id": oid, "sha256": sha}]  # inside what the clip's signature covers
        assert all(c.ok for c in check_clip(store.catalog.file_path(clip.id).read_bytes(), meta, pub))
        shot = next(b for b in meta["best"] if b["id"] == oid)
        assert shot["signed"] and shot["object"] == oid and shot["sha256"] == sha and shot["bytes"] == len(jpeg)
        assert shot["label"] == ("car" if oid == "a" else "bus") and len(shot["box"]) == 4
        # its own record too, made when it was stored: it names the chain's newest record at that moment
        rec = shot["record"]
        assert evidence.signature_ok(pub, rec, shot["signature"])
        assert (rec["kind"], rec["best"], rec["clip"], rec["sha256"], rec["node"]) == \
            ("best", oid, clip.id, sha, "best-node")
        assert rec["after"] == (None if first is None else {"seq": first["seq"], "hash": record_hash(first)})
        first = meta["record"]
        on_disk = json.loads(store.index.best.record_path(oid).read_bytes())
        assert on_disk["record"] == rec and on_disk["signature"] == shot["signature"]
        checks = check_best(clip.id, meta, pub, _reader(store))
        mine = [c for c in checks if f"best/{oid}.jpg" in c.detail]
        assert [c.ok for c in mine] == [True] and "the clip's signed record and its own" in mine[0].detail


def test_a_best_shot_after_the_clip_was_signed_is_covered_by_its_own_record(node) -> None:
    store, key, clips, _server = node
    meta = store.catalog.meta(clips[0].id)
    assert "a-late" not in [b["id"] for b in meta["record"]["best"]]  # the clip was signed before it came
    late = next(b for b in meta["best"] if b["id"] == "a-late")
    assert late["signed"] is False and late["record"]["clip"] == clips[0].id
    newest = store.catalog.meta(clips[1].id)["record"]
    assert late["record"]["after"] == {"seq": newest["seq"], "hash": record_hash(newest)}  # signed after it
    checks = {c.detail: c.ok for c in check_best(clips[0].id, meta, key.public_key(), _reader(store))}
    assert checks == {f"{clips[0].id}: best/a.jpg matches the clip's signed record and its own signed record": True,
                      f"{clips[0].id}: best/a-late.jpg matches its own signed record": True}
    # its record edited (a box moved): the signature no longer holds
    forged = json.loads(json.dumps(meta))
    next(b for b in forged["best"] if b["id"] == "a-late")["record"]["box"][0] = 0.0
    bad = [c for c in check_best(clips[0].id, forged, key.public_key(), _reader(store)) if not c.ok]
    assert [c.detail for c in bad] == [f"{clips[0].id}: best/a-late.jpg its own record does not verify with this key"]
    # a record lifted from another clip's best shot does not cover this one
    other = json.loads(json.dumps(meta))
    shot = next(b for b in other["best"] if b["id"] == "a-late")
    b_shot = next(b for b in store.catalog.meta(clips[1].id)["best"] if b["id"] == "b")
    shot["record"], shot["signature"] = b_shot["record"], b_shot["signature"]
    assert not all(c.ok for c in check_best(clips[0].id, other, key.public_key(), _reader(store)))


def _rewrite(src: Path, dst: Path, target: str, change) -> None:
    """Copy a bundle with one member changed and the manifest (unsigned) made to agree, as a forger would."""
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        new = change(zin.read(target))
        for info in zin.infolist():
            data = zin.read(info.filename)
            if info.filename == target:
                data = new
            elif info.filename == "manifest.json":
                m = json.loads(data)
                m["files"][target] = hashlib.sha256(new).hexdigest()
                data = json.dumps(m).encode()
            zout.writestr(info.filename, data)


def _flip(data: bytes) -> bytes:
    return data[:200] + bytes([data[200] ^ 1]) + data[201:]


def test_the_bundle_route_carries_every_signed_best_shot_and_one_altered_byte_fails(node, tmp_path: Path) -> None:
    store, key, clips, server = node
    status, _h, body = post(server.port, "/api/v1/bundle", json.dumps({"ids": [c.id for c in clips]}).encode())
    assert status == 200
    good = tmp_path / "good.zip"
    good.write_bytes(body)
    with zipfile.ZipFile(good) as zf:
        names = set(zf.namelist())
        manifest = json.loads(zf.read("manifest.json"))
        assert "best shots: best/a.jpg, best/a-late.jpg (each signed)" in zf.read("README.txt").decode()
        for oid in ("a", "b", "a-late"):
            assert zf.read(f"best/{oid}.jpg") == store.index.best.path(oid).read_bytes()
            assert f"best/{oid}.jpg" in manifest["files"]
    assert {n for n in names if n.startswith("best/")} == {"best/a.jpg", "best/b.jpg", "best/a-late.jpg"}
    assert verify_bundle(good, key.public_text()) == []
    for oid, why in (("a", "does not match the sha256 in the signed record; does not match the sha256 in its own"
                           " signed record"),
                     ("a-late", "does not match the sha256 in its own signed record")):
        bad = tmp_path / f"bad-{oid}.zip"
        _rewrite(good, bad, f"best/{oid}.jpg", _flip)
        assert verify_bundle(bad, key.public_text()) == [f"best: FAIL: {clips[0].id}: best/{oid}.jpg {why}"]
    # a JPEG slipped in that no clip's signed record claims
    extra = tmp_path / "extra.zip"
    shutil.copy(good, extra)
    with zipfile.ZipFile(extra, "a") as zf:
        zf.writestr("best/planted.jpg", store.index.best.path("a").read_bytes())
    assert "best: FAIL: best/planted.jpg belongs to no clip's signed record in this bundle" in verify_bundle(extra)


def test_pull_bundle_and_verify_one_clip_with_its_best_shots_beside_it(node, tmp_path: Path) -> None:
    store, key, clips, server = node
    env = {"EDGECAM_TOKEN": TOKEN, "PATH": "/usr/bin:/bin"}
    cid = clips[0].id
    pull = subprocess.run([sys.executable, "-m", "edge", "clips", "pull", "--node", f"http://127.0.0.1:{server.port}",
                           cid, "-o", str(tmp_path), "--bundle", str(tmp_path / "b.zip")],
                          capture_output=True, text=True, timeout=120, env=env, cwd=ROOT)
    assert pull.returncode == 0, pull.stderr
    for oid in ("a", "a-late"):
        assert (tmp_path / f"{oid}.best.jpg").read_bytes() == store.index.best.path(oid).read_bytes()

    def verify() -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "edge", "clips", "verify", str(tmp_path / f"{cid}.mp4"),
                               "--pubkey", key.public_text()], capture_output=True, text=True, timeout=60, cwd=ROOT)

    ok = verify()
    assert ok.returncode == 0, ok.stdout
    assert f"best: ok: {cid}: best/a-late.jpg matches its own signed record" in ok.stdout
    late = tmp_path / "a-late.best.jpg"
    late.write_bytes(_flip(late.read_bytes()))
    bad = verify()
    assert bad.returncode == 1 and "best: FAIL" in bad.stdout and "FAILED: 1 check(s)" in bad.stdout


def test_get_best_uses_the_clip_rules_and_survives_hostile_ids(node) -> None:
    store, _key, clips, server = node
    for oid in ("a", "a-late"):
        status, headers, body = request(server.port, f"/api/v1/best/{oid}.jpg")
        assert status == 200 and headers["content-type"] == "image/jpeg"
        assert body == store.index.best.path(oid).read_bytes()
    assert request(server.port, "/api/v1/best/a.jpg", token=None)[0] == 401
    hostile = ["nope", "..%2fclips", "..%2F..%2Fclips.db", "%2e%2e", ".a", "a" * 129, "a" * 5000, "%00", "a%00",
               "a%2f..%2fb", "%ff%fe", "a.jpg%3f", "~root", "a%20b", "%C3%A9", "-" * 3, "best-node.json"]
    for bad in hostile:
        status = request(server.port, f"/api/v1/best/{bad}.jpg")[0]
        assert status in (400, 404), (bad, status)
    assert request(server.port, "/api/v1/best/a.json")[0] == 404  # the signed record is in the meta, not here
    status, _h, body = request(server.port, f"/api/v1/clips/{clips[0].id}/meta")
    assert status == 200
    listed = {b["id"]: b for b in json.loads(body)["best"]}
    assert set(listed) == {"a", "a-late"}
    for oid, b in listed.items():
        assert {"id", "object", "label", "sha256", "box", "signed", "record", "signature"} <= set(b)
        assert b["sha256"] == hashlib.sha256(store.index.best.path(oid).read_bytes()).hexdigest()
    rows = json.loads(request(server.port, "/api/v1/clips")[2])
    assert {r["id"]: [b["id"] for b in r["best"]] for r in rows} == {clips[0].id: ["a", "a-late"], clips[1].id: ["b"]}


def test_retention_counts_best_shot_bytes_and_deletes_them_with_their_clip(tmp_path: Path) -> None:
    store, _key = record_node(tmp_path / "node", best=True)
    try:
        old, new = sorted(store.catalog.list_clips(), key=lambda c: c.start_ts)
        shots = store.index.best.total_bytes()
        assert shots > 1000 and store.stats().best_bytes == shots == sum(
            p.stat().st_size for p in store.index.best.dir.glob("*.jpg"))
        # both clips fit without their best shots, not with them: the oldest clip goes, its best shot with it
        store.keeper.budget = Budget(max_bytes=old.bytes + new.bytes + 1, max_age_s=0, min_free_bytes=0)
        assert store.enforce_retention() == [old.id]
        assert store.index.best.get("a") is None and not store.index.best.path("a").exists()
        assert not store.index.best.record_path("a").exists()
        assert store.index.best.get("b") is not None and store.index.best.path("b").exists()
        assert store.index.best.total_bytes() == store.index.best.get("b")["bytes"]
    finally:
        store.close()


def test_clipless_and_orphaned_best_shots_age_out_and_count_against_the_byte_limit(tmp_path: Path) -> None:
    store, _key = record_node(tmp_path / "node", best=True)
    try:
        old, new = sorted(store.catalog.list_clips(), key=lambda c: c.start_ts)
        jpeg, box = best_jpeg("highway", 12.0)
        store.writer.add_best("alone-1", "alone-1", "cam2", None, jpeg, box, 1.8e9 + 30, "person")
        assert store.index.best.get("alone-1")["record"]["clip"] is None  # signed on its own: there is no clip
        store.catalog.hold(new.id)
        # the old clip goes by age; a best shot arriving for it afterwards has no clip to go with
        store.keeper.budget = type(store.keeper.budget)(max_bytes=0, max_age_s=1e-6, min_free_bytes=0)
        time.sleep(0.01)
        store.index.age_clock.ageing_allowed = lambda: (False, "test: clock not synchronised")  # type: ignore[method-assign]
        assert store.enforce_retention() == [] and store.index.best.get("alone-1") is not None  # age is withheld
        store.index.age_clock.ageing_allowed = lambda: (True, "")  # type: ignore[method-assign]
        assert store.enforce_retention() == [old.id]
        assert store.index.best.get("alone-1") is None and not store.index.best.path("alone-1").exists()
        store.writer.add_best("a-orphan", "a", "cam", old.id, jpeg, box, 1.8e9 + 9, "car")
        assert store.index.best.get("a-orphan") is not None
        time.sleep(0.01)
        store.enforce_retention()
        assert store.index.best.get("a-orphan") is None and not store.index.best.path("a-orphan").exists()
        assert store.index.best.get("b") is not None  # its clip is held: kept with it
        # no age limit and the clock withheld: bytes alone still remove a clip-less shot (the held clip stays)
        store.writer.add_best("alone-2", "alone-2", "cam2", None, jpeg, box, 1.8e9 + 40, "person")
        store.index.age_clock.ageing_allowed = lambda: (False, "test")  # type: ignore[method-assign]
        store.keeper.budget = type(store.keeper.budget)(max_bytes=1, max_age_s=0, min_free_bytes=0)
        store.enforce_retention()
        assert store.index.best.get("alone-2") is None and store.catalog.get(new.id) is not None
    finally:
        store.close()


def test_a_lost_index_re_indexes_best_shots_from_their_signed_records(tmp_path: Path) -> None:
    root = tmp_path / "node"
    store, key = record_node(root, best=True)
    old = sorted(store.catalog.list_clips(), key=lambda c: c.start_ts)[0]
    store.close()
    for suffix in ("", "-wal", "-shm"):
        (root / f"clips.db{suffix}").unlink(missing_ok=True)
    b = root / "best" / "b.jpg"
    b.write_bytes(_flip(b.read_bytes()))  # no longer what its record signed
    (root / "best" / "stray.jpg").write_bytes(b"\xff\xd8 not ours")
    (root / "best" / "orphan.json").write_text("{}")
    store = ClipStore(root, key, node="gate-node")
    try:
        counts = store.recover()
        assert counts["rebuilt"] == 2 and counts["best_rebuilt"] == 1
        assert counts["best_quarantined"] == 4  # b.jpg + b.json, stray.jpg, orphan.json
        got = store.index.best.get("a")
        assert got is not None and got["clip"] == old.id and got["signed"]  # the clip's record lists it
        assert store.index.best.get("b") is None and not b.exists()
        assert sorted(p.name for p in (root / "quarantine").iterdir()) == ["b.jpg", "b.json", "orphan.json",
                                                                         "stray.jpg"]
        store.index.best.path("a").unlink()  # a row whose file went: removed at the next start
        assert store.recover()["best_removed"] == 1 and store.index.best.get("a") is None
    finally:
        store.close()


@pytest.mark.browser
def test_the_page_shows_the_best_shot_with_its_box_phone_and_desktop(node, tmp_path: Path) -> None:
    """Chromium on the real store: each clip's card shows its first best shot on a canvas, the box drawn."""
    if not Path("/usr/bin/chromium").exists():
        pytest.skip("chromium not installed (/usr/bin/chromium)")
    sync_api = pytest.importorskip("playwright.sync_api")
    _store, _key, clips, server = node
    shots = Path(os.environ.get("EDGECAM_SCREENSHOTS") or tmp_path)
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", headless=True)
        try:
            for tag, viewport in (("desktop", {"width": 1280, "height": 900}),
                                  ("phone", {"width": 390, "height": 844})):
                ctx = browser.new_context(viewport=viewport)
                page = ctx.new_page()
                console: list[str] = []
                page.on("console", lambda m, console=console: console.append(m.text))
                page.goto(server.url + "/")
                page.fill("#token", TOKEN)
                page.click("#signin-form button[type=submit]")
                page.wait_for_function("() => document.querySelectorAll('#clips canvas.best').length === 2",
                                       timeout=20000)
                sizes = page.eval_on_selector_all("#clips canvas.best", "els => els.map(c => [c.width, c.height,"
                                                  " c.getBoundingClientRect().width, c.title])")
                assert sorted(s[3] for s in sizes) == ["bus: best shot", "car: best shot"]
                assert all(w > 16 and h > 16 and shown > 40 for w, h, shown, _t in sizes), sizes
                more = page.eval_on_selector_all("#clips .thumb .more", "els => els.map(e => e.textContent)")
                assert more == ["+1"]  # clip a has two best shots (a, a-late), clip b one
                if tag == "phone":
                    width = page.evaluate("() => document.documentElement.scrollWidth")
                    assert width <= 390, width  # no sideways scrolling
                page.screenshot(path=str(shots / f"beststore-{tag}.png"), full_page=True)
                assert not [c for c in console if "Content Security Policy" in c], console
                ctx.close()
        finally:
            browser.close()


def test_central_pull_keeps_the_clips_signed_best_shots_and_refuses_an_altered_one(tmp_path: Path, capsys) -> None:
    """``edgecam central fetch`` over the real API: the clip, then its best shots, each checked with the key
    registered for the node; one changed on the node after signing is refused (custody), the clip still kept."""
    from support.central import sqlite_url
    from support.recorded import central_config, serve

    from edge.central.custody import CustodyLog
    from edge.central.evidence import EvidenceStore
    from edge.cli import main

    store, key = record_node(tmp_path / "node", best=True)
    old = sorted(store.catalog.list_clips(), key=lambda c: c.start_ts)[0]
    jpeg, box = best_jpeg("highway", 8.0, (0.1, 0.2, 0.5, 0.6))
    store.writer.add_best("a-late", "a", "cam", old.id, jpeg, box, 1.8e9 + 8, "car")
    want = {oid: store.index.best.path(oid).read_bytes() for oid in ("a", "a-late")}
    tampered = store.index.best.path("a-late")
    tampered.write_bytes(_flip(want["a-late"]))  # changed on the node after it was signed
    server = serve(store)
    try:
        cfg = central_config(tmp_path, sqlite_url(tmp_path))
        assert main(["central", "register-node", "-c", str(cfg), "--node", "gate-node", "--pubkey", key.public_text(),
                     "--api", server.url, "--token-file", str(tmp_path / "token")]) == 0
        capsys.readouterr()
        assert main(["central", "fetch", "-c", str(cfg), "--node", "gate-node", "--clip", old.id]) == 0
        evidence_store = EvidenceStore.at(tmp_path / "evidence")
        kept = evidence_store.best("gate-node", "a")
        assert kept is not None and kept["clip"] == old.id and Path(kept["path"]).read_bytes() == want["a"]
        assert evidence_store.best("gate-node", "a-late") is None
        log = CustodyLog(tmp_path / "evidence" / "custody.db")
        try:
            [ok] = log.entries(f"gate-node/{old.id}/best/a")
            [refused] = log.entries(f"gate-node/{old.id}/best/a-late")
            assert log.verify() == []
        finally:
            log.close()
        assert ok.action == "fetch" and "matches the clip's signed record and its own signed record" in ok.detail
        assert refused.action == "fetch-failed" and "does not match the sha256 in its own signed record" in \
            refused.detail
        # retention at central removes the clip's best shots with it
        assert evidence_store.remove("gate-node", old.id)
        assert evidence_store.best("gate-node", "a") is None and not Path(kept["path"]).exists()
    finally:
        server.stop()
        store.close()
