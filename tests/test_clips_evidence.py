"""Signed clip records: a verified clip passes; a flipped byte, an edited field, a removed record fail."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sqlite3
import stat
import sys
import zipfile
from pathlib import Path

import av
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from support.assets import video_path  # noqa: E402
from support.packets import demux, event, ffprobe  # noqa: E402

from edge import cli  # noqa: E402
from edge.clips import evidence  # noqa: E402
from edge.clips.encoder import FrameEncoder  # noqa: E402
from edge.clips.evidence import NodeKey, write_bundle  # noqa: E402
from edge.clips.recorder import ClipRecorder  # noqa: E402
from edge.clips.store import ClipStore  # noqa: E402
from edge.commands.clips import verify as verify_command  # noqa: E402
from edge.types import Finished  # noqa: E402


@pytest.fixture
def chain(tmp_path: Path):
    """A store with three signed clips (c1 <- c2 <- c3)."""
    root = tmp_path / "storage"
    store = ClipStore(root, NodeKey.load_or_create(root / "keys"), node="n1")
    for i, name in enumerate(("road", "street", "highway"), start=1):
        cid = f"c{i}"
        store.writer.begin(cid, "cam", 1000.0 + i, True, None)
        shutil.copyfile(video_path(name), store.index.final_path(cid))
        store.writer.add_finished(cid, Finished(1000.0 + i, 1010.0 + i, 10.0, labels=["car"], events=[{"id": "o"}]))
    yield store, tmp_path
    store.close()


def _verify(capsys, file: Path, meta: Path | None, pubkey: str | None) -> tuple[int, list[str]]:
    args = argparse.Namespace(file=str(file), meta=str(meta) if meta else None, pubkey=pubkey)
    rc = verify_command(args)
    return rc, capsys.readouterr().out.strip().splitlines()


def _pulled(store: ClipStore, tmp: Path, cid: str) -> tuple[Path, Path]:
    clip, meta = tmp / f"{cid}.mp4", tmp / f"{cid}.meta.json"
    shutil.copyfile(store.catalog.file_path(cid), clip)
    meta.write_text(json.dumps(store.catalog.meta(cid)))
    return clip, meta


def test_key_is_private_and_shown(tmp_path: Path, capsys):
    cfg = tmp_path / "edgecam.toml"
    cfg.write_text(f'[storage]\npath = "{tmp_path / "storage"}"\n')
    assert cli.main(["key", "show", "-c", str(cfg)]) == 0
    shown = capsys.readouterr().out.strip()
    key_file = tmp_path / "storage" / "keys" / evidence.KEY_FILE
    assert stat.S_IMODE(os.stat(key_file).st_mode) == 0o600
    assert shown.startswith("ed25519:") and shown == NodeKey.load_or_create(key_file.parent).public_text()
    assert cli.main(["key", "show", "-c", str(cfg)]) == 0 and capsys.readouterr().out.strip() == shown


def test_verified_clip_passes(chain, capsys):
    store, tmp = chain
    clip, meta = _pulled(store, tmp, "c2")
    rc, lines = _verify(capsys, clip, meta, store.catalog.public_key())
    assert rc == 0 and lines[-1] == "verified"
    assert [ln.split(":")[0:2] for ln in lines[:3]] == [["hash", " ok"], ["signature", " ok"], ["chain", " ok"]]


def test_flipped_byte_fails_the_hash(chain, capsys):
    store, tmp = chain
    clip, meta = _pulled(store, tmp, "c2")
    data = bytearray(clip.read_bytes())
    data[len(data) // 2] ^= 0x01
    clip.write_bytes(bytes(data))
    rc, lines = _verify(capsys, clip, meta, store.catalog.public_key())
    assert rc == 1
    assert lines[0].startswith("hash: FAIL")
    assert lines[1].startswith("signature: ok") and lines[2].startswith("chain: ok")


def test_edited_meta_field_fails_the_signature(chain, capsys):
    store, tmp = chain
    clip, meta = _pulled(store, tmp, "c2")
    m = json.loads(meta.read_text())
    m["record"]["start_ts"] += 3600  # someone moves the clip by an hour
    meta.write_text(json.dumps(m))
    rc, lines = _verify(capsys, clip, meta, store.catalog.public_key())
    assert rc == 1 and lines[0].startswith("hash: ok") and lines[1].startswith("signature: FAIL")


def test_wrong_key_fails_the_signature(chain, capsys, tmp_path):
    store, tmp = chain
    clip, meta = _pulled(store, tmp, "c2")
    other = NodeKey.load_or_create(tmp_path / "other").public_text()
    rc, lines = _verify(capsys, clip, meta, other)
    assert rc == 1 and lines[1].startswith("signature: FAIL")


def test_removed_record_breaks_the_chain(chain, capsys):
    store, tmp = chain
    db = sqlite3.connect(store.root / "clips.db")
    with db:
        db.execute("DELETE FROM clips WHERE id = 'c2'")  # someone removes a record from the index
    db.close()
    clip, meta = _pulled(store, tmp, "c3")
    rc, lines = _verify(capsys, clip, meta, store.catalog.public_key())
    assert rc == 1 and lines[2] == "chain: FAIL: previous record seq 2 is missing (a record was removed)"
    m = json.loads(meta.read_text())  # forging the link with record 1 does not help either
    first = store.catalog.meta("c1")
    m["prev"] = {"record": first["record"], "signature": first["signature"]}
    meta.write_text(json.dumps(m))
    rc, lines = _verify(capsys, clip, meta, store.catalog.public_key())
    assert rc == 1 and lines[2].startswith("chain: FAIL: previous record seq 2 is missing")


def test_evidence_bundle(chain, capsys, tmp_path):
    store, _ = chain
    bundle = tmp_path / "evidence.zip"
    items = [(store.catalog.file_path(c), store.catalog.meta(c)) for c in ("c1", "c2", "c3")]
    write_bundle(bundle, items, store.catalog.public_key())
    names = set(zipfile.ZipFile(bundle).namelist())
    assert {"manifest.json", "pubkey.txt", "clips/c2.mp4", "clips/c2.meta.json"} <= names
    rc, lines = _verify(capsys, bundle, None, store.catalog.public_key())
    assert rc == 0 and lines[-1] == "verified"
    tampered = tmp_path / "tampered.zip"
    with zipfile.ZipFile(bundle) as src, zipfile.ZipFile(tampered, "w") as dst:
        for name in src.namelist():
            data = src.read(name)
            if name == "clips/c1.mp4":
                data = data[:-1] + bytes([data[-1] ^ 1])
            dst.writestr(name, data)
    rc, lines = _verify(capsys, tampered, None, store.catalog.public_key())
    assert rc == 1
    assert any(ln.startswith("manifest: FAIL: clips/c1.mp4") for ln in lines)
    assert any(ln.startswith("hash: FAIL: c1:") for ln in lines)


def test_usb_frames_encoded_once_record_a_clip(tmp_path: Path):
    enc = FrameEncoder(320, 180, 10.0, 500_000)
    root = tmp_path / "storage"
    store = ClipStore(root, NodeKey.load_or_create(root / "keys"))
    rec = ClipRecorder("usb", store.writer, 1.0, 1.0, 60.0, lossless=True)
    rec.start()
    rec.start_stream(enc.info())
    cid = None
    with av.open(str(video_path("street"))) as c:
        for i, frame in enumerate(c.decode(video=0)):
            if i >= 60:
                break
            for p in enc.encode(frame.to_ndarray(format="bgr24"), i / 10, i / 10, 1000.0 + i / 10):
                rec.feed(p)
            if i == 25:
                cid = rec.on_event(event("start", 2.5))
    for p in enc.flush():
        rec.feed(p)
    rec.close(30)
    errors, facts = ffprobe(store.catalog.file_path(cid))
    assert errors == "" and facts["streams"][0]["codec_name"] == "h264"
    assert float(facts["format"]["duration"]) >= 3.0
    assert demux(store.catalog.file_path(cid))[1][0].keyframe
    store.close()
