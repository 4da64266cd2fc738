"""The clip store's reader role (``interfaces.ClipCatalog``): what the LAN API and the clip commands may do.

Read, and hold or release; nothing else. Every path it hands out is a regular file directly in the store's
folder (symlinks are never followed), and only for clips the index says are ``ok``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..fsutil import write_atomic
from ..types import ClipRecord
from . import evidence
from .index import CLIP_ID, LISTED, ClipIndex, clip_record


class StoreCatalog:
    """Listing, files, signed metadata and holds of one node's clips."""

    def __init__(self, index: ClipIndex) -> None:
        self._index = index

    def list_clips(self, since: float | None = None, until: float | None = None, label: str | None = None,
                   camera: str | None = None, limit: int = 100, after: str | None = None) -> list[ClipRecord]:
        sql = f"SELECT * FROM clips WHERE status IN {LISTED!r}"
        args: list[Any] = []
        for cond, value in (("end_ts >= ?", since), ("start_ts <= ?", until), ("camera = ?", camera),
                            ("labels LIKE ?", None if label is None else f'%{json.dumps(label)}%')):
            if value is not None:
                sql += f" AND {cond}"
                args.append(value)
        if after is not None:
            sql += " AND seq < COALESCE((SELECT seq FROM clips WHERE id = ?), -1)"
            args.append(after)
        sql += " ORDER BY seq DESC LIMIT ?"
        args.append(max(0, int(limit)))
        with self._index.lock:
            return [clip_record(r) for r in self._index.db.execute(sql, args).fetchall()]

    def get(self, clip_id: str) -> ClipRecord | None:
        row = self._index.row(clip_id)
        return clip_record(row) if row is not None and row["status"] in LISTED else None

    def file_path(self, clip_id: str) -> Path | None:
        row = self._index.row(clip_id)
        if row is None or row["status"] != "ok":
            return None
        return self._index.inside(self._index.final_path(clip_id))

    def thumbnail_path(self, clip_id: str) -> Path | None:
        row = self._index.row(clip_id)
        if row is None or row["status"] != "ok":
            return None
        return self._index.inside(self._index.thumb_path(clip_id))

    def best_path(self, best_id: str) -> Path | None:
        """The JPEG of a stored best shot (``GET /api/v1/best/<id>.jpg``), None when unknown."""
        return self._index.best.file(best_id)

    def best_by_clip(self, clip_ids: list[str]) -> dict[str, list[dict[str, Any]]]:
        """Each clip's best shots (id, label, box in the JPEG), one query for the list page."""
        return self._index.best.by_clips(clip_ids)

    def meta(self, clip_id: str) -> dict[str, Any] | None:
        ix = self._index
        row = ix.row(clip_id)
        if row is None or row["record"] is None:
            return None
        with ix.lock:
            prev = ix.db.execute("SELECT record, signature FROM clips WHERE chain_seq = ?",
                                 (row["chain_seq"] - 1,)).fetchone()
        return {
            "format": evidence.META_FORMAT,
            "record": json.loads(row["record"]),
            "signature": row["signature"],
            "record_hash": row["record_hash"],
            "pubkey": self._signed_by(json.loads(row["record"]), row["signature"]),
            "prev": {"record": json.loads(prev["record"]), "signature": prev["signature"]} if prev else None,
            "events": json.loads(row["events"]),
            "held": bool(row["held"]),
            "status": row["status"],
            "best": ix.best.for_clip(clip_id),
        }

    def hold(self, clip_id: str) -> bool:
        return self._set_held(clip_id, True)

    def release(self, clip_id: str) -> bool:
        return self._set_held(clip_id, False)

    def public_key(self) -> str:
        signer = self._index.signer
        return signer.public_text() if signer is not None else ""

    def _signed_by(self, record: dict[str, Any], signature: str) -> str:
        """The key a record verifies with: the node's, or a key `key new` replaced (older clips)."""
        signer = self._index.signer
        if signer is not None and signer.retired and not evidence.signature_ok(signer.public_key(), record, signature):
            for pub in signer.retired:
                if evidence.signature_ok(pub, record, signature):
                    return evidence.public_text(pub)
        return self.public_key()

    def _set_held(self, clip_id: str, held: bool) -> bool:
        if not CLIP_ID.match(clip_id):
            return False
        ix = self._index
        with ix.lock:
            cur = ix.db.execute("UPDATE clips SET held=? WHERE id=? AND status IN ('ok', 'recording')",
                                (int(held), clip_id))
            if cur.rowcount == 1:
                if held:
                    write_atomic(ix.held_path(clip_id), b"")
                else:
                    ix.held_path(clip_id).unlink(missing_ok=True)
        return cur.rowcount == 1
