"""Central under attack and under faults (#14.1, #14.2, #14.11): real mosquitto, real SQLite / PostgreSQL."""

from __future__ import annotations

import json
import time
import uuid

import pytest
from support.central import T0, Publisher, event, sqlite_url, wait_until
from test_central import start_consumer
from test_central_cli import run_cli, write_config

from edge import payload
from edge.central import consumer as consumer_mod
from edge.central.messages import BadMessage, parse_event, parse_stats, parse_status, stats_summary
from edge.central.store import Store


def _poison(n: int, **changes: object) -> bytes:
    obj = json.loads(event("node-a", n))
    obj.update(changes)
    return json.dumps(obj).encode()


POISON = {
    "score 400 digits": lambda: _poison(2).replace(b'"score": 0.87', b'"score": ' + b"9" * 400),
    "score 1.5": lambda: _poison(3, score=1.5),
    "ts 1e308": lambda: _poison(4, ts=1e308),
    "ts NaN": lambda: _poison(5).replace(f'"ts": {T0 + 50}'.encode(), b'"ts": NaN'),
    "seq 2^53+1": lambda: _poison(6, seq=2**53 + 1),
    "label 10 KiB": lambda: _poison(7, label="x" * 300),
    "box inf": lambda: _poison(8).replace(b'"box": [0.1', b'"box": [1e999'),
    "UTF-16 (NUL bytes)": lambda: _poison(9).decode().encode("utf-16"),
}


def test_poison_pills_are_quarantined_acked_and_the_stream_goes_on(broker, db_url):
    """Each bad message is counted, kept with its reason and acked; good ones around it are stored."""
    client_id = "central-poison-" + uuid.uuid4().hex[:6]
    consumer = start_consumer(broker.port, db_url, client_id=client_id)
    pub = Publisher(broker.port)
    topic = payload.events_topic("edgecam", "node-a")
    try:
        pub.events("node-a", [1])
        for make in POISON.values():
            pub.raw(topic, make())
        status = payload.status_topic("edgecam", "node-a")
        pub.raw(status, b'{"state":"online","ts":' + b"7" * 400 + b',"version":"1"}')
        pub.raw(payload.events_topic("edgecam", "n" * 65), event("n" * 65, 1))  # not a node id
        pub.events("node-a", [10, 11])
        pub.flush()
        with Store(db_url) as store:
            wait_until(lambda: store.count_events() == 3, what="the 3 good events")
            assert store.seqs("node-a") == [1, 10, 11]
            wait_until(lambda: len(store.quarantine()) == len(POISON) + 2, what="every pill in quarantine")
            kept = store.quarantine()
            assert sorted({q["node"] or "-" for q in kept}) == ["-", "node-a"]
            assert [n["node"] for n in store.nodes()] == ["node-a"]
            reasons = " | ".join(q["reason"] for q in kept)
            for word in ("score", "ts", "seq", "label", "box"):
                assert word in reasons, reasons
            assert store.node("node-a")["quarantined"] == len(POISON) + 1
        assert consumer.counters.malformed == len(POISON) + 2
        assert consumer.writer_dead.is_set() is False and consumer.failure is None
    finally:
        consumer.stop()
    # Acked: a restart under the same client id gets none of them again.
    consumer = start_consumer(broker.port, db_url, client_id=client_id)
    try:
        pub.events("node-a", [12])
        pub.flush()
        with Store(db_url) as store:
            wait_until(lambda: store.count_events() == 4, what="the event after the restart")
        assert consumer.counters.received == 1 and consumer.counters.malformed == 0
    finally:
        consumer.stop()
        pub.close()


@pytest.mark.parametrize("name", list(POISON))
def test_each_pill_is_refused_at_the_door(name):
    with pytest.raises(BadMessage):
        parse_event("node-a", POISON[name]())


def test_ranges_at_the_door_keep_legitimate_values():
    """1970 from an unsynchronised clock, score 0 and 1, seq 2^53 are real events: stored."""
    for changes in ({"ts": 0.0, "time_ok": False}, {"score": 0.0}, {"score": 1}, {"seq": 2**53},
                    {"ts": time.time() + 86400}):
        parse_event("node-a", _poison(1, **changes))
    with pytest.raises(BadMessage, match="ts"):
        parse_event("node-a", _poison(1, ts=time.time() + 11 * 366 * 86400))
    with pytest.raises(BadMessage, match="ts"):
        parse_status("node-a", b'{"state":"online","ts":-5}', False)
    with pytest.raises(BadMessage, match="bytes"):
        parse_stats("node-a", b'{"x":"' + b"a" * 70_000 + b'"}')
    # stats are free-form: numbers a report cannot use are left out, never a crash
    summary = stats_summary('{"disk":{"used_bytes":' + "9" * 400 + ',"free_bytes":5},"fps":{"a":"x","b":2},'
                            '"outbox":{"depth":1e300}}')
    assert summary["disk_free_pct"] is None and summary["fps"] == 2 and summary["outbox"] is None
    many = {"cameras": {f"c{i}" + "x" * 200: {"blind": "yes", "recorder": [1]} for i in range(500)}}
    cams = stats_summary(json.dumps(many))["cameras"]  # bounded: a node cannot flood the fleet view
    assert len(cams) == 64 and all(len(k) == 64 and v == [] for k, v in cams.items())
    assert stats_summary('{"cameras": {"a": 5, "b": {"state": "failed"}}}')["cameras"] == {"b": ["blind"]}


