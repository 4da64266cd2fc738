"""Cases on central: open, add clips (fetched from a real node), export a ZIP that `clips verify` checks offline."""

from __future__ import annotations

import json
import struct
import zipfile
from pathlib import Path

import pytest
from support.central import sqlite_url
from support.recorded import central_config, record_node, serve

from edge.central.cases import CaseBook
from edge.central.custody import CustodyLog
from edge.central.evidence import EvidenceStore, blob_key, sha256_file
from edge.cli import main

CASE = "K-2026-0042"


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """A case with both clips of a real node, exported once."""
    tmp = tmp_path_factory.mktemp("central")
    store, key = record_node(tmp_path_factory.mktemp("node"))
    server = serve(store)
    try:
        cfg = central_config(tmp, sqlite_url(tmp))
        assert main(["central", "register-node", "-c", str(cfg), "--node", "gate-node", "--pubkey", key.public_text(),
                     "--api", server.url, "--token-file", str(tmp / "token")]) == 0
        assert main(["central", "case", "new", CASE, "-c", str(cfg), "--notes", "burglary, rue des Lilas"]) == 0
        ids = [c.id for c in store.catalog.list_clips()]
        for cid in ids:
            assert main(["central", "case", "add", CASE, "-c", str(cfg), "--node", "gate-node", "--clip", cid]) == 0
        assert main(["central", "case", "add", CASE, "-c", str(cfg), "--node", "gate-node", "--clip", ids[0]]) == 0
        assert main(["central", "case", "export", CASE, "-c", str(cfg), "-o", str(tmp / "case.zip")]) == 0
        yield tmp, cfg, store, key, ids
    finally:
        server.stop()
        store.close()


def test_export_holds_clips_keys_custody_and_cover_and_verifies(exported, capsys) -> None:
    tmp, _cfg, store, key, ids = exported
    with zipfile.ZipFile(tmp / "case.zip") as zf:
        names = set(zf.namelist())
        for cid in ids:
            assert zf.read(f"clips/gate-node/{cid}.mp4") == store.catalog.file_path(cid).read_bytes()
        assert zf.read("keys/gate-node.pub").decode().strip() == key.public_text()
        doc = json.loads(zf.read("case.json"))
        custody = json.loads(zf.read("custody.json"))
        cover = zf.read("cover.html").decode()
    assert names >= {"cover.html", "case.json", "custody.json", "SHA256SUMS", "manifest.json"}
    assert [c["clip"] for c in doc["clips"]] == ids and len(doc["clips"]) == 2  # the repeated add is not doubled
    assert [e["action"] for e in custody] == ["case", "fetch", "case", "fetch", "case", "export"]
    for text in (CASE, "burglary, rue des Lilas", "gate-node", ids[0], "UTC", "sha256sum -c SHA256SUMS",
                 "edgecam clips verify CASE.zip", doc["exported_by"], key.public_text()):
        assert text in cover
    assert "<script" not in cover
    capsys.readouterr()
    assert main(["clips", "verify", str(tmp / "case.zip")]) == 0
    out = capsys.readouterr().out
    assert out.count("signature: ok") == 2 and "custody: ok: 6 custody entries intact" in out
    assert out.strip().endswith("verified")


def _data_offset(path: Path, info: zipfile.ZipInfo) -> int:
    with path.open("rb") as f:
        f.seek(info.header_offset + 26)
        name_len, extra_len = struct.unpack("<HH", f.read(4))
    return info.header_offset + 30 + name_len + extra_len


def test_one_altered_byte_in_any_member_fails_verify(exported, tmp_path: Path, capsys) -> None:
    tmp = exported[0]
    original = (tmp / "case.zip").read_bytes()
    with zipfile.ZipFile(tmp / "case.zip") as zf:
        infos = zf.infolist()
    assert len(infos) == 10
    for info in infos:
        bad = tmp_path / "bad.zip"
        data = bytearray(original)
        pos = _data_offset(tmp / "case.zip", info) + info.file_size // 2
        data[pos] = data[pos] ^ 0x01 if info.filename.endswith(".mp4") else ord("#") if data[pos] != ord("#") else 32
        bad.write_bytes(bytes(data))
        capsys.readouterr()
        assert main(["clips", "verify", str(bad)]) == 1, info.filename
        assert "verified" not in capsys.readouterr().out.splitlines()[-1:], info.filename


def test_an_added_member_fails_verify(exported, tmp_path: Path, capsys) -> None:
    tmp = exported[0]
    bad = tmp_path / "extra.zip"
    bad.write_bytes((tmp / "case.zip").read_bytes())
    with zipfile.ZipFile(bad, "a") as zf:
        zf.writestr("clips/gate-node/planted.mp4", b"not from the node")
    assert main(["clips", "verify", str(bad)]) == 1
    assert "planted.mp4 is in the ZIP but not in the manifest" in capsys.readouterr().out


def test_open_case_holds_its_clips_and_refuses_bad_names(exported, capsys) -> None:
    tmp, cfg, store, _key, ids = exported
    book = CaseBook(tmp / "evidence" / "cases.db")
    assert book.held_shas() == {c.sha256 for c in store.catalog.list_clips()}
    assert main(["central", "case", "new", CASE, "-c", str(cfg)]) == 1
    assert "exists already" in capsys.readouterr().err
    assert main(["central", "case", "new", "../x", "-c", str(cfg)]) == 1
    assert main(["central", "case", "add", "nope", "-c", str(cfg), "--node", "gate-node", "--clip", ids[0]]) == 1
    assert "no case 'nope'" in capsys.readouterr().err


def test_retention_never_deletes_a_clip_in_an_open_case(exported, tmp_path: Path, capsys) -> None:
    """Prune with 0 days: the open case's clips stay; the one outside any case goes, with a custody entry."""
    tmp, cfg, store, _key, ids = exported
    root = tmp / "evidence"
    loose = tmp_path / "loose.mp4"
    loose.write_bytes(b"loose clip bytes" * 1000)
    meta = {"record": {"clip": "loose-1", "sha256": sha256_file(loose)}}
    EvidenceStore.at(root).add("gate-node", "loose-1", loose, meta, "ed25519:K")
    capsys.readouterr()
    assert main(["central", "evidence", "prune", "-c", str(cfg), "--older-than", "0", "--dry-run"]) == 0
    assert "1 clip(s) would be deleted; 2 kept by open cases" in capsys.readouterr().out
    assert EvidenceStore.at(root).get("gate-node", "loose-1") is not None
    assert main(["central", "evidence", "prune", "-c", str(cfg), "--older-than", "0"]) == 0
    assert "1 clip(s) deleted; 2 kept by open cases" in capsys.readouterr().out
    ev = EvidenceStore.at(root)
    assert ev.get("gate-node", "loose-1") is None and not (root / blob_key(meta["record"]["sha256"], ".mp4")).exists()
    assert sorted(e.clip for e in ev.entries()) == sorted(ids) and all(ev.intact(e.sha256) for e in ev.entries())
    log = CustodyLog(root / "custody.db")
    [entry] = log.entries("gate-node/loose-1")
    assert entry.action == "delete" and log.verify() == []
