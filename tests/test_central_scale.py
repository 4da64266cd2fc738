"""Central at province scale (#18.4) and search by identification fields (#16.4), on SQLite and PostgreSQL."""

from __future__ import annotations

import json

import pytest
from support.central import T0, event, pg_schema

from edge.central import scale
from edge.central.messages import parse_event
from edge.central.store import MIGRATIONS, SearchFilter, Store
from edge.cli import main

JAN, FEB, MAR = T0 + 86400, T0 + 32 * 86400, T0 + 60 * 86400  # 2026-01-02, 2026-02-02, 2026-03-02


def row(node: str, seq: int, ts: float, **extra):
    """One parsed event; ``extra`` adds wire fields (plate, color, heading, ...) to the node's own bytes."""
    body = json.loads(event(node, seq, ts=ts, label=extra.pop("label", "car")))
    body.update(extra)
    return parse_event(node, json.dumps(body).encode())


def test_pg_events_are_partitioned_by_month_and_a_redelivery_does_nothing(pg_url):
    if pg_url is None:
        pytest.skip("PostgreSQL at 127.0.0.1:5432 is unreachable")
    with pg_schema(pg_url) as url, Store(url) as store:
        assert store.partitioned
        far = T0 + 5 * 365 * 86400  # 2030-12: no partition ahead for it, one is made on demand
        batch = [row("n1", 1, JAN), row("n1", 2, MAR), row("n1", 3, far)]
        assert store.write_batch(batch, [], []) == 3
        months = scale.partitions(store)
        assert {202601, 202603, scale.month_of(far)} <= set(months)
        assert store.write_batch(batch, [], []) == 0
        # the same (node, seq) with another time: still the first row only (the key table, not the partition)
        assert store.write_batch([row("n1", 2, FEB), row("n1", 4, FEB), row("n1", 4, FEB)], [], []) == 1
        assert store.count_events("n1") == 4
        assert store.write_batch([row("n1", 6, FEB)], [], []) == 1
        assert store.seq_table == "event_keys"  # gaps and acks read one index, not every month's partition
        assert [(g.first, g.last) for g in store.gaps("n1").gaps] == [(5, 5)]
        assert store.count_events("n1") == 5 == store.count_events()
        ts = store._execute("SELECT ts FROM events WHERE node = 'n1' AND seq = 2").fetchall()
        assert ts == [(MAR,)]
        rows = store._execute("SELECT tableoid::regclass::text FROM events WHERE seq = 1").fetchall()
        assert rows == [("events_p202601",)]
        indexes = {r[0] for r in store._execute("SELECT indexname FROM pg_indexes WHERE tablename = 'events'")}
        assert {"events_node_ts", "events_label_ts", "events_camera_ts", "events_zones", "events_plate"} <= indexes


def test_pg_unpartitioned_table_of_today_migrates_with_its_rows(pg_url):
    if pg_url is None:
        pytest.skip("PostgreSQL at 127.0.0.1:5432 is unreachable")
    import psycopg

    with pg_schema(pg_url) as url:
        schema = url.rsplit("%3D", 1)[1]
        with psycopg.connect(pg_url, autocommit=True) as conn:  # the schema as today's release leaves it
            conn.execute(f"SET search_path = {schema}")
            conn.execute("CREATE TABLE schema_version (version INTEGER NOT NULL)")
            for n, ddls in enumerate(MIGRATIONS, 1):
                for ddl in ddls:
                    conn.execute(ddl)
                conn.execute("INSERT INTO schema_version VALUES (%s)", (n,))
            # seq 5: a time from before validation at the door (#14.11); it lands in the DEFAULT partition
            for seq, ts in ((1, JAN), (2, FEB), (3, FEB), (5, 1e308)):
                e = row("old", seq, min(ts, JAN))
                conn.execute("INSERT INTO events (node, seq, id, type, camera, label, score, ts, box, zones,"
                             " time_ok, received_at, raw) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, 0, %s)",
                             (e.node, e.seq, e.id, e.type, e.camera, e.label, e.score, ts, e.box, e.zones,
                              e.time_ok, e.raw))
        with Store(url) as store:
            assert store.partitioned
            assert store.seqs("old") == [1, 2, 3, 5]
            months = scale.partitions(store)
            assert {202601, 202602} <= set(months) and len(months) <= 5  # its months and the ones ahead
            where = store._execute("SELECT tableoid::regclass::text FROM events WHERE seq = 5").fetchall()
            assert where == [("events_pother",)]
            assert store.write_batch([row("old", 2, FEB), row("old", 4, FEB), row("old", 5, FEB)], [], []) == 1
            assert store.seqs("old") == [1, 2, 3, 4, 5]
        with Store(url) as store:  # a second start changes nothing
            assert store.seqs("old") == [1, 2, 3, 4, 5]