def test_a_dead_writer_ends_central_run_with_one_line(broker, tmp_path, capsys, monkeypatch):
    """Supervision: whatever kills the writer thread ends ``central run`` non-zero (systemd restarts it)."""
    def explode(self):  # the fault injected: the writer's loop raising something nobody expected
        raise MemoryError("simulated")

    monkeypatch.setattr(consumer_mod.Consumer, "_write_loop", explode)
    cfg = write_config(tmp_path / "central.toml", sqlite_url(tmp_path), broker.port)
    started = time.monotonic()
    code, out, err = run_cli(capsys, "central", "run", "-c", str(cfg))
    assert code == 1 and time.monotonic() - started < 10
    lines = err.strip().splitlines()
    assert lines[-1] == ("edgecam: central writer died (MemoryError: simulated);"
                         " unacknowledged messages stay with the broker")
    assert "Traceback" not in err and sum("the central writer stopped" in line for line in lines) == 1


def _store_bypassing_validation(url: str, ts: float) -> None:
    """A row as an older central (before validation at the door) may have stored it."""
    row = parse_event("node-a", event("node-a", 1, line=("gate", "in")))
    with Store(url) as store:
        store.write_batch([row], [], [])
        store._execute("UPDATE events SET ts = ?, label = ? WHERE node = 'node-a'", (ts, "car"))
        store._execute("UPDATE nodes SET stats = ? WHERE node = 'node-a'",
                       ('{"disk":{"used_bytes":' + "9" * 400 + ',"free_bytes":1},"fps":{"c":1e308}}',))


def test_search_and_status_never_crash_on_stored_data(db_url, tmp_path, capsys):
    _store_bypassing_validation(db_url, 1e308)
    cfg = str(write_config(tmp_path / "central.toml", db_url))
    for argv in (["search"], ["search", "--json"], ["search", "--raw"], ["search", "--raw", "--json"],
                 ["search", "--count-by", "line"], ["search", "--count-by", "line", "--json"],
                 ["status"], ["status", "--json"]):
        code, out, err = run_cli(capsys, "central", *argv, "-c", cfg)
        assert code in (0, 1), (argv, err)
        assert "Traceback" not in err and "Error" not in err, (argv, err)
        assert "node-a" in out, (argv, out)


@pytest.fixture
def small_fs(tmp_path):
    """A real 2 MiB tmpfs (root only); unmounted afterwards."""
    import subprocess

    mnt = tmp_path / "small"
    mnt.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mnt)],
                      capture_output=True).returncode != 0:
        pytest.skip("mount -t tmpfs refused (needs root)")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def _fill(path) -> None:
    """Write until the filesystem says ENOSPC."""
    with open(path, "wb") as f:
        try:
            while True:
                f.write(b"\0" * 65536)
                f.flush()
        except OSError:
            pass


def test_a_full_disk_stops_acking_and_every_seq_arrives_once_there_is_space(broker, small_fs):
    """#14.2: 300 events while central's SQLite filesystem is full: nothing dropped, nothing acked as bad."""
    url = f"sqlite:///{small_fs / 'events.db'}"
    client_id = "central-full-" + uuid.uuid4().hex[:6]
    consumer = start_consumer(broker.port, url, client_id=client_id)
    pub = Publisher(broker.port)
    try:
        filler = small_fs / "filler"
        _fill(filler)
        pub.events("node-a", list(range(1, 301)))
        pub.flush()
        wait_until(lambda: consumer.counters.db_errors >= 2, what="the database refusing to write")
        assert consumer.counters.malformed == 0 and consumer.counters.stored < 300
        filler.unlink()  # the operator frees space
        with Store(url) as store:
            wait_until(lambda: store.count_events() == 300, timeout=60, what="all 300 events after freeing space")
            assert store.seqs("node-a") == list(range(1, 301))
            assert store.gaps("node-a").gaps == () and store.quarantine() == []
        assert consumer.counters.malformed == 0
    finally:
        consumer.stop()
        pub.close()


