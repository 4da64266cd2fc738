"""The route the technician's web page adds to the plain API: an evidence bundle for a selection of clips.

``POST /api/v1/bundle`` (bearer token) with ``{"ids": [...]}`` → one evidence ZIP in the
``edge.clips.bundle`` layout (cover sheet, clips, their meta records, the node's public key, SHA256SUMS, a
manifest of hashes), the same file ``edgecam clips pull --bundle`` writes. The ZIP is written straight into
the response by a writer thread (chunked, no temporary copy), so neither ``$TMPDIR`` nor the SD card's free
space can fail it; the cover sheet names the token that exported it.
The body is JSON, which a cross-site form cannot send with the ``Authorization`` header: CSRF-safe.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from pathlib import Path
from typing import Any

from aiohttp import web

from ..clips.bundle import bundle_filename, stream_bundle
from .handlers import TOKEN_NAME, Handlers, valid_id

log = logging.getLogger("edge.api")
MAX_BUNDLE_CLIPS = 50
MAX_BUNDLE_BYTES = 1 << 30
MAX_BUNDLES_AT_ONCE = 2  # each holds a writer thread for as long as the client takes to download
CHUNK = 256 * 1024
_END = object()


class _Cancelled(Exception):
    """The client went away: the writer thread stops."""


class _QueueWriter:
    """A file-like ``write`` for ``zipfile`` that hands 256 KiB chunks to the event loop (bounded: back-pressure)."""

    def __init__(self, loop: asyncio.AbstractEventLoop, q: asyncio.Queue, cancelled: threading.Event) -> None:
        self._loop, self._q, self._cancelled = loop, q, cancelled
        self._buf = bytearray()

    def write(self, data: bytes) -> int:
        self._buf += data
        if len(self._buf) >= CHUNK:
            self._send(bytes(self._buf))
            self._buf.clear()
        return len(data)

    def flush(self) -> None:
        pass

    def close(self) -> None:
        pass  # zipfile never closes a stream it was handed; close_stream() sends the tail

    def close_stream(self) -> None:
        if self._buf:
            self._send(bytes(self._buf))
            self._buf.clear()

    def _send(self, item: object) -> None:
        fut = asyncio.run_coroutine_threadsafe(self._q.put(item), self._loop)
        while True:
            try:
                fut.result(timeout=1.0)
                return
            except TimeoutError:
                if self._cancelled.is_set():
                    fut.cancel()
                    raise _Cancelled() from None


class WebRoutes:
    """The bundle handler; reuses ``handlers`` for the catalog, the thread pool and the write timeout."""

    def __init__(self, handlers: Handlers) -> None:
        self.h = handlers
        self._busy = 0

    def routes(self) -> list[web.RouteDef]:
        return [web.post("/api/v1/bundle", self.bundle)]

    async def bundle(self, request: web.Request) -> web.StreamResponse:
        ids = await _bundle_ids(request)
        items, pubkey, node = await self.h._call(self._items, ids)
        if self._busy >= MAX_BUNDLES_AT_ONCE:
            raise web.HTTPServiceUnavailable(text="another evidence bundle is being downloaded; try again shortly",
                                             headers={"Retry-After": "10"})
        self._busy += 1
        try:
            return await self._send(request, items, pubkey, node)
        finally:
            self._busy -= 1

    async def _send(self, request: web.Request, items: list[tuple[Path, dict[str, Any]]], pubkey: str,
                    node: str) -> web.StreamResponse:
        name = bundle_filename(node, [m for _, m in items])
        headers = {"Content-Type": "application/zip", "Cache-Control": "no-store",
                   "Content-Disposition": f'attachment; filename="{name}"'}
        resp = web.StreamResponse(headers=headers)
        resp.enable_chunked_encoding()
        loop = asyncio.get_running_loop()
        q: asyncio.Queue = asyncio.Queue(maxsize=4)
        cancelled = threading.Event()
        writer = _QueueWriter(loop, q, cancelled)
        exported_by = f"LAN API token '{request.get(TOKEN_NAME, '-')}' from {request.remote or '?'}"
        thread = threading.Thread(target=self._produce, args=(writer, items, pubkey, node, exported_by),
                                  name="api-bundle", daemon=True)
        await resp.prepare(request)
        thread.start()
        try:
            while True:
                item = await q.get()
                if item is _END:
                    break
                if isinstance(item, BaseException):  # after the headers went out, only a cut shows it
                    raise ConnectionResetError(f"bundle failed: {item}")
                await asyncio.wait_for(resp.write(item), self.h.write_timeout)
            await resp.write_eof()
        except (ConnectionError, asyncio.TimeoutError):
            if request.transport is not None:
                request.transport.close()
            resp.force_close()
        finally:
            cancelled.set()
        return resp

    def _produce(self, writer: _QueueWriter, items: list[tuple[Path, dict[str, Any]]], pubkey: str, node: str,
                 exported_by: str) -> None:
        """The writer thread: the ZIP, chunk by chunk, then ``_END`` (or the error that stopped it)."""
        try:
            stream_bundle(writer, items, pubkey, node, exported_by, best=self.h.catalog.best_path)
            writer.close_stream()
            writer._send(_END)
        except _Cancelled:
            return
        except Exception as err:  # a clip removed or unreadable mid-way: the client sees a cut download
            log.error("api: evidence bundle failed: %s: %s", type(err).__name__, err)
            try:
                writer._send(err)
            except (_Cancelled, RuntimeError):  # RuntimeError: the server's loop closed meanwhile
                pass

    def _items(self, ids: list[str]) -> tuple[list[tuple[Path, dict[str, Any]]], str, str]:
        """Every clip checked before the first byte is sent (unknown → 404, too big → 413)."""
        cat = self.h.catalog
        items: list[tuple[Path, dict[str, Any]]] = []
        total = 0
        for cid in ids:
            rec, path, meta = cat.get(cid), cat.file_path(cid), cat.meta(cid)
            if rec is None or path is None or meta is None:
                raise web.HTTPNotFound(text=f"clip {cid} not found")
            total += rec.bytes
            if total > MAX_BUNDLE_BYTES:
                raise web.HTTPRequestEntityTooLarge(MAX_BUNDLE_BYTES, total, text="bundle over 1 GiB; pick fewer")
            items.append((path, meta))
        return items, cat.public_key(), _node_name(self.h)


async def _bundle_ids(request: web.Request) -> list[str]:
    """The ``ids`` of a bundle request: 1..50 distinct valid clip ids, in the order given."""
    try:
        body: Any = await request.json()
    except (ValueError, UnicodeDecodeError, RecursionError):  # RecursionError: "[[[[..." nested past the limit
        raise web.HTTPBadRequest(text="body: expected JSON {\"ids\": [...]}") from None
    ids = body.get("ids") if isinstance(body, dict) else None
    if not isinstance(ids, list) or not 1 <= len(ids) <= MAX_BUNDLE_CLIPS:
        raise web.HTTPBadRequest(text=f"ids: expected a list of 1..{MAX_BUNDLE_CLIPS} clip ids")
    if not all(isinstance(i, str) and valid_id(i) for i in ids):
        raise web.HTTPBadRequest(text="ids: unexpected characters")
    return list(dict.fromkeys(ids))


def _node_name(h: Handlers) -> str:
    try:
        return str(h.view.health().get("node", ""))
    except Exception:  # the bundle does not depend on health; an empty name is fine
        return ""
