"""The LAN API's route handlers: read-only views of the clip catalog plus hold/release.

Every id in a path is checked against a strict pattern before the catalog sees
it, and every file is opened with ``O_NOFOLLOW`` and must be a regular file, on
top of the catalog's own promise that its paths lie inside the store.
Catalog calls may touch SQLite or the disk, so they run on a small thread pool
and never on the event loop.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import stat
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

from aiohttp import web

from ..interfaces import ClipCatalog, NodeView
from ..types import ClipRecord
from .auth import TicketSigner
from .ranges import RangeError, etag_matches, if_range_allows, parse_range

T = TypeVar("T")
TOKEN_NAME = web.RequestKey("token_name", str)  # set by the auth middleware: the caller's token name

_ID = re.compile(r"^[A-Za-z0-9_.-]{1,128}$")
_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
_STATIC = re.compile(r"^[A-Za-z0-9_-]{1,64}\.(html|js|css|svg|png|ico|json)$")
_TYPES = {"html": "text/html", "js": "text/javascript", "css": "text/css", "svg": "image/svg+xml",
          "png": "image/png", "ico": "image/x-icon", "json": "application/json"}
CHUNK = 256 * 1024
MAX_LIMIT = 1000
WEB_DIR = Path(__file__).resolve().parent / "web"
OPENAPI = Path(__file__).resolve().parent / "openapi.json"


def valid_id(value: str) -> bool:
    """Clip ids and camera names: a short run of ``A-Za-z0-9_.-`` with no ``..``."""
    return bool(_ID.match(value)) and ".." not in value


def json_error(status: int, message: str, headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response({"error": message, "status": status}, status=status, headers=headers)


def _not_found() -> web.HTTPNotFound:
    return web.HTTPNotFound(reason="Not Found", text="not found")


def _time_param(value: str | None, key: str) -> float | None:
    """UNIX seconds or an ISO 8601 time (naive = UTC)."""
    if value is None or value == "":
        return None
    try:
        return float(value) if re.fullmatch(r"-?[0-9]{1,12}(\.[0-9]{1,9})?", value) else _iso(value)
    except (ValueError, OverflowError):
        raise web.HTTPBadRequest(reason="Bad Request", text=f"{key}: expected UNIX seconds or ISO 8601 time") from None


def _iso(value: str) -> float:
    from datetime import timezone

    dt = datetime.fromisoformat(value.replace("Z", "+00:00"))
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    return dt.timestamp()


def record_json(rec: ClipRecord) -> dict[str, Any]:
    out = asdict(rec)
    out["labels"] = list(rec.labels)
    held = getattr(rec, "held", None)
    if held is not None:
        out["held"] = bool(held)
    return out


def _open_regular(path: Path) -> tuple[int, int]:
    """Open without following a final symlink; (fd, size), or raise FileNotFoundError."""
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        os.close(fd)
        raise FileNotFoundError(path)
    return fd, st.st_size


def _read_small(path: Path, limit: int = 16 * 1024 * 1024) -> bytes:
    fd, size = _open_regular(path)
    try:
        return os.read(fd, min(size, limit))
    finally:
        os.close(fd)


class Handlers:
    """Route handlers over one catalog and one node view."""

    def __init__(self, catalog: ClipCatalog, view: NodeView, pool: ThreadPoolExecutor, write_timeout: float,
                 tickets: TicketSigner) -> None:
        self.tickets = tickets
        self.catalog = catalog
        self.view = view
        self.pool = pool
        self.write_timeout = write_timeout

    async def _call(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self.pool, fn, *args)

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get("/healthz", self.healthz),
            web.get("/", self.index),
            web.get("/static/{name}", self.static),
            web.get("/api/v1/openapi.json", self.openapi),
            web.get("/api/v1/health", self.health),
            web.get("/api/v1/pubkey", self.pubkey),
            web.post("/api/v1/ticket", self.ticket),
            web.get("/api/v1/clips", self.list_clips),
            web.get("/api/v1/clips/{id}.mp4", self.clip_file),
            web.get("/api/v1/clips/{id}/meta", self.clip_meta),
            web.get("/api/v1/clips/{id}/thumb.jpg", self.clip_thumb),
            web.get("/api/v1/best/{id}.jpg", self.best_shot),
            web.post("/api/v1/clips/{id}/hold", self.hold),
            web.delete("/api/v1/clips/{id}/hold", self.release),
            web.get("/api/v1/snapshot/{camera}.jpg", self.snapshot),
        ]

    async def healthz(self, request: web.Request) -> web.Response:
        return web.Response(text="ok")

    async def index(self, request: web.Request) -> web.Response:
        body = await self._call(_read_small, WEB_DIR / "index.html")
        return web.Response(body=body, content_type="text/html", charset="utf-8")

    async def static(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        m = _STATIC.match(name)
        if m is None:
            raise _not_found()
        try:
            body = await self._call(_read_small, WEB_DIR / name)
        except OSError:
            raise _not_found() from None
        return web.Response(body=body, content_type=_TYPES[m.group(1)])

    async def openapi(self, request: web.Request) -> web.Response:
        body = await self._call(_read_small, OPENAPI)
        return web.Response(body=body, content_type="application/json")

    async def health(self, request: web.Request) -> web.Response:
        return web.json_response(await self._call(self.view.health))

    async def pubkey(self, request: web.Request) -> web.Response:
        return web.Response(text=await self._call(self.catalog.public_key))

    async def ticket(self, request: web.Request) -> web.Response:
        """A short-lived URL for ``<video>``/``<img>``: ``POST /api/v1/ticket?path=/api/v1/clips/ID.mp4``."""
        path = request.query.get("path", "")
        name = request.get(TOKEN_NAME, "-")
        issued = self.tickets.issue(path, name)
        if issued is None:
            raise web.HTTPBadRequest(reason="Bad Request",
                                     text="path: not a clip, thumbnail, best shot or snapshot path")
        ticket, expiry = issued
        return web.json_response({"url": f"{path}?ticket={ticket}", "expires": expiry})

    async def list_clips(self, request: web.Request) -> web.Response:
        q = request.query
        limit_s = q.get("limit", "100")
        if not re.fullmatch(r"[0-9]{1,6}", limit_s) or not 1 <= int(limit_s) <= MAX_LIMIT:
            raise web.HTTPBadRequest(reason="Bad Request", text=f"limit: expected 1..{MAX_LIMIT}")
        kwargs: dict[str, Any] = {
            "since": _time_param(q.get("since"), "since"),
            "until": _time_param(q.get("until"), "until"),
            "limit": int(limit_s),
        }
        for key in ("label", "camera", "after"):
            value = q.get(key)
            if value:
                if not valid_id(value):
                    raise web.HTTPBadRequest(reason="Bad Request", text=f"{key}: unexpected characters")
                kwargs[key] = value
        records = await self._call(lambda: self.catalog.list_clips(**kwargs))
        headers = {"X-Next-After": records[-1].id} if len(records) == kwargs["limit"] else None
        best = await self._call(self.catalog.best_by_clip, [r.id for r in records])
        return web.json_response([{**record_json(r), "best": best.get(r.id, [])} for r in records], headers=headers)

    def _clip_id(self, request: web.Request) -> str:
        cid = request.match_info["id"]
        if not valid_id(cid):
            raise _not_found()
        return cid

    async def clip_meta(self, request: web.Request) -> web.Response:
        meta = await self._call(self.catalog.meta, self._clip_id(request))
        if meta is None:
            raise _not_found()
        return web.Response(text=json.dumps(meta, indent=1, sort_keys=True), content_type="application/json")

    async def clip_thumb(self, request: web.Request) -> web.Response:
        return await self._stored_jpeg(self.catalog.thumbnail_path, self._clip_id(request))

    async def best_shot(self, request: web.Request) -> web.Response:
        """One tracked object's best shot (the ``best`` of its ``end`` event): same auth and tickets as clips."""
        return await self._stored_jpeg(self.catalog.best_path, self._clip_id(request))

    async def _stored_jpeg(self, locate: Callable[[str], Path | None], item_id: str) -> web.Response:
        """A JPEG the store keeps (a thumbnail or a best shot): 404 when unknown or gone, cacheable when found."""
        path = await self._call(locate, item_id)
        if path is None:
            raise _not_found()
        try:
            body = await self._call(_read_small, path)
        except OSError:
            raise _not_found() from None
        return web.Response(body=body, content_type="image/jpeg", headers={"Cache-Control": "private, max-age=3600"})

    async def snapshot(self, request: web.Request) -> web.Response:
        camera = request.match_info["camera"]
        if not valid_id(camera):
            raise _not_found()
        jpeg = await self._call(self.view.latest_jpeg, camera)
        if jpeg is None:
            raise _not_found()
        return web.Response(body=jpeg, content_type="image/jpeg", headers={"Cache-Control": "no-store"})

    async def hold(self, request: web.Request) -> web.Response:
        return await self._hold(request, True)

    async def release(self, request: web.Request) -> web.Response:
        return await self._hold(request, False)

    async def _hold(self, request: web.Request, held: bool) -> web.Response:
        cid = self._clip_id(request)
        ok = await self._call(self.catalog.hold if held else self.catalog.release, cid)
        if not ok:
            raise _not_found()
        return web.json_response({"id": cid, "held": held})

    async def clip_file(self, request: web.Request) -> web.StreamResponse:
        """The clip itself: 200, or 206 for one satisfiable range; ETag is the quoted sha256."""
        cid = self._clip_id(request)
        rec = await self._call(self.catalog.get, cid)
        path = await self._call(self.catalog.file_path, cid) if rec is not None else None
        if rec is None or path is None:
            raise _not_found()
        try:
            fd, size = await self._call(_open_regular, path)
        except OSError:
            raise _not_found() from None
        try:
            return await self._send(request, cid, rec.sha256, fd, size)
        finally:
            os.close(fd)

    async def _send(self, request: web.Request, cid: str, sha256: str, fd: int, size: int) -> web.StreamResponse:
        etag = f'"{sha256}"'
        headers = {"ETag": etag, "Accept-Ranges": "bytes", "Content-Type": "video/mp4", "Cache-Control": "private"}
        if request.query.get("download") == "1":
            headers["Content-Disposition"] = f'attachment; filename="{cid}.mp4"'
        if etag_matches(request.headers.get("If-None-Match"), etag):
            return web.Response(status=304, headers={"ETag": etag})
        start, length, status = 0, size, 200
        range_header = request.headers.get("Range")
        if range_header is not None and if_range_allows(request.headers.get("If-Range"), etag):
            try:
                rng = parse_range(range_header, size)
            except RangeError as err:
                return json_error(err.status, err.reason, {"Content-Range": f"bytes */{size}", "ETag": etag})
            start, length, status = rng.start, rng.length, 206
            headers["Content-Range"] = rng.content_range()
        resp = web.StreamResponse(status=status, headers=headers)
        resp.content_length = length
        await resp.prepare(request)
        if request.method == "HEAD":
            return resp
        await self._stream(request, resp, fd, start, length)
        return resp

    async def _stream(self, request: web.Request, resp: web.StreamResponse, fd: int, start: int, length: int) -> None:
        """Copy ``length`` bytes from ``start``; a client that stops reading is cut off after write_timeout."""
        pos, end = start, start + length
        try:
            while pos < end:
                chunk = await self._call(os.pread, fd, min(CHUNK, end - pos), pos)
                if not chunk:  # the file shrank under us: end the connection rather than lie
                    raise ConnectionResetError("file truncated while sending")
                await asyncio.wait_for(resp.write(chunk), self.write_timeout)
                pos += len(chunk)
        except (ConnectionError, asyncio.TimeoutError):
            if request.transport is not None:
                request.transport.close()
            resp.force_close()
