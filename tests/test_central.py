"""The central consumer against a real mosquitto and real SQLite / PostgreSQL stores."""

from __future__ import annotations

import json
import time
import uuid

from support.central import LEGACY, Publisher, event, sqlite_url, wait_until

from edge import payload
from edge.central.consumer import BrokerSettings, Consumer, subscriptions
from edge.central.fleet import fleet_rows, format_fleet
from edge.central.store import Store


def start_consumer(port: int, url: str, **kw) -> Consumer:
    kw_trust = kw.pop("trust", LEGACY)
    settings = BrokerSettings(port=port, client_id=kw.pop("client_id", "central-" + uuid.uuid4().hex[:6]), **kw)
    consumer = Consumer(settings, url, batch_size=50, batch_wait=0.05, trust=kw_trust)
    consumer.start()
    assert consumer.connected.wait(10), "consumer did not connect"
    return consumer


def test_subscriptions_come_from_payload_topics():
    assert subscriptions("site/a", None) == [
        (payload.events_topic("site/a", "+"), 1), (payload.status_topic("site/a", "+"), 1),
        (payload.stats_topic("site/a", "+"), 0)]
    assert subscriptions("edgecam", "g")[0] == ("$share/g/edgecam/+/events", 1)


def test_redeliveries_and_outage_end_with_one_row_per_seq(broker, db_url):
    """3 nodes, duplicates forced, node-c loses 11..20 while the consumer is down, then its outbox drains."""
    client_id = "central-persist-" + uuid.uuid4().hex[:6]
    consumer = start_consumer(broker.port, db_url, client_id=client_id)
    pub = Publisher(broker.port)
    try:
        for node in ("node-a", "node-b", "node-c"):
            pub.raw(payload.status_topic("edgecam", node), payload.status_message("online", time.time(), "0.1.0"),
                    retain=True)
        pub.raw(payload.stats_topic("edgecam", "node-a"),
                json.dumps({"fps": {"cam": 5.0}, "outbox": {"depth": 7},
                            "disk": {"free_bytes": 12e9, "used_bytes": 4e9}, "time_ok": False}).encode(), qos=0)
        pub.events("node-a", list(range(1, 31)), time_ok=False)  # node-a's clock is not synchronised
        pub.events("node-b", list(range(1, 31)) + list(range(5, 11)))  # redelivered 5..10
        pub.events("node-c", list(range(1, 11)) + list(range(21, 31)) + [21, 22])  # outage: 11..20 missing
        pub.flush()
        with Store(db_url) as store:
            wait_until(lambda: store.count_events() == 80, what="80 stored events")
            wait_until(lambda: consumer.counters.duplicates == 8, what="8 duplicates counted")
            assert store.seqs("node-a") == store.seqs("node-b") == list(range(1, 31))
            assert store.seqs("node-c") == list(range(1, 11)) + list(range(21, 31))
            wait_until(lambda: consumer.counters.stats == 1 and consumer.counters.statuses == 3, what="status+stats")

            # The gap is reported, and only becomes an alarm once it has stayed past alarm_after.
            now = time.time()
            rows = {r["node"]: r for r in fleet_rows(store, now, alarm_after=300, stale_after=600)}
            assert rows["node-c"]["contiguous_seq"] == 10 and rows["node-c"]["max_seq"] == 30
            assert [(m["first"], m["last"], m["alarm"]) for m in rows["node-c"]["missing"]] == [(11, 20, False)]
            later = {r["node"]: r for r in fleet_rows(store, now + 301, alarm_after=300, stale_after=1e9)}
            assert later["node-c"]["alarm"] and not later["node-a"]["alarm"]
            assert "11-20 ALARM" in format_fleet(list(later.values()), now=now + 301)
            assert rows["node-a"]["outbox"] == 7 and rows["node-a"]["time_ok"] is False
            assert rows["node-b"]["time_ok"] is True
            assert rows["node-b"]["state"] == "online" and rows["node-b"]["missing"] == []

        # Consumer down; node-c's outbox drains (with a duplicate); the persistent session holds it all.
        consumer.stop()
        pub.events("node-c", list(range(11, 21)) + [15])
        pub.raw(payload.status_topic("edgecam", "node-b"), payload.status_message("offline", time.time(), "0.1.0"),
                retain=True)
        pub.flush()
        consumer = start_consumer(broker.port, db_url, client_id=client_id)
        with Store(db_url) as store:
            wait_until(lambda: store.count_events() == 90, what="90 stored events after the drain")
            wait_until(lambda: store.node("node-b")["status"] == "offline", what="node-b offline")
            assert store.seqs("node-c") == list(range(1, 31))
            rows = {r["node"]: r for r in fleet_rows(store, time.time() + 1000, alarm_after=300, stale_after=1e9)}
            assert rows["node-c"]["missing"] == [] and rows["node-c"]["contiguous_seq"] == 30
            assert not any(r["alarm"] for r in rows.values())
            assert rows["node-b"]["state"] == "offline"
    finally:
        consumer.stop()
        pub.close()


