"""The technician's web page: signed media links, evidence bundles, page headers, and a real headless browser.

The server is the real ApiServer in-process on a free port, serving real MP4 clips (stream-copied from the
shared videos) from the test catalog. Browser tests drive Debian's chromium through playwright and save
screenshots of every screen, desktop and phone size, to ``test-artifacts/web/``.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import logging
import re
import subprocess
import time
import zipfile
from pathlib import Path
from typing import Any

import pytest
from support.apinode import TOKEN, Node, make_catalog, request
from support.clipcat import StillView

from edge.api.auth import hash_line
from edge.api.server import ApiServer
from edge.clips.evidence import verify_bundle

ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts" / "web"
CSP = ("default-src 'self'; img-src 'self' blob: data:; media-src 'self' blob:; script-src 'self'; "
       "style-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'")
DESKTOP = {"width": 1280, "height": 860}
PHONE = {"width": 390, "height": 844}


class FullView(StillView):
    """A node view whose health carries everything the page shows (as ``edge.node.status.health_body`` reports it)."""

    def health(self) -> dict[str, Any]:
        return {
            "node": "edge-test-01", "state": "running", "uptime": 1234.5,
            "cameras": {"gate": {"state": "running", "error": None}, "street": {"state": "reconnecting",
                                                                               "error": "rtsp: timed out"}},
            "outbox": {"depth": 3}, "disk": {"total": 64_000_000_000, "used": 40_000_000_000, "free": 24_000_000_000},
            "time_ok": True,
        }


def _thumbnails(node_root: Path) -> None:
    """Real thumbnails (one frame of each clip) so the screenshots show what a technician sees."""
    for clip in ("gate/gate-0001", "gate/gate-0002", "street/street-0001"):
        subprocess.run(["ffmpeg", "-v", "error", "-y", "-ss", "1", "-i", str(node_root / f"{clip}.mp4"),
                        "-frames:v", "1", "-vf", "scale=320:-2", str(node_root / f"{clip}.jpg")],
                       check=True, capture_output=True, timeout=30)


@pytest.fixture(scope="module")
def node(tmp_path_factory):
    root = tmp_path_factory.mktemp("web")
    cat = make_catalog(root)
    _thumbnails(cat.root)
    server = ApiServer(cat, FullView({"gate": b"", "street": b""}), "127.0.0.1", 0, [hash_line(TOKEN, "alice")])
    server.start()
    yield Node(server, cat, root)
    server.stop()


def post(port: int, path: str, body: bytes = b"", token: str | None = TOKEN, method: str = "POST",
         content_type: str = "application/json") -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=20)
    headers = {"Content-Type": content_type}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    try:
        conn.request(method, path, body=body, headers=headers)
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()


# ---- HTTP level: page, links, bundles --------------------------------------------------------------------


def test_page_and_static_files_are_strict(node):
    status, headers, body = request(node.port, "/", token=None)
    assert status == 200 and headers["content-type"].startswith("text/html")
    assert headers["content-security-policy"] == CSP
    assert headers["x-content-type-options"] == "nosniff" and headers["referrer-policy"] == "no-referrer"
    html = body.decode()
    assert re.findall(r"<script[^>]*>", html) == ['<script src="/static/app.js" defer>']
    assert "style=" not in html and "<style" not in html and "http://" not in html and "https://" not in html
    for name, ctype in (("app.js", "text/javascript"), ("app.css", "text/css")):
        status, headers, body = request(node.port, f"/static/{name}", token=None)
        assert status == 200 and headers["content-type"].startswith(ctype) and len(body) > 1000
        assert b"http://" not in body and b"https://" not in body, f"{name} must load nothing from outside"


def test_ticket_url_plays_without_token_and_stays_out_of_the_log(node, caplog):
    """What the page does for <video src> and downloads: a ticket URL, Range on it, ``&download=1``."""
    data = (node.catalog.root / "gate" / "gate-0001.mp4").read_bytes()
    status, _, body = post(node.port, "/api/v1/ticket?path=%2Fapi%2Fv1%2Fclips%2Fgate-0001.mp4")
    assert status == 200
    url = json.loads(body)["url"]
    assert url.startswith("/api/v1/clips/gate-0001.mp4?ticket=")
    caplog.set_level(logging.INFO, logger="edge.api.access")
    status, headers, body = request(node.port, url, {"Range": "bytes=100-199"}, token=None)
    assert status == 206 and body == data[100:200]
    status, headers, body = request(node.port, url + "&download=1", token=None)
    assert status == 200 and body == data
    assert headers["content-disposition"] == 'attachment; filename="gate-0001.mp4"'
    logged = ""
    for _ in range(100):  # the access line is written on the server thread once the response is done
        logged = " ".join(r.getMessage() for r in caplog.records if r.name == "edge.api.access")
        if logged.count("/api/v1/clips/gate-0001.mp4") >= 2:
            break
        time.sleep(0.02)
    ticket = url.split("ticket=")[1]
    assert "/api/v1/clips/gate-0001.mp4" in logged and "ticket=" not in logged and ticket not in logged


def test_bundle_of_selection(node, tmp_path):
    ids = ["gate-0001", "street-0001"]
    status, headers, body = post(node.port, "/api/v1/bundle", json.dumps({"ids": ids}).encode())
    assert status == 200 and headers["content-type"] == "application/zip"
    # named after node, camera(s) and the first clip's UTC start (BASE_TS = 2026-11-18T11:06:40Z)
    assert headers["content-disposition"] == (
        'attachment; filename="edgecam-edge-test-01-2-cameras-20261118T110640Z-2-clips.zip"')
    out = tmp_path / "b.zip"
    out.write_bytes(body)
    assert verify_bundle(out) == []
    with zipfile.ZipFile(out) as zf:
        manifest = json.loads(zf.read("manifest.json"))
        assert [c["id"] for c in manifest["clips"]] == ids and manifest["node"] == "edge-test-01"
        for cid in ids:
            clip = zf.read(f"clips/{cid}.mp4")
            assert hashlib.sha256(clip).hexdigest() == node.catalog.get(cid).sha256
    for bad in (b"", b"[]", b'{"ids": []}', b'{"ids": "gate-0001"}', b'{"ids": ["../x"]}',
                json.dumps({"ids": [f"c{i}" for i in range(51)]}).encode(), b"\xff\xfe"):
        assert post(node.port, "/api/v1/bundle", bad)[0] == 400, bad
    assert post(node.port, "/api/v1/bundle", b'{"ids": ["gate-0001", "nope"]}')[0] == 404
    assert post(node.port, "/api/v1/bundle", b'{"ids": ["evil"]}')[0] == 404
    assert post(node.port, "/api/v1/bundle", b'{"ids": ["gate-0001"]}', token=None)[0] == 401
    # a cross-site form can send only simple bodies and never the Authorization header
    assert post(node.port, "/api/v1/bundle", b"ids=gate-0001", token=None,
                content_type="application/x-www-form-urlencoded")[0] == 401


# ---- in a real browser -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def browser():
    if not Path("/usr/bin/chromium").exists():
        pytest.skip("chromium not installed (/usr/bin/chromium)")
    sync_api = pytest.importorskip("playwright.sync_api")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path="/usr/bin/chromium", headless=True,
                              args=["--autoplay-policy=no-user-gesture-required"])
        yield b
        b.close()


class Page:
    """One browser context on the node's page, collecting CSP violations and media responses."""

    def __init__(self, browser, node: Node, viewport: dict[str, int], tag: str) -> None:
        self.ctx = browser.new_context(viewport=viewport, accept_downloads=True)
        self.page = self.ctx.new_page()
        self.tag = tag
        self.console: list[str] = []
        self.media: list[tuple[int, str]] = []
        self.page.on("console", lambda m: self.console.append(m.text))
        self.page.on("response", self._response)
        self.page.goto(node.url + "/")

    def _response(self, resp) -> None:
        if ".mp4?ticket=" in resp.url:
            self.media.append((resp.status, resp.url))

    def shot(self, name: str) -> None:
        self.page.screenshot(path=str(ARTIFACTS / f"{self.tag}-{name}.png"), full_page=True)

    def sign_in(self, token: str = TOKEN) -> None:
        self.page.fill("#token", token)
        self.page.click("#signin-form button[type=submit]")

    def clip_ids(self) -> list[str]:
        return self.page.eval_on_selector_all("#clips .clip", "els => els.map(e => e.dataset.id)")

    def wait_ids(self, ids: list[str]) -> None:
        self.page.wait_for_function(
            "ids => JSON.stringify(Array.from(document.querySelectorAll('#clips .clip'), e => e.dataset.id))"
            " === JSON.stringify(ids)", arg=ids, timeout=10000)

    def close(self) -> None:
        assert not [c for c in self.console if "Content Security Policy" in c], self.console
        self.ctx.close()


