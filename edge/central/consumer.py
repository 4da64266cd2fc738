"""The central consumer: MQTT in, batched idempotent writes out, acknowledged only after commit.

paho's network thread only queues what arrives (``manual_ack``), and one writer
thread turns a batch into one transaction and then sends the PUBACKs, in arrival
order. A crash between receiving and committing therefore leaves the messages
unacknowledged in the broker's persistent session, which redelivers them; the
store's ``ON CONFLICT (node, seq) DO NOTHING`` makes the redelivery harmless.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from .. import payload
from ..mqttclient import login, new_client, use_tls
from .acks import publish_watermarks
from .messages import BadMessage, EventRow, StatsRow, StatusRow, parse_event, parse_stats, parse_status
from .store import Store

log = logging.getLogger("edgecam.central")


@dataclass(frozen=True)
class BrokerSettings:
    """Plain values the consumer needs from ``[mqtt]`` (the CLI builds this from the config)."""

    host: str = "127.0.0.1"
    port: int = 1883
    prefix: str = "edgecam"
    protocol: str = "3.1.1"  # or "5"
    client_id: str = "edgecam-central"
    keepalive: int = 30
    username: str | None = None
    password: str | None = None
    tls: bool = False
    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None
    shared_group: str | None = None
    session_expiry: int = 7 * 24 * 3600


@dataclass
class Counters:
    """What the consumer has done since start; read by tests and the shutdown log line."""

    received: int = 0
    stored: int = 0  # new events written
    duplicates: int = 0  # events already in the store (redeliveries)
    statuses: int = 0
    stats: int = 0
    malformed: int = 0
    batches: int = 0
    db_errors: int = 0


@dataclass(frozen=True)
class _Message:
    topic: str
    data: bytes
    qos: int
    mid: int
    retain: bool


@dataclass
class _Batch:
    events: list[EventRow] = field(default_factory=list)
    statuses: list[StatusRow] = field(default_factory=list)
    stats: list[StatsRow] = field(default_factory=list)


def subscriptions(prefix: str, shared_group: str | None) -> list[tuple[str, int]]:
    """The three wildcard subscriptions (stats at QoS 0), shared under ``$share/<group>/`` when asked."""
    subs = [(payload.events_topic(prefix, "+"), 1), (payload.status_topic(prefix, "+"), 1),
            (payload.stats_topic(prefix, "+"), 0)]
    if shared_group:
        subs = [(f"$share/{shared_group}/{topic}", qos) for topic, qos in subs]
    return subs


class Consumer:
    """Subscribe, validate, store in batches, ack after commit. ``start()`` then ``stop()``."""

    def __init__(self, broker: BrokerSettings, database_url: str, batch_size: int = 200,
                 batch_wait: float = 0.2) -> None:
        self.broker = broker
        self.database_url = database_url
        self.batch_size = batch_size
        self.batch_wait = batch_wait
        self.counters = Counters()
        self.connected = threading.Event()
        self._queue: queue.Queue[_Message] = queue.Queue(maxsize=10_000)
        self._stopping = threading.Event()
        self._halt = threading.Event()
        self._store: Store | None = None
        self._writer: threading.Thread | None = None
        self._client = self._make_client()

    # -- MQTT --------------------------------------------------------------------------------------

    def _make_client(self) -> mqtt.Client:
        b = self.broker
        client = new_client(b.client_id, b.protocol, persistent=True, manual_ack=True)
        login(client, b.username, b.password)
        if b.tls:
            use_tls(client, b.ca_file, b.cert_file, b.key_file)
        client.reconnect_delay_set(1, 30)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_connect_fail = self._on_connect_fail
        client.on_message = self._on_message
        client.on_subscribe = self._on_subscribe
        return client

    def _on_connect(self, client: mqtt.Client, _userdata, flags, reason_code, _properties) -> None:
        if reason_code.is_failure:
            log.error("broker %s:%d refused the connection: %s", self.broker.host, self.broker.port, reason_code)
            return
        client.subscribe(subscriptions(self.broker.prefix, self.broker.shared_group))
        log.info("connected to %s:%d (session %s)", self.broker.host, self.broker.port,
                 "resumed" if flags.session_present else "new")

    def _on_subscribe(self, _client, _userdata, _mid, reason_codes, _properties) -> None:
        """Ready only once the broker has the subscriptions: events sent before that are not ours yet."""
        failed = [rc for rc in reason_codes if rc.is_failure]
        if failed:
            log.error("broker refused subscriptions: %s", ", ".join(str(rc) for rc in failed))
            return
        log.info("subscribed to %s", ", ".join(t for t, _ in subscriptions(self.broker.prefix,
                                                                              self.broker.shared_group)))
        self.connected.set()

    def _on_connect_fail(self, _client, _userdata) -> None:
        log.warning("cannot reach broker %s:%d; retrying", self.broker.host, self.broker.port)

    def _on_disconnect(self, _client, _userdata, _flags, reason_code, _properties) -> None:
        self.connected.clear()
        if not self._stopping.is_set():
            log.warning("disconnected from broker (%s); reconnecting", reason_code)

    def _on_message(self, _client, _userdata, msg: mqtt.MQTTMessage) -> None:
        self.counters.received += 1
        # Blocks paho's network thread when the writer is behind: back-pressure, not loss.
        self._queue.put(_Message(msg.topic, bytes(msg.payload), msg.qos, msg.mid, bool(msg.retain)))

    # -- lifecycle ---------------------------------------------------------------------------------

    def start(self) -> None:
        """Open the store (raises ``StoreError`` at once if it cannot), then connect in the background."""
        self._store = Store(self.database_url)
        self._writer = threading.Thread(target=self._write_loop, name="central-writer", daemon=True)
        self._writer.start()
        props = None
        if self.broker.protocol == "5":
            props = Properties(PacketTypes.CONNECT)
            props.SessionExpiryInterval = self.broker.session_expiry
            props.ReceiveMaximum = max(20, min(self.batch_size * 2, 65535))
            self._client.connect_async(self.broker.host, self.broker.port, self.broker.keepalive,
                                       clean_start=False, properties=props)
        else:
            self._client.connect_async(self.broker.host, self.broker.port, self.broker.keepalive)
        self._client.loop_start()

    def stop(self, timeout: float = 10.0) -> None:
        """Commit and ack what was received, then disconnect; unacked messages stay in the broker's session."""
        self._stopping.set()
        if self._writer is not None:
            self._writer.join(timeout)
            if self._writer.is_alive():  # still busy under load: stop after the batch in hand
                self._halt.set()
                self._writer.join(30.0)
        self._client.disconnect()
        self._client.loop_stop()
        if self._store is not None:
            self._store.close()
            self._store = None
        c = self.counters
        log.info("stopped: %d received, %d stored, %d duplicates, %d malformed", c.received, c.stored,
                 c.duplicates, c.malformed)

    # -- writer thread -----------------------------------------------------------------------------

    def _gather(self) -> list[_Message]:
        """What is queued now, plus stragglers until a short quiet spell or ``batch_wait``.

        It must not wait for a full batch: the broker sends only its in-flight window (20 for
        mosquitto's MQTT 3.1.1 default) until we ack, so a full batch may never come.
        """
        try:
            first = self._queue.get(timeout=0.2)
        except queue.Empty:
            return []
        batch = [first]
        deadline = time.monotonic() + self.batch_wait
        quiet = min(self.batch_wait, 0.01)
        while len(batch) < self.batch_size:
            try:
                batch.append(self._queue.get_nowait())
                continue
            except queue.Empty:
                pass
            left = deadline - time.monotonic()
            if left <= 0:
                break
            try:
                batch.append(self._queue.get(timeout=min(left, quiet)))
            except queue.Empty:
                break
        return batch

    def _write_loop(self) -> None:
        while not self._halt.is_set() and not (self._stopping.is_set() and self._queue.empty()):
            msgs = self._gather()
            if not msgs:
                continue
            batch = self._decode(msgs)
            if not self._commit(batch):
                return  # stopping while the database is down: the broker keeps the unacked messages
            for m in msgs:
                self._client.ack(m.mid, m.qos)
            publish_watermarks(self._client, self._store, self.broker.prefix, batch.events)  # end-to-end acks

    def _decode(self, msgs: list[_Message]) -> _Batch:
        batch = _Batch()
        prefix = self.broker.prefix
        for m in msgs:
            where = payload.node_from_topic(prefix, m.topic)
            try:
                if where is None:
                    raise BadMessage("topic outside the prefix")
                node = where[0]
                if m.topic == payload.events_topic(prefix, node):
                    batch.events.append(parse_event(node, m.data))
                elif m.topic == payload.status_topic(prefix, node):
                    batch.statuses.append(parse_status(node, m.data, m.retain))
                elif m.topic == payload.stats_topic(prefix, node):
                    batch.stats.append(parse_stats(node, m.data))
                else:
                    raise BadMessage("unknown topic kind")
            except (BadMessage, ValueError, TypeError) as err:  # never let one payload stop the writer
                self.counters.malformed += 1
                log.warning("dropped malformed message on %s: %s", m.topic, err)
        return batch

    def _commit(self, batch: _Batch) -> bool:
        """Write one batch, retrying while the database is unreachable; False if stopped meanwhile.

        A database that is up but keeps refusing the batch (a value it cannot store) would wedge the
        stream forever; from the second such refusal the batch is written item by item and the
        refused items are dropped and counted as malformed.
        """
        log.debug("writing a batch: %d events, %d statuses, %d stats", len(batch.events), len(batch.statuses),
                  len(batch.stats))
        delay, refusals = 0.5, 0
        while (err := self._try_write(batch)) is not None:
            self.counters.db_errors += 1
            log.error("database write failed (%s); retrying in %.1f s", err, delay)
            if self._stopping.wait(delay):
                return False
            delay = min(delay * 2, 30.0)
            if self._reopen():
                refusals += 1
                if refusals >= 2:
                    batch = self._write_singly(batch)
        return True

    def _try_write(self, batch: _Batch) -> str | None:
        """Write and count; the error's first line on failure."""
        try:
            assert self._store is not None
            new = self._store.write_batch(batch.events, batch.statuses, batch.stats)
        except Exception as err:  # noqa: BLE001 - any database failure: keep the messages unacked
            return (str(err).strip().splitlines() or [type(err).__name__])[0]
        c = self.counters
        c.batches += 1
        c.stored += new
        c.duplicates += len(batch.events) - new
        c.statuses += len(batch.statuses)
        c.stats += len(batch.stats)
        return None

    def _write_singly(self, batch: _Batch) -> _Batch:
        """Commit each item alone; drop the ones the database refuses. Returns what is left (nothing)."""
        singles = [_Batch(events=[e]) for e in batch.events] + [_Batch(statuses=[s]) for s in batch.statuses]
        singles += [_Batch(stats=[s]) for s in batch.stats]
        for one in singles:
            err = self._try_write(one)
            if err is not None:
                self.counters.malformed += 1
                item = (one.events or one.statuses or one.stats)[0]
                log.warning("dropped a message from %s that the database refuses: %s", item.node, err)
        return _Batch()

    def _reopen(self) -> bool:
        """A fresh connection; True when the database answered."""
        try:
            if self._store is not None:
                self._store.close()
        except Exception:  # noqa: BLE001 - the old connection is already broken
            pass
        try:
            self._store = Store(self.database_url)
            return True
        except Exception as err:  # noqa: BLE001
            log.error("database reopen failed: %s", str(err).splitlines()[0])
            return False
