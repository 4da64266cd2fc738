"""Signed messages (#18.1): central stores only what the node's registered key signed; the rest is quarantined.

Real mosquitto, real consumer, real store (SQLite and PostgreSQL). The rogue client is a plain paho client
that may publish anything on the broker (no ACL here: that is the broker side, tests/test_broker_acl.py).
"""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path

import pytest
from support.central import T0, Publisher, event, sqlite_url, wait_until

from edge import payload, signing
from edge.central.consumer import BrokerSettings, Consumer
from edge.central.store import Store
from edge.central.trust import KeyRing, TrustPolicy, Untrusted
from edge.cli import main
from edge.clips.evidence import NodeKey
from edge.node.status import outbox_body
from edge.outbox.publisher import MqttSettings
from edge.outbox.service import OutboxService
from edge.types import Event, EventType


def key(tmp: Path, name: str) -> NodeKey:
    return NodeKey.load_or_create(tmp / f"keys-{name}")


def signed_event(k: NodeKey, node: str, seq: int, **kw) -> bytes:
    """What the node's outbox stores and sends: the event fitted and signed."""
    body = {k2: v for k2, v in json.loads(event(node, seq, **kw)).items() if k2 not in ("node", "seq")}
    return signing.seal_event(body, node, seq, signing.MessageSigner(k, node))[0]


def start(port: int, url: str, policy: TrustPolicy | None = None) -> Consumer:
    c = Consumer(BrokerSettings(port=port, client_id="c-" + uuid.uuid4().hex[:6]), url, batch_size=50,
                 batch_wait=0.05, trust=policy)
    c.start()
    assert c.connected.wait(10), "consumer did not connect"
    return c


def kinds(store: Store) -> dict[str, int]:
    out: dict[str, int] = {}
    for q in store.quarantine(1000):
        out[q["kind"]] = out.get(q["kind"], 0) + 1
    return out


def test_rogue_seqs_first_are_quarantined_and_the_real_events_are_stored(broker, db_url, tmp_path: Path) -> None:
    """The issue's first observation: a rogue's seq 1-3 first made the real node's events "3 duplicates"."""
    real = key(tmp_path, "real")
    with Store(db_url) as store:
        store.register_node("gate", real.public_text(), None)
    consumer = start(broker.port, db_url)
    rogue = Publisher(broker.port)
    try:
        rogue.events("gate", [1, 2, 3], label="person")  # unsigned, the node's topic
        forged = NodeKey.load_or_create(tmp_path / "keys-rogue")
        rogue.raw(payload.events_topic("edgecam", "gate"), signed_event(forged, "gate", 4, label="person"))
        bad = json.loads(signed_event(real, "gate", 5))
        bad["label"] = "person"  # altered after signing
        rogue.raw(payload.events_topic("edgecam", "gate"), payload.dumps(bad))
        rogue.raw(payload.events_topic("edgecam", "gate"), b'{"v":1,"sig":"not base64!"}')
        rogue.flush()
        wait_until(lambda: consumer.counters.unverified == 6, what="six quarantined")
        wanted = {seq: signed_event(real, "gate", seq) for seq in range(1, 6)}
        for data in wanted.values():
            rogue.raw(payload.events_topic("edgecam", "gate"), data)
        rogue.flush()
        wait_until(lambda: consumer.counters.stored == 5, what="the real five stored")
    finally:
        rogue.close()
        consumer.stop()
    assert consumer.counters.duplicates == 0 and consumer.counters.conflicts == 0
    with Store(db_url) as store:
        assert store.seqs("gate") == [1, 2, 3, 4, 5]
        rows = store.search(__import__("edge.central.store", fromlist=["SearchFilter"]).SearchFilter(node="gate"))
        assert {r["label"] for r in rows} == {"car"}
        assert kinds(store) == {"unsigned": 3, "bad-signature": 3}
        assert store.node("gate")["quarantined"] == 6
        faults = {(f["node"], f["kind"]): f["count"] for f in store.trust_faults()}
    assert faults == {("gate", "unsigned"): 3, ("gate", "bad-signature"): 3}


