"""Delivery through a real mosquitto: schemas, broker outages, broker kill -9, TLS + passwords, idle writes."""

from __future__ import annotations

import json
import logging
import ssl
import subprocess
import time
from pathlib import Path

import jsonschema
import pytest
from support.broker import Broker
from support.mqtt_collector import Collector

from edge.check.broker import probe_broker
from edge.check.result import FAIL, OK
from edge.node.status import outbox_body
from edge.outbox.publisher import MqttSettings
from edge.outbox.service import OutboxService
from edge.types import Event, EventType, LineCrossing

SCHEMA_DIR = Path(__file__).resolve().parents[1] / "edge" / "schema"


def settings(port: int, **kw) -> MqttSettings:
    base = dict(port=port, client_id="edgecam-n1", keepalive=5, reconnect_min=0.1, reconnect_max=0.5,
                connect_timeout=3.0)
    base.update(kw)
    return MqttSettings(**base)


def event(i: int, **kw) -> Event:
    base = dict(id=f"obj-{i}", type=EventType.START, camera="gate", label="car", score=0.9, ts=1.7e9 + i,
                time=float(i), box=(0.1, 0.2, 0.3, 0.4))
    base.update(kw)
    return Event(**base)


def wait_until(pred, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(0.05)
    return pred()


def test_every_message_validates_against_the_schemas(tmp_path: Path, broker: Broker) -> None:
    col = Collector(broker.port).start()
    svc = OutboxService(tmp_path / "outbox.db", "n1", settings(broker.port))
    svc.start()
    svc.submit(event(1))
    svc.submit(event(1, type=EventType.UPDATE, zones=("drive", "gate"), line=LineCrossing("gate", "in")))
    svc.submit(event(1, type=EventType.END, clip="gate-20260101-000001", duration=12.5, time_ok=False))
    assert wait_until(lambda: svc.publisher.connected and svc.depth() == 0, 10)
    svc.publish_stats({"fps": {"gate": 5.0}, "stage_ms": {"detect": 12.0}, "cpu_temp_c": None,
                       "outbox": outbox_body(svc.stats())})
    assert wait_until(lambda: col.of_kind("stats"), 5)
    assert svc.stop(5.0) is True
    assert wait_until(lambda: any(s["state"] == "offline" for s in col.of_kind("status")), 5)
    col.stop()
    schemas = {k: json.loads((SCHEMA_DIR / f"{k}.schema.json").read_text()) for k in ("events", "status", "stats")}
    raw = col.raw()
    assert {t.rsplit("/", 1)[1] for t, _, _ in raw} == {"events", "status", "stats"}
    for topic, payload, _ in raw:
        assert len(payload) <= 1024 and b" " not in payload
        jsonschema.validate(json.loads(payload), schemas[topic.rsplit("/", 1)[1]])
    events = col.of_kind("events")
    assert [e["type"] for e in events] == ["start", "update", "end"] and [e["seq"] for e in events] == [1, 2, 3]
    assert events[1]["line"] == {"name": "gate", "dir": "in"} and events[2]["clip"] == "gate-20260101-000001"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({**events[0], "extra": 1}, schemas["events"])


def test_broker_down_for_the_whole_run_then_everything_arrives_in_order(tmp_path: Path, make_broker) -> None:
    b = make_broker()
    col = Collector(b.port, client_id="central", persistent=True).start()  # central's persistent session
    col.stop()
    b.stop()
    svc = OutboxService(tmp_path / "outbox.db", "n1", settings(b.port))
    svc.start()
    for i in range(300):
        svc.submit(event(i))
    assert svc.flush(10)
    time.sleep(0.5)
    assert svc.depth() == 300 and not svc.publisher.connected
    assert svc.stop(0.5) is False  # end of run while offline: undelivered rows stay
    b.start()
    col = Collector(b.port, client_id="central", persistent=True).start()
    svc = OutboxService(tmp_path / "outbox.db", "n1", settings(b.port))  # next start delivers them
    svc.start()
    assert svc.stop(20.0) is True
    assert col.wait_seqs(set(range(1, 301)), 10) == set()
    col.stop()
    seqs = col.seqs()
    assert seqs == list(range(1, 301)), "contiguous and in order"
    assert [e["id"] for e in col.of_kind("events")] == [f"obj-{i}" for i in range(300)]


def test_broker_kill9_three_times_during_2000_event_burst_loses_nothing(tmp_path: Path, make_broker) -> None:
    # mosquitto saves its persistence file every 200 changes: a kill -9 loses what it acked since the last save,
    # which the publisher's replay of recently acked events must make good (duplicates allowed, gaps not).
    broker = make_broker(["autosave_interval 200"])
    col = Collector(broker.port, client_id="central", persistent=True).start()
    svc = OutboxService(tmp_path / "outbox.db", "n1", settings(broker.port))
    svc.start()
    for i in range(2000):
        svc.submit(event(i))
    for k in (1, 2, 3):
        wait_until(lambda k=k: len(col.seqs()) >= 300 * k and svc.publisher.connected, 30)
        assert len(set(col.seqs())) < 2000, "the kill must land mid-burst"
        broker.kill()
        time.sleep(0.3)
        broker.start()
    missing = col.wait_seqs(set(range(1, 2001)), 60)
    drained = svc.stop(10.0)
    col.stop()
    assert missing == set(), f"{len(missing)} seqs lost, e.g. {sorted(missing)[:10]}"
    assert drained and svc.publisher.connects_total >= 4
    seqs = col.seqs()
    assert max(seqs) == 2000 and len(seqs) >= 2000  # duplicates allowed


def test_events_acked_just_before_a_broker_crash_are_replayed(tmp_path: Path, make_broker) -> None:
    """A PUBACK only means "in the broker's RAM": mosquitto killed before its next autosave forgets the events
    queued for an offline subscriber. The publisher resends what was acked in the last replay_window s."""
    broker = make_broker()
    col = Collector(broker.port, client_id="central", persistent=True).start()
    col.stop()
    broker.stop()  # a clean stop saves central's session
    broker.extra = ["autosave_interval 100000"]  # from now on nothing is saved before the crash
    broker.start()
    # a wide window: this test is about the replay, not about how fast a loaded machine acks 100 events
    svc = OutboxService(tmp_path / "outbox.db", "n1", settings(broker.port, replay_window=60.0))
    svc.start()
    for i in range(100):
        svc.submit(event(i))
    assert wait_until(lambda: svc.publisher.connected and svc.depth() == 0, 10)  # all acked by the broker
    broker.kill()
    broker.start()
    assert wait_until(lambda: svc.publisher.replayed_total >= 100 and svc.publisher.connected, 10)
    assert svc.stop(10.0)
    assert svc.publisher.replay_pending == 0  # stop waited for the replays' PUBACKs
    col = Collector(broker.port, client_id="central", persistent=True).start()
    missing = col.wait_seqs(set(range(1, 101)), 10)
    col.stop()
    assert missing == set(), f"{len(missing)} acked events lost in the broker crash"


def make_certs(d: Path) -> dict[str, Path]:
    """A CA, a server cert for DNS name localhost only, and a client cert, made with the openssl CLI."""
    d.mkdir(parents=True, exist_ok=True)

    def ssl_(*args: str) -> None:
        subprocess.run(["openssl", *args], check=True, cwd=d, capture_output=True)

    ssl_("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.crt", "-days", "2",
         "-subj", "/CN=edgecam-test-ca")
    (d / "san.ext").write_text("subjectAltName=DNS:localhost\n")
    for name, cn in (("server", "localhost"), ("client", "n1")):
        ssl_("req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key", "-out", f"{name}.csr",
             "-subj", f"/CN={cn}")
        ssl_("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
             "-out", f"{name}.crt", "-days", "2", "-extfile", "san.ext")
    return {n: d / n for n in ("ca.crt", "server.crt", "server.key", "client.crt", "client.key")}


def test_tls_with_client_cert_and_password_file_and_wrong_password(tmp_path: Path, make_broker, caplog) -> None:
    certs = make_certs(tmp_path / "pki")
    pw = tmp_path / "passwd"
    subprocess.run(["mosquitto_passwd", "-c", "-b", str(pw), "n1", "s3cret-pw"], check=True, capture_output=True)
    pw.chmod(0o644)
    b = make_broker([
        f"cafile {certs['ca.crt']}", f"certfile {certs['server.crt']}", f"keyfile {certs['server.key']}",
        "require_certificate true", "allow_anonymous false", f"password_file {pw}",
    ])
    pwfile = tmp_path / "mqtt.pw"
    pwfile.write_text("wrong-pw\n")
    s = settings(b.port, tls=True, ca_file=certs["ca.crt"], cert_file=certs["client.crt"],
                 key_file=certs["client.key"], username="n1", password_file=pwfile, protocol="5", host="localhost")
    wrong = probe_broker(s, 5.0)  # what `edgecam check` says, with the daemon's own settings
    assert wrong.status == FAIL and "refused the login" in wrong.detail
    svc = OutboxService(tmp_path / "outbox.db", "n1", s)
    with caplog.at_level(logging.INFO, logger="edge.outbox"):
        svc.start()
        for i in range(20):
            svc.submit(event(i))
        time.sleep(2.5)  # many retries at 0.1-0.5 s backoff
        refused = [r.getMessage() for r in caplog.records if "refused the connection" in r.getMessage()]
        assert len(refused) == 1, refused
        assert "password_file" in refused[0] and svc.publisher._thread.is_alive()
        assert svc.depth() == 20, "events are kept while the broker refuses us"
        col = Collector(b.port, tls=_client_ctx(certs), username="n1", password="s3cret-pw", host="localhost").start()
        pwfile.write_text("s3cret-pw\n")  # fixed by the installer: picked up on the next retry
        assert col.wait_seqs(set(range(1, 21)), 10) == set()
        assert svc.stop(5.0) is True
    col.stop()
    assert "s3cret-pw" not in caplog.text and "wrong-pw" not in caplog.text
    assert probe_broker(s, 5.0).status == OK
    by_ip = MqttSettings(**{**s.__dict__, "host": "127.0.0.1"})  # same broker, not the cert's name
    untrusted = probe_broker(by_ip, 5.0)
    assert untrusted.status == FAIL and "certificate not trusted" in untrusted.detail, "hostname check must be on"


def _client_ctx(certs: dict[str, Path]) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(certs["ca.crt"]))
    ctx.load_cert_chain(str(certs["client.crt"]), str(certs["client.key"]))
    return ctx


def test_idle_service_writes_nothing(tmp_path: Path, broker: Broker) -> None:
    svc = OutboxService(tmp_path / "outbox.db", "n1", settings(broker.port))
    svc.start()
    for i in range(5):
        svc.submit(event(i))
    assert wait_until(lambda: svc.publisher.connected and svc.depth() == 0, 10)
    time.sleep(0.3)
    files = [tmp_path / n for n in ("outbox.db", "outbox.db-wal")]

    def snap() -> list[tuple[int, int]]:
        return [(f.stat().st_mtime_ns, f.stat().st_size) for f in files]

    before = snap()
    time.sleep(3.0)
    assert snap() == before
    assert svc.stop(2.0) is True
