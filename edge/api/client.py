"""The technician's side: ``edgecam clips list`` and ``edgecam clips pull`` (stdlib only, light on a laptop).

A pull downloads into ``<id>.mp4.part`` and resumes it with ``Range`` +
``If-Range`` (the clip's ETag, kept in ``<id>.mp4.part.etag``), so a flaky
Wi-Fi link costs only what was not yet received. The file gets its final
name only after its sha256 matched the node's.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import ssl
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from datetime import datetime, timezone
from http.client import HTTPException, HTTPResponse
from pathlib import Path
from typing import Any

from ..errors import UserError
from ..fsutil import write_atomic

_ID = re.compile(r"^[A-Za-z0-9_.-]{1,128}$")
CHUNK = 256 * 1024
ATTEMPTS = 3


class NodeClient:
    """Authenticated GETs against one node; every failure becomes a one-line UserError."""

    def __init__(self, base_url: str, token: str, cafile: str | None = None, timeout: float = 30.0) -> None:
        parsed = urllib.parse.urlsplit(base_url)
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            raise UserError(f"--node must be http://HOST:PORT or https://HOST:PORT, not {base_url!r}")
        self.base = base_url.rstrip("/")
        self.token = token
        self.timeout = timeout
        self.ssl = ssl.create_default_context(cafile=cafile) if parsed.scheme == "https" else None

    def open(self, path: str, headers: dict[str, str] | None = None, method: str = "GET") -> HTTPResponse:
        req = urllib.request.Request(self.base + path, method=method, headers={
            "Authorization": f"Bearer {self.token}", "User-Agent": "edgecam-cli", **(headers or {})})
        try:
            return urllib.request.urlopen(req, timeout=self.timeout, context=self.ssl)
        except urllib.error.HTTPError as err:
            if err.code == 416:
                return err  # type: ignore[return-value]  # the caller decides what a 416 means
            raise UserError(self._http_error(err, path)) from None
        except (urllib.error.URLError, OSError, HTTPException) as err:
            reason = getattr(err, "reason", err)
            raise UserError(f"cannot reach node {self.base}: {reason}") from None

    @staticmethod
    def _http_error(err: urllib.error.HTTPError, path: str) -> str:
        if err.code == 401:
            return "token rejected by node"
        if err.code == 429:
            return f"node refuses this address for {err.headers.get('Retry-After', 'a few')} s after bad tokens"
        if err.code == 404:
            return f"not found on node: {path.split('?')[0]}"
        try:
            detail = json.loads(err.read(4096)).get("error", "")
        except (ValueError, OSError, AttributeError):
            detail = ""
        return f"node answered {err.code} for {path.split('?')[0]}" + (f": {detail}" if detail else "")

    def json(self, path: str) -> Any:
        with self.open(path) as resp:
            try:
                return json.loads(resp.read())
            except (ValueError, OSError, HTTPException) as err:
                raise UserError(f"bad answer from node for {path}: {err}") from None

    def text(self, path: str) -> str:
        with self.open(path) as resp:
            return resp.read().decode("utf-8", "replace")


def parse_time(value: str | None) -> float | None:
    """UNIX seconds or ISO 8601 (naive = UTC)."""
    if not value:
        return None
    try:
        return float(value)
    except ValueError:
        pass
    try:
        dt = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise UserError(f"bad time {value!r}: use ISO 8601 (2026-11-29T13:00) or UNIX seconds") from None
    return (dt if dt.tzinfo else dt.replace(tzinfo=timezone.utc)).timestamp()


def fetch_list(client: NodeClient, filters: dict[str, Any], page: int = 500, max_pages: int = 100) -> list[dict]:
    """All matching clips, newest first, following ``after`` paging."""
    out: list[dict] = []
    after = None
    for _ in range(max_pages):
        query = {k: v for k, v in {**filters, "limit": page, "after": after}.items() if v is not None}
        rows = client.json("/api/v1/clips?" + urllib.parse.urlencode(query))
        out += rows
        if len(rows) < page:
            break
        after = rows[-1]["id"]
    return out


def _utc(ts: float) -> str:
    return datetime.fromtimestamp(ts, timezone.utc).strftime("%Y-%m-%d %H:%M:%S")


def _local(ts: float) -> str:
    return datetime.fromtimestamp(ts, timezone.utc).astimezone().strftime("%Y-%m-%d %H:%M:%S")


def format_table(rows: list[dict]) -> str:
    """Local start with the zone named in the header, and UTC beside it (the one time rule, docs/interface.md)."""
    from ..timefmt import zone_label

    head = ("ID", "CAMERA", f"START ({zone_label()})", "START (UTC)", "SECS", "LABELS", "MB", "HELD")
    lines = [head] + [
        (r["id"], r["camera"], _local(r["start_ts"]), _utc(r["start_ts"]), f"{r['end_ts'] - r['start_ts']:.1f}",
         ",".join(r["labels"]), f"{r['bytes'] / 1e6:.2f}", "yes" if r.get("held") else "")
        for r in rows
    ]
    widths = [max(len(str(row[i])) for row in lines) for i in range(len(head))]
    return "\n".join("  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in lines)


class Progress:
    """A one-line progress bar on stderr, drawn only when stderr is a terminal."""

    def __init__(self, name: str, total: int, done: int) -> None:
        self.name, self.total, self.done = name, total, done
        self.enabled = sys.stderr.isatty()
        self.t0, self.start_done, self.last = time.monotonic(), done, 0.0

    def add(self, n: int) -> None:
        self.done += n
        now = time.monotonic()
        if self.enabled and (now - self.last > 0.1 or self.done >= self.total):
            self.last = now
            frac = self.done / self.total if self.total else 1.0
            rate = (self.done - self.start_done) / max(1e-3, now - self.t0) / 1e6
            bar = "#" * int(frac * 30)
            sys.stderr.write(f"\r{self.name} [{bar:<30}] {frac:4.0%} {self.done / 1e6:.1f}/{self.total / 1e6:.1f} MB"
                             f" {rate:.1f} MB/s")
            sys.stderr.flush()

    def close(self) -> None:
        if self.enabled:
            sys.stderr.write("\n")


def _sha256_file(path: Path, h: Any = None) -> Any:
    h = h or hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h


class _Interrupted(Exception):
    """The transfer stopped early; the partial file stays for the next attempt."""


def _clip_paths(out: Path, cid: str) -> tuple[Path, Path, Path]:
    return out / f"{cid}.mp4", out / f"{cid}.mp4.part", out / f"{cid}.mp4.part.etag"


def _finish(cid: str, part: Path, final: Path, tag: Path, sha: str, etag: str | None) -> str:
    expected = (etag or "").strip('"')
    if sha != expected:
        part.unlink(missing_ok=True)
        tag.unlink(missing_ok=True)
        raise UserError(f"{cid}: sha256 mismatch (got {sha[:16]}…, node says {expected[:16] or '?'}…); partial removed")
    os.replace(part, final)
    tag.unlink(missing_ok=True)
    return sha


def _download_once(client: NodeClient, cid: str, out: Path) -> str:
    final, part, tag = _clip_paths(out, cid)
    offset = part.stat().st_size if part.exists() else 0
    etag = tag.read_text().strip() if tag.exists() else None
    headers = {"Range": f"bytes={offset}-", "If-Range": etag} if offset and etag else {}
    with client.open(f"/api/v1/clips/{cid}.mp4", headers) as resp:
        new_etag = resp.headers.get("ETag")
        if resp.status == 416:  # the part already holds the whole clip (or is bogus)
            if headers and resp.headers.get("Content-Range", "") == f"bytes */{offset}":
                return _finish(cid, part, final, tag, _sha256_file(part).hexdigest(), new_etag)
            part.unlink(missing_ok=True)
            raise _Interrupted("partial file did not fit the clip; starting over")
        resumed = resp.status == 206 and resp.headers.get("Content-Range", "").startswith(f"bytes {offset}-")
        if not resumed:
            offset = 0
        if new_etag and new_etag != etag:
            tag.write_text(new_etag)
        length = int(resp.headers.get("Content-Length", "0"))
        h = _sha256_file(part) if resumed else hashlib.sha256()
        progress = Progress(cid, offset + length, offset)
        received = 0
        with part.open("ab" if resumed else "wb") as f:
            try:
                while block := resp.read(CHUNK):
                    f.write(block)
                    h.update(block)
                    received += len(block)
                    progress.add(len(block))
            except (OSError, HTTPException):
                pass
            finally:
                f.flush()
                os.fsync(f.fileno())
                progress.close()
        if received < length:
            raise _Interrupted(f"connection lost after {offset + received} of {offset + length} bytes")
    return _finish(cid, part, final, tag, h.hexdigest(), new_etag)


def download(client: NodeClient, cid: str, out: Path, attempts: int = ATTEMPTS, pause: float = 1.0) -> str:
    """Download (or resume) one clip into ``out``; returns its verified sha256."""
    final, _part, _tag = _clip_paths(out, cid)
    if final.exists():
        with client.open(f"/api/v1/clips/{cid}.mp4", method="HEAD") as resp:
            have = _sha256_file(final).hexdigest()  # hash a large clip once, not twice
            if (resp.headers.get("ETag") or "").strip('"') == have:
                return have
    last: Exception | None = None
    for attempt in range(attempts):
        try:
            return _download_once(client, cid, out)
        except _Interrupted as err:
            last = err
            if attempt + 1 < attempts:
                time.sleep(pause)
    raise UserError(f"{cid}: {last}; partial file kept, run the same command again to resume")


@dataclass(frozen=True)
class Pulled:
    """One pulled clip: its id, the verified file, its META.json (also saved beside it) and its sha256."""

    id: str
    file: Path
    meta: dict[str, Any]
    sha256: str


def pull_clip(client: NodeClient, cid: str, out: Path) -> Pulled:
    """Meta first (fails fast on an unknown id), then the clip; both land beside each other."""
    if not _ID.match(cid) or ".." in cid:
        raise UserError(f"bad clip id {cid!r}")
    meta = client.json(f"/api/v1/clips/{cid}/meta")
    write_atomic(out / f"{cid}.meta.json", json.dumps(meta, indent=1, sort_keys=True).encode(), mode=0o644)
    sha = download(client, cid, out)
    return Pulled(cid, out / f"{cid}.mp4", meta, sha)