@pytest.mark.browser
def test_browser_wrong_token_rejected(browser, node):
    for tag, viewport in (("desktop", DESKTOP), ("phone", PHONE)):
        pg = Page(browser, node, viewport, tag)
        pg.shot("1-signin")
        pg.sign_in("not-the-token")
        pg.page.wait_for_selector("#message:not([hidden])")
        assert "rejected" in pg.page.inner_text("#message")
        assert pg.page.is_hidden("#app") and pg.clip_ids() == []
        assert pg.page.evaluate("sessionStorage.length") == 0
        pg.shot("2-signin-rejected")
        pg.close()


@pytest.mark.browser
def test_browser_sign_in_filter_play_seek(browser, node):
    pg = Page(browser, node, DESKTOP, "desktop")
    page = pg.page
    pg.sign_in()
    pg.wait_ids(["gate-0002", "street-0001", "evil", "gate-0001"])
    assert TOKEN not in page.url and page.evaluate("sessionStorage.getItem('edgecam.token')") == TOKEN
    page.wait_for_function("() => document.querySelectorAll('#clips img').length === 3")  # evil has no thumbnail
    health = page.inner_text("#health-list")
    assert "gate: running" in health and "street: reconnecting" in health and "outbox 3 queued" in health
    assert "clock synced" in health and "disk 38% free" in health
    pg.shot("3-list")

    page.fill("#f-label", "person")
    page.click("#filters button[type=submit]")
    pg.wait_ids(["gate-0002", "street-0001"])
    page.select_option("#f-camera", "street")
    page.click("#filters button[type=submit]")
    pg.wait_ids(["street-0001"])
    pg.shot("4-filtered")
    page.click("#f-clear")
    pg.wait_ids(["gate-0002", "street-0001", "evil", "gate-0001"])
    since = page.evaluate("""ts => { const d = new Date(ts * 1000), p = n => String(n).padStart(2, '0');
        return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}T`
             + `${p(d.getHours())}:${p(d.getMinutes())}`; }""", node.catalog.get("street-0001").start_ts)
    page.fill("#f-since", since)
    page.click("#filters button[type=submit]")
    pg.wait_ids(["gate-0002", "street-0001"])
    page.click("#f-clear")
    pg.wait_ids(["gate-0002", "street-0001", "evil", "gate-0001"])

    page.click(".clip[data-id=gate-0001] .play")
    page.wait_for_function("() => document.getElementById('video').readyState >= 2", timeout=15000)
    page.wait_for_function("() => document.getElementById('video').currentTime > 0.5", timeout=15000)
    assert "/api/v1/clips/gate-0001.mp4?ticket=" in page.eval_on_selector("#video", "v => v.src")
    pg.shot("5-playing")
    landed = page.evaluate("""() => new Promise(resolve => {
        const v = document.getElementById('video');
        v.pause();
        v.addEventListener('seeked', () => resolve(v.currentTime), { once: true });
        v.currentTime = 6.0; })""")
    assert abs(landed - 6.0) < 0.5, landed
    assert any(status == 206 for status, _ in pg.media), pg.media  # the browser fetched ranges
    pg.shot("6-seeked")

    # a ticket that no longer works (expired, or the node restarted): the page gets a fresh one and resumes
    page.evaluate("""() => { const v = document.getElementById('video');
        v.src = v.src.replace(/ticket=[^&]+/, 'ticket=1.alice.0123456789abcdef0123456789abcdef'); }""")
    page.wait_for_function("() => { const v = document.getElementById('video');"
                           " return v.readyState >= 2 && !v.src.includes('ticket=1.'); }", timeout=15000)
    assert page.is_hidden("#message")

    page.click(".clip[data-id=evil] .play")  # a clip whose file is outside the store: a clear error, no video
    page.wait_for_selector("#message:not([hidden])")
    assert "Play failed: the clip's file is not on the node" in page.inner_text("#message")
    assert page.is_hidden("#player")
    pg.shot("9-play-error")
    pg.close()


