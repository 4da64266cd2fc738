"""What lies beside each clip so that the index can be rebuilt: signed metas, the chain head, quarantine.

``clips.db`` is an index, not the only copy of the evidence. Every signed clip
also has ``<id>.meta.json`` next to its file (written with fsync and an atomic
rename before the index row commits), a held clip has an empty ``<id>.held``,
and ``chain-head.json`` keeps the newest signed record even after retention has
removed its clip. A lost, emptied or corrupt ``clips.db`` is rebuilt from these
after each record's signature and file hash verify; a file that cannot be
explained is moved to ``<storage>/quarantine/``, never deleted.

Sidecar (``edgecam-clip-sidecar/1``)::

    {"format": "edgecam-clip-sidecar/1", "record": {...}, "signature": B64, "record_hash": HEX,
     "events": [event objects], "start_mono": float | null, "end_mono": float | null}
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..fsutil import write_atomic
from . import evidence

log = logging.getLogger(__name__)

SIDECAR_FORMAT = "edgecam-clip-sidecar/1"
SIDECAR_SUFFIX = ".meta.json"
HELD_SUFFIX = ".held"
HEAD_FILE = "chain-head.json"
QUARANTINE_DIR = "quarantine"


def sidecar_bytes(record: dict[str, Any], signature: str, events: list[dict[str, Any]],
                  start_mono: float | None, end_mono: float | None) -> bytes:
    doc = {"format": SIDECAR_FORMAT, "record": record, "signature": signature,
           "record_hash": evidence.record_hash(record), "events": events,
           "start_mono": start_mono, "end_mono": end_mono}
    return json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()


def write_sidecar(path: Path, data: bytes) -> None:
    write_atomic(path, data)


def write_head(clip_dir: Path, record: dict[str, Any], signature: str) -> None:
    """The newest signed record; it outlives its clip so the chain can continue after a lost index."""
    doc = {"record": record, "signature": signature}
    write_atomic(clip_dir / HEAD_FILE, json.dumps(doc, sort_keys=True, separators=(",", ":")).encode())


@dataclass(frozen=True)
class Head:
    """A signed record the chain may continue from (``ok``: its signature verifies with this node's key)."""

    record: dict[str, Any]
    signature: str
    ok: bool

    @property
    def seq(self) -> int:
        return int(self.record["seq"])

    @property
    def hash(self) -> str:
        return evidence.record_hash(self.record)


def read_head(clip_dir: Path, pub: Any) -> tuple[Head | None, str]:
    """The head file as a Head, or (None, why not): "" when there is none."""
    path = clip_dir / HEAD_FILE
    try:
        doc = json.loads(path.read_bytes())
        record, signature = doc["record"], str(doc["signature"])
        if not isinstance(record, dict) or not isinstance(record.get("seq"), int):
            raise ValueError("no record seq")
    except FileNotFoundError:
        return None, ""
    except (OSError, ValueError, KeyError, TypeError) as err:
        return None, f"{HEAD_FILE} unreadable ({err})"
    return Head(record, signature, pub is not None and evidence.signature_ok(pub, record, signature)), ""


@dataclass
class Adoptable:
    """A sidecar whose record verifies and whose clip file matches it: enough to re-index the clip."""

    clip_id: str
    record: dict[str, Any]
    signature: str
    events: list[dict[str, Any]]
    start_mono: float | None
    end_mono: float | None


def check_sidecar(clip_dir: Path, clip_id: str, pub: Any) -> tuple[Adoptable | None, str]:
    """Verify ``<id>.meta.json`` against the key(s) and ``<id>.mp4``; (None, reason) when it does not hold."""
    meta = clip_dir / f"{clip_id}{SIDECAR_SUFFIX}"
    clip = clip_dir / f"{clip_id}.mp4"
    try:
        doc = json.loads(meta.read_bytes())
        record, signature = doc["record"], str(doc["signature"])
        events = doc.get("events") or []
        if not isinstance(record, dict) or not isinstance(events, list):
            raise ValueError("malformed")
    except (OSError, ValueError, KeyError, TypeError) as err:
        return None, f"unreadable signed record ({err})"
    if record.get("clip") != clip_id or not isinstance(record.get("seq"), int):
        return None, f"signed record names clip {record.get('clip')!r}, not {clip_id!r}"
    keys = pub if isinstance(pub, list) else [pub]
    if not any(k is not None and evidence.signature_ok(k, record, signature) for k in keys):
        return None, "signed record does not verify with this node's key (nor a replaced one)"
    try:
        size = clip.stat().st_size
    except OSError:
        return None, "clip file missing"
    if size != record.get("bytes"):
        return None, f"clip file is {size} bytes, the signed record says {record.get('bytes')}"
    if _sha256_file(clip) != record.get("sha256"):
        return None, "clip file sha256 does not match the signed record"
    return Adoptable(clip_id, record, signature, [e for e in events if isinstance(e, dict)],
                     _num(doc.get("start_mono")), _num(doc.get("end_mono"))), ""


def any_seq(path: Path) -> int:
    """The seq a sidecar claims, verified or not (0 if none): a new chain must not reuse it."""
    try:
        seq = json.loads(path.read_bytes())["record"]["seq"]
    except (OSError, ValueError, KeyError, TypeError):
        return 0
    return seq if isinstance(seq, int) and seq > 0 else 0


def quarantine(storage: Path, path: Path, reason: str) -> Path:
    """Move ``path`` into ``<storage>/quarantine/`` (same filesystem: a rename), never delete it."""
    qdir = Path(storage) / QUARANTINE_DIR
    qdir.mkdir(exist_ok=True)
    dest = qdir / path.name
    n = 1
    while dest.exists() or dest.is_symlink():
        dest = qdir / f"{path.name}.{n}"
        n += 1
    os.replace(path, dest)
    log.warning("clips: quarantined %s (%s) as %s", path.name, reason, dest)
    return dest


def quarantined_count(storage: Path) -> int:
    qdir = Path(storage) / QUARANTINE_DIR
    try:
        return sum(1 for _ in qdir.iterdir())
    except OSError:
        return 0


def _sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(1 << 20):
            h.update(block)
    return h.hexdigest()


def _num(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None