def test_rogue_huge_seq_and_fake_status_and_stats_leave_no_trace(broker, tmp_path: Path, capsys) -> None:
    """Rogue seq 2^53 (and 2^63-1), a retained "online" and fake stats: the node stays as it really is."""
    url = sqlite_url(tmp_path)
    real = key(tmp_path, "real")
    with Store(url) as store:
        store.register_node("gate", real.public_text(), None)
    consumer = start(broker.port, url)
    pub = Publisher(broker.port)
    try:
        pub.raw(payload.events_topic("edgecam", "gate"), signed_event(real, "gate", 1))
        pub.events("gate", [payload_seq := 2**53])
        huge = event("gate", 5).replace(b'"seq":5', b'"seq":9223372036854775807')
        pub.raw(payload.events_topic("edgecam", "gate"), huge)
        pub.raw(payload.status_topic("edgecam", "gate"), payload.status_message("online", time.time(), "9.9"),
                retain=True)
        pub.raw(payload.stats_topic("edgecam", "gate"), payload.dumps({"v": 1, "node": "gate", "ts": time.time(),
                                                                     "outbox": {"depth": 0}}), qos=0)
        pub.flush()
        wait_until(lambda: consumer.counters.stored == 1 and consumer.counters.unverified == 4, what="verdicts")
    finally:
        pub.close()
        consumer.stop()
    assert payload_seq == 2**53
    with Store(url) as store:
        assert store.seqs("gate") == [1]
        report = store.gaps("gate")
        node = store.node("gate")
        assert kinds(store) == {"unsigned": 4}  # 2^53, 2^63-1, the status, the stats: unsigned comes first
    assert report.max_seq == 1 and report.gaps == ()
    assert node["status"] is None and node["stats"] is None
    cfg = tmp_path / "central.toml"
    cfg.write_text(f'[database]\nurl = "{url}"\n')
    assert main(["central", "status", "-c", str(cfg)]) == 1
    out = capsys.readouterr().out
    assert "TRUST gate: 4 unsigned message(s) quarantined" in out
    assert "ALARM" not in out and "9223372036854775806" not in out
    assert main(["central", "status", "-c", str(cfg), "--json"]) == 1
    (line,) = capsys.readouterr().out.splitlines()
    assert [(f["kind"], f["count"]) for f in json.loads(line)["trust_faults"]] == [("unsigned", 4)]
    assert main(["central", "ack-trust", "-c", str(cfg), "--reason", "rogue client on the LAN, blocked",
                 "--by", "ops"]) == 0
    assert main(["central", "status", "-c", str(cfg)]) == 0
    assert "TRUST" not in capsys.readouterr().out


def test_a_second_message_for_a_stored_seq_is_a_conflict_not_a_duplicate(broker, db_url, tmp_path: Path) -> None:
    real = key(tmp_path, "real")
    with Store(db_url) as store:
        store.register_node("gate", real.public_text(), None)
    consumer = start(broker.port, db_url)
    pub = Publisher(broker.port)
    first = signed_event(real, "gate", 7)
    other = signed_event(real, "gate", 7, label="truck")  # same key, same seq, other content (a reset outbox)
    try:
        pub.raw(payload.events_topic("edgecam", "gate"), first)
        pub.flush()
        wait_until(lambda: consumer.counters.stored == 1, what="first stored")
        pub.raw(payload.events_topic("edgecam", "gate"), first)  # a redelivery: a duplicate
        pub.raw(payload.events_topic("edgecam", "gate"), other)
        pub.flush()
        wait_until(lambda: consumer.counters.conflicts == 1 and consumer.counters.duplicates == 1, what="verdicts")
    finally:
        pub.close()
        consumer.stop()
    with Store(db_url) as store:
        assert store.count_events() == 1
        (row,) = store.search(__import__("edge.central.store", fromlist=["SearchFilter"]).SearchFilter())
        assert row["label"] == "car"
        (q,) = store.quarantine()
        assert q["kind"] == "conflict" and "seq 7" in q["reason"] and json.loads(q["payload"])["label"] == "truck"
        assert [(f["kind"], f["count"]) for f in store.trust_faults()] == [("conflict", 1)]


