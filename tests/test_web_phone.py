"""The technician's page on a phone (390 px) with clips made by the real recorder: real-length ids such as
``main-gate-north-20261202T015409Z-e819eb`` must wrap, never scroll sideways (#13.4); times carry their zone
and UTC (#13.5)."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from support.apinode import TOKEN  # noqa: E402
from support.assets import video_path  # noqa: E402
from support.packets import demux, event  # noqa: E402
from test_web import ARTIFACTS, PHONE, FullView  # noqa: E402

from edge.api.auth import hash_line  # noqa: E402
from edge.api.server import ApiServer  # noqa: E402
from edge.clips.evidence import NodeKey  # noqa: E402
from edge.clips.recorder import ClipRecorder  # noqa: E402
from edge.clips.store import ClipStore  # noqa: E402

CAMERA = "main-gate-north"


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    root = tmp_path_factory.mktemp("phone")
    store = ClipStore(root / "s", NodeKey.load_or_create(root / "s" / "keys"), node="edge-test-01")
    rec = ClipRecorder(CAMERA, store.writer, 1.0, 0.5, 300.0, lossless=True)
    rec.start()
    info, pk = demux(video_path("road"), start_wall=1_796_176_449.0)  # 2026-12-02T01:54:09Z
    rec.start_stream(info)
    marks = iter([(1.0, "start", "a"), (2.5, "end", "a"), (5.0, "start", "b"), (6.5, "end", "b"),
                  (9.0, "start", "c"), (11.0, "end", "c")])
    nxt = next(marks)
    for p in pk:
        rec.feed(p)
        while nxt is not None and p.time >= nxt[0]:
            rec.on_event(event(nxt[1], p.time, oid=nxt[2], wall0=1_796_176_449.0))
            nxt = next(marks, None)
    rec.close(30)
    ids = [c.id for c in store.catalog.list_clips()]
    assert len(ids) == 3 and all(re.fullmatch(rf"{CAMERA}-\d{{8}}T\d{{6}}Z-[0-9a-f]{{6}}", i) for i in ids), ids
    server = ApiServer(store.catalog, FullView({CAMERA: b""}), "127.0.0.1", 0, [hash_line(TOKEN, "alice")])
    server.start()
    yield server, ids
    server.stop()
    store.close()


@pytest.fixture(scope="module")
def browser():
    if not Path("/usr/bin/chromium").exists():
        pytest.skip("chromium not installed (/usr/bin/chromium)")
    sync_api = pytest.importorskip("playwright.sync_api")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path="/usr/bin/chromium", headless=True)
        yield b
        b.close()


@pytest.mark.browser
def test_phone_page_with_real_clip_ids_has_no_sideways_scroll(browser, served):
    server, ids = served
    ctx = browser.new_context(viewport=PHONE, timezone_id="Asia/Ho_Chi_Minh", locale="en-GB")
    page = ctx.new_page()
    try:
        page.goto(f"http://127.0.0.1:{server.port}/")
        page.fill("#token", TOKEN)
        page.click("#signin-form button[type=submit]")
        page.wait_for_function("n => document.querySelectorAll('#clips .clip').length === n", arg=len(ids))
        page.screenshot(path=str(ARTIFACTS / "phone-real-ids.png"), full_page=True)
        widths = page.evaluate("""() => ({
            doc: [document.documentElement.scrollWidth, document.documentElement.clientWidth],
            body: [document.body.scrollWidth, document.body.clientWidth],
            clips: Array.from(document.querySelectorAll('#clips .clip'), e => [e.scrollWidth, e.clientWidth]),
            ids: Array.from(document.querySelectorAll('#clips .cid'), e => e.textContent)})""")
        assert widths["ids"] == ids
        assert widths["doc"][0] <= widths["doc"][1] <= PHONE["width"], widths
        assert widths["body"][0] <= widths["body"][1], widths
        assert all(sw <= cw for sw, cw in widths["clips"]), widths
        when = page.inner_text(f".clip[data-id='{ids[-1]}'] .when")
        # the oldest clip starts at 01:54:09Z; in Ho Chi Minh City (UTC+7): the zone is named and UTC stands beside it
        assert re.fullmatch(r"2026-12-02 08:54:0\d GMT\+7 \(01:54:0\d UTC\)", when), when
        assert page.get_attribute(f".clip[data-id='{ids[-1]}'] .when", "title").startswith("2026-12-02T01:54:0")
        assert page.inner_text("#filters .tz") in ("Asia/Ho_Chi_Minh", "Asia/Saigon")  # ICU may use the old name
    finally:
        ctx.close()
