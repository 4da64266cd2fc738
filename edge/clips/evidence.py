"""Evidence integrity: the node's Ed25519 key, signed clip records, a hash chain, offline checks.

Record (what is signed): a JSON object with the clip's sha256 and the hash of
the previous record, encoded canonically as sorted-key compact UTF-8 JSON::

    {"v": 1, "seq": N, "node": ..., "clip": ID, "camera": ..., "start_ts": ..., "end_ts": ...,
     "time_ok": true, "duration": ..., "bytes": ..., "sha256": HEX, "labels": [...],
     "events": [event ids], "continues": ID | null, "prev_hash": HEX | null}

``record_hash = sha256(canonical(record))``; ``signature = Ed25519(canonical(record))``
(base64). ``seq`` counts records on this node from 1; record N's ``prev_hash`` is
record N-1's ``record_hash``, so a removed or altered record breaks the link.

A chain that cannot continue normally (the clip index was lost and the head
is unknown, or the key was replaced) never restarts silently: the next record
carries ``"break": {"reason": TEXT, "prev_seq": N | null, "prev_hash": HEX | null}``
inside what is signed, its ``seq`` stays above every seq known to have been
used, and ``clips verify`` reports the break as such (``chain: ok: BREAK ...``),
not as a forgery.

META.json (``ClipStore.meta(id)``, the LAN API's ``/clips/<id>/meta``)::

    {"format": "edgecam-clip-meta/1", "record": {...}, "signature": B64, "record_hash": HEX,
     "pubkey": "ed25519:B64", "prev": {"record": {...}, "signature": B64} | null,
     "events": [event objects], "held": bool, "status": "ok" | "lost" | "expired",
     "best": [{id, object, camera, clip, ts, label, box, sha256, bytes, signed, record, signature}]}

A record may carry ``"best": [{"id", "sha256"}]``: the clip's best shots that arrived while it was open.
Every best shot also has its own signed record (``edge.clips.bestshots``, in the meta's ``best``), the only
one for a shot that came after the clip was signed; ``check_best`` checks a JPEG against both.

``prev`` carries record N-1 so one clip's link can be checked alone.

Evidence bundle (ZIP, ``write_bundle``; the one writer behind ``clips pull --bundle`` and the
API's ``POST /api/v1/bundle``; ``check_bundle`` is the one checker behind ``clips verify``)::

    README.txt           the cover sheet (node, cameras, local and UTC times, exporter, how to check)
    manifest.json        {"format": "edgecam-evidence/1", "node": NAME, "created": ISO-8601 UTC,
                          "created_ts": UNIX, "exported_by": NAME, "pubkey": "ed25519:B64",
                          "files": {"clips/ID.mp4": SHA256, "clips/ID.meta.json": SHA256, "pubkey.txt": SHA256, ...},
                          "clips": [{"id", "file", "sha256", "meta_file", "meta_sha256"}, ...]}
    pubkey.txt           the node's public key, one line
    SHA256SUMS           for ``sha256sum -c``
    clips/ID.mp4         the clip as stored (streamed in, never held in memory)
    clips/ID.meta.json   its META.json
    best/ID.jpg          its best shots that a signature covers (``check_best``)

(``edge.clips.bundle`` writes it in one forward pass to a file or straight to an HTTP response.)
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from ..errors import UserError
from .bundle import BEST_NAME, BUNDLE_FORMAT, best_ids, stream_bundle

META_FORMAT = "edgecam-clip-meta/1"
KEY_FILE = "node.ed25519"
PUB_FILE = "node.ed25519.pub"  # the public half, written with the key: catches a 32-byte key that was overwritten
PREFIX = "ed25519:"
REKEY = "edgecam key new --force -c CONFIG"


class KeyFileError(UserError):
    """The node key exists but is unusable: start-up ends with this one line, never a new key over it."""


def canonical(obj: Any) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def record_hash(record: dict[str, Any]) -> str:
    return hashlib.sha256(canonical(record)).hexdigest()


class NodeKey:
    """The node's signing key: created once, kept in ``keys/`` with mode 0600."""

    def __init__(self, private: Ed25519PrivateKey, retired: list[Ed25519PublicKey] | None = None) -> None:
        self._private = private
        self.retired = list(retired or [])  # public halves of keys replaced by `key new`: old records verify

    @classmethod
    def load_or_create(cls, key_dir: Path) -> NodeKey:
        """Load the key; create it only where there is none (a corrupt key is KeyFileError, never replaced)."""
        path = Path(key_dir) / KEY_FILE
        if not path.exists():
            cls.create(path)
        try:
            raw = path.read_bytes()
        except OSError as err:
            raise KeyFileError(f"node key {path}: cannot read it ({err.strerror}); {_restore_hint()}") from None
        if len(raw) != 32:
            raise KeyFileError(f"node key {path} is corrupt ({len(raw)} bytes, an Ed25519 key has 32);"
                               f" {_restore_hint()}")
        key = cls(Ed25519PrivateKey.from_private_bytes(raw))
        pub = path.with_name(PUB_FILE)
        try:
            expected = pub.read_text().strip()
        except FileNotFoundError:
            expected = ""
            try:
                _write_file(pub, (key.public_text() + "\n").encode(), 0o644)  # keys made before the .pub existed
            except OSError:
                pass  # a reader without write access (key show); the daemon writes it
        except (OSError, UnicodeDecodeError):
            expected = "unreadable"
        if expected and expected != key.public_text():
            raise KeyFileError(f"node key {path} does not match {pub.name} (the key was overwritten or the"
                               f" public half is damaged); {_restore_hint()}")
        key.retired = retired_keys(path.parent)
        return key

    @classmethod
    def create(cls, path: Path) -> NodeKey:
        """A new key at ``path`` (mode 0600, fsync, atomic rename) and its public half beside it."""
        path.parent.mkdir(parents=True, exist_ok=True)
        os.chmod(path.parent, 0o700)
        key = cls(Ed25519PrivateKey.generate())
        _write_file(path, key._private.private_bytes_raw(), 0o600)
        _write_file(path.with_name(PUB_FILE), (key.public_text() + "\n").encode(), 0o644)
        return key

    def public_key(self) -> Ed25519PublicKey:
        return self._private.public_key()

    def public_text(self) -> str:
        return PREFIX + base64.b64encode(self._private.public_key().public_bytes_raw()).decode()

    def sign(self, record: dict[str, Any]) -> str:
        return base64.b64encode(self._private.sign(canonical(record))).decode()

    def sign_bytes(self, data: bytes) -> bytes:
        """Raw Ed25519 signature of ``data`` (the MQTT messages' signatures, ``edge.signing``)."""
        return self._private.sign(data)


