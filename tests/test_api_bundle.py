"""Evidence bundles over the LAN API: streamed with no temporary copy, a cover sheet, never a 500 (#14.12, #13.7)."""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
import zipfile

import pytest
from support.apinode import BASE_TS, TOKEN, Node, make_catalog
from support.clipcat import StillView
from test_web import FullView, post

from edge.api.auth import hash_line
from edge.api.server import ApiServer
from edge.clips.bundle import bundle_filename, cover_sheet
from edge.clips.evidence import verify_bundle


@pytest.fixture(scope="module")
def node(tmp_path_factory):
    root = tmp_path_factory.mktemp("bundle")
    server = ApiServer(make_catalog(root), FullView({"gate": b""}), "127.0.0.1", 0, [hash_line(TOKEN, "alice")])
    server.start()
    yield Node(server, server._handlers.catalog, root)
    server.stop()


def test_deeply_nested_json_is_400_not_500(node):
    for body in (b"[" * 60_000, b'{"ids": ' + b"[" * 30_000 + b"]" * 30_000 + b"}"):
        status, _, text = post(node.port, "/api/v1/bundle", body)
        assert status == 400, text
        assert json.loads(text)["status"] == 400


@pytest.fixture
def full_tmp(tmp_path, monkeypatch):
    """``$TMPDIR`` on a 1 MiB tmpfs filled to the last byte (the SD card under PrivateTmp=, full)."""
    mnt = tmp_path / "tmpfs"
    mnt.mkdir()
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mnt)],
                                           capture_output=True).returncode != 0:
        pytest.skip("needs root to mount a tmpfs")
    try:
        with (mnt / "fill").open("wb") as f:
            try:
                while True:
                    f.write(b"\0" * 65536)
                    f.flush()
            except OSError:
                pass
        monkeypatch.setattr(tempfile, "tempdir", str(mnt))
        monkeypatch.setenv("TMPDIR", str(mnt))
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


def test_bundle_streams_with_tmp_full_and_has_a_cover_sheet(node, full_tmp, tmp_path):
    ids = ["gate-0001", "gate-0002"]
    status, headers, body = post(node.port, "/api/v1/bundle", json.dumps({"ids": ids}).encode())
    assert status == 200, body[:200]
    assert headers.get("transfer-encoding") == "chunked"  # straight into the response, no file first
    name = "edgecam-edge-test-01-gate-20261118T110640Z-2-clips.zip"
    assert headers["content-disposition"] == f'attachment; filename="{name}"'
    assert os.listdir(full_tmp) == ["fill"]
    out = tmp_path / "b.zip"
    out.write_bytes(body)
    assert verify_bundle(out) == []
    with zipfile.ZipFile(out) as zf:
        manifest = json.loads(zf.read("manifest.json"))
        cover = zf.read("README.txt").decode()
        zf.extractall(tmp_path / "x")
    assert manifest["created"].endswith("Z") and "T" in manifest["created"]
    assert isinstance(manifest["created_ts"], float) and manifest["exported_by"].startswith("LAN API token 'alice'")
    assert "Node:         edge-test-01" in cover and "Exported by:  LAN API token 'alice' from 127.0.0.1" in cover
    assert "= 2026-11-18T11:06:40Z" in cover and "sha256sum -c SHA256SUMS" in cover and "edgecam clips verify" in cover
    for cid in ids:
        assert cid in cover and node.catalog.get(cid).sha256 in cover
    check = subprocess.run(["sha256sum", "-c", "SHA256SUMS"], cwd=tmp_path / "x", capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
    assert check.stdout.count(": OK") == 2 * len(ids) + 2  # clips, metas, pubkey.txt, README.txt


def test_disk_errors_are_507_or_503_never_500(tmp_path):
    class FullDisk(StillView):
        def health(self):
            raise OSError(28, "No space left on device")

    import sqlite3

    cat = make_catalog(tmp_path)
    server = ApiServer(cat, FullDisk({}), "127.0.0.1", 0, [hash_line(TOKEN, "alice")])
    server.start()
    try:
        status, _, body = post(server.port, "/api/v1/health", method="GET")
        assert status == 507 and b"no space left" in body
        for err, want in ((sqlite3.OperationalError("database or disk is full"), 507),
                          (sqlite3.OperationalError("database is locked"), 503),
                          (OSError(5, "Input/output error"), 503)):
            def broken(*_a, _err=err, **_k):
                raise _err
            cat.list_clips = broken  # type: ignore[method-assign]
            status, _, body = post(server.port, "/api/v1/clips", method="GET")
            assert status == want, (err, body)
    finally:
        server.stop()


def test_cover_sheet_names_zone_and_utc(monkeypatch):
    monkeypatch.setenv("TZ", "Asia/Ho_Chi_Minh")
    import time

    time.tzset()
    try:
        meta = {"record": {"clip": "main-gate-north-20261202T015409Z-e819eb", "camera": "main-gate-north",
                           "start_ts": BASE_TS, "end_ts": BASE_TS + 9, "time_ok": False, "seq": 7,
                           "duration": 9.0, "labels": ["car"], "sha256": "ab" * 32}}
        text = cover_sheet("node-01", [meta], "tester", BASE_TS + 60, "ed25519:KEY")
        assert "start:    2026-11-18 18:06:40 +07 (UTC+07:00) = 2026-11-18T11:06:40Z" in text
        assert "clock NOT synchronised" in text
        assert bundle_filename("node-01", [meta]) == "edgecam-node-01-main-gate-north-20261118T110640Z-1-clips.zip"
    finally:
        monkeypatch.delenv("TZ")
        time.tzset()
