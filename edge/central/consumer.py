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
import re
import threading
import time
from dataclasses import dataclass, field

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from .. import payload
from ..mqttclient import BrokerAddress, login, new_client, use_tls
from ..redact import redact_url
from .acks import publish_watermarks
from .messages import BadMessage, EventRow, StatsRow, StatusRow, parse_event, parse_stats, parse_status
from .messages import _load as load_json
from .printable import printable
from .store import Quarantined, Store, error_line, is_row_fault, quarantine_text
from .trust import KeyRing, TrustPolicy, Untrusted

log = logging.getLogger("edgecam.central")


@dataclass(frozen=True)
class BrokerSettings(BrokerAddress):
    """Plain values the consumer needs from ``[mqtt]`` (the CLI builds this from the config).

    Where and how to log in (host, port, prefix, protocol, keepalive, username, TLS files) is ``BrokerAddress``."""

    client_id: str = "edgecam-central"
    password: str | None = None  # the password file's text (the CLI reads it)
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
    malformed: int = 0  # quarantined: refused at the door or by the database, kept with the reason, acked
    batches: int = 0
    db_errors: int = 0
    clashes: int = 0  # disconnects caused by another client with our client id
    unverified: int = 0  # quarantined as not the node's: no signature, a wrong one, an unregistered node (#18.1)
    conflicts: int = 0  # a second, different message for a stored (node, seq): quarantined, never dropped


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
    quarantined: list[Quarantined] = field(default_factory=list)