def test_a_signing_node_is_stored_end_to_end(broker, tmp_path: Path) -> None:
    """The node's own outbox and publisher sign events, the online status and stats; central verifies all."""
    url = sqlite_url(tmp_path)
    k = key(tmp_path, "n1")
    with Store(url) as store:
        store.register_node("n1", k.public_text(), None)
    consumer = start(broker.port, url)
    svc = OutboxService(tmp_path / "outbox.db", "n1", MqttSettings(port=broker.port, client_id="edgecam-n1",
                                                                   keepalive=5, connect_timeout=3.0),
                        signer=signing.MessageSigner(k, "n1"))
    svc.start()
    try:
        zones = [f"é{z:02d}" + "x" * 57 for z in range(20)]
        for i in range(5):
            svc.submit(Event(id=f"o{i}", type=EventType.START, camera="gate", label="car", score=0.5, ts=T0 + i,
                             time=float(i), box=(0.1, 0.1, 0.2, 0.2), zones=tuple(zones), color="red",
                             color_score=0.9))
        wait_until(lambda: consumer.counters.stored == 5 and consumer.counters.statuses >= 1, what="stored")
        svc.publish_stats({"fps": {"gate": 5.0}, "outbox": outbox_body(svc.stats())})
        wait_until(lambda: consumer.counters.stats >= 1, what="stats stored")
    finally:
        assert svc.stop(5.0)
        consumer.stop()
    assert consumer.counters.malformed == 0
    with Store(url) as store:
        assert store.seqs("n1") == [1, 2, 3, 4, 5]
        node = store.node("n1")
        raws = [json.loads(r["payload"]) for r in store.quarantine()]
        sizes = [len(row[0].encode()) for row in store._execute("SELECT raw FROM events").fetchall()]
    assert raws == [] and node["status"] == "offline" and json.loads(node["stats"])["sig"]
    assert max(sizes) <= payload.MAX_EVENT_BYTES and min(sizes) > 1024 - 97 - 64  # fitted, signed


def test_the_will_is_signed_when_it_is_fixed() -> None:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    k = NodeKey(Ed25519PrivateKey.generate())
    from edge.outbox.publisher import Publisher as NodePublisher

    p = NodePublisher(MqttSettings(), "n1", None, "1.0", signer=signing.MessageSigner(k, "n1"))  # type: ignore[arg-type]
    will = json.loads(p._status("offline", T0))
    assert will["node"] == "n1" and will["ts"] == T0
    assert signing.verify("status", "n1", will, [k.public_key()])
    assert not signing.verify("stats", "n1", will, [k.public_key()])  # bound to its topic kind
    assert not signing.verify("status", "n2", will, [k.public_key()])  # and to its node


def test_rotation_keeps_old_keys_for_older_messages(tmp_path: Path, capsys) -> None:
    url = sqlite_url(tmp_path)
    old, new = key(tmp_path, "old"), key(tmp_path, "new")
    cfg = tmp_path / "central.toml"
    cfg.write_text(f'[database]\nurl = "{url}"\n')
    assert main(["central", "register-node", "-c", str(cfg), "--node", "gate", "--pubkey", old.public_text()]) == 0
    assert "signs all its messages" in capsys.readouterr().out
    assert main(["central", "register-node", "-c", str(cfg), "--node", "gate", "--pubkey", new.public_text(),
                 "--from", str(T0 + 100)]) == 0
    assert "the previous key stays valid before that" in capsys.readouterr().out
    ring = KeyRing(TrustPolicy())
    with Store(url) as store:
        ring.load(store.node_keys())
        assert store.node("gate")["pubkey"] == new.public_text()

    def check(k: NodeKey, ts: float) -> bool:
        msg = json.loads(signed_event(k, "gate", 3, ts=ts))
        try:
            return ring.check("events", "gate", msg)
        except Untrusted as err:
            assert err.kind == "bad-signature"
            return False

    assert check(old, T0 + 50) and check(new, T0 + 50)  # before the rotation: replayed outbox events verify
    assert check(new, T0 + 200) and not check(old, T0 + 200)  # after it the old key signs nothing


