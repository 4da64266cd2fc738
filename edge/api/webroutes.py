"""The route the technician's web page adds to the plain API: an evidence bundle for a selection of clips.

``POST /api/v1/bundle`` (bearer token) with ``{"ids": [...]}`` → one evidence ZIP in the
``edge.clips.evidence.write_bundle`` layout (clips, their meta records, the node's public key, a manifest of hashes),
the same file ``edgecam clips pull --bundle`` writes. The ZIP is built in a private temp directory
(``bundle_dir``, default the system's) and unlinked before it is streamed, so nothing is left behind.
The body is JSON, which a cross-site form cannot send with the ``Authorization`` header: CSRF-safe.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

from aiohttp import web

from ..clips.evidence import write_bundle
from .handlers import Handlers, valid_id

MAX_BUNDLE_CLIPS = 50
MAX_BUNDLE_BYTES = 1 << 30


class WebRoutes:
    """The bundle handler; reuses ``handlers`` for the catalog, the thread pool and file streaming."""

    def __init__(self, handlers: Handlers, bundle_dir: Path | None = None) -> None:
        self.h = handlers
        self.bundle_dir = bundle_dir

    def routes(self) -> list[web.RouteDef]:
        return [web.post("/api/v1/bundle", self.bundle)]

    async def bundle(self, request: web.Request) -> web.StreamResponse:
        ids = await _bundle_ids(request)
        fd, size = await self.h._call(self._build, ids)
        try:
            headers = {"Content-Type": "application/zip", "Cache-Control": "no-store",
                       "Content-Disposition": f'attachment; filename="edgecam-evidence-{len(ids)}-clips.zip"'}
            resp = web.StreamResponse(headers=headers)
            resp.content_length = size
            await resp.prepare(request)
            await self.h._stream(request, resp, fd, 0, size)
            return resp
        finally:
            os.close(fd)

    def _build(self, ids: list[str]) -> tuple[int, int]:
        """Write the ZIP in a private temp dir; return an open fd to it (already unlinked) and its size."""
        cat = self.h.catalog
        with tempfile.TemporaryDirectory(prefix="edgecam-bundle-", dir=self.bundle_dir) as tmp:
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
            out = write_bundle(Path(tmp) / "bundle.zip", items, cat.public_key(), node=_node_name(self.h))
            fd = os.open(out, os.O_RDONLY | os.O_CLOEXEC)
            return fd, os.fstat(fd).st_size


async def _bundle_ids(request: web.Request) -> list[str]:
    """The ``ids`` of a bundle request: 1..50 distinct valid clip ids, in the order given."""
    try:
        body: Any = await request.json()
    except (ValueError, UnicodeDecodeError):
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