def retired_keys(key_dir: Path) -> list[Ed25519PublicKey]:
    """The public halves ``key new`` kept (``node.ed25519.pub.replaced-*``), newest first; unreadable ones skipped."""
    out = []
    for p in sorted(Path(key_dir).glob(f"{PUB_FILE}.replaced-*"), reverse=True):
        try:
            out.append(parse_public_key(p.read_text()))
        except (OSError, ValueError, UnicodeDecodeError):
            continue
    return out


def public_text(pub: Ed25519PublicKey) -> str:
    return PREFIX + base64.b64encode(pub.public_bytes_raw()).decode()


def _write_file(path: Path, data: bytes, mode: int) -> None:
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def _restore_hint() -> str:
    return (f"restore keys/{KEY_FILE} from your backup, or make a new key with `{REKEY}` (the old file is kept;"
            " the next clip's record notes the chain break)")


def parse_public_key(text: str) -> Ed25519PublicKey:
    """``ed25519:<base64>`` (or bare base64) into a key; ValueError if it is not one."""
    text = text.strip()
    if text.startswith(PREFIX):
        text = text[len(PREFIX):]
    raw = base64.b64decode(text, validate=True)
    return Ed25519PublicKey.from_public_bytes(raw)


def signature_ok(pub: Ed25519PublicKey, record: dict[str, Any], signature: str) -> bool:
    try:
        pub.verify(base64.b64decode(signature), canonical(record))
        return True
    except (InvalidSignature, ValueError, TypeError):
        return False


@dataclass(frozen=True)
class Check:
    name: str  # "hash" | "signature" | "chain" | "manifest" | "key"
    ok: bool
    detail: str

    def line(self) -> str:
        return f"{self.name}: {'ok' if self.ok else 'FAIL'}: {self.detail}"


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def check_clip(clip: bytes, meta: dict[str, Any], pub: Ed25519PublicKey) -> list[Check]:
    """Hash, signature and chain link of one clip against its META.json."""
    record = meta.get("record") or {}
    checks = []
    digest = sha256_bytes(clip)
    if digest == record.get("sha256"):
        checks.append(Check("hash", True, f"file sha256 {digest} matches the record"))
    else:
        checks.append(Check("hash", False, f"file sha256 {digest} != record sha256 {record.get('sha256')}"))
    if signature_ok(pub, record, str(meta.get("signature", ""))):
        checks.append(Check("signature", True, f"record seq {record.get('seq')} signed by this key"))
    else:
        checks.append(Check("signature", False, "record does not verify with this key (edited record or wrong key)"))
    checks.append(check_link(record, meta.get("prev"), pub))
    return checks