@pytest.mark.browser
def test_browser_download_bundle_hold_release(browser, node, tmp_path):
    pg = Page(browser, node, DESKTOP, "desktop")
    page = pg.page
    pg.sign_in()
    pg.wait_ids(["gate-0002", "street-0001", "evil", "gate-0001"])
    with page.expect_download() as info:
        page.click(".clip[data-id=gate-0002] .dl")
    dl = info.value
    assert dl.suggested_filename == "gate-0002.mp4"
    saved = tmp_path / "one.mp4"
    dl.save_as(saved)
    assert hashlib.sha256(saved.read_bytes()).hexdigest() == node.catalog.get("gate-0002").sha256

    page.check(".clip[data-id=gate-0002] .sel")
    page.check(".clip[data-id=street-0001] .sel")
    assert page.inner_text("#bundle") == "Evidence bundle (2)"
    with page.expect_download() as info:
        page.click("#bundle")
    bundle = tmp_path / "bundle.zip"
    info.value.save_as(bundle)
    assert info.value.suggested_filename == "edgecam-edge-test-01-2-cameras-20261118T110730Z-2-clips.zip"
    assert verify_bundle(bundle) == []
    with zipfile.ZipFile(bundle) as zf:
        assert sorted(c["id"] for c in json.loads(zf.read("manifest.json"))["clips"]) == ["gate-0002", "street-0001"]

    assert not node.catalog.get("street-0001").held
    page.click(".clip[data-id=street-0001] .hold")
    page.wait_for_function("() => document.querySelector('.clip[data-id=street-0001] .hold').textContent === 'Release'")
    assert node.catalog.get("street-0001").held
    assert page.is_visible(".clip[data-id=street-0001] .held-badge")
    pg.shot("7-held")
    page.click(".clip[data-id=street-0001] .hold")
    page.wait_for_function("() => document.querySelector('.clip[data-id=street-0001] .hold').textContent === 'Hold'")
    assert not node.catalog.get("street-0001").held

    page.click("#signout")
    page.wait_for_selector("#signin:not([hidden])")
    assert page.evaluate("sessionStorage.length") == 0 and pg.clip_ids() == []
    pg.shot("8-signed-out")
    pg.close()


@pytest.mark.browser
def test_browser_phone_layout(browser, node):
    pg = Page(browser, node, PHONE, "phone")
    page = pg.page
    pg.sign_in()
    pg.wait_ids(["gate-0002", "street-0001", "evil", "gate-0001"])
    page.wait_for_function("() => document.querySelectorAll('#clips img').length === 3")
    pg.shot("3-list")
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"], "no sideways scrolling"
    page.click(".clip[data-id=street-0001] .play")
    page.wait_for_function("() => document.getElementById('video').readyState >= 2", timeout=15000)
    page.wait_for_function("() => document.getElementById('video').currentTime > 0.3", timeout=15000)
    box = page.eval_on_selector("#video", "v => v.getBoundingClientRect().width")
    assert 300 <= box <= PHONE["width"]
    page.evaluate("window.scrollTo(0, 0)")
    pg.shot("5-playing")
    pg.close()