NODE_ID = re.compile(r"^[A-Za-z0-9_.-]{1,64}\Z")  # what a node's config allows (edge/config.py node.id)
QUARANTINE_LOG_LINES = 10  # quarantine warnings per progress interval; the rest are counted
CLASH_REASON = 142  # MQTT 5 DISCONNECT "Session taken over": another client connected with our client id
FLAP_WINDOW = 5.0  # seconds: a disconnect this soon after CONNACK, again and again, is a client-id clash


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
                 batch_wait: float = 0.2, progress_every: float = 60.0, trust: TrustPolicy | None = None) -> None:
        self.broker = broker
        self.keys = KeyRing(trust or TrustPolicy())  # strict unless a migration window is given
        self.database_url = database_url
        self.batch_size = batch_size
        self.batch_wait = batch_wait
        self.progress_every = progress_every
        self.counters = Counters()
        self.failure: BaseException | None = None  # why the writer thread died, if it did
        self.writer_dead = threading.Event()
        self._connected_at: float | None = None
        self._flaps = 0  # consecutive disconnects soon after connecting
        self._backoff = 1.0
        self._last_progress = time.monotonic()
        self._progress_base = Counters()
        self._lag_max = 0.0
        self._quarantine_logged = 0  # warnings since the last progress line
        self.connected = threading.Event()
        self._barrier = threading.Event()  # the broker answered stop()'s UNSUBSCRIBE: it has read our acks
        self._closed = threading.Event()  # set by on_disconnect: stop() waits for it before loop_stop()
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
        client.on_unsubscribe = self._on_unsubscribe
        return client

    def _on_connect(self, client: mqtt.Client, _userdata, flags, reason_code, _properties) -> None:
        if reason_code.is_failure:
            log.error("broker %s:%d refused the connection: %s", self.broker.host, self.broker.port, reason_code)
            return
        self._connected_at = time.monotonic()
        client.subscribe(subscriptions(self.broker.prefix, self.broker.shared_group))
        log.info("connected to %s:%d (session %s)", self.broker.host, self.broker.port,
                 "resumed" if flags.session_present else "new")

    def _on_unsubscribe(self, *_args) -> None:
        self._barrier.set()

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

    def _on_disconnect(self, client: mqtt.Client, _userdata, _flags, reason_code, _properties) -> None:
        self.connected.clear()
        self._closed.set()
        if self._stopping.is_set():
            return
        up = None if self._connected_at is None else time.monotonic() - self._connected_at
        self._connected_at = None
        taken_over = getattr(reason_code, "value", None) == CLASH_REASON
        if up is not None and up < FLAP_WINDOW:
            self._flaps += 1
        elif up is not None:
            self._flaps, self._backoff = 0, 1.0
        if taken_over or self._flaps >= 2:
            # paho resets its reconnect delay on every CONNACK, so two consumers with one id would kick each
            # other off every second; back off ourselves (5 s doubling to 60 s) and say what is wrong, once per try.
            self.counters.clashes += 1
            self._backoff = min(max(self._backoff * 2, 5.0), 60.0)  # 5, 10, 20, 40, 60 s
            client.reconnect_delay_set(int(self._backoff), max(int(self._backoff), 60))
            cause = ("the broker says another client took over the session (MQTT 5 reason 142)" if taken_over
                     else f"the broker closed the connection {self._flaps} times in a row within"
                          f" {FLAP_WINDOW:.0f} s of connecting")
            log.error("client-id clash: %s; %s consumer uses client_id %r (give each consumer its own"
                      " client_id); reconnecting in %.0f s", cause, "another" if taken_over else "most likely another",
                      self.broker.client_id, self._backoff)
            return
        client.reconnect_delay_set(1, 30)
        log.warning("disconnected from broker (%s); reconnecting", reason_code)

    def _on_message(self, _client, _userdata, msg: mqtt.MQTTMessage) -> None:
        self.counters.received += 1
        # Blocks paho's network thread when the writer is behind: back-pressure, not loss.
        self._queue.put(_Message(msg.topic, bytes(msg.payload), msg.qos, msg.mid, bool(msg.retain)))

    # -- lifecycle ---------------------------------------------------------------------------------

    def start(self) -> None:
        """Open the store (raises ``StoreError`` at once if it cannot), then connect in the background."""
        self._store = Store(self.database_url)
        self.keys.load(self._store.node_keys())
        self._writer = threading.Thread(target=self._supervised_write_loop, name="central-writer", daemon=True)
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
        # paho writes queued packets on its network thread; loop_stop() right after disconnect() can end that
        # thread before the last PUBACKs are on the wire, and the broker then redelivers messages that are
        # already stored. on_disconnect runs once DISCONNECT, queued behind those PUBACKs, has been written.
        # Written is not read: a new session under this client id (a restart) can take the session over while
        # the broker has not yet read this connection's last PUBACKs, and then it redelivers those messages.
        # The broker answers packets of one connection in order, so its UNSUBACK (of a filter never
        # subscribed: changes nothing, needs no ACL) means every PUBACK before it was processed.
        self._closed.clear()
        if self.connected.is_set():
            self._barrier.clear()
            rc, _mid = self._client.unsubscribe(f"{self.broker.prefix}/_central_stop_barrier")
            if rc == mqtt.MQTT_ERR_SUCCESS and not self._barrier.wait(5.0):
                log.warning("the broker did not answer within 5 s; the last acks may be redelivered")
        if self._client.disconnect() == mqtt.MQTT_ERR_SUCCESS and self.connected.is_set():
            if not self._closed.wait(5.0):
                log.warning("the broker connection did not close within 5 s; the last acks may be redelivered")
        self._client.loop_stop()
        if self._store is not None:
            self._store.close()
            self._store = None
        c = self.counters
        log.info("stopped: %d received, %d stored, %d duplicates, %d malformed (quarantined)", c.received,
                 c.stored, c.duplicates, c.malformed)

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

    def _supervised_write_loop(self) -> None:
        """The writer, watched: if it ends by an error, say why and let the process end (systemd restarts it)."""
        try:
            self._write_loop()
        except BaseException as err:  # noqa: BLE001 - recorded and reported by run_command
            self.failure = err
            log.critical("the central writer stopped: %s: %s", type(err).__name__,
                         redact_url(str(err).strip().splitlines()[0] if str(err).strip() else ""))
            self.writer_dead.set()

    def _write_loop(self) -> None:
        while not self._halt.is_set() and not (self._stopping.is_set() and self._queue.empty()):
            self._maybe_log_progress()
            msgs = self._gather()
            if not msgs:
                continue
            batch = self._decode(msgs)
            if not self._commit(batch):
                return  # stopping while the database is down: the broker keeps the unacked messages
            self._committed(batch, msgs)

    def _committed(self, batch: _Batch, msgs: list[_Message]) -> None:
        """The batch is durable in the database: acknowledge it (and, later, tell the nodes)."""
        for m in msgs:
            self._client.ack(m.mid, m.qos)
        publish_watermarks(self._client, self._store, self.broker.prefix, batch.events)  # end-to-end acks
        now = time.time()
        for e in batch.events:
            self._lag_max = max(self._lag_max, now - e.ts)

    def _maybe_log_progress(self) -> None:
        """One line per ``progress_every`` seconds, so a silent log means a stalled consumer, not a quiet one."""
        now = time.monotonic()
        if now - self._last_progress < self.progress_every:
            return
        c, b = self.counters, self._progress_base
        log.info("last %.0f s: %d stored, %d duplicates, %d quarantined (%d not verified, %d conflicts), %d statuses,"
                 " %d stats, %d database errors; lag %s; %d queued", now - self._last_progress, c.stored - b.stored,
                 c.duplicates - b.duplicates, c.malformed - b.malformed, c.unverified - b.unverified,
                 c.conflicts - b.conflicts, c.statuses - b.statuses, c.stats - b.stats,
                 c.db_errors - b.db_errors, f"max {self._lag_max:.1f} s (event time to commit)"
                 if c.stored + c.duplicates > b.stored + b.duplicates else "-", self._queue.qsize())
        self._progress_base = Counters(**vars(c))
        self._last_progress, self._lag_max, self._quarantine_logged = now, 0.0, 0

    def _decode(self, msgs: list[_Message]) -> _Batch:
        batch = _Batch()
        if self.keys.old() and self._store is not None:  # keys added by register-node since (a rotation)
            try:
                self.keys.load(self._store.node_keys())
            except Exception as err:  # noqa: BLE001 - the database is down: go on with the keys known
                log.debug("cannot re-read node keys: %s", err)
        prefix = self.broker.prefix
        for m in msgs:
            node: str | None = None
            try:
                where = payload.node_from_topic(prefix, m.topic)
                if where is None:
                    raise BadMessage("topic outside the prefix")
                if not NODE_ID.match(where[0]):
                    raise BadMessage("the topic's node id is not letters, digits, _ . - (at most 64)")
                node = where[0]
                if where[1] in ("events", "status", "stats"):
                    self._verify(where[1], node, m.data)
                if m.topic == payload.events_topic(prefix, node):
                    batch.events.append(parse_event(node, m.data))
                elif m.topic == payload.status_topic(prefix, node):
                    batch.statuses.append(parse_status(node, m.data, m.retain))
                elif m.topic == payload.stats_topic(prefix, node):
                    batch.stats.append(parse_stats(node, m.data))
                else:
                    raise BadMessage("unknown topic kind")
            except Exception as err:  # noqa: BLE001 - whatever one payload does is that payload's fault
                reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
                if not isinstance(err, BadMessage):
                    reason = f"{type(err).__name__}: {reason}"
                self._quarantine(batch, node, m.topic, m.data, reason,
                                 kind=err.kind if isinstance(err, Untrusted) else None)
        return batch

    def _verify(self, kind: str, node: str, data: bytes) -> None:
        """Raise ``Untrusted`` unless the message is signed by the node's key (keys re-read once on a miss)."""
        obj = load_json(data)
        if kind == "events" and len(data) > payload.MAX_EVENT_BYTES:
            return  # refused for its size by parse_event, with that reason
        try:
            self.keys.check(kind, node, obj)
        except Untrusted as verdict:
            if not self.keys.stale() or self._store is None:
                raise
            try:
                self.keys.load(self._store.node_keys())  # a node registered since: its key is in the store
            except Exception as err:  # noqa: BLE001 - the database is down: decide on the keys already known
                log.debug("cannot re-read node keys: %s", err)
                raise verdict from None
            self.keys.check(kind, node, obj)

    def _quarantine(self, batch: _Batch, node: str | None, topic: str, data: bytes, reason: str,
                    kind: str | None = None) -> None:
        self.counters.malformed += 1
        if kind is not None:
            self.counters.unverified += 1
        reason = reason[:300].replace("\x00", "\\x00")  # PostgreSQL text cannot hold NUL
        self._quarantine_logged += 1
        if self._quarantine_logged <= QUARANTINE_LOG_LINES:  # a flood of bad messages must not flood the journal
            log.warning("quarantined a message on %s: %s", printable(topic[:200]), printable(reason))
        elif self._quarantine_logged == QUARANTINE_LOG_LINES + 1:
            log.warning("more messages quarantined; only counted until the next progress line")
        batch.quarantined.append(Quarantined(node, topic[:500].replace("\x00", "\\x00"), reason,
                                             quarantine_text(data), kind=kind))

    def _commit(self, batch: _Batch) -> bool:
        """Write one batch, retrying while the database refuses to write; False if stopped meanwhile.

        Two kinds of refusal. A row the database will not take (a constraint, a value out of range) is that
        row's fault: the batch is written row by row and the refused rows are quarantined, so one row cannot
        wedge the stream. A database that refuses to write at all (disk full, read-only, down, permission
        revoked) is no row's fault: nothing is acknowledged, the batch is retried with backoff (0.5 s doubling
        to 30 s) until it commits, and the broker keeps everything behind it.
        """
        log.debug("writing a batch: %d events, %d statuses, %d stats", len(batch.events), len(batch.statuses),
                  len(batch.stats))
        delay = 0.5
        while True:
            err = self._try_write(batch)
            if err is None:
                return True
            if is_row_fault(err):
                left = self._write_singly(batch)
                if left is None:
                    return True
                batch, err = left
            self.counters.db_errors += 1
            log.error("database write failed (%s); nothing acknowledged, retrying in %.1f s",
                      error_line(err, self.database_url), delay)
            if self._stopping.wait(delay):
                return False
            delay = min(delay * 2, 30.0)
            self._reopen()

    def _try_write(self, batch: _Batch) -> Exception | None:
        """Write and count; the error on failure."""
        try:
            if self._store is None:
                self._store = Store(self.database_url)
            new = self._store.write_batch(batch.events, batch.statuses, batch.stats, quarantined=batch.quarantined)
        except Exception as err:  # noqa: BLE001 - classified by the caller; the messages stay unacked
            return err
        c = self.counters
        conflicts = getattr(self._store, "last_conflicts", [])
        for q in conflicts:
            log.warning("conflict on %s: %s", printable(q.topic[:200]), printable(q.reason))
        c.batches += 1
        c.stored += new
        c.conflicts += len(conflicts)
        c.malformed += len(conflicts)
        c.duplicates += len(batch.events) - new - len(conflicts)
        c.statuses += len(batch.statuses)
        c.stats += len(batch.stats)
        return None

    def _write_singly(self, batch: _Batch) -> tuple[_Batch, Exception] | None:
        """Commit each item alone; quarantine the ones the database refuses as values.

        Returns None when every item is stored or quarantined, else what is still to write and the error of
        a database that stopped writing meanwhile.
        """
        singles = [_Batch(events=[e]) for e in batch.events] + [_Batch(statuses=[s]) for s in batch.statuses]
        singles += [_Batch(stats=[s]) for s in batch.stats]
        if batch.quarantined:
            singles.append(_Batch(quarantined=list(batch.quarantined)))
        for i, one in enumerate(singles):
            err = self._try_write(one)
            if err is None:
                continue
            if not is_row_fault(err) or one.quarantined:
                rest = _Batch()
                for other in singles[i:]:
                    rest.events += other.events
                    rest.statuses += other.statuses
                    rest.stats += other.stats
                    rest.quarantined += other.quarantined
                return rest, err
            item: EventRow | StatusRow | StatsRow = (one.events or one.statuses or one.stats)[0]
            prefix = self.broker.prefix
            if isinstance(item, EventRow):
                topic, data = payload.events_topic(prefix, item.node), item.raw.encode()
            elif isinstance(item, StatsRow):
                topic, data = payload.stats_topic(prefix, item.node), item.raw.encode()
            else:
                topic, data = payload.status_topic(prefix, item.node), repr(item).encode()
            quarantine = _Batch()
            self._quarantine(quarantine, item.node, topic, data,
                             f"the database refuses it: {error_line(err, self.database_url)}")
            qerr = self._try_write(quarantine)
            if qerr is not None:  # cannot even record it: the database is not writing; keep it unacked
                rest = _Batch(quarantined=quarantine.quarantined)
                for other in singles[i + 1:]:
                    rest.events += other.events
                    rest.statuses += other.statuses
                    rest.stats += other.stats
                    rest.quarantined += other.quarantined
                return rest, qerr
        return None

    def _reopen(self) -> bool:
        """A fresh connection; True when the database answered."""
        try:
            if self._store is not None:
                self._store.close()
        except Exception:  # noqa: BLE001 - the old connection is already broken
            pass
        self._store = None
        try:
            self._store = Store(self.database_url)
            return True
        except Exception as err:  # noqa: BLE001
            log.error("database reopen failed: %s", redact_url(str(err).strip().splitlines()[0] if str(err).strip()
                                                               else type(err).__name__))
            return False