def test_prune_drops_whole_months_and_leaves_no_false_gap(db_url):
    with Store(db_url) as store:
        store.write_batch([row("n1", 1, JAN), row("n1", 2, JAN), row("n1", 3, FEB), row("n1", 5, MAR),
                           row("n2", 1, FEB)], [], [])
        months, dropped = scale.prune(store, 202603)
        assert months == [202601, 202602]
        assert dropped == 4
        assert store.seqs("n1") == [5]
        assert store.seqs("n2") == []
        report = store.gaps("n1")
        assert [(g.first, g.last) for g in report.gaps] == [(4, 4)]  # the real hole stays, 1-3 is no gap
        if store.partitioned:
            assert not {202601, 202602} & set(scale.partitions(store))
            assert store.write_batch([row("n1", 3, FEB)], [], []) == 1  # late redelivery: its month comes back


def plates_fixture(store: Store) -> None:
    store.write_batch([
        row("n1", 1, JAN, type="start", label="motorcycle"),
        row("n1", 2, JAN + 5, type="end", label="motorcycle", id="n1-obj1", plate="29-B1 123.45",
            plate_score=0.97, color="white", color_score=0.8, heading="left", best="b-1"),
        row("n1", 3, JAN + 50, type="end", label="motorcycle", plate="29-B1 123.46", color="white",
            heading="left"),
        row("n1", 4, JAN + 90, type="end", label="car", plate="30A-123.45", color="black", heading="right"),
        row("n2", 1, JAN + 100, type="end", label="motorcycle", plate="29-B1 723.45", color="red",
            heading="left"),
    ], [], [])


def test_search_by_plate_colour_heading(db_url):
    with Store(db_url) as store:
        plates_fixture(store)

        def ids(**kw):
            rows, total = store.search_objects(SearchFilter(**kw))
            return [(r["node"], r["seq"]) for r in rows], total

        assert ids(plate="29B1*45") == ([("n2", 1), ("n1", 2)], 2)
        assert ids(plate="29-b1 123.45") == ([("n1", 2)], 1)
        assert ids(plate="29B112345", label="motorcycle", color="white", heading="left") == ([("n1", 2)], 1)
        assert ids(plate="30A?2345") == ([("n1", 4)], 1)
        assert ids(color="white", heading="left", label="motorcycle") == ([("n1", 3), ("n1", 2)], 2)
        assert ids(heading="right") == ([("n1", 4)], 1)
        # fuzzy: the exact plate first, then within one edit newest first; 30A12345 is four edits away
        rows, total = store.search_objects(SearchFilter(plate="29B112345", fuzzy=True))
        assert [(r["node"], r["seq"], r["plate_distance"]) for r in rows] == [
            ("n1", 2, 0), ("n2", 1, 1), ("n1", 3, 1)]
        assert total == 3
        rows, total = store.search_objects(SearchFilter(plate="29B112345", fuzzy=True, limit=1))
        assert (len(rows), total) == (1, 3)
        obj = store.search_objects(SearchFilter(plate="29B112345"))[0][0]
        assert (obj["plate"], obj["plate_score"], obj["color"], obj["color_score"], obj["heading"], obj["best"]) \
            == ("29-B1 123.45", 0.97, "white", 0.8, "left", "b-1")
        # one row per tracked object: the start (no plate) and the end are one object
        assert obj["seqs"] == [1, 2]


