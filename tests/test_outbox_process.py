"""The outbox across process death (kill -9), the Last Will, and ``edgecam events tail`` as a real process."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from support.broker import Broker, free_port
from support.mqtt_collector import Collector, retained_status

from edge.outbox.publisher import MqttSettings
from edge.outbox.service import OutboxService
from edge.types import Event, EventType, LineCrossing

ROOT = Path(__file__).resolve().parents[1]
CHILD = Path(__file__).resolve().parent / "support" / "outbox_child.py"
ENV = {**os.environ, "PYTHONPATH": str(ROOT)}


def child(db: Path, port: int, first: int, count: int, mode: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, str(CHILD), str(db), str(port), "n1", str(first), str(count), mode],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV)


def test_kill9_mid_burst_then_restart_delivers_every_durable_event_and_lwt_says_offline(
        tmp_path: Path, broker: Broker) -> None:
    col = Collector(broker.port, client_id="central", persistent=True).start()
    db = tmp_path / "outbox.db"
    p = child(db, broker.port, 0, 2000, "burst")
    durable = -1
    for line in p.stdout:  # "durable <index>" once that many events are committed
        durable = int(line.split()[1])
        if durable >= 400:
            break
    assert durable >= 400
    p.send_signal(signal.SIGKILL)
    p.wait(10)
    p.stdout.close()
    p.stderr.close()
    deadline = time.monotonic() + 10
    status = None
    while time.monotonic() < deadline:
        status = retained_status(broker.port, "n1")
        if status and status["state"] == "offline":
            break
        time.sleep(0.2)
    assert status is not None and status["state"] == "offline", status  # the Last Will, retained
    before = col.seqs()
    assert before, "the child was publishing when it died"
    p = child(db, broker.port, 5000, 30, "drain")  # restart: old rows first, then 30 new events
    out, err = p.communicate(timeout=60)
    assert p.returncode == 0, err[-2000:]
    assert "drained True" in out
    events = col.of_kind("events")
    col.stop()
    ids = {e["id"] for e in events}
    assert {f"obj-{i}" for i in range(durable + 1)} <= ids, "every durable event arrived"
    seq_of = {e["id"]: e["seq"] for e in events}
    top = max(q for i, q in seq_of.items() if int(i.split("-")[1]) < 5000)
    new = sorted(seq_of[f"obj-{i}"] for i in range(5000, 5030))
    assert new == list(range(top + 1, top + 31)), "seq continues after the restart"
    assert set(e["seq"] for e in events) == set(range(1, max(seq_of.values()) + 1)), "no gaps"
    assert retained_status(broker.port, "n1")["state"] == "offline"  # clean stop says offline too


def tail(*args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "edge", "events", "tail", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=ENV, cwd=ROOT)


def test_events_tail_pretty_json_count_and_ctrl_c(tmp_path: Path, broker: Broker) -> None:
    svc = OutboxService(tmp_path / "outbox.db", "n1",
                        MqttSettings(port=broker.port, client_id="edgecam-n1", reconnect_min=0.1, reconnect_max=0.5))
    pretty = tail("--broker", f"127.0.0.1:{broker.port}", "--node", "n1")
    js = tail("--broker", f"127.0.0.1:{broker.port}", "--json", "--count", "2")
    for p in (pretty, js):
        assert "listening on" in p.stderr.readline()  # subscribed
    svc.start()
    svc.submit(Event(id="t1", type=EventType.START, camera="gate", label="person", score=0.81, ts=time.time(),
                     time=0.0, box=(0.1, 0.1, 0.2, 0.3), zones=("door",)))
    svc.submit(Event(id="t1", type=EventType.END, camera="gate", label="person", score=0.9, ts=time.time(),
                     time=1.0, box=(0.1, 0.1, 0.2, 0.3), clip="gate-1", line=LineCrossing("door", "in"),
                     duration=4.0))
    out, err = js.communicate(timeout=15)
    assert js.returncode == 0, err
    objs = [json.loads(line) for line in out.splitlines()]
    assert [(o["id"], o["type"], o["seq"]) for o in objs] == [("t1", "start", 1), ("t1", "end", 2)]
    assert svc.stop(5.0)
    time.sleep(0.5)
    pretty.send_signal(signal.SIGINT)
    out, err = pretty.communicate(timeout=10)
    assert pretty.returncode == 0, err
    lines = out.splitlines()
    assert len(lines) == 2 and "Traceback" not in err
    assert all(w in lines[0] for w in ("n1", "gate", "start", "person", "0.81", "zones=door", "seq=1"))
    assert all(w in lines[1] for w in ("end", "line=door:in", "clip=gate-1", "dur=4.0s", "seq=2"))


def test_events_tail_unreachable_broker_is_one_line() -> None:
    p = tail("--broker", f"127.0.0.1:{free_port()}")
    out, err = p.communicate(timeout=20)
    assert p.returncode == 1
    assert err.strip().count("\n") == 0 and "cannot reach broker" in err, err
