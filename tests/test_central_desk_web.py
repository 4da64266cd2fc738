"""The evidence desk in Debian's chromium (playwright): a real node's clips, a real central, a real browser.

Sign in, search, fetch by pull, watch (seek), open a case, export and verify it; a viewer cannot fetch or
export; a cross-site form POST is refused; a phone (390 px) never scrolls sideways; sign-in is throttled;
no CSP violation anywhere. Screenshots go to ``test-artifacts/desk/``.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from support.broker import Broker, free_port
from support.central import event, sqlite_url
from support.desk import PASSWORD, make_central, start_desk
from support.recorded import record_node, serve

from edge.central.casefile import check_case
from edge.central.messages import StatsRow, parse_event
from edge.central.store import Store
from edge.cli import main
from edge.node.requests import RequestHandler
from edge.outbox.publisher import MqttSettings

ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts" / "desk"
DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 390, "height": 844}
CASE = "K-2026-000123-BURGLARY-RUE-DES-LILAS"


@pytest.fixture(scope="module")
def desk(tmp_path_factory):
    """A central with two real nodes: gate-node on the LAN (pull), yard-node behind NAT (push over mosquitto)."""
    tmp = tmp_path_factory.mktemp("central")
    broker = Broker(tmp / "broker").start()
    store, key = record_node(tmp_path_factory.mktemp("node"), node="gate-node")
    yard_root = tmp_path_factory.mktemp("yard")
    yard, yard_key = record_node(yard_root, node="yard-node", video="road")
    node = serve(store)
    clips = [(c.id, c.start_ts) for c in store.catalog.list_clips()]
    cfg = make_central(tmp, sqlite_url(tmp), node.url, key.public_text(), clips)
    port = free_port()
    cfg.write_text(cfg.read_text() + f'\n[mqtt]\nport = {broker.port}\nclient_id = "desk-web-test"\n'
                   f'\n[web]\nlisten = "127.0.0.1:{port}"\npublic_url = "http://127.0.0.1:{port}"\n')
    assert main(["central", "register-node", "-c", str(cfg), "--node", "yard-node", "--pubkey",
                 yard_key.public_text()]) == 0  # no --api: central cannot reach it
    rows = [parse_event("yard-node", event("yard-node", 1, clip=c.id, ts=c.start_ts, label="truck", camera="yard"))
            for c in yard.catalog.list_clips()[:1]]
    yard_stats = {"cameras": {"yard": {"state": "reconnecting", "blind": True}}}  # its camera is down
    with Store(sqlite_url(tmp)) as db:
        db.write_batch(rows, [], [StatsRow("yard-node", json.dumps(yard_stats), True)])
    assert main(["central", "init", "-c", str(cfg)]) == 0
    central_pub = (tmp / "evidence" / "keys" / "central.ed25519.pub").read_text().strip()
    handler = RequestHandler("yard-node", central_pub, yard.catalog, yard_root,
                             MqttSettings(port=broker.port, client_id="edgecam-yard-node", reconnect_min=0.2))
    handler.start()
    server = start_desk(cfg, port)
    yield server, store, yard
    server.stop()
    handler.stop()
    node.stop()
    store.close()
    yard.close()
    broker.stop()


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


class Desk:
    def __init__(self, browser, url: str, viewport: dict[str, int], tag: str) -> None:
        self.ctx = browser.new_context(viewport=viewport, accept_downloads=True, timezone_id="Europe/Paris")
        self.page = self.ctx.new_page()
        self.tag, self.url = tag, url
        self.console: list[str] = []
        self.page.on("console", lambda m: self.console.append(m.text))
        self.page.goto(url + "/")

    def sign_in(self, user: str, password: str = PASSWORD) -> None:
        self.page.fill("#user", user)
        self.page.fill("#password", password)
        self.page.click("#signin-form button[type=submit]")

    def shot(self, name: str) -> None:
        self.page.screenshot(path=str(ARTIFACTS / f"{self.tag}-{name}.png"), full_page=True)

    def no_sideways_scroll(self) -> None:
        width = self.page.evaluate("document.documentElement.scrollWidth")
        assert width <= self.page.viewport_size["width"], width

    def close(self) -> None:
        assert not [c for c in self.console if "Content Security Policy" in c], self.console
        self.ctx.close()


@pytest.mark.browser
def test_investigator_fetches_watches_seeks_and_exports_a_case(browser, desk, tmp_path: Path) -> None:
    server, store, _yard = desk
    clip = store.catalog.list_clips()[0]
    d = Desk(browser, server.url, DESKTOP, "desktop")
    page = d.page
    d.shot("1-signin")
    d.sign_in("ines")
    page.wait_for_function("() => document.querySelectorAll('#results .row').length === 3")
    assert page.is_hidden("#signin-form") and "seq 2 contiguous" in page.inner_text("#fleet-list")
    assert "cameras 0/1 ok: yard blind" in page.inner_text("#fleet-list li[data-node=yard-node]")
    assert page.is_visible(f".row[data-clip='{clip.id}'] .fetch") and page.inner_text("#zone") == "Europe/Paris"
    assert "Z)" in page.inner_text(f".row[data-clip='{clip.id}']")  # UTC beside the local time
    d.shot("2-search")
    page.click(f".row[data-clip='{clip.id}'] .fetch")
    page.wait_for_selector("#fetch-list li[data-state=verified]", timeout=30000)
    assert clip.sha256 in page.inner_text("#fetch-list")
    page.wait_for_selector(f".row[data-clip='{clip.id}'] .watch")
    d.shot("3-fetched")
    page.click(f".row[data-clip='{clip.id}'] .watch")
    page.wait_for_function("() => document.getElementById('video').readyState >= 2", timeout=15000)
    page.wait_for_function("() => document.getElementById('video').currentTime > 0.3", timeout=15000)
    landed = page.evaluate("""() => new Promise(resolve => {
        const v = document.getElementById('video');
        v.pause();
        v.addEventListener('seeked', () => resolve(v.currentTime), { once: true });
        v.currentTime = 3.0; })""")
    assert abs(landed - 3.0) < 0.5, landed
    d.shot("4-playing")
    page.fill("#c-name", CASE)
    page.fill("#c-notes", "two cars at the gate")
    page.click("#case-form button[type=submit]")
    page.wait_for_selector(f"#case-list li[data-name='{CASE}']")
    page.click(f".row[data-clip='{clip.id}'] .add")
    page.wait_for_function(f"() => document.querySelector(\"#case-list li[data-name='{CASE}']\")"
                           ".textContent.includes('1 clip(s)')")
    with page.expect_download() as dl:
        page.click(f"#case-list li[data-name='{CASE}'] .export")
    dl.value.save_as(tmp_path / "case.zip")
    assert [c.line() for c in check_case(tmp_path / "case.zip") if not c.ok] == []
    d.shot("5-case")
    d.close()


@pytest.mark.browser
def test_fetch_by_push_from_a_node_central_cannot_reach_then_watch(browser, desk) -> None:
    server, _store, yard = desk
    clip = yard.catalog.list_clips()[0]
    d = Desk(browser, server.url, DESKTOP, "push")
    page = d.page
    d.sign_in("ines")
    page.wait_for_selector(f".row[data-clip='{clip.id}'] .fetch")
    page.click(f".row[data-clip='{clip.id}'] .fetch")
    page.wait_for_selector(f"#fetch-list li[data-clip='{clip.id}'][data-state=verified]", timeout=30000)
    assert "(push)" in page.inner_text(f"#fetch-list li[data-clip='{clip.id}']")
    assert clip.sha256 in page.inner_text(f"#fetch-list li[data-clip='{clip.id}']")
    page.click(f".row[data-clip='{clip.id}'] .watch")
    page.wait_for_function("() => document.getElementById('video').readyState >= 2", timeout=15000)
    d.shot("1-pushed-and-playing")
    d.close()


@pytest.mark.browser
def test_viewer_sees_no_fetch_and_gets_403(browser, desk) -> None:
    server, store, _yard = desk
    d = Desk(browser, server.url, DESKTOP, "viewer")
    d.sign_in("victor")
    page = d.page
    page.wait_for_function("() => document.querySelectorAll('#results .row').length === 3")
    assert page.query_selector_all("#results .fetch") == [] and page.is_hidden("#cases")
    got = page.evaluate("""async clip => {
        const me = await (await fetch('/api/session')).json();
        const post = (path, body) => fetch(path, { method: 'POST', headers: { 'X-CSRF-Token': me.csrf,
            'Content-Type': 'application/json' }, body: JSON.stringify(body) }).then(r => r.status);
        return [await post('/api/fetches', { node: 'gate-node', clip }), await post('/api/cases/x/export', {})]; }""",
                        store.catalog.list_clips()[1].id)
    assert got == [403, 403]
    d.shot("1-search")
    d.close()


@pytest.mark.browser
def test_search_rows_show_the_nodes_thumbnails_and_a_placeholder_for_an_unreachable_node(browser, desk) -> None:
    """A viewer's rows: gate-node's (reachable) show the node's own JPEG, pulled by central over the node's API
    and cached apart from the evidence; yard-node's (no API central can reach) shows the placeholder."""
    server, store, yard = desk
    d = Desk(browser, server.url, DESKTOP, "thumbs")
    d.sign_in("victor")
    page = d.page
    page.wait_for_function("() => document.querySelectorAll('#results .row').length === 3")
    for clip in store.catalog.list_clips():
        page.wait_for_selector(f".row[data-clip='{clip.id}'] .thumb[data-state=loaded] img", timeout=15000)
        width = page.evaluate(f"document.querySelector(\".row[data-clip='{clip.id}'] .thumb img\").naturalWidth")
        assert width >= 64, width
        node_jpeg = store.catalog.thumbnail_path(clip.id).read_bytes()
        got = page.evaluate(f"fetch('/api/thumbs/gate-node/{clip.id}.jpg').then(r => r.arrayBuffer())"
                            ".then(b => Array.from(new Uint8Array(b)))")
        assert bytes(got) == node_jpeg and node_jpeg[:3] == b"\xff\xd8\xff"
        assert server.thumbs.cached("gate-node", clip.id).read_bytes() == node_jpeg
    yard_clip = yard.catalog.list_clips()[0].id
    page.wait_for_selector(f".row[data-clip='{yard_clip}'] .thumb[data-state=none]", timeout=15000)
    assert page.inner_text(f".row[data-clip='{yard_clip}'] .thumb") == "no thumbnail"
    assert not (server.root / "thumbs" / "index" / "yard-node").exists()
    assert not list((server.root / "sha256").rglob("*.jpg"))  # the cache is not in the evidence store
    d.shot("1-rows")
    d.close()