def test_shared_subscription_splits_the_stream(broker, db_url):
    """Two MQTT 5 consumers in $share/g split 2 nodes x 150 events: each gets some, the store gets each once."""
    url = db_url
    consumers = [start_consumer(broker.port, url, protocol="5", shared_group="g", client_id=f"c{i}")
                 for i in (1, 2)]
    pub = Publisher(broker.port)
    try:
        pub.events("node-a", list(range(1, 151)))
        pub.events("node-b", list(range(1, 151)))
        pub.flush()
        with Store(url) as store:
            wait_until(lambda: store.count_events() == 300, what="300 stored events")
            assert store.seqs("node-a") == store.seqs("node-b") == list(range(1, 151))
        counts = [c.counters.stored for c in consumers]
        assert all(n > 0 for n in counts), counts
        assert sum(counts) == 300 and sum(c.counters.duplicates for c in consumers) == 0
    finally:
        for c in consumers:
            c.stop()
        pub.close()


def test_malformed_payloads_are_counted_and_skipped(broker, tmp_path):
    url = sqlite_url(tmp_path)
    consumer = start_consumer(broker.port, url)
    pub = Publisher(broker.port)
    try:
        topic = payload.events_topic("edgecam", "node-a")
        pub.raw(topic, b"\xff not json")
        pub.raw(topic, event("node-b", 1))  # payload claims another node than its topic
        pub.raw(topic, event("node-a", 2).replace(b'"type":"start"', b'"type":"explode"'))
        pub.raw(topic, b'{"v":1,"seq":3}')
        pub.raw(payload.status_topic("edgecam", "node-a"), b'{"state":"sleepy"}')
        pub.raw(topic, event("node-a", 6).decode().encode("utf-16"))
        pub.raw(topic, event("node-a", 7).replace(b'"label":"car"', b'"label":"c\\u0000r"'))
        pub.raw(topic, event("node-a", 4))
        pub.flush()
        with Store(url) as store:
            wait_until(lambda: store.count_events() == 1, what="the valid event")
            wait_until(lambda: consumer.counters.malformed == 7, what="7 malformed counted")
            pub.events("node-a", [5])
            pub.flush()
            wait_until(lambda: store.count_events() == 2, what="consumer still storing")
            assert store.seqs("node-a") == [4, 5]
    finally:
        consumer.stop()
        pub.close()


def refuse_label(url: str, label: str) -> None:
    """Make the database itself refuse one kind of row (a value it cannot store)."""
    Store(url).close()  # creates the schema
    if url.startswith("sqlite"):
        import sqlite3

        with sqlite3.connect(url[len("sqlite:///"):]) as conn:
            conn.execute(f"CREATE TRIGGER refuse BEFORE INSERT ON events WHEN NEW.label = '{label}'"
                         " BEGIN SELECT RAISE(ABORT, 'refused'); END")
    else:
        import psycopg

        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(f"ALTER TABLE events ADD CONSTRAINT refuse CHECK (label <> '{label}')")


def test_a_row_the_database_refuses_is_quarantined_not_wedging_the_stream(broker, db_url):
    refuse_label(db_url, "poison")
    consumer = start_consumer(broker.port, db_url)
    pub = Publisher(broker.port)
    try:
        pub.events("node-a", [1, 2])
        pub.events("node-a", [3], label="poison")
        pub.events("node-a", [4, 5])
        pub.flush()
        with Store(db_url) as store:
            wait_until(lambda: store.count_events() == 4, what="the 4 storable events")
            assert store.seqs("node-a") == [1, 2, 4, 5]
            kept = store.quarantine()
            assert len(kept) == 1 and kept[0]["reason"].startswith("the database refuses it")
            assert json.loads(kept[0]["payload"])["seq"] == 3 and kept[0]["node"] == "node-a"
        # a refused value is the row's fault: quarantined at once, no retry of a database that works
        assert consumer.counters.malformed == 1 and consumer.counters.db_errors == 0
    finally:
        consumer.stop()
        pub.close()
