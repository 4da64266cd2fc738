"""The broker side of trust (#18.2): firmware_config/mosquitto's ACL with one account per node, on a real mosquitto.

Node A cannot publish as node B (MQTT 5: PUBACK "not authorized"; 3.1.1: the message never arrives at central's
account), central's account cannot publish events, and the requests/acks paths work, end to end with the
node's outbox and central's consumer.
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from support.central import sqlite_url, wait_until

from edge import payload, signing
from edge.broker_account import central_acl_lines, mosquitto_password_line, node_acl_lines
from edge.central.consumer import BrokerSettings, Consumer
from edge.central.store import Store
from edge.clips.evidence import NodeKey
from edge.outbox.publisher import MqttSettings
from edge.outbox.service import OutboxService
from edge.types import Event, EventType

PROJECT = Path(__file__).resolve().parent.parent
FIRMWARE = PROJECT / "firmware_config" / "mosquitto"
NOT_AUTHORIZED = 135


class Client:
    """A real paho client with an account; records what it receives and the PUBACK reason codes (MQTT 5)."""

    def __init__(self, port: int, user: str, password: str, protocol: str = "3.1.1") -> None:
        proto = mqtt.MQTTv5 if protocol == "5" else mqtt.MQTTv311
        self.c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"{user}-{uuid.uuid4().hex[:6]}", protocol=proto)
        if user:
            self.c.username_pw_set(user, password)
        self.got: list[tuple[str, bytes]] = []
        self.acks: dict[int, int] = {}
        self.subscribed = threading.Event()
        self.granted: list[int] = []
        self.connected = threading.Event()
        self.refused: int | None = None

        def on_connect(_c, _u, _f, rc, _p):
            if rc.is_failure:
                self.refused = rc.value
            self.connected.set()

        def on_subscribe(_c, _u, _mid, rcs, _p):
            self.granted = [rc.value for rc in rcs]
            self.subscribed.set()

        self.c.on_connect = on_connect
        self.c.on_subscribe = on_subscribe
        self.c.on_message = lambda _c, _u, m: self.got.append((m.topic, bytes(m.payload)))
        self.c.on_publish = lambda _c, _u, mid, rc, _p: self.acks.__setitem__(mid, rc.value)
        self.c.connect("127.0.0.1", port)
        self.c.loop_start()
        assert self.connected.wait(10)

    def subscribe(self, *topics: str) -> None:
        self.subscribed.clear()
        self.c.subscribe([(t, 1) for t in topics])
        assert self.subscribed.wait(10)

    def publish(self, topic: str, data: bytes, retain: bool = False) -> int:
        info = self.c.publish(topic, data, qos=1, retain=retain)
        wait_until(lambda: info.mid in self.acks, timeout=10, what="PUBACK")
        return self.acks[info.mid]

    def close(self) -> None:
        self.c.disconnect()
        self.c.loop_stop()


@pytest.fixture
def fleet(tmp_path: Path, make_broker):
    """mosquitto with the documented ACL: central's block from firmware_config, node A's from provision."""
    root = tmp_path / "root"
    out = subprocess.run([sys.executable, str(PROJECT / "scripts" / "provision"), "--template", "pi-rtsp-camera",
                          "--node-id", "node-a", "--broker", "127.0.0.1", "--root", str(root), "--no-tls",
                          "--mqtt-account"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    password_file = root / "etc/edgecam/mqtt.password"
    assert oct(password_file.stat().st_mode & 0o777) == "0o600"
    lines = out.stdout.splitlines()
    pw_line = next(line for line in lines if line.startswith("node-a:$7$101$"))
    acl_a = lines[lines.index("user node-a"):lines.index("user node-a") + 6]
    assert acl_a == node_acl_lines("edgecam", "node-a")
    acl_text = (FIRMWARE / "edgecam.acl").read_text()
    assert "\n".join(central_acl_lines("edgecam")) in acl_text  # the documented file is the code's text
    acl = tmp_path / "edgecam.acl"
    acl.write_text(acl_text + "\n" + "\n".join(acl_a + node_acl_lines("edgecam", "node-b")) + "\n")
    passwd = tmp_path / "edgecam.passwd"
    passwd.write_text("\n".join([pw_line, mosquitto_password_line("node-b", "pw-b"),
                                 mosquitto_password_line("central", "pw-central")]) + "\n")
    broker = make_broker(extra=["allow_anonymous false", f"password_file {passwd}", f"acl_file {acl}"], name="acl")
    yield broker, {"node-a": password_file.read_text().strip(), "node-b": "pw-b", "central": "pw-central"}
    broker.stop()


@pytest.mark.parametrize("protocol", ["3.1.1", "5"])
def test_node_a_cannot_publish_as_node_b_and_central_cannot_publish_events(fleet, protocol: str) -> None:
    broker, pw = fleet
    central = Client(broker.port, "central", pw["central"], protocol)
    a = Client(broker.port, "node-a", pw["node-a"], protocol)
    b = Client(broker.port, "node-b", pw["node-b"], protocol)
    try:
        central.subscribe("edgecam/+/events", "edgecam/+/status", "edgecam/+/stats")
        b.subscribe("edgecam/node-b/requests", "edgecam/node-b/acks", "edgecam/node-a/acks")
        a.subscribe("edgecam/node-a/requests", "edgecam/node-a/acks")
        forged = [a.publish(f"edgecam/node-b/{kind}", b"forged by a") for kind in ("events", "status", "stats")]
        forged.append(central.publish("edgecam/node-a/events", b"forged by central"))
        forged.append(a.publish("edgecam/node-b/acks", b"a writes b's acks"))
        forged.append(a.publish("edgecam/node-a/acks", b"a writes its own acks"))
        own = [a.publish(f"edgecam/node-a/{kind}", f"a {kind}".encode()) for kind in ("events", "status", "stats")]
        asks = [central.publish("edgecam/node-a/requests", b"request for a"),
                central.publish("edgecam/node-a/acks", b"acks for a")]
        wait_until(lambda: len(central.got) == 3 and len(a.got) == 2, timeout=10, what="allowed messages")
        time.sleep(0.5)  # a refused message would have arrived by now
    finally:
        for c in (central, a, b):
            c.close()
    assert sorted(central.got) == [("edgecam/node-a/events", b"a events"), ("edgecam/node-a/stats", b"a stats"),
                                   ("edgecam/node-a/status", b"a status")]
    assert sorted(a.got) == [("edgecam/node-a/acks", b"acks for a"), ("edgecam/node-a/requests", b"request for a")]
    assert b.got == []  # nothing forged reached b, and b cannot read a's acks
    if protocol == "5":
        assert forged == [NOT_AUTHORIZED] * len(forged)
        assert own == [0, 0, 0] and asks == [0, 0]


def test_wrong_password_and_anonymous_are_refused(fleet) -> None:
    broker, pw = fleet
    refused = [Client(broker.port, user, password).refused
               for user, password in (("node-a", "wrong"), ("node-a", pw["node-b"]), ("", ""))]
    assert all(rc in (134, 135) for rc in refused), refused  # bad user name or password / not authorized


def test_outbox_and_consumer_work_through_the_acl(fleet, tmp_path: Path) -> None:
    """The node's real outbox (its account) and central's real consumer (central's): events stored, end-to-end
    acks watermark back to the node through the acks topic, signatures verified."""
    broker, pw = fleet
    (tmp_path / "a.pw").write_text(pw["node-a"] + "\n")
    key = NodeKey.load_or_create(tmp_path / "keys")
    url = sqlite_url(tmp_path)
    with Store(url) as store:
        store.register_node("node-a", key.public_text(), None)
    consumer = Consumer(BrokerSettings(port=broker.port, client_id="central-1", username="central",
                                       password=pw["central"]), url, batch_size=50, batch_wait=0.05)
    consumer.start()
    assert consumer.connected.wait(10)
    svc = OutboxService(tmp_path / "outbox.db", "node-a",
                        MqttSettings(port=broker.port, client_id="edgecam-node-a", keepalive=5, connect_timeout=3.0,
                                     username="node-a", password_file=tmp_path / "a.pw", end_to_end=True),
                        signer=signing.MessageSigner(key, "node-a"))
    svc.start()
    try:
        for i in range(10):
            svc.submit(Event(id=f"o{i}", type=EventType.START, camera="gate", label="car", score=0.5,
                             ts=1_767_225_600.0 + i, time=float(i), box=(0.1, 0.1, 0.2, 0.2)))
        wait_until(lambda: consumer.counters.stored == 10, what="ten stored")
        wait_until(lambda: svc.outbox.watermark == 10 and svc.outbox.depth() == 0, what="central's watermark")
    finally:
        svc.stop(5.0)
        consumer.stop()
    assert consumer.counters.malformed == 0
    with Store(url) as store:
        assert store.seqs("node-a") == list(range(1, 11)) and store.node("node-a")["status"] == "offline"
    assert payload.acks_topic("edgecam", "node-a") == "edgecam/node-a/acks"


def test_provision_keeps_the_broker_password_and_refuses_the_central_name(tmp_path: Path) -> None:
    def run(node: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, str(PROJECT / "scripts" / "provision"), "--template", "pi-rtsp-camera",
                               "--node-id", node, "--broker", "127.0.0.1", "--root", str(tmp_path / "root"),
                               "--no-tls", "--mqtt-account"], capture_output=True, text=True, timeout=60)

    first = run("gate-01")
    assert first.returncode == 0, first.stderr
    password = (tmp_path / "root/etc/edgecam/mqtt.password").read_text()
    config = (tmp_path / "root/etc/edgecam/edgecam.toml").read_text()
    assert 'username = "gate-01"' in config and 'password_file = "/etc/edgecam/mqtt.password"' in config
    again = run("gate-01")
    assert again.returncode == 0 and "kept the broker password" in again.stdout
    assert (tmp_path / "root/etc/edgecam/mqtt.password").read_text() == password
    assert sum(line.startswith("gate-01:$7$101$") for line in again.stdout.splitlines()) == 1
    refused = run("central")
    assert refused.returncode == 1 and "central's broker account" in refused.stderr
