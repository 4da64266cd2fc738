"""The evidence desk: central's web page and its JSON API (aiohttp, like the node's LAN API).

Care taken (as on the node): a strict CSP (scripts and styles from this server only, no inline script,
no CDN), ``nosniff``, no framing, no referrer. Sign-in by user and password (``edge.central.users``),
a server-side session in an HttpOnly SameSite=Strict cookie, and on every state change (any method but
GET/HEAD) both an ``Origin`` that is this server's own and the session's CSRF token in ``X-CSRF-Token``.
Failed sign-ins are throttled per address and per user name (429 with Retry-After). Roles: viewer
(fleet, search, watch), investigator (also fetch, cases, export), admin (everything). Every sign-in,
search, view, fetch and export is a custody entry.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import threading
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from aiohttp import web

from ..api.auth import FailureLimiter
from ..errors import UserError
from .cases import CaseBook
from .config import CentralConfig
from .custody import CustodyLog
from .evidence import EvidenceStore
from .fetch import accept_clip, evidence_root
from .fetchqueue import FetchQueue, FetchWorker
from .fleet import fleet_rows
from .push import UploadSlots
from .store import SearchFilter, Store
from .thumbs import ThumbCache
from .users import Session, UserBook, role_at_least

log = logging.getLogger(__name__)
STATIC = Path(__file__).resolve().parent / "web"
COOKIE = "desk_session"
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; media-src 'self'; "
       "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
HEADERS = {"Content-Security-Policy": CSP, "X-Content-Type-Options": "nosniff", "X-Frame-Options": "DENY",
           "Referrer-Policy": "no-referrer", "Cache-Control": "no-store"}
_ID = re.compile(r"^[A-Za-z0-9_.-]{1,128}$")
SESSION = web.RequestKey("session", Session)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _err(status: int, message: str, headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response({"error": message, "status": status}, status=status, headers=headers)


class DeskServer:
    """Serve the desk on ``[web] listen``; ``start()`` returns once listening (port 0 picks a free one)."""

    def __init__(self, cfg: CentralConfig, host: str, port: int) -> None:
        self.cfg, self.host, self.port = cfg, host, port
        self.root = evidence_root(cfg)
        self.root.mkdir(parents=True, exist_ok=True)
        self.users = UserBook(self.root / "desk.db", cfg.web.session_idle, cfg.web.session_max)
        self.queue = FetchQueue(self.root / "desk.db")
        self.worker = FetchWorker(cfg, self.queue)
        self.by_address = FailureLimiter(max_failures=5, window=300.0, global_failures=200)
        self.by_user = FailureLimiter(max_failures=10, window=900.0, global_failures=10**9)
        self._pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="desk-io")
        self._db_lock = threading.Lock()  # the desk's SQLite handles are shared by the pool's threads
        self.slots = UploadSlots(self.root)
        self.thumbs = ThumbCache(self.root)
        # thumbnails wait on nodes: their own threads, so a slow node never holds the desk's database pool
        self._thumb_pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="desk-thumb")
        self._upload_locks: dict[str, asyncio.Lock] = {}
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._error: BaseException | None = None

    @property
    def url(self) -> str:
        host = "127.0.0.1" if self.host in ("", "0.0.0.0") else self.host
        return f"http://{host}:{self.port}"

    def start(self, timeout: float = 10.0) -> None:
        ready = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(ready,), name="desk", daemon=True)
        self._thread.start()
        if not ready.wait(timeout) or self._error is not None:
            raise UserError(f"web: cannot listen on {self.host}:{self.port}: {self._error or 'timed out'}")
        self.worker.start()
        log.info("desk: listening on %s", self.url)

    def stop(self) -> None:
        self.worker.stop()
        if self._loop is not None and self._stop is not None and self._thread is not None:
            try:
                self._loop.call_soon_threadsafe(self._stop.set)
            except RuntimeError:
                pass
            self._thread.join(10)
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._thumb_pool.shutdown(wait=False, cancel_futures=True)

    def _run(self, ready: threading.Event) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            runner = loop.run_until_complete(self._setup())
        except Exception as err:
            self._error = err
            ready.set()
            loop.close()
            return
        ready.set()
        try:
            loop.run_until_complete(self._stop.wait())  # type: ignore[union-attr]
            loop.run_until_complete(runner.cleanup())
        finally:
            loop.close()

    async def _setup(self) -> web.AppRunner:
        self._stop = asyncio.Event()
        app = web.Application(middlewares=[self._guard], client_max_size=64 * 1024)
        r = web.get
        app.add_routes([
            r("/", self.index), r("/static/{name}", self.static),
            web.post("/api/session", self.sign_in), web.delete("/api/session", self.sign_out),
            r("/api/session", self.me), r("/api/fleet", self.fleet), r("/api/search", self.search),
            web.post("/api/fleet/{node}/ack", self.ack_gap),
            r("/api/fetches", self.fetches), web.post("/api/fetches", self.fetch),
            r("/api/clips/{node}/{clip}", self.clip), r("/api/thumbs/{node}/{clip}", self.thumb),
            r("/api/cases", self.cases), web.post("/api/cases", self.case_new),
            web.post("/api/cases/{name}/clips", self.case_add), web.post("/api/cases/{name}/export", self.export),
            web.put("/api/upload/{token}/meta", self.upload_meta), web.head("/api/upload/{token}", self.upload_head),
            web.patch("/api/upload/{token}", self.upload_patch),
        ])
        app.on_response_prepare.append(_headers)
        runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=2.0)
        await runner.setup()
        site = web.TCPSite(runner, self.host, self.port, backlog=64)
        await site.start()
        server = getattr(site, "_server", None)
        if server is not None and server.sockets:
            self.port = server.sockets[0].getsockname()[1]
        return runner

    # --- plumbing -------------------------------------------------------------------------------------

    async def _io(self, fn: Callable[..., Any], *args: Any) -> Any:
        def locked() -> Any:
            with self._db_lock:
                return fn(*args)
        return await asyncio.get_running_loop().run_in_executor(self._pool, locked)

    def _custody(self, who: str, action: str, subject: str, address: str, detail: str = "") -> None:
        log_ = CustodyLog(self.root / "custody.db")
        try:
            log_.append(who, action, subject, address, detail)
        finally:
            log_.close()

    @web.middleware
    async def _guard(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """Sessions, roles, same-origin and CSRF checks; every failure a short JSON error."""
        try:
            if request.method not in ("GET", "HEAD") and not _same_origin(request):
                return _err(403, "cross-site request refused")
            if request.path == "/" or request.path.startswith(("/static/", "/api/upload/")) \
                    or request.path == "/api/session" and request.method == "POST":  # uploads: the slot's token
                return await handler(request)
            sess = await self._io(self.users.session, request.cookies.get(COOKIE))
            if sess is None:
                return _err(401, "sign in first (or the session expired)")
            if request.method not in ("GET", "HEAD") and request.headers.get("X-CSRF-Token") != sess.csrf:
                return _err(403, "missing or wrong CSRF token")
            request[SESSION] = sess
            return await handler(request)
        except web.HTTPException as exc:
            if exc.status < 400:
                raise
            return _err(exc.status, exc.text or exc.reason)
        except UserError as exc:
            return _err(400, str(exc))
        except (asyncio.CancelledError, ConnectionError):
            raise
        except Exception as exc:
            log.error("desk: %s %s failed: %s: %s", request.method, request.path[:200], type(exc).__name__, exc)
            return _err(500, "internal error")

    @staticmethod
    def _need(request: web.Request, role: str) -> Session:
        sess = request[SESSION]
        if not role_at_least(sess.role, role):
            raise web.HTTPForbidden(text=f"needs the {role} role (you are {sess.role})")
        return sess

    # --- pages and session ----------------------------------------------------------------------------

    async def index(self, _request: web.Request) -> web.StreamResponse:
        return web.FileResponse(STATIC / "index.html", headers={"Content-Type": "text/html; charset=utf-8"})

    async def static(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        if name not in ("desk.js", "desk.css"):
            raise web.HTTPNotFound(text="not found")
        return web.FileResponse(STATIC / name)

    async def sign_in(self, request: web.Request) -> web.StreamResponse:
        addr = request.remote or "?"
        if request.content_type != "application/json":
            return _err(415, "send JSON")
        try:
            body = await request.json()
            name, password = str(body["user"])[:64], str(body["password"])[:1024]
        except (ValueError, KeyError, TypeError):
            return _err(400, "send {\"user\": ..., \"password\": ...}")
        wait = max(self.by_address.retry_after(addr), self.by_user.retry_after(name))
        if wait > 0:
            return _err(429, f"too many failed sign-ins; try again in {int(wait) + 1} s",
                        {"Retry-After": str(int(wait) + 1)})
        user = await self._io(self.users.authenticate, name, password)
        if user is None:
            self.by_address.record_failure(addr)
            self.by_user.record_failure(name)
            await self._io(self._custody, name, "sign-in-failed", f"user:{name}", addr)
            return _err(401, "wrong user name or password")
        sid, sess = await self._io(self.users.open_session, user, addr)
        await self._io(self._custody, user.name, "sign-in", f"user:{user.name}", addr)
        resp = web.json_response({"user": sess.user, "role": sess.role, "csrf": sess.csrf})
        resp.set_cookie(COOKIE, sid, httponly=True, samesite="Strict", path="/", secure=request.secure)
        return resp

    async def sign_out(self, request: web.Request) -> web.StreamResponse:
        await self._io(self.users.close_session, request.cookies.get(COOKIE, ""))
        resp = web.json_response({"ok": True})
        resp.del_cookie(COOKIE, path="/")
        return resp

    async def me(self, request: web.Request) -> web.StreamResponse:
        s = request[SESSION]
        return web.json_response({"user": s.user, "role": s.role, "csrf": s.csrf})

    # --- reading ---------------------------------------------------------------------------------------

    def _with_store(self, fn: Callable[[Store], Any]) -> Any:
        store = Store(self.cfg.database.url)
        try:
            return fn(store)
        finally:
            store.close()

    async def fleet(self, request: web.Request) -> web.StreamResponse:
        self._need(request, "viewer")
        rows = await self._io(self._with_store, lambda s: fleet_rows(s, time.time(), self.cfg.gaps.alarm_after,
                                                                     self.cfg.nodes.stale_after))
        return web.json_response(rows)

    async def ack_gap(self, request: web.Request) -> web.StreamResponse:
        """Acknowledge a missing seq range with a reason (admin: it clears an alarm), as `central ack-gap` does."""
        from .messages import MAX_SEQ
        from .store import GapAck

        sess = self._need(request, "admin")
        node = request.match_info["node"]
        body = await _json(request)
        try:
            first, last = int(body["first"]), int(body["last"])
        except (KeyError, TypeError, ValueError):
            return _err(400, "send {\"first\": N, \"last\": N, \"reason\": TEXT}")
        reason = str(body.get("reason", "")).strip()
        if not 1 <= first <= last <= MAX_SEQ:
            return _err(400, "need 1 <= first <= last")
        if not reason or len(reason) > 500 or any(ord(ch) < 32 for ch in reason):
            return _err(400, "reason: one line of 1..500 characters saying why the range is accepted as lost")

        def ack(store: Store) -> bool:
            if store.node(node) is None:
                return False
            store.ack_gap(GapAck(node, first, last, reason, sess.user, time.time()))
            return True
        if not await self._io(self._with_store, ack):
            raise web.HTTPNotFound(text=f"no node {node!r}")
        await self._io(self._custody, sess.user, "acknowledge", f"node:{node}", request.remote or "?",
                       f"acknowledged missing seqs {first}-{last}: {reason}")
        return web.json_response({"acked": [first, last]})

    async def search(self, request: web.Request) -> web.StreamResponse:
        sess = self._need(request, "viewer")
        q = request.query
        f = SearchFilter(since=_num(q.get("since")), until=_num(q.get("until")), label=q.get("label") or None,
                         node=q.get("node") or None, camera=q.get("camera") or None, zone=q.get("zone") or None,
                         limit=max(1, min(500, int(_num(q.get("limit")) or 200))))
        rows, total = await self._io(self._with_store, lambda s: s.search_objects(f))
        stored = EvidenceStore.at(self.root)
        for r in rows:
            r["stored"] = bool(r.get("clip")) and stored.get(r["node"], r["clip"]) is not None
        query = {k: v for k, v in q.items() if v}
        await self._io(self._custody, sess.user, "search", "search", request.remote or "?",
                       json.dumps(query, sort_keys=True)[:500])
        return web.json_response({"rows": rows, "total": total})

    async def clip(self, request: web.Request) -> web.StreamResponse:
        """A stored clip, with Range (the browser seeks); the first request of a view is a custody entry."""
        sess = self._need(request, "viewer")
        node, name = request.match_info["node"], request.match_info["clip"]
        if not name.endswith(".mp4") or not _ID.match(node) or not _ID.match(name[:-4]):
            raise web.HTTPNotFound(text="not found")
        stored = EvidenceStore.at(self.root).get(node, name[:-4])
        if stored is None or stored.path is None:
            raise web.HTTPNotFound(text="not in the evidence store: fetch it first")
        rng = request.headers.get("Range", "")
        if not rng or rng.startswith("bytes=0-"):
            await self._io(self._custody, sess.user, "view", f"{node}/{name[:-4]}", request.remote or "?",
                           f"sha256 {stored.sha256}")
        return web.FileResponse(stored.path, headers={"Content-Type": "video/mp4"})

    async def thumb(self, request: web.Request) -> web.StreamResponse:
        """A search row's thumbnail (viewer): central's cached copy, else pulled from the node within
        ``thumbs.TIMEOUT`` s; 404 (the page's placeholder) when the node has none or cannot be reached."""
        self._need(request, "viewer")
        node, name = request.match_info["node"], request.match_info["clip"]
        if not name.endswith(".jpg") or not _ID.match(node) or not _ID.match(name[:-4]):
            raise web.HTTPNotFound(text="not found")
        clip = name[:-4]
        path = self.thumbs.cached(node, clip)
        if path is None:
            row = await self._io(self._with_store, lambda s: s.node(node))
            if row is not None:
                path = await asyncio.get_running_loop().run_in_executor(self._thumb_pool, self.thumbs.get, row, clip)
        if path is None:
            return _err(404, f"no thumbnail for {node}/{clip} (node unreachable or clip without one)")
        return web.FileResponse(path, headers={"Content-Type": "image/jpeg", "Cache-Control": "private, max-age=3600"})

    # --- fetch -----------------------------------------------------------------------------------------

    async def fetches(self, request: web.Request) -> web.StreamResponse:
        self._need(request, "viewer")
        return web.json_response(await self._io(self.queue.requests, self.root))

    async def fetch(self, request: web.Request) -> web.StreamResponse:
        sess = self._need(request, "investigator")
        body = await _json(request)
        node, clip, via = str(body.get("node", "")), str(body.get("clip", "")), str(body.get("via", "auto"))
        if not _ID.match(node) or not _ID.match(clip):
            return _err(400, "node and clip must be ids")
        if via not in ("auto", "pull", "push"):
            return _err(400, "via: auto (pull when central can reach the node, else push), pull or push")
        fid = await self._io(self.queue.add, node, clip, via, sess.user, request.remote or "?")
        self.worker.wake.set()
        return web.json_response({"id": fid}, status=202)

    # --- cases -----------------------------------------------------------------------------------------

    def _book(self, fn: Callable[[CaseBook], Any]) -> Any:
        book = CaseBook(self.root / "cases.db")
        try:
            return fn(book)
        finally:
            book.close()

    async def cases(self, request: web.Request) -> web.StreamResponse:
        self._need(request, "investigator")

        def listing(book: CaseBook) -> list[dict[str, Any]]:
            return [{"name": c.name, "notes": c.notes, "state": c.state, "opened_by": c.created_by,
                     "opened_ts": c.created_ts,
                     "clips": [{"node": i.node, "clip": i.clip, "sha256": i.sha256} for i in book.items(c.name)]}
                    for c in book.cases()]
        return web.json_response(await self._io(self._book, listing))

    async def case_new(self, request: web.Request) -> web.StreamResponse:
        sess = self._need(request, "investigator")
        body = await _json(request)
        name, notes = str(body.get("name", "")), str(body.get("notes", ""))[:2000]
        await self._io(self._book, lambda b: b.new(name, sess.user, notes))
        await self._io(self._custody, sess.user, "case", f"case:{name}", request.remote or "?", "opened")
        return web.json_response({"name": name}, status=201)

    async def case_add(self, request: web.Request) -> web.StreamResponse:
        sess = self._need(request, "investigator")
        name = request.match_info["name"]
        body = await _json(request)
        node, clip = str(body.get("node", "")), str(body.get("clip", ""))
        stored = EvidenceStore.at(self.root).get(node, clip) if _ID.match(node) and _ID.match(clip) else None
        if stored is None:
            return _err(409, "fetch the clip into the evidence store first")
        added = await self._io(self._book, lambda b: b.add(name, node, clip, stored.sha256, sess.user,
                                                           str(body.get("note", ""))[:500]))
        if added:
            await self._io(self._custody, sess.user, "case", f"{node}/{clip}", request.remote or "?",
                           f"added to case {name} (sha256 {stored.sha256})")
        return web.json_response({"added": added})

    async def export(self, request: web.Request) -> web.StreamResponse:
        """The case ZIP (``edge.central.casefile``), written to a file in the store's ``exports/`` then sent."""
        from .casefile import write_case

        sess = self._need(request, "investigator")
        name = request.match_info["name"]
        out = self.root / "exports" / f"case-{name}-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}.zip"
        out.parent.mkdir(parents=True, exist_ok=True)

        def run(book: CaseBook) -> Path:
            log_ = CustodyLog(self.root / "custody.db")
            try:
                return write_case(out, self.root, book, log_, name, sess.user, request.remote or "?")
            finally:
                log_.close()
        path = await self._io(self._book, run)
        resp = web.StreamResponse(headers={"Content-Type": "application/zip",
                                           "Content-Disposition": f'attachment; filename="{path.name}"'})
        try:  # sent, then removed: the evidence store keeps the clips, an export is only their copy
            resp.content_length = path.stat().st_size
            await resp.prepare(request)
            loop = asyncio.get_running_loop()
            with path.open("rb") as f:
                while block := await loop.run_in_executor(self._pool, f.read, 1 << 20):
                    await resp.write(block)
            await resp.write_eof()
        finally:
            path.unlink(missing_ok=True)
        return resp


    # --- push uploads (edge.central.push): authorised by the single-use slot token in the path -----------

    def _slot(self, request: web.Request) -> dict[str, Any]:
        token = request.match_info["token"]
        slot = self.slots.get(token) if len(token) < 100 else None
        if slot is None:
            raise web.HTTPNotFound(text="no such upload URL")
        if slot["state"] != "open" or slot["expires"] < time.time():
            raise web.HTTPGone(text=f"upload URL {'expired' if slot['state'] == 'open' else 'already used'}")
        return slot

    async def upload_meta(self, request: web.Request) -> web.StreamResponse:
        slot = self._slot(request)
        try:
            meta = json.loads(await request.read())
            record = meta["record"]
            total = int(record["bytes"])
        except (ValueError, KeyError, TypeError):
            return _err(400, "send the clip's META.json")
        if record.get("clip") != slot["clip"] or total < 0:
            return _err(400, "this META.json is not for the requested clip")
        part = self.slots.staging(slot["id"])
        await self._io(lambda: part.with_suffix(".meta.json").write_text(json.dumps(meta)))
        return web.Response(status=204, headers={"Upload-Offset": str(_size(part.with_suffix(".part")))})

    async def upload_head(self, request: web.Request) -> web.StreamResponse:
        slot = self._slot(request)
        part = self.slots.staging(slot["id"]).with_suffix(".part")
        return web.Response(status=200, headers={"Upload-Offset": str(_size(part))})

    async def upload_patch(self, request: web.Request) -> web.StreamResponse:
        slot = self._slot(request)
        lock = self._upload_locks.setdefault(slot["id"], asyncio.Lock())
        async with lock:
            base = self.slots.staging(slot["id"])
            part, meta_file = base.with_suffix(".part"), base.with_suffix(".meta.json")
            if not meta_file.exists():
                return _err(409, "send the META.json first (PUT .../meta)")
            meta = json.loads(meta_file.read_text())
            total, have = int(meta["record"]["bytes"]), _size(part)
            try:
                offset = int(request.headers.get("Upload-Offset", "-1"))
            except ValueError:
                offset = -1
            if offset != have:
                return _err(409, f"Upload-Offset must be {have}", {"Upload-Offset": str(have)})
            with part.open("ab") as f:
                async for block in request.content.iter_chunked(1 << 18):
                    if have + len(block) > total:
                        f.truncate(have)
                        return _err(413, f"more bytes than the signed record's {total}", {"Upload-Offset": str(have)})
                    f.write(block)
                    have += len(block)
            if have < total:
                return web.Response(status=204, headers={"Upload-Offset": str(have)})
            return await self._io(self._complete, slot, part, meta, request.remote or "?")

    def _complete(self, slot: dict[str, Any], part: Path, meta: dict[str, Any], address: str) -> web.Response:
        """The last byte is in: verify against the node's registered key, store, close the slot."""
        store = Store(self.cfg.database.url)
        try:
            node = store.node(slot["node"])
        finally:
            store.close()
        log_ = CustodyLog(self.root / "custody.db")
        try:
            if node is None:
                raise UserError(f"node {slot['node']!r} is not registered")
            stored = accept_clip(EvidenceStore.at(self.root), log_, node, slot["clip"], part, meta,
                                 slot["requested_by"], address, f"via push (request {slot['id']})")
        except UserError as err:
            self.slots.finish(slot["id"], "failed", str(err))
            return _err(422, str(err))
        finally:
            log_.close()
            part.with_suffix(".meta.json").unlink(missing_ok=True)
        self.slots.finish(slot["id"], "verified", "", stored.sha256)
        return web.json_response({"sha256": stored.sha256}, status=201)


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


def _num(text: str | None) -> float | None:
    if not text:
        return None
    try:
        value = float(text)
    except ValueError:
        raise web.HTTPBadRequest(text=f"{text[:40]!r} is not a number") from None
    if value != value or value in (float("inf"), float("-inf")):
        raise web.HTTPBadRequest(text="not a finite number")
    return value


async def _json(request: web.Request) -> dict[str, Any]:
    if request.content_type != "application/json":
        raise web.HTTPUnsupportedMediaType(text="send JSON")
    try:
        body = await request.json()
    except ValueError:
        raise web.HTTPBadRequest(text="body is not JSON") from None
    if not isinstance(body, dict):
        raise web.HTTPBadRequest(text="send a JSON object")
    return body


def _same_origin(request: web.Request) -> bool:
    """A state change must come from this server's own page: Origin (or Sec-Fetch-Site) must say so."""
    origin = request.headers.get("Origin")
    if origin is not None:
        return origin == f"{request.scheme}://{request.host}"
    return request.headers.get("Sec-Fetch-Site", "same-origin") in ("same-origin", "none")


async def _headers(_request: web.Request, response: web.StreamResponse) -> None:
    for k, v in HEADERS.items():
        response.headers.setdefault(k, v)
    response.headers["Server"] = "edgecam"


def parse_listen(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    return host or "127.0.0.1", int(port)


def web_command(args: Any) -> int:
    """``edgecam central web -c C``: the desk alone (``central run`` serves it too when ``[web] listen`` is set)."""
    import signal

    from ..signals import deferred
    from .config import load_central_config

    cfg = load_central_config(args.config)
    host, port = parse_listen(getattr(args, "listen", None) or cfg.web.listen or "127.0.0.1:8090")
    server = DeskServer(cfg, host, port)
    server.start()
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, deferred(stop.set))
    print(f"desk: {server.url}", flush=True)
    try:
        # A timed wait: the kernel may hand SIGTERM to any thread (the desk's loop, a pool worker); Python runs
        # the handler only when the main thread next runs bytecode, which a wait without a timeout never does.
        while not stop.wait(0.5):
            pass
    finally:
        server.stop()
    return 0