def check_link(record: dict[str, Any], prev: dict[str, Any] | None, pub: Ed25519PublicKey) -> Check:
    seq = record.get("seq")
    if not isinstance(seq, int) or seq < 1:
        return Check("chain", False, f"record has no valid seq ({seq!r})")
    brk = record.get("break")
    if isinstance(brk, dict):
        return Check("chain", True, break_text(seq, brk))
    if seq == 1:
        ok = record.get("prev_hash") is None
        return Check("chain", ok, "first record of the chain" if ok else "seq 1 must have no prev_hash")
    if not prev or not isinstance(prev.get("record"), dict):
        return Check("chain", False, f"previous record seq {seq - 1} is missing (a record was removed)")
    prec = prev["record"]
    if prec.get("seq") != seq - 1:
        return Check("chain", False, f"previous record seq {seq - 1} is missing (got seq {prec.get('seq')})")
    if not signature_ok(pub, prec, str(prev.get("signature", ""))):
        return Check("chain", False, f"previous record seq {seq - 1} does not verify with this key")
    if record_hash(prec) != record.get("prev_hash"):
        return Check("chain", False, f"prev_hash does not match record seq {seq - 1} (altered or replaced)")
    return Check("chain", True, f"linked to record seq {seq - 1}")


def break_text(seq: int, brk: dict[str, Any]) -> str:
    """How a signed chain break reads in ``clips verify`` (the signature check covers the break itself)."""
    prev_seq, prev_hash = brk.get("prev_seq"), brk.get("prev_hash")
    before = f"seq {prev_seq}, hash {prev_hash}" if prev_seq is not None else "unknown"
    return f"BREAK recorded by the node before seq {seq}: {brk.get('reason')} (previous record: {before})"


def write_bundle(path: Path, items: list[tuple[Path, dict[str, Any]]], pubkey: str, node: str = "",
                 exported_by: str = "", best: Callable[[str], Path | None] | None = None) -> Path:
    """Write an evidence ZIP (layout in ``edge.clips.bundle``) from (clip file, META.json) pairs; atomic rename."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    try:
        with tmp.open("wb") as fh:
            stream_bundle(fh, items, pubkey, node, exported_by, best=best)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o644)  # meant to be copied and handed over, like a pulled clip
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def check_bundle(path: Path, pubkey: str | None) -> list[Check]:
    """Manifest and key, every file against the manifest, every clip's checks, and the chain across the clips."""
    with zipfile.ZipFile(path) as zf:
        names = set(zf.namelist())
        manifest = json.loads(zf.read("manifest.json"))
        bundled_key = zf.read("pubkey.txt").decode().strip() if "pubkey.txt" in names else manifest.get("pubkey")
        checks = _key_checks(manifest, bundled_key, pubkey)
        pub = parse_public_key(pubkey or bundled_key)
        checks += _manifest_checks(zf, names, manifest)
        metas = sorted(n for n in names if n.startswith("clips/") and n.endswith(".meta.json"))
        if not metas:
            checks.append(Check("manifest", False, "the bundle holds no clips"))
        records = []
        claimed: set[str] = set()
        for meta_name in metas:
            meta = json.loads(zf.read(meta_name))
            cid = meta_name[len("clips/"):-len(".meta.json")]
            clip_name = f"clips/{cid}.mp4"
            if clip_name not in names:
                checks.append(Check("hash", False, f"{clip_name} missing from the bundle"))
                continue
            checks += [Check(c.name, c.ok, f"{cid}: {c.detail}") for c in check_clip(zf.read(clip_name), meta, pub)]
            checks += check_best(cid, meta, pub, _zip_reader(zf, names))
            claimed |= {f"best/{i}.jpg" for i in best_ids(meta)}
            records.append(meta.get("record") or {})
        checks += _bundle_chain(records)
        for name in sorted(n for n in names if n.startswith("best/") and n not in claimed):
            checks.append(Check("best", False, f"{name} belongs to no clip's signed record in this bundle"))
    if not any(c.name == "manifest" for c in checks):
        checks.append(Check("manifest", True, "every file matches manifest.json"))
    return checks


def verify_bundle(path: Path, pubkey: str | None = None) -> list[str]:
    """``check_bundle``'s failures as lines (an unreadable ZIP is one); [] means the bundle verified."""
    try:
        return [c.line() for c in check_bundle(path, pubkey) if not c.ok]
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError, KeyError, UnicodeDecodeError) as err:
        return [f"unreadable bundle: {err}"]


