"""The durable outbox store and the outbox's pure decisions (no broker)."""

from __future__ import annotations

import json
import logging
import sqlite3
from pathlib import Path

import pytest

from edge.cli import UserError
from edge.config import MqttConfig
from edge.node.build import limits_from_config, settings_from_config
from edge.outbox.publisher import backoff_delay
from edge.outbox.store import Outbox, OutboxLimits, rows_to_evict
from edge.outbox.tail import format_event, parse_broker


def body(i: int, pad: int = 0) -> dict:
    return {"v": 1, "id": f"o{i}", "camera": "gate", "type": "start", "label": "car", "score": 0.5, "ts": 1.0 + i,
            "box": [0.1, 0.1, 0.2, 0.2], "zones": ["z" * pad] if pad else [], "clip": None, "time_ok": True}


def test_seq_strictly_increasing_and_survives_reopen_even_when_empty(tmp_path: Path) -> None:
    ob = Outbox(tmp_path / "o.db", "n1")
    assert ob.enqueue_many([body(i) for i in range(5)]) == [1, 2, 3, 4, 5]
    assert ob.enqueue_many([body(5)]) == [6]
    rows = ob.pending(100)
    assert [s for s, _ in rows] == [1, 2, 3, 4, 5, 6]
    assert b'"node":"n1","seq":1}' in rows[0][1]
    assert ob.ack([1, 2, 3, 4, 5, 6]) == 6 and ob.depth() == 0
    ob.close()
    ob = Outbox(tmp_path / "o.db", "n1")
    assert ob.enqueue_many([body(9)]) == [7], "the counter lives in the db, not in the rows"
    ob.close()


def test_pending_is_oldest_first_with_after_and_ack_only_removes_given(tmp_path: Path) -> None:
    ob = Outbox(tmp_path / "o.db", "n1")
    ob.enqueue_many([body(i) for i in range(10)])
    assert [s for s, _ in ob.pending(3)] == [1, 2, 3]
    assert [s for s, _ in ob.pending(3, after=3)] == [4, 5, 6]
    ob.ack([2, 4, 99])
    assert [s for s, _ in ob.pending(100)] == [1, 3, 5, 6, 7, 8, 9, 10]
    assert ob.depth() == 8 and ob.bytes() == sum(len(m) for _, m in ob.pending(100))
    ob.close()


def test_durability_settings(tmp_path: Path) -> None:
    ob = Outbox(tmp_path / "o.db", "n1")
    assert ob._db.execute("PRAGMA synchronous").fetchone()[0] == 2, "FULL: a returned enqueue survives power loss"
    ob.close()
    db = sqlite3.connect(tmp_path / "o.db")
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    db.close()


def test_eviction_by_rows_is_oldest_first_counted_and_logged_once(tmp_path: Path, caplog) -> None:
    ob = Outbox(tmp_path / "o.db", "n1", max_rows=100)
    ob.enqueue_many([body(i) for i in range(90)])
    with caplog.at_level(logging.WARNING, logger="edge.outbox"):
        ob.enqueue_many([body(i) for i in range(90, 150)])
    assert ob.depth() == 100 and ob.evicted_total == 50
    assert ob.pending(1)[0][0] == 51
    lines = [r.getMessage() for r in caplog.records if "evicted" in r.getMessage()]
    assert len(lines) == 1 and "evicted 50 oldest" in lines[0]
    ob.close()
    assert Outbox(tmp_path / "o.db", "n1", max_rows=100).evicted_total == 50


def test_eviction_by_bytes_and_age(tmp_path: Path) -> None:
    ob = Outbox(tmp_path / "o.db", "n1", max_bytes=2000, max_age_s=100.0)
    seqs = ob.enqueue_many([body(i, pad=300) for i in range(10)], now=1000.0)
    assert ob.bytes() <= 2000 and ob.evicted_total == 10 - ob.depth()
    assert [s for s, _ in ob.pending(100)] == seqs[-ob.depth():]
    assert 0 < ob.evicted_total < 10
    ob.enqueue_many([body(99)], now=1200.0)  # everything older than 100 s goes
    assert [s for s, _ in ob.pending(100)] == [11] and ob.evicted_total == 10
    ob.close()


def test_oversized_event_is_trimmed_counted_and_kept(tmp_path: Path, caplog) -> None:
    """Never drop an event for its size (#14.9): optional fields, then zones from the end, give way."""
    ob = Outbox(tmp_path / "o.db", "n1")
    big = {**body(1, pad=2000), "line": {"name": "road", "dir": "in"}, "duration": 3.5}
    with caplog.at_level(logging.WARNING, logger="edge.outbox"):
        assert ob.enqueue_many([body(0), big, body(2)]) == [1, 2, 3]
    assert ob.trimmed_total == 1 and ob.oversize_total == 0
    assert "trimmed to fit 1 KiB (dropped line, duration, zones)" in caplog.text
    msg = json.loads(dict(ob.pending(10))[2])
    assert len(dict(ob.pending(10))[2]) <= 1024
    assert msg["id"] == "o1" and msg["zones"] == [] and "line" not in msg and "duration" not in msg
    ob.close()


def test_rows_to_evict_pure() -> None:
    lim = OutboxLimits(max_rows=3, max_bytes=100, max_age_s=1.0)
    assert rows_to_evict(3, 90, lim, [10, 10, 10]) == 0
    assert rows_to_evict(5, 50, lim, [10] * 5) == 2
    assert rows_to_evict(2, 130, lim, [40, 90]) == 1


def test_settings_and_limits_from_config() -> None:
    cfg = MqttConfig(host="b.lan", port=8883, tls=True, username="u", outbox_max_age_days=2)
    s = settings_from_config(cfg, "edgecam-n1")
    assert (s.host, s.port, s.tls, s.username, s.client_id) == ("b.lan", 8883, True, "u", "edgecam-n1")
    assert limits_from_config(cfg).max_age_s == 2 * 86400


def test_backoff_grows_caps_and_jitters() -> None:
    assert backoff_delay(0, 1.0, 60.0, lambda: 1.0) == 1.0
    assert backoff_delay(3, 1.0, 60.0, lambda: 1.0) == 8.0
    assert backoff_delay(20, 1.0, 60.0, lambda: 1.0) == 60.0
    assert backoff_delay(20, 1.0, 60.0, lambda: 0.0) == 30.0


def test_parse_broker_and_format_event() -> None:
    assert parse_broker("mqtt.lan", False) == ("mqtt.lan", 1883)
    assert parse_broker("mqtt.lan", True) == ("mqtt.lan", 8883)
    assert parse_broker("10.0.0.2:1884", False) == ("10.0.0.2", 1884)
    assert parse_broker("[::1]:1885", False) == ("::1", 1885)
    with pytest.raises(UserError):
        parse_broker("host:x", False)
    line = format_event({"ts": 0, "node": "n1", "camera": "gate", "type": "end", "label": "car", "score": 0.876,
                         "zones": ["drive"], "line": {"name": "gate", "dir": "in"}, "clip": "c1", "seq": 7,
                         "duration": 3.25, "time_ok": True})
    for part in ("n1", "gate", "end", "car", "0.88", "zones=drive", "line=gate:in", "clip=c1", "seq=7", "dur=3.2s"):
        assert part in line
