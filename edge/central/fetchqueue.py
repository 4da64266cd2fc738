"""Fetch requests made on the desk's page: queued in ``desk.db``, worked by one thread, state shown per request.

States: ``waiting`` (queued, or the node is unreachable: retried every ``retry`` seconds until it returns),
``transferring`` (progress from the staged ``.part`` file against the signed record's size), ``verified``
(in the evidence store, sha256 known), ``failed`` (with the reason: refused by verification, unknown clip...).
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

from ..errors import UserError
from .config import CentralConfig
from .evidence import EvidenceStore
from .fetch import _retryable, evidence_root, fetch_pull

log = logging.getLogger(__name__)
ACTIVE = ("waiting", "transferring")


class FetchQueue:
    def __init__(self, path: Path) -> None:
        self.db = sqlite3.connect(str(path), timeout=30, isolation_level=None, check_same_thread=False)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("""CREATE TABLE IF NOT EXISTS fetches (id INTEGER PRIMARY KEY AUTOINCREMENT,
            node TEXT NOT NULL, clip TEXT NOT NULL, via TEXT NOT NULL, state TEXT NOT NULL, reason TEXT NOT NULL,
            sha256 TEXT, requested_by TEXT NOT NULL, address TEXT NOT NULL, created_ts REAL NOT NULL,
            updated_ts REAL NOT NULL, tried_ts REAL NOT NULL DEFAULT 0, slot TEXT)""")
        self.lock = threading.Lock()

    def close(self) -> None:
        self.db.close()

    def add(self, node: str, clip: str, via: str, who: str, address: str) -> int:
        """A new request, or the id of the one already active for this clip."""
        with self.lock:
            row = self.db.execute("SELECT id FROM fetches WHERE node = ? AND clip = ? AND state IN (?, ?)",
                                  (node, clip, *ACTIVE)).fetchone()
            if row:
                return int(row[0])
            now = time.time()
            cur = self.db.execute("INSERT INTO fetches (node, clip, via, state, reason, requested_by, address,"
                                  " created_ts, updated_ts) VALUES (?,?,?, 'waiting', '', ?,?,?,?)",
                                  (node, clip, via, who, address, now, now))
            assert cur.lastrowid is not None  # an INSERT always sets it
            return int(cur.lastrowid)

    def set(self, fid: int, state: str, reason: str = "", sha256: str | None = None) -> None:
        with self.lock:
            self.db.execute("UPDATE fetches SET state = ?, reason = ?, sha256 = ?, updated_ts = ? WHERE id = ?",
                            (state, reason[:500], sha256, time.time(), fid))

    def set_slot(self, fid: int, slot: str, via: str) -> None:
        with self.lock:
            self.db.execute("UPDATE fetches SET slot = ?, via = ? WHERE id = ?", (slot, via, fid))

    def due(self, retry: float) -> list[dict[str, Any]]:
        """Requests to (re)try now: waiting, not yet handed to a node by push, last tried ``retry`` s ago."""
        with self.lock:
            rows = self.db.execute("SELECT id, node, clip, requested_by, address, via FROM fetches WHERE state ="
                                   " 'waiting' AND slot IS NULL AND tried_ts <= ? ORDER BY id",
                                   (time.time() - retry,)).fetchall()
            return [dict(zip(("id", "node", "clip", "who", "address", "via"), r, strict=True)) for r in rows]

    def pushed(self) -> list[dict[str, Any]]:
        """Push requests the node has not completed yet (their state follows the upload slot)."""
        with self.lock:
            rows = self.db.execute("SELECT id, slot, state FROM fetches WHERE slot IS NOT NULL AND state IN (?, ?)",
                                   ACTIVE).fetchall()
            return [dict(zip(("id", "slot", "state"), r, strict=True)) for r in rows]

    def tried(self, fid: int) -> None:
        with self.lock:
            self.db.execute("UPDATE fetches SET tried_ts = ? WHERE id = ?", (time.time(), fid))

    def requests(self, root: Path, limit: int = 100) -> list[dict[str, Any]]:
        with self.lock:
            cur = self.db.execute("SELECT id, node, clip, via, state, reason, sha256, requested_by, created_ts,"
                                  " updated_ts, slot FROM fetches ORDER BY id DESC LIMIT ?", (limit,))
            names = [d[0] for d in cur.description]
            rows = [dict(zip(names, r, strict=True)) for r in cur.fetchall()]
        for r in rows:
            r["progress"] = _progress(root, r) if r["state"] == "transferring" else None
        return rows


def _progress(root: Path, r: dict[str, Any]) -> dict[str, int] | None:
    if r.get("slot"):  # push: central's staged upload
        base = root / "incoming" / "push" / r["slot"]
        meta, part = base.with_suffix(".meta.json"), base.with_suffix(".part")
    else:
        base = root / "incoming" / r["node"] / r["clip"]
        meta, part = base.with_name(f"{r['clip']}.meta.json"), base.with_name(f"{r['clip']}.mp4.part")
    try:
        total = int(json.loads(meta.read_text())["record"]["bytes"])
        done = part.stat().st_size
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return {"done": done, "total": total}


class FetchWorker:
    """One thread working the queue: fetches run one at a time (a station's uplink, not a CDN)."""

    def __init__(self, cfg: CentralConfig, queue: FetchQueue, retry: float = 10.0, poll: float = 0.5) -> None:
        self.cfg, self.queue, self.retry, self.poll = cfg, queue, retry, poll
        self.wake = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="desk-fetch", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self.wake.set()
        self._thread.join(30)

    def _run(self) -> None:
        while not self._stop.is_set():
            for req in self.queue.due(self.retry):
                if self._stop.is_set():
                    return
                self._one(req)
            for req in self.queue.pushed():
                try:
                    self._follow(req)
                except Exception as err:  # the desk.db was busy, say: the next poll tries again
                    log.warning("desk: following push request %s: %s: %s", req["slot"], type(err).__name__, err)
            self.wake.wait(self.poll)
            self.wake.clear()

    @property
    def root(self) -> Path:
        return evidence_root(self.cfg)

    def _node(self, name: str) -> dict[str, Any]:
        from .store import Store

        store = Store(self.cfg.database.url)
        try:
            node = store.node(name)
        finally:
            store.close()
        if node is None:
            raise UserError(f"node {name!r} is not registered")
        return node

    def _one(self, req: dict[str, Any]) -> None:
        """Pull when central can reach the node (it has an API URL), else hand it a signed push request."""
        self.queue.tried(req["id"])
        try:
            node = self._node(req["node"])
            if req["via"] == "push" or (req["via"] == "auto" and not node.get("api_url")):
                self._push(req, node)
                return
            self.queue.set(req["id"], "transferring")
            stored, _new = fetch_pull(self.cfg, node, req["clip"], 0.0, req["who"], req["address"])
            self.queue.set(req["id"], "verified", "hash, signature and chain link verified", stored.sha256)
        except UserError as err:
            if _retryable(err):
                self.queue.set(req["id"], "waiting", f"node not reachable, retrying: {err}")
            else:
                self.queue.set(req["id"], "failed", str(err))
        except Exception as err:  # a fault in one request must not stop the queue
            log.error("desk: fetch %s/%s failed: %s: %s", req["node"], req["clip"], type(err).__name__, err)
            self.queue.set(req["id"], "failed", f"internal error: {type(err).__name__}")

    def _push(self, req: dict[str, Any], node: dict[str, Any]) -> None:
        from .push import publish_signed_request

        have = EvidenceStore.at(self.root).get(node["node"], req["clip"])
        if have is not None:
            self.queue.set(req["id"], "verified", "already in the evidence store", have.sha256)
            return
        rid = publish_signed_request(self.cfg, node["node"], req["clip"], req["who"], req["address"])
        self.queue.set_slot(req["id"], rid, "push")
        self.queue.set(req["id"], "waiting", "request sent by push; the node uploads when it is online")

    def _follow(self, req: dict[str, Any]) -> None:
        from .push import UploadSlots

        slots = UploadSlots(self.root)
        try:
            slot = slots.by_id(req["slot"]) or {}
        finally:
            slots.close()
        if slot.get("state") == "verified":
            self.queue.set(req["id"], "verified", "hash, signature and chain link verified (push)", slot.get("sha256"))
        elif slot.get("state") == "failed":
            self.queue.set(req["id"], "failed", str(slot.get("reason")))
        elif slot.get("expires", 0) < time.time():
            self.queue.set(req["id"], "failed", "the node did not upload before the request expired")
        elif req["state"] == "waiting" and (self.root / "incoming" / "push" / f"{req['slot']}.part").exists():
            self.queue.set(req["id"], "transferring", "the node is uploading")