@pytest.mark.browser
def test_cross_site_form_post_is_refused(browser, desk) -> None:
    server, store, _yard = desk
    d = Desk(browser, server.url, DESKTOP, "xsite")
    d.sign_in("ines")
    d.page.wait_for_selector("#results .row")
    before = d.page.evaluate("fetch('/api/fetches').then(r => r.json())")
    evil = (f'<form method="post" action="{server.url}/api/fetches" enctype="text/plain">'
            f'<input name=\'{{"node":"gate-node","clip":"{store.catalog.list_clips()[1].id}","x":"\' value=\'"}}\'>'
            '</form><script>document.forms[0].submit()</script>')
    d.page.route("http://evil.test/", lambda route: route.fulfill(body=evil, content_type="text/html"))
    with d.page.expect_response(f"{server.url}/api/fetches") as resp:
        d.page.goto("http://evil.test/")
    assert resp.value.status in (401, 403)
    d.page.goto(server.url + "/")
    d.page.wait_for_selector("#results .row")
    assert d.page.evaluate("fetch('/api/fetches').then(r => r.json())") == before
    d.ctx.close()


@pytest.mark.browser
def test_phone_layout_has_no_sideways_scroll(browser, desk) -> None:
    server, _store, _yard = desk
    d = Desk(browser, server.url, PHONE, "phone")
    d.no_sideways_scroll()
    d.sign_in("ines")
    d.page.wait_for_selector(f"#case-list li[data-name='{CASE}']")
    d.page.wait_for_selector("#fetch-list li")
    d.no_sideways_scroll()
    d.shot("1-desk")
    d.close()


@pytest.mark.browser
def test_sign_in_is_throttled_in_the_page(browser, desk) -> None:
    """Last in the module: it locks 127.0.0.1 out of sign-in for this server."""
    server, _store, _yard = desk
    d = Desk(browser, server.url, PHONE, "throttle")
    for _ in range(5):
        d.sign_in("ines", "wrong password!")
        d.page.wait_for_function("() => document.getElementById('message').textContent.includes('wrong user')")
        d.page.evaluate("document.getElementById('message').textContent = ''")
    d.sign_in("ines")
    d.page.wait_for_function("() => document.getElementById('message').textContent.includes('too many')")
    assert d.page.is_hidden("#app")
    d.shot("1-throttled")
    d.close()
