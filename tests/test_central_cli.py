"""``edgecam central`` commands: run as a real process (crash, redelivery, SIGTERM), status/search/register output."""

from __future__ import annotations

import base64
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from support.central import T0, Publisher, event, sqlite_url, wait_until

from edge import payload
from edge.central.messages import parse_event
from edge.central.store import Store
from edge.cli import main

ROOT = Path(__file__).resolve().parent.parent


LEGACY_WINDOW = '\n[trust]\naccept_unsigned_until = "2100-01-01T00:00Z"\n'  # unsigned test publishers (#18.1)


def write_config(path: Path, url: str, port: int = 1883, extra: str = "") -> Path:
    path.write_text(f'[mqtt]\nport = {port}\nclient_id = "central-cli-test"\n\n[database]\nurl = "{url}"\n'
                    f'{LEGACY_WINDOW}{extra}')
    return path


class CentralProcess:
    """``python -m edge -v central run`` with its log in a file the test can poll."""

    def __init__(self, config: Path, log: Path) -> None:
        self.log = log
        env = dict(os.environ, PYTHONPATH=str(ROOT))
        self.proc = subprocess.Popen([sys.executable, "-m", "edge", "-v", "central", "run", "-c", str(config)],
                                     stdout=subprocess.DEVNULL, stderr=open(log, "ab"), env=env, cwd=ROOT)

    def wait_log(self, text: str, count: int = 1) -> None:
        wait_until(lambda: self.log.read_text().count(text) >= count, what=f"log line {text!r}")

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)


def hold_write_lock(url: str):
    """Another connection holding the write lock: the consumer's next commit waits (an open receive window)."""
    if url.startswith("sqlite"):
        conn = sqlite3.connect(url[len("sqlite:///"):], isolation_level=None)
        conn.execute("BEGIN EXCLUSIVE")
        return conn
    import psycopg

    conn = psycopg.connect(url)
    conn.execute("LOCK TABLE events IN ACCESS EXCLUSIVE MODE")
    return conn


def test_crash_before_commit_means_redelivery_and_sigterm_exits_0(broker, db_url, tmp_path):
    cfg = write_config(tmp_path / "central.toml", db_url, broker.port)
    log = tmp_path / "central.log"
    central = CentralProcess(cfg, log)
    pub = Publisher(broker.port)
    try:
        central.wait_log("subscribed to")
        lock = hold_write_lock(db_url)
        pub.events("node-a", [1, 2, 3, 4, 5])
        pub.flush()
        central.wait_log("writing a batch")  # received, now blocked before its commit
        central.kill()  # crash: nothing committed, nothing acknowledged
        lock.rollback()
        lock.close()
        with Store(db_url) as store:
            assert store.count_events() == 0
        central = CentralProcess(cfg, log)  # same client id: the broker's session redelivers
        with Store(db_url) as store:
            wait_until(lambda: store.count_events() == 5, what="the 5 redelivered events")
            assert store.seqs("node-a") == [1, 2, 3, 4, 5]
        central.proc.send_signal(signal.SIGTERM)
        assert central.proc.wait(15) == 0
        assert "stopped: 5 received, 5 stored" in log.read_text()
    finally:
        if central.proc.poll() is None:
            central.kill()
        pub.close()


def fill(url: str) -> None:
    """Two nodes' events written the way the consumer writes them."""
    crossings = [event("node-a", s, line=("gate-line", "in" if s % 3 else "out")) for s in range(1, 7)]
    rows = [parse_event("node-a", data) for data in crossings]
    rows.append(parse_event("node-a", event("node-a", 8, label="person", zones=("porch",), clip="clip-000123")))
    rows += [parse_event("node-b", event("node-b", s, camera="yard", label="truck", zones=())) for s in (1, 2)]
    with Store(url) as store:
        store.write_batch(rows, [], [])


