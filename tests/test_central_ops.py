"""What an operator sees from central (#13.11, #13.12, #13.13, #14.14): baselines, acknowledged gaps,
one row per tracked object, safe terminal output, a progress line, client-id clashes, ``| head``."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import time
import uuid

import pytest
from support.central import LEGACY, T0, Publisher, event, sqlite_url, wait_until
from test_central import start_consumer
from test_central_cli import ROOT, run_cli, write_config

from edge.central.messages import parse_event
from edge.central.store import Store


@pytest.fixture
def paris(monkeypatch):
    """A fixed local zone for the central machine (CET in winter)."""
    monkeypatch.setenv("TZ", "Europe/Paris")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def test_a_central_started_after_its_nodes_has_no_false_alarm(broker, db_url, tmp_path, capsys):
    """Seqs before the first one central ever saw are no gap; a real hole after it still is."""
    consumer = start_consumer(broker.port, db_url)
    pub = Publisher(broker.port)
    try:
        pub.events("node-a", list(range(17, 31)) + list(range(36, 41)))  # 1..16 sent before central existed
        pub.flush()
        with Store(db_url) as store:
            wait_until(lambda: store.count_events() == 19, what="19 events")
            assert store.baseline("node-a") == 16
    finally:
        consumer.stop()
        pub.close()
    cfg = str(write_config(tmp_path / "central.toml", db_url, extra="\n[gaps]\nalarm_after = 0.01\n"))
    time.sleep(0.05)
    code, out, _ = run_cli(capsys, "central", "status", "-c", cfg, "--json")
    row = json.loads(out)
    assert [(m["first"], m["last"], m["alarm"]) for m in row["missing"]] == [(31, 35, True)]
    assert row["contiguous_seq"] == 30 and row["baseline_seq"] == 16 and code == 1  # alarm stands: exit 1

    code, out, err = run_cli(capsys, "central", "ack-gap", "-c", cfg, "--node", "node-a", "--from", "31",
                             "--to", "35", "--reason", "node SD card replaced", "--by", "alice")
    assert code == 0 and "acknowledged node-a seqs 31-35 (5 missing now) by alice" in out
    code, out, _ = run_cli(capsys, "central", "status", "-c", cfg)
    assert code == 0 and "31-35 acked" in out and "ALARM" not in out
    with Store(db_url) as store:
        [ack] = store.gap_acks("node-a")
        assert (ack.first, ack.last, ack.reason, ack.who) == (31, 35, "node SD card replaced", "alice")
        assert abs(ack.at - time.time()) < 60

    code, _, err = run_cli(capsys, "central", "ack-gap", "-c", cfg, "--node", "nope", "--from", "1", "--to", "2",
                           "--reason", "x")
    assert code == 1 and "not a node central knows" in err
    code, _, err = run_cli(capsys, "central", "ack-gap", "-c", cfg, "--node", "node-a", "--from", "5", "--to", "2",
                           "--reason", "x")
    assert code == 1 and "FROM <= TO" in err


def test_register_node_baseline_and_a_partial_ack(db_url, tmp_path, capsys):
    cfg = str(write_config(tmp_path / "central.toml", db_url, extra="\n[gaps]\nalarm_after = 0.01\n"))
    code, out, _ = run_cli(capsys, "central", "register-node", "-c", cfg, "--node", "node-b", "--pubkey", "k1",
                           "--baseline-seq", "100")
    assert code == 0 and "seqs up to 100 are not gaps" in out
    rows = [parse_event("node-b", event("node-b", s)) for s in (90, 101, 102, 110)]
    with Store(db_url) as store:
        store.write_batch(rows, [], [])
        assert store.baseline("node-b") == 100  # the registered baseline wins over the first seq seen
    time.sleep(0.05)
    run_cli(capsys, "central", "ack-gap", "-c", cfg, "--node", "node-b", "--from", "103", "--to", "105",
            "--reason", "power cut")
    code, out, _ = run_cli(capsys, "central", "status", "-c", cfg, "--json")
    missing = [(m["first"], m["last"], m["acked"], m["alarm"]) for m in json.loads(out)["missing"]]
    assert missing == [(103, 105, True, False), (106, 109, False, True)] and code == 1


def _objects(url: str) -> None:
    """6 tracked objects, each start/update/end like the node sends them; the clip only on end."""
    rows, seq = [], 0
    for obj in range(6):
        for kind, dt in (("start", 0), ("update", 2), ("end", 4)):
            seq += 1
            data = json.loads(event("node-a", seq, zones=("drive",) if kind != "update" else ("porch",),
                                    ts=T0 + obj * 60 + dt))
            data.update(id=f"main-gate-north-obj{obj}", type=kind, score=0.5 + obj / 100 + (0.2 if dt == 2 else 0),
                        clip=f"clip-{obj}" if kind == "end" else None)
            if kind == "update" and obj == 1:
                data["line"] = {"name": "gate", "dir": "in"}
            rows.append(parse_event("node-a", json.dumps(data).encode()))
    with Store(url) as store:
        store.write_batch(rows, [], [])


def test_search_is_one_row_per_tracked_object_newest_first(db_url, tmp_path, capsys, paris):
    _objects(db_url)
    cfg = str(write_config(tmp_path / "central.toml", db_url))
    code, out, err = run_cli(capsys, "central", "search", "-c", cfg, "--json")
    hits = [json.loads(line) for line in out.splitlines()]
    assert code == 0 and [h["id"] for h in hits] == [f"main-gate-north-obj{i}" for i in range(5, -1, -1)]
    one = hits[-2]  # obj1
    assert one["clip"] == "clip-1" and one["line"] == {"name": "gate", "dir": "in"}
    assert one["zones"] == ["drive", "porch"] and one["score"] == pytest.approx(0.71)
    assert one["first_seen"] == "2026-01-01T00:01:00Z" and one["last_seen"] == "2026-01-01T00:01:04Z"
    assert one["seqs"] == [4, 5, 6] and one["ended"] is True
    assert "6 tracked object(s), newest first" in err and "more" not in err

    code, out, err = run_cli(capsys, "central", "search", "-c", cfg, "--limit", "3")
    lines = out.splitlines()
    assert lines[0].startswith("FIRST SEEN (Europe/Paris)  UTC")
    assert len(lines) == 4 and "obj5" in lines[1] and "obj3" in lines[3]  # the NEWEST three
    assert lines[1].split()[:4] == ["2026-01-01", "01:05:00", "CET", "2026-01-01T00:05:00Z"] and "clip-5" in lines[1]
    assert "3 tracked object(s), newest first; 3 more, raise --limit" in err
    assert "times in Europe/Paris" in err

    code, out, err = run_cli(capsys, "central", "search", "-c", cfg, "--raw", "--json", "--limit", "4")
    raw = [json.loads(line) for line in out.splitlines()]
    assert [r["seq"] for r in raw] == [18, 17, 16, 15] and "14 more, raise --limit" in err

    # a naive time is the central machine's local time: 01:03 CET is 00:03Z
    code, out, _ = run_cli(capsys, "central", "search", "-c", cfg, "--json", "--since", "2026-01-01T01:03:00")
    assert [json.loads(line)["id"][-4:] for line in out.splitlines()] == ["obj5", "obj4", "obj3"]
    code, out, _ = run_cli(capsys, "central", "search", "-c", cfg, "--json", "--since", "2026-01-01T00:03:00Z")
    assert len(out.splitlines()) == 3


def test_search_and_status_show_terminal_escapes_as_escapes(db_url, tmp_path, capsys):
    evil = "car\x1b]0;pwned\x07\x1b[2J\u202egnp.exe\x9b31m"
    data = json.loads(event("node-a", 1, zones=("z\x1b[5m",)))
    data["label"] = evil
    with Store(db_url) as store:
        store.write_batch([parse_event("node-a", json.dumps(data).encode())], [], [])
        store._execute("UPDATE nodes SET version = ? WHERE node = 'node-a'", ("1.0\x1b[31m",))
    cfg = str(write_config(tmp_path / "central.toml", db_url))
    for argv in (["search"], ["search", "--json"], ["search", "--raw"], ["search", "--raw", "--json"],
                 ["status"], ["status", "--json"]):
        _, out, err = run_cli(capsys, "central", *argv, "-c", cfg)
        for bad in ("\x1b", "\x07", "\u202e", "\x9b"):
            assert bad not in out and bad not in err, (argv, out)
    _, out, _ = run_cli(capsys, "central", "search", "-c", cfg)
    assert "car\\x1b]0;pwned\\x07\\x1b[2J\\u202egnp.exe\\x9b31m" in out and "z\\x1b[5m" in out
    _, out, _ = run_cli(capsys, "central", "search", "-c", cfg, "--json")
    assert json.loads(out)["label"] == evil  # the JSON still carries the exact value


def test_central_search_into_head_ends_quietly(tmp_path):
    url = sqlite_url(tmp_path)
    rows = [parse_event("node-a", event("node-a", s)) for s in range(1, 1501)]
    with Store(url) as store:
        store.write_batch(rows, [], [])
    cfg = write_config(tmp_path / "central.toml", url)
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    for argv in (["search"], ["search", "--raw", "--json"]):
        proc = subprocess.Popen([sys.executable, "-m", "edge", "central", *argv, "-c", str(cfg)], cwd=ROOT, env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        proc.stdout.readline()
        proc.stdout.close()  # `| head -1`
        err = proc.stderr.read().decode()
        assert proc.wait(30) == 0, err
        assert "Traceback" not in err and "BrokenPipe" not in err, err


def test_status_disk_column_says_free_like_the_node_page(db_url, tmp_path, capsys):
    """The node page shows Math.round(100 * free / total) '% free'; central shows the same number and word."""
    stats = {"disk": {"used_bytes": 7_240_000_000, "free_bytes": 2_760_000_000, "total_bytes": 10_000_000_000}}
    from edge.central.messages import StatsRow

    with Store(db_url) as store:
        store.write_batch([], [], [StatsRow("node-a", json.dumps(stats), True)])
    cfg = str(write_config(tmp_path / "central.toml", db_url))
    _, out, _ = run_cli(capsys, "central", "status", "-c", cfg)
    assert "28% free" in out and "used" not in out.split("\n")[1]
    _, out, _ = run_cli(capsys, "central", "status", "-c", cfg, "--json")
    assert json.loads(out)["disk_free_pct"] == 28


def test_a_progress_line_every_interval(broker, tmp_path, caplog):
    from edge.central.consumer import BrokerSettings, Consumer

    caplog.set_level(logging.INFO, logger="edgecam.central")
    consumer = Consumer(BrokerSettings(port=broker.port, client_id="c-" + uuid.uuid4().hex[:6]),
                        sqlite_url(tmp_path), batch_size=50, batch_wait=0.05, progress_every=0.5, trust=LEGACY)
    consumer.start()
    pub = Publisher(broker.port)
    try:
        assert consumer.connected.wait(10)
        pub.events("node-a", [1, 2, 3, 3])
        pub.raw("edgecam/node-a/events", b"{}")
        pub.flush()
        wait_until(lambda: any("3 stored, 1 duplicates, 1 quarantined" in r.getMessage() for r in caplog.records),
                   what="a progress line counting the batch")
        line = next(r.getMessage() for r in caplog.records if "3 stored" in r.getMessage())
        assert line.startswith("last ") and "lag max" in line
    finally:
        consumer.stop()
        pub.close()


@pytest.mark.slow  # 12 s: the backoff is measured over two windows
def test_two_consumers_with_one_client_id_say_so_and_back_off(broker, tmp_path, caplog):
    """The broker kicks the older of two same-id clients (MQTT 5 reason 142, or a bare close: mosquitto 2.0.11
    closes the socket); each says "client-id clash" once per try and backs off instead of flapping every second."""
    caplog.set_level(logging.INFO, logger="edgecam.central")
    client_id = "same-" + uuid.uuid4().hex[:6]
    first = start_consumer(broker.port, sqlite_url(tmp_path), client_id=client_id, protocol="5")
    second = start_consumer(broker.port, sqlite_url(tmp_path / "b"), client_id=client_id, protocol="5")
    try:
        def connects() -> int:
            return sum("connected to 127.0.0.1" in r.getMessage() for r in caplog.records)

        time.sleep(5)
        early = connects()
        time.sleep(7)
        late = connects() - early
        clash = [r.getMessage() for r in caplog.records if "client-id clash" in r.getMessage()]
        assert clash and client_id in clash[0] and "give each consumer its own client_id" in clash[0]
        # before: 6 connects in the first 5 s and 7 in the next 7 s (paho resets its delay on each CONNACK)
        assert late <= 3, (early, late)
        assert first.counters.clashes + second.counters.clashes >= 1
    finally:
        first.stop()
        second.stop()


def test_upgrading_a_version_1_database_keeps_its_known_holes(tmp_path):
    """Schema 1 -> 2: a node's baseline is its lowest stored seq, so an old hole is still a hole."""
    import sqlite3

    from edge.central import store as store_mod

    url = sqlite_url(tmp_path)
    path = url[len("sqlite:///"):]
    (tmp_path / "central").mkdir()
    conn = sqlite3.connect(path)
    for ddl in store_mod.MIGRATIONS[0]:
        conn.execute(ddl)
    conn.execute("CREATE TABLE schema_version (version INTEGER NOT NULL)")
    conn.execute("INSERT INTO schema_version VALUES (1)")
    for seq in [*range(5, 11), *range(21, 31)]:
        row = parse_event("node-c", event("node-c", seq))
        conn.execute("INSERT INTO events VALUES (" + ", ".join("?" * 17) + ")",
                     [getattr(row, c) for c in store_mod._EVENT_COLUMNS[:15]] + [T0, row.raw])
    conn.execute("INSERT INTO nodes (node) VALUES ('node-c')")
    conn.commit()
    conn.close()
    with Store(url) as store:
        assert store.schema_version() == len(store_mod.MIGRATIONS) and store.baseline("node-c") == 4
        store.write_batch([parse_event("node-c", event("node-c", 31))], [], [])
        assert store.baseline("node-c") == 4
        assert [(g.first, g.last) for g in store.gaps("node-c").gaps] == [(11, 20)]


