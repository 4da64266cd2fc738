"""Evidence bundles: one ZIP holding clips, their signed records, the node's public key, and a manifest of hashes.

Layout (stand-in until ``edge.clips.evidence.write_bundle`` lands; the lead reconciles the two)::

    manifest.json   {"format": "edgecam-evidence/1", "node", "created", "pubkey",
                     "files": {member name: sha256, ...},          # every other member, as in edge.clips.evidence
                     "clips": [{"id", "file", "sha256", "meta_file", "meta_sha256"}]}
    pubkey.txt      the node's Ed25519 public key as text
    clips/<id>.mp4
    clips/<id>.meta.json

``verify_bundle`` checks the structure and every hash; checking each record's
signature against the public key is ``edgecam clips verify``'s job.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path

FORMAT = "edgecam-evidence/1"


@dataclass(frozen=True)
class BundleItem:
    """One pulled clip: its id, the verified file, and its meta JSON file."""

    id: str
    file: Path
    meta_file: Path
    sha256: str


def _sha256_path(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def write_bundle(path: Path, items: list[BundleItem], pubkey: str, node: str = "") -> Path:
    """Write the ZIP atomically (temp file + rename); clips are stored, not recompressed."""
    key_bytes = (pubkey.strip() + "\n").encode()
    files = {"pubkey.txt": hashlib.sha256(key_bytes).hexdigest()}
    manifest = {"format": FORMAT, "node": node, "created": round(time.time(), 3), "pubkey": pubkey.strip(),
                "files": files, "clips": []}
    tmp = path.with_name(path.name + ".tmp")
    with zipfile.ZipFile(tmp, "w") as zf:
        for item in items:
            clip_name, meta_name = f"clips/{item.id}.mp4", f"clips/{item.id}.meta.json"
            zf.write(item.file, clip_name, compress_type=zipfile.ZIP_STORED)
            zf.write(item.meta_file, meta_name, compress_type=zipfile.ZIP_DEFLATED)
            files[clip_name], files[meta_name] = item.sha256, _sha256_path(item.meta_file)
            manifest["clips"].append({
                "id": item.id, "file": clip_name, "sha256": item.sha256,
                "meta_file": meta_name, "meta_sha256": files[meta_name],
            })
        zf.writestr("pubkey.txt", key_bytes)
        zf.writestr("manifest.json", json.dumps(manifest, indent=1))
    os.replace(tmp, path)
    return path


def _member_sha256(zf: zipfile.ZipFile, name: str) -> str:
    h = hashlib.sha256()
    with zf.open(name) as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _check_clip(zf: zipfile.ZipFile, names: set[str], entry: dict) -> list[str]:
    problems: list[str] = []
    cid = entry.get("id", "?")
    for key, sha_key in (("file", "sha256"), ("meta_file", "meta_sha256")):
        name = entry.get(key)
        if name not in names:
            problems.append(f"{cid}: {key} {name!r} missing from the bundle")
        elif sha_key in entry and _member_sha256(zf, name) != entry[sha_key]:
            problems.append(f"{cid}: {name} does not match its sha256 in the manifest")
    if entry.get("meta_file") in names:
        meta = json.loads(zf.read(entry["meta_file"]))
        record = meta.get("record", meta) if isinstance(meta, dict) else {}
        signed_sha = record.get("sha256") if isinstance(record, dict) else None
        if signed_sha is not None and signed_sha != entry.get("sha256"):
            problems.append(f"{cid}: the record's sha256 differs from the manifest's")
    return problems


def verify_bundle(path: Path) -> list[str]:
    """Problems found in the bundle at ``path``; an empty list means every hash matched."""
    try:
        with zipfile.ZipFile(path) as zf:
            names = set(zf.namelist())
            for required in ("manifest.json", "pubkey.txt"):
                if required not in names:
                    return [f"{required} missing from the bundle"]
            manifest = json.loads(zf.read("manifest.json"))
            if manifest.get("format") != FORMAT or not isinstance(manifest.get("clips"), list):
                return ["manifest.json is not an edgecam evidence manifest"]
            if zf.read("pubkey.txt").decode().strip() != str(manifest.get("pubkey", "")).strip():
                return ["pubkey.txt differs from the manifest's key"]
            problems = [f"{name}: missing or does not match its sha256 in the manifest"
                        for name, digest in sorted(dict(manifest.get("files", {})).items())
                        if name not in names or _member_sha256(zf, name) != digest]
            for entry in manifest["clips"]:
                problems += _check_clip(zf, names, entry)
            if not manifest["clips"]:
                problems.append("the bundle holds no clips")
            return problems
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError, KeyError, UnicodeDecodeError) as err:
        return [f"unreadable bundle: {err}"]