def test_a_postgresql_role_losing_insert_is_retried_not_dropped(broker, pg_url):
    """PostgreSQL refuses to write (INSERT revoked from central's role mid-stream), then GRANT: every seq arrives."""
    if pg_url is None:
        pytest.skip("PostgreSQL at 127.0.0.1:5432 is unreachable")
    import psycopg
    from support.central import pg_schema

    role = "central_role_" + uuid.uuid4().hex[:8]
    with pg_schema(pg_url) as admin_url, psycopg.connect(pg_url, autocommit=True) as admin:
        schema = admin_url.split("search_path%3D", 1)[1]
        Store(admin_url).close()  # the schema, owned by the admin
        admin.execute(f"CREATE ROLE {role} LOGIN")
        try:
            admin.execute(f"GRANT USAGE, CREATE ON SCHEMA {schema} TO {role}")
            admin.execute(f"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA {schema} TO {role}")
            url = admin_url.replace("://postgres@", f"://{role}@").replace("://root@", f"://{role}@")
            consumer = start_consumer(broker.port, url)
            pub = Publisher(broker.port)
            try:
                pub.events("node-a", [1, 2])
                pub.flush()
                with Store(admin_url) as store:
                    wait_until(lambda: store.count_events() == 2, what="the first 2 events")
                admin.execute(f"REVOKE INSERT ON {schema}.events FROM {role}")
                pub.events("node-a", list(range(3, 53)))
                pub.flush()
                wait_until(lambda: consumer.counters.db_errors >= 2, what="the database refusing")
                assert consumer.counters.malformed == 0
                admin.execute(f"GRANT INSERT ON {schema}.events TO {role}")
                with Store(admin_url) as store:
                    wait_until(lambda: store.count_events() == 52, timeout=60, what="all 52 events after GRANT")
                    assert store.seqs("node-a") == list(range(1, 53)) and store.quarantine() == []
                assert consumer.counters.malformed == 0
            finally:
                consumer.stop()
                pub.close()
        finally:
            admin.execute(f"DROP OWNED BY {role}")
            admin.execute(f"DROP ROLE {role}")


@pytest.mark.parametrize("password", ["s3cr@t!pw", "p@ss/w:rd", "xyz%40abc"])
def test_a_postgresql_password_never_appears_in_errors(tmp_path, capsys, password):
    """#14.10: the URL's password (with ``@`` and friends) is in no error line, raw or percent-encoded."""
    cfg = write_config(tmp_path / "central.toml", f"postgresql://central:{password}@127.0.0.1:1/none")
    code, _, err = run_cli(capsys, "central", "status", "-c", str(cfg))
    assert code == 1 and len(err.strip().splitlines()) == 1
    assert "postgresql://central:***@127.0.0.1:1/none" in err
    for piece in {password, *password.replace("/", "@").replace(":", "@").replace("%40", "@").split("@")}:
        if len(piece) >= 2:
            assert piece not in err.replace("central:***@127.0.0.1", ""), (piece, err)
    # and libpq got the host right (it names 127.0.0.1, not a tail of the password)
    assert "127.0.0.1" in err


def test_pg_conninfo_encodes_a_raw_password():
    from edge.central.store import error_line, pg_conninfo

    assert pg_conninfo("postgresql://u:p@ss@db:5432/e?x=1") == "postgresql://u:p%40ss@db:5432/e?x=1"
    assert pg_conninfo("postgresql://u:p%40ss@db/e") == "postgresql://u:p%40ss@db/e"
    assert pg_conninfo("postgresql://u@db/e") == "postgresql://u@db/e"
    assert error_line(RuntimeError("at postgresql://u:p@ss@db/e: p@ss and p%40ss refused\nmore"),
                      "postgresql://u:p@ss@db/e") == "at postgresql://u:***@db/e: *** and *** refused"


def test_quarantine_is_bounded_and_the_count_keeps_counting(db_url, monkeypatch):
    from edge.central import store as store_mod
    from edge.central.store import Quarantined

    monkeypatch.setattr(store_mod, "QUARANTINE_KEEP", 5)
    with Store(db_url) as store:
        for i in range(8):
            store.write_batch([], [], [], now=T0 + i,
                              quarantined=[Quarantined("node-a", "edgecam/node-a/events", f"bad {i}", "\\x00{")])
        kept = store.quarantine()
        assert [q["reason"] for q in kept] == [f"bad {i}" for i in (7, 6, 5, 4, 3)]
        assert store.node("node-a")["quarantined"] == 8


def test_a_flood_of_bad_messages_is_counted_not_logged_line_by_line(broker, tmp_path, caplog):
    import logging

    caplog.set_level(logging.WARNING, logger="edgecam.central")
    consumer = start_consumer(broker.port, sqlite_url(tmp_path))
    pub = Publisher(broker.port)
    try:
        for _ in range(200):
            pub.raw(payload.events_topic("edgecam", "node-a"), b"\x1b[2J not json")
        pub.flush()
        with Store(sqlite_url(tmp_path)) as store:
            wait_until(lambda: consumer.counters.malformed == 200, what="200 counted")
            assert store.node("node-a")["quarantined"] == 200
        warnings = [r.getMessage() for r in caplog.records if "quarantined" in r.getMessage()]
        assert len(warnings) == 11 and "\x1b" not in "".join(warnings)
    finally:
        consumer.stop()
        pub.close()


def test_a_wrong_database_url_in_the_config_does_not_echo_its_password(tmp_path, capsys):
    cfg = tmp_path / "central.toml"
    cfg.write_text('[database]\nurl = "mysql://central:s3cr@t@db/events"\n')
    code, _, err = run_cli(capsys, "central", "status", "-c", str(cfg))
    assert code == 2 and "database.url" in err and "mysql://central:***@db/events" in err
    assert "s3cr" not in err