def test_status_says_which_cameras_cannot_give_evidence(db_url, tmp_path, capsys):
    """From each node's last stats: a blind camera, a two-stream camera whose record stream is down (events
    without clips), a recorder paused by a full disk; hostile shapes are ignored, never a crash."""
    from edge.central.messages import StatsRow

    stats_a = {"cameras": {
        "gate": {"state": "running", "blind": False, "recorder": {"paused": False}},
        "yard": {"state": "reconnecting", "blind": True},
        "lane": {"state": "running", "blind": False, "record_down": "record stream reconnecting",
                 "recorder": {"paused": True}},
    }}
    stats_b = {"cameras": {"c1": {"state": "running", "blind": False}, "c2": {"state": "running", "blind": False}}}
    stats_c = {"cameras": ["not", "a", "mapping"]}
    with Store(db_url) as store:
        store.write_batch([], [], [StatsRow("node-a", json.dumps(stats_a), True),
                                   StatsRow("node-b", json.dumps(stats_b), True),
                                   StatsRow("node-c", json.dumps(stats_c), True)])
    cfg = str(write_config(tmp_path / "central.toml", db_url))
    _, out, _ = run_cli(capsys, "central", "status", "-c", cfg)
    lines = {line.split()[0]: line for line in out.splitlines()[1:] if line.startswith("node-")}
    assert out.splitlines()[0].rstrip().endswith("CAMERAS")
    assert lines["node-a"].rstrip().endswith("1/3 ok: yard blind, lane no clips + clips paused")
    assert lines["node-b"].rstrip().endswith("2 ok") and lines["node-c"].rstrip().endswith("-")
    _, out, _ = run_cli(capsys, "central", "status", "-c", cfg, "--json")
    rows = {r["node"]: r for r in map(json.loads, out.splitlines())}
    assert rows["node-a"]["cameras"] == {"gate": [], "yard": ["blind"], "lane": ["no clips", "clips paused"]}
    assert rows["node-b"]["cameras"] == {"c1": [], "c2": []} and rows["node-c"]["cameras"] == {}