def test_migration_window_accepts_only_nodes_with_no_key(tmp_path: Path) -> None:
    k = key(tmp_path, "k")
    unsigned = json.loads(event("old-node", 1))
    ring = KeyRing(TrustPolicy(accept_unsigned_until=time.time() + 3600))
    ring.load({"gate": [(0.0, k.public_text())]})
    assert ring.check("events", "old-node", unsigned) is False and ring.accepted_unverified == 1
    with pytest.raises(Untrusted, match="has a registered key"):
        ring.check("events", "gate", json.loads(event("gate", 1)))
    closed = KeyRing(TrustPolicy(accept_unsigned_until=time.time() - 1))
    with pytest.raises(Untrusted, match="no registered key") as err:
        closed.check("events", "old-node", unsigned)
    assert err.value.kind == "unsigned"
    with pytest.raises(Untrusted) as err:
        KeyRing(TrustPolicy()).check("events", "gate", json.loads(signed_event(k, "gate", 1)))
    assert err.value.kind == "unregistered"


def test_worst_case_counts_the_signature() -> None:
    plain = len(payload.dumps({"a": 1, "sig": "x" * 88})) - len(payload.dumps({"a": 1}))
    assert payload.SIGNATURE_FIELD_BYTES == signing.SIG_FIELD_BYTES == plain == 97
    size = payload.worst_case_event_bytes("n" * 64, "c" * 32, ["car"], ["z"], [])
    k = NodeKey(__import__("cryptography.hazmat.primitives.asymmetric.ed25519",
                           fromlist=["Ed25519PrivateKey"]).Ed25519PrivateKey.generate())
    body = {"v": 1, "id": "c" * 32 + "-" + "f" * 11 + "-" + "9" * 12, "camera": "c" * 32, "type": "update",
            "label": "car", "score": 0.999, "ts": 9_999_999_999.999, "box": [0.9999] * 4, "zones": ["z"],
            "clip": "c" * 32 + "-20261202T015409Z-ffffff", "time_ok": False, "duration": 9_999_999.99,
            **payload._OPTIONAL_RESERVE}
    sealed, trimmed = signing.seal_event(body, "n" * 64, 2**53, signing.MessageSigner(k, "n" * 64))
    assert trimmed == () and len(sealed) == size


def test_a_running_consumer_retires_the_old_key_after_a_rotation(broker, tmp_path: Path, monkeypatch) -> None:
    from edge.central import trust

    monkeypatch.setattr(trust, "MAX_AGE", 0.1)
    url = sqlite_url(tmp_path)
    old, new = key(tmp_path, "old"), key(tmp_path, "new")
    with Store(url) as store:
        store.register_node("gate", old.public_text(), None)
    consumer = start(broker.port, url)
    pub = Publisher(broker.port)
    try:
        pub.raw(payload.events_topic("edgecam", "gate"), signed_event(old, "gate", 1, ts=T0 + 10))
        pub.flush()
        wait_until(lambda: consumer.counters.stored == 1, what="first stored")
        with Store(url) as store:  # `central register-node --pubkey NEW --from T0+100` while run runs
            store.register_node("gate", new.public_text(), None, valid_from=T0 + 100)
        time.sleep(0.3)
        pub.raw(payload.events_topic("edgecam", "gate"), signed_event(old, "gate", 2, ts=T0 + 50))  # before: valid
        pub.raw(payload.events_topic("edgecam", "gate"), signed_event(old, "gate", 3, ts=T0 + 200))  # after: not
        pub.raw(payload.events_topic("edgecam", "gate"), signed_event(new, "gate", 4, ts=T0 + 200))
        pub.flush()
        wait_until(lambda: consumer.counters.stored == 3 and consumer.counters.unverified == 1, what="verdicts")
    finally:
        pub.close()
        consumer.stop()
    with Store(url) as store:
        assert store.seqs("gate") == [1, 2, 4]
        (q,) = store.quarantine()
    assert q["kind"] == "bad-signature" and json.loads(q["payload"])["seq"] == 3