def check_best(cid: str, meta: dict[str, Any], pub: Ed25519PublicKey, read: Callable[[str], bytes | None],
               where: str = "in this bundle") -> list[Check]:
    """Each best shot of the clip against what signs it: the clip's record (``record.best: [{id, sha256}]``)
    and its own signed record (``meta.best[].record``, the only one for a shot that arrived after the clip was
    signed). Wrong bytes, a record that does not verify or names another shot or clip, or no signature at all
    fail; a shot ``read`` does not have (None) is said and not checked."""
    record = meta.get("record") or {}
    in_clip = {str(b.get("id")): b.get("sha256") for b in record.get("best", []) if isinstance(b, dict)}
    own = {str(b.get("id")): b for b in meta.get("best") or [] if isinstance(b, dict)}
    out = []
    for best_id in sorted(set(in_clip) | set(own)):
        data = read(best_id) if BEST_NAME.match(best_id) else None
        if data is None:
            out.append(Check("best", True, f"{cid}: best shot {best_id} not {where}"))
            continue
        digest, problems, covered = sha256_bytes(data), [], []
        if best_id in in_clip:
            if in_clip[best_id] == digest:
                covered.append("the clip's signed record")
            else:
                problems.append("does not match the sha256 in the signed record")
        entry = own.get(best_id) or {}
        rec = entry.get("record")
        if isinstance(rec, dict):
            if not signature_ok(pub, rec, str(entry.get("signature", ""))):
                problems.append("its own record does not verify with this key")
            elif rec.get("best") != best_id or rec.get("clip") != record.get("clip"):
                problems.append(f"its own signed record is for best shot {rec.get('best')!r} of clip"
                                f" {rec.get('clip')!r}")
            elif rec.get("sha256") != digest:
                problems.append("does not match the sha256 in its own signed record")
            else:
                covered.append("its own signed record")
        if problems:
            out.append(Check("best", False, f"{cid}: best/{best_id}.jpg {'; '.join(problems)}"))
        elif not covered:
            out.append(Check("best", False, f"{cid}: best/{best_id}.jpg is in no signed record"))
        else:
            out.append(Check("best", True, f"{cid}: best/{best_id}.jpg matches {' and '.join(covered)}"))
    return out


def _zip_reader(zf: zipfile.ZipFile, names: set[str]) -> Callable[[str], bytes | None]:
    return lambda best_id: zf.read(f"best/{best_id}.jpg") if f"best/{best_id}.jpg" in names else None


def _key_checks(manifest: dict[str, Any], bundled_key: str | None, pubkey: str | None) -> list[Check]:
    if manifest.get("pubkey") and bundled_key and _raw(str(manifest["pubkey"])) != _raw(bundled_key):
        return [Check("key", False, "pubkey.txt differs from the manifest's key")]
    if pubkey and bundled_key and _raw(pubkey) != _raw(bundled_key):
        return [Check("key", False, "bundle's pubkey.txt is not the given key")]
    if not pubkey:
        return [Check("key", True, "using the bundle's own pubkey.txt (pass --pubkey to check origin)")]
    return []


def _manifest_checks(zf: zipfile.ZipFile, names: set[str], manifest: dict[str, Any]) -> list[Check]:
    """The manifest's format, and every file it lists against its sha256 (members are streamed)."""
    if manifest.get("format") != BUNDLE_FORMAT:
        return [Check("manifest", False, f"manifest format {manifest.get('format')!r} is not {BUNDLE_FORMAT}")]
    out = []
    for name, digest in sorted(dict(manifest.get("files", {})).items()):
        if name not in names:
            out.append(Check("manifest", False, f"{name} listed but missing"))
        elif _member_sha256(zf, name) != digest:
            out.append(Check("manifest", False, f"{name} does not match its sha256 in the manifest"))
    return out


def _member_sha256(zf: zipfile.ZipFile, name: str) -> str:
    h = hashlib.sha256()
    with zf.open(name) as f:
        while block := f.read(1 << 20):
            h.update(block)
    return h.hexdigest()


def _raw(text: str) -> bytes:
    return parse_public_key(text).public_bytes_raw()


def _bundle_chain(records: list[dict[str, Any]]) -> list[Check]:
    """Consecutive records present in the bundle must link to each other."""
    by_seq: dict[int, dict[str, Any]] = {}
    out = []
    for r in records:
        seq = r.get("seq")
        if isinstance(seq, int):
            if seq in by_seq and record_hash(by_seq[seq]) != record_hash(r):
                out.append(Check("chain", False, f"two different records carry seq {seq}"))
            by_seq[seq] = r
    for seq in sorted(by_seq):
        rec = by_seq[seq]
        brk = rec.get("break")
        if isinstance(brk, dict) and brk.get("prev_hash") is None:
            continue  # the node said it did not know the previous record: reported by check_link
        if seq - 1 in by_seq and record_hash(by_seq[seq - 1]) != rec.get("prev_hash"):
            out.append(Check("chain", False, f"record seq {seq} does not link to bundled record seq {seq - 1}"))
    return out