def test_malformed_identification_fields_keep_the_event(db_url):
    """A plate that is no string, a score out of range: the event is stored, those columns stay empty."""
    with Store(db_url) as store:
        bad = row("n1", 1, JAN, plate=12345, plate_score=7, color="", color_score=float("1e400"),
                  heading="x" * 300, best=["b"])
        assert store.write_batch([bad], [], []) == 1
        obj = store.search_objects(SearchFilter())[0][0]
        assert [obj[k] for k in scale.SEARCH_COLUMNS] == [None] * 6
        assert json.loads(store._execute("SELECT raw FROM events").fetchone()[0])["plate"] == 12345


def test_search_cli_plate_json_and_bad_words(tmp_path, capsys):
    url = f"sqlite:///{tmp_path / 'central.db'}"
    with Store(url) as store:
        plates_fixture(store)
    config = tmp_path / "central.toml"
    config.write_text(f'[database]\nurl = "{url}"\n')
    assert main(["central", "search", "-c", str(config), "--plate", "29B1*45", "--color", "white",
                 "--label", "motorcycle", "--heading", "left", "--json"]) == 0
    out, err = capsys.readouterr()
    objs = [json.loads(line) for line in out.splitlines()]
    assert [(o["node"], o["plate"], o["color"], o["heading"], o["best"]) for o in objs] == [
        ("n1", "29-B1 123.45", "white", "left", "b-1")]
    assert "1 tracked object(s)" in err
    assert main(["central", "search", "-c", str(config), "--plate", "29B1*", "--limit", "1"]) == 0
    out, err = capsys.readouterr()
    assert "PLATE" in out.splitlines()[0] and "29-B1 723.45" in out
    assert "2 more, raise --limit" in err
    assert main(["central", "search", "-c", str(config), "--color", "pink"]) == 1
    assert "--color: 'pink' is not one of white" in capsys.readouterr().err
    assert main(["central", "search", "-c", str(config), "--fuzzy"]) == 1
    assert "--fuzzy needs --plate" in capsys.readouterr().err


def test_prune_cli(tmp_path, capsys):
    url = f"sqlite:///{tmp_path / 'central.db'}"
    with Store(url) as store:
        store.write_batch([row("n1", 1, JAN), row("n1", 2, MAR)], [], [])
    config = tmp_path / "central.toml"
    config.write_text(f'[database]\nurl = "{url}"\n')
    assert main(["central", "prune", "-c", str(config), "--before", "2026-02"]) == 0
    assert "dropped 1 event(s) before 2026-02 (months: 2026-01)" in capsys.readouterr().out
    assert main(["central", "prune", "-c", str(config), "--before", "2026-13"]) == 1
    assert "is not a month" in capsys.readouterr().err


@pytest.mark.parametrize("pattern,text,d", [("29B1*45", "29B112345", 0), ("29B112345", "29B112346", 1),
                                            ("29B112345", "29B11234", 1), ("30A?2345", "30A12345", 0),
                                            ("29B112345", "30A12345", 4), ("*", "", 0)])
def test_edit_distance(pattern, text, d):
    assert scale.edit_distance(pattern, text) == d