def run_cli(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_register_status_search_output(db_url, tmp_path, capsys):
    cfg = str(write_config(tmp_path / "central.toml", db_url))
    fill(db_url)
    raw = Ed25519PrivateKey.generate().public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    key = "ed25519:" + base64.b64encode(raw).decode()
    code, out, _ = run_cli(capsys, "central", "register-node", "-c", cfg, "--node", "node-a", "--pubkey", key,
                           "--api", "https://10.0.0.5:8080")
    assert code == 0 and "registered node-a" in out
    with Store(db_url) as store:
        assert store.node("node-a")["pubkey"] == key

    code, out, err = run_cli(capsys, "central", "register-node", "-c", cfg, "--node", "node-a",
                             "--pubkey", "ed25519:" + base64.b64encode(b"short").decode())
    assert code == 1 and "32 bytes" in err

    code, out, _ = run_cli(capsys, "central", "status", "-c", cfg)
    lines = out.splitlines()
    assert lines[0].split()[:3] == ["NODE", "STATE", "LAST"]
    a_line = next(line for line in lines if line.startswith("node-a"))
    assert a_line.split()[:2] == ["node-a", "unknown"] and a_line.split()[4:] == ["6", "8", "7", "-", "-", "ok", "-"]
    code, out, _ = run_cli(capsys, "central", "status", "-c", cfg, "--json")
    nodes = {r["node"]: r for r in map(json.loads, out.splitlines())}
    assert nodes["node-a"]["contiguous_seq"] == 6 and nodes["node-a"]["max_seq"] == 8
    assert [(m["first"], m["last"]) for m in nodes["node-a"]["missing"]] == [(7, 7)]
    assert nodes["node-b"]["missing"] == [] and nodes["node-b"]["contiguous_seq"] == 2
    assert nodes["node-a"]["api_url"] == "https://10.0.0.5:8080"

    code, out, _ = run_cli(capsys, "central", "search", "-c", cfg, "--label", "person", "--json")
    hits = [json.loads(line) for line in out.splitlines()]
    assert [(h["node"], h["seqs"], h["clip"], h["api_url"], h["zones"]) for h in hits] == [
        ("node-a", [8], "clip-000123", "https://10.0.0.5:8080", ["porch"])]
    code, out, _ = run_cli(capsys, "central", "search", "-c", cfg, "--zone", "porch")
    assert "clip-000123" in out and "https://10.0.0.5:8080" in out and len(out.splitlines()) == 2
    code, out, _ = run_cli(capsys, "central", "search", "-c", cfg, "--camera", "yard", "--json",
                           "--since", str(T0 + 15), "--until", "2026-01-01T00:00:30Z")
    assert [(h["node"], h["seqs"]) for h in map(json.loads, out.splitlines())] == [("node-b", [2])]

    code, out, _ = run_cli(capsys, "central", "search", "-c", cfg, "--count-by", "line", "--json")
    counts = [json.loads(line) for line in out.splitlines()]
    assert counts == [{"hour": "2026-01-01T00:00:00Z", "node": "node-a", "camera": "gate", "line": "gate-line",
                       "in": 4, "out": 2}]


def test_config_errors_name_the_key(tmp_path, capsys):
    cfg = tmp_path / "central.toml"
    cfg.write_text('[mqtt]\nhots = "x"\n')
    code, _, err = run_cli(capsys, "central", "status", "-c", str(cfg))
    assert code == 2 and "mqtt.hots: unknown key" in err
    cfg.write_text('[database]\nurl = "mysql://x"\n')
    code, _, err = run_cli(capsys, "central", "status", "-c", str(cfg))
    assert code == 2 and "database.url" in err
    cfg.write_text('[gaps]\nalarm_after = -1\n')
    code, _, err = run_cli(capsys, "central", "search", "-c", str(cfg))
    assert code == 2 and "gaps.alarm_after" in err


def test_unreachable_postgres_is_one_line(tmp_path, capsys):
    cfg = write_config(tmp_path / "central.toml", "postgresql://nobody@127.0.0.1:1/none")
    code, _, err = run_cli(capsys, "central", "status", "-c", str(cfg))
    assert code == 1 and err.startswith("edgecam: database postgresql://") and len(err.strip().splitlines()) == 1


def test_node_status_messages_from_a_real_broker_show_in_status(broker, tmp_path, capsys):
    url = sqlite_url(tmp_path)
    cfg = write_config(tmp_path / "central.toml", url, broker.port)
    central = CentralProcess(cfg, tmp_path / "central.log")
    pub = Publisher(broker.port)
    try:
        central.wait_log("subscribed to")
        pub.raw(payload.status_topic("edgecam", "node-z"), payload.status_message("offline", time.time(), "0.1.0"),
                retain=True)
        pub.events("node-z", [1, 2])
        pub.flush()
        central.wait_log("writing a batch")
        with Store(url) as store:
            wait_until(lambda: store.count_events() == 2 and store.node("node-z")["status"] == "offline")
        code, out, _ = run_cli(capsys, "central", "status", "-c", str(cfg))
        row = next(line for line in out.splitlines() if line.startswith("node-z"))
        assert row.split()[1] == "offline" and "ok" in row.split()
    finally:
        central.proc.send_signal(signal.SIGTERM)
        assert central.proc.wait(15) == 0
        pub.close()


def test_example_config_is_valid_and_documents_the_defaults():
    from edge.central.config import CentralConfig, load_central_config

    assert load_central_config(ROOT / "firmware_config" / "central.toml.example") == CentralConfig()