def test_pg_a_role_that_cannot_create_partitions_loses_nothing(pg_url):
    """central's role owns no table: a month without partition goes to DEFAULT; the owner's start moves it."""
    if pg_url is None:
        pytest.skip("PostgreSQL at 127.0.0.1:5432 is unreachable")
    import uuid

    import psycopg

    role = "central_scale_" + uuid.uuid4().hex[:8]
    with pg_schema(pg_url) as admin_url, psycopg.connect(pg_url, autocommit=True) as admin:
        schema = admin_url.split("search_path%3D", 1)[1]
        Store(admin_url).close()
        admin.execute(f"CREATE ROLE {role} LOGIN")
        try:
            admin.execute(f"GRANT USAGE, CREATE ON SCHEMA {schema} TO {role}")
            admin.execute(f"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA {schema} TO {role}")
            url = admin_url.replace("://postgres@", f"://{role}@").replace("://root@", f"://{role}@")
            with Store(url) as store:
                assert store.write_batch([row("n1", 1, JAN), row("n1", 2, JAN)], [], []) == 2
                assert store.write_batch([row("n1", 1, JAN)], [], []) == 0
            with Store(admin_url) as store:
                assert 202601 in scale.partitions(store)
                where = store._execute("SELECT tableoid::regclass::text, seq FROM events ORDER BY seq").fetchall()
                assert where == [("events_p202601", 1), ("events_p202601", 2)]
                assert store.write_batch([row("n1", 2, JAN), row("n1", 3, JAN)], [], []) == 1
        finally:
            admin.execute(f"DROP OWNED BY {role}")
            admin.execute(f"DROP ROLE {role}")


def test_pg_two_consumers_with_crossing_batches_do_not_deadlock(pg_url):
    """Two writers, each batch touching the same nodes in opposite orders (events, statuses, redeliveries)."""
    if pg_url is None:
        pytest.skip("PostgreSQL at 127.0.0.1:5432 is unreachable")
    import threading

    from edge.central.messages import StatusRow

    nodes = [f"n{i:02d}" for i in range(20)]
    errors: list[BaseException] = []

    def writer(url: str, reverse: bool) -> None:
        order = nodes[::-1] if reverse else nodes
        try:
            with Store(url) as store:
                for b in range(20):
                    events = [row(n, b + 1, JAN + b) for n in order]
                    statuses = [StatusRow(n, "online", JAN, "1", False) for n in reversed(order)]
                    store.write_batch(events, statuses, [])
        except BaseException as err:  # noqa: BLE001 - reported below
            errors.append(err)

    with pg_schema(pg_url) as url:
        Store(url).close()
        threads = [threading.Thread(target=writer, args=(url, r)) for r in (False, True, False, True)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        assert errors == []
        with Store(url) as store:
            assert store.count_events() == 20 * 20


def test_pg_crossing_node_orders_of_two_consumers_do_not_deadlock(pg_url):
    """A: events of n1, then statuses of n3 and n2; B: events of n2, then the status of n1. With n3 held
    elsewhere, A holds n1 and waits; B takes n2 and waits for n1; n3 freed, A wants n2: a deadlock, unless
    each batch takes its node rows in one order first."""
    if pg_url is None:
        pytest.skip("PostgreSQL at 127.0.0.1:5432 is unreachable")
    import threading
    import time

    import psycopg

    from edge.central.messages import StatusRow

    def status(node):
        return StatusRow(node, "online", JAN, "1", False)

    with pg_schema(pg_url) as url:
        with Store(url) as store:
            store.write_batch([row("n1", 1, JAN), row("n2", 1, JAN), row("n3", 1, JAN)], [], [])
        errors: list[BaseException] = []

        def batch(events, statuses):
            try:
                with Store(url) as store:
                    store.write_batch(events, statuses, [])
            except BaseException as err:  # noqa: BLE001 - reported below
                errors.append(err)

        schema = url.rsplit("%3D", 1)[1]
        with psycopg.connect(pg_url) as holder:
            holder.execute(f"SELECT node FROM {schema}.nodes WHERE node = 'n3' FOR UPDATE")
            a = threading.Thread(target=batch, args=([row("n1", 2, JAN)], [status("n3"), status("n2")]))
            a.start()
            time.sleep(1.5)  # A holds n1 and waits for n3
            b = threading.Thread(target=batch, args=([row("n2", 2, JAN)], [status("n1")]))
            b.start()
            time.sleep(1.5)  # B holds n2 (without the fix) and waits for n1
            holder.rollback()
        a.join(30)
        b.join(30)
        assert [type(e).__name__ for e in errors] == []
        with Store(url) as store:
            assert store.seqs("n1") == [1, 2] and store.seqs("n2") == [1, 2]
