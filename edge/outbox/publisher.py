"""The MQTT side of the outbox: one thread that connects, publishes stored rows, and acks on PUBACK.

paho keeps QoS 1 messages queued while offline only in RAM, so nothing here
trusts paho with an event: rows stay in SQLite until their PUBACK arrives (mid
tracked in ``on_publish``), and every connection gets a fresh paho client that
re-reads the unacked rows, oldest first. End to end (``end_to_end``), a PUBACK
only marks a row sent; central's retained watermark on ``<prefix>/<node>/acks``
deletes it, and every new connection resends all kept rows. Reconnects use exponential backoff with
jitter and our own CONNACK deadline. Repeated failures log one line, not a storm.
"""

from __future__ import annotations

import json
import logging
import queue
import random
import sqlite3
import ssl
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from ..mqttclient import CLOSED, BrokerAddress, listen_connack, login, new_client, read_password, use_tls, wait_connack
from ..payload import acks_topic, events_topic, stats_topic, status_message, status_topic
from .store import EndToEnd, Outbox

log = logging.getLogger("edge.outbox")

SESSION_EXPIRY_S = 7 * 86400  # MQTT 5: how long the broker keeps our persistent session
REPEAT_LOG_S = 600.0  # the same failure is logged again at most this often
STABLE_SESSION_S = 10.0  # a connection that lasted this long resets the backoff
RESEND_AFTER_S = 30.0  # end to end: rows central has passed over for this long are resent (lost on the way)
RESEND_MAX_ROWS = 10_000  # at most this many per resend round


@dataclass(frozen=True)
class MqttSettings(BrokerAddress):
    """Everything a client needs to reach the broker (``edge.node.build.settings_from_config`` fills it in).

    Where and how to log in (host, port, prefix, protocol, keepalive, username, TLS files) is ``BrokerAddress``."""

    client_id: str = "edgecam"
    password_file: Path | None = None
    connect_timeout: float = 10.0
    reconnect_min: float = 1.0
    reconnect_max: float = 60.0
    max_inflight: int = 50
    replay_window: float = 5.0  # after an unexpected disconnect, resend what was acked in the last N s
    end_to_end: EndToEnd = "auto"  # keep rows until central's watermark covers them (auto: once central says so)


def backoff_delay(attempt: int, lo: float, hi: float, rand: Callable[[], float] = random.random) -> float:
    """Exponential backoff capped at ``hi``, with jitter in [50 %, 100 %] so a fleet doesn't reconnect in step."""
    base = min(hi, lo * (2 ** min(attempt, 30)))
    return max(lo / 2, base * (0.5 + 0.5 * rand()))


def make_client(s: MqttSettings, persistent: bool, will: tuple[str, bytes] | None = None) -> mqtt.Client:
    """A paho client with TLS, credentials and (optionally) the retained ``offline`` Last Will."""
    client = new_client(s.client_id, s.protocol, persistent)
    client.connect_timeout = s.connect_timeout
    client.max_inflight_messages_set(s.max_inflight)
    if s.tls:
        use_tls(client, s.ca_file, s.cert_file, s.key_file)
    login(client, s.username, read_password(s.password_file))
    if will is not None:
        client.will_set(will[0], will[1], qos=1, retain=True)
    return client


def connect(client: mqtt.Client, s: MqttSettings, persistent: bool,
            stop: threading.Event | None = None) -> str | None:
    """Connect and wait for CONNACK within ``connect_timeout``; None when accepted, else a one-line reason."""
    answer = listen_connack(client)
    extra: dict[str, Any] = {}
    if s.protocol == "5":
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = SESSION_EXPIRY_S if persistent else 0
        extra = {"clean_start": not persistent, "properties": props}
    where = f"{s.host}:{s.port}"
    try:
        client.connect(s.host, s.port, s.keepalive, **extra)
    except ssl.SSLCertVerificationError as err:
        return f"TLS certificate check failed for {where}: {err.verify_message}"
    except ssl.SSLError as err:
        return f"TLS handshake with {where} failed: {err.reason or err}"
    except (TimeoutError, OSError) as err:
        return f"cannot reach broker {where}: {err.strerror or err or type(err).__name__}"
    rc = wait_connack(client, answer, s.connect_timeout, stop)
    if rc is CLOSED:
        return f"broker {where} closed the connection before CONNACK"
    if rc is None:
        _drop(client)
        return f"no CONNACK from {where} within {s.connect_timeout:g} s"
    if rc.is_failure:
        _drop(client)
        hint = " (check mqtt.username / mqtt.password_file)" if rc.value in (4, 5, 0x86, 0x87) else ""
        return f"broker {where} refused the connection: {rc}{hint}"
    return None


def _drop(client: mqtt.Client) -> None:
    try:
        client.disconnect()
        client.loop(0.01)
    except Exception:  # noqa: BLE001 - tearing down a half-open socket; nothing useful to report
        pass


class _Once:
    """Logs a recurring failure once, again only when it changes or after ``REPEAT_LOG_S``."""

    def __init__(self) -> None:
        self._last = ""
        self._at = 0.0

    def warn(self, msg: str) -> None:
        now = time.monotonic()
        if msg != self._last or now - self._at > REPEAT_LOG_S:
            log.warning("mqtt: %s; events are kept in the outbox, retrying with backoff", msg)
            self._last, self._at = msg, now

    def clear(self) -> bool:
        had = bool(self._last)
        self._last = ""
        return had


class Publisher:
    """Owns the connection thread; ``wake()`` after new rows, ``stop()`` to say ``offline`` and disconnect."""

    def __init__(self, settings: MqttSettings, node: str, outbox: Outbox, version: str, signer: Any = None) -> None:
        self.s = settings
        self.node = node
        self.signer = signer  # edge.signing.MessageSigner: status (and the Will) signed when they are made
        self.outbox = outbox
        self.version = version
        self.connected = False
        self.published_total = 0
        self.connects_total = 0
        self.replayed_total = 0
        self.replay_pending = 0  # replayed events not yet acked again
        self.last_error = ""
        self._events_topic = events_topic(settings.prefix, node)
        self._status_topic = status_topic(settings.prefix, node)
        self._stats_topic = stats_topic(settings.prefix, node)
        self._acks_topic = acks_topic(settings.prefix, node)
        self.acks_received = 0
        self.acks_bad = 0
        self.resent_total = 0
        self._passed_over_since: float | None = None
        self._central_top = 0  # the highest seq central's last acks message spoke of
        self._resend_upto = 0  # set by an acks message: resend kept rows up to this seq in the session
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._stats: queue.Queue[bytes] = queue.Queue(maxsize=2)
        self._once = _Once()
        self._recent: deque[tuple[float, int, bytes]] = deque(maxlen=50_000)
        self._replay: deque[tuple[int, bytes]] = deque()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="mqtt-publisher", daemon=True)
        self._thread.start()

    def wake(self) -> None:
        self._wake.set()

    def send_stats(self, payload: bytes) -> None:
        """QoS 0, best effort: kept only until the next connection round, dropped while offline."""
        try:
            self._stats.put_nowait(payload)
        except queue.Full:
            pass

    def stop(self) -> bool:
        """Say ``offline`` and disconnect; True once the thread has ended (a hung connect may outlive it)."""
        self._stop.set()
        if self._thread is None:
            return True
        self._thread.join(self.s.connect_timeout + 3.0)
        return not self._thread.is_alive()

    # ---- the thread ---------------------------------------------------------------------------

    def _run(self) -> None:
        attempt = 0
        while not self._stop.is_set():
            client = self._open()
            if client is None:
                self._stop.wait(backoff_delay(attempt, self.s.reconnect_min, self.s.reconnect_max))
                attempt += 1
                continue
            started = time.monotonic()
            try:
                self._session(client)
            except Exception as err:  # noqa: BLE001 - a bug must not kill delivery: log, reconnect, resend
                log.exception("mqtt: publisher session failed (%s); reconnecting", err)
            finally:
                self.connected = False
            if self._stop.is_set():
                self._say_offline(client)
                return
            _drop(client)
            if time.monotonic() - started > STABLE_SESSION_S:
                attempt = 0
            else:  # a flapping link (or a twin with our client id) backs off like a failed connect
                self._stop.wait(backoff_delay(attempt, self.s.reconnect_min, self.s.reconnect_max))
                attempt += 1

    def _open(self) -> mqtt.Client | None:
        started = time.time()  # the Will is fixed now, so it is signed now (same ts as this session's online)
        will = (self._status_topic, self._status("offline", started))
        try:
            client = make_client(self.s, persistent=True, will=will)
            error = connect(client, self.s, persistent=True, stop=self._stop)
        except (OSError, ValueError) as err:
            error = str(err)
        if error:
            self.last_error = error
            if not self._stop.is_set():
                self._once.warn(error)
            return None
        self.connects_total += 1
        self.last_error = ""
        again = self._once.clear()
        log.info("mqtt: %s %s:%d as %s; %d events waiting", "reconnected to" if again else "connected to",
                 self.s.host, self.s.port, self.s.client_id, self.outbox.depth())
        client.publish(self._status_topic, self._status("online", started), qos=1, retain=True)
        if self.s.end_to_end is not False:
            client.on_message = self._on_ack
            client.subscribe(self._acks_topic, qos=1)
        self.connected = True
        return client

    def _on_ack(self, _c: Any, _u: Any, m: mqtt.MQTTMessage) -> None:
        """Central's watermark (``edge.central.acks``): delete what central holds."""
        if m.topic != self._acks_topic:
            return
        try:
            mark = json.loads(m.payload)
            if not isinstance(mark, dict) or mark.get("node") != self.node:
                raise ValueError("not an acks message for this node")
            self.outbox.confirm(mark)
            self.acks_received += 1
            self._central_top = max(self._central_top, mark["seq"], mark.get("max") or 0)
            self._check_passed_over(self._central_top)
        except (ValueError, sqlite3.Error) as err:  # JSONDecodeError too; a lost ack only delays the clean-up
            self.acks_bad += 1
            if self.acks_bad == 1 or self.acks_bad % 100 == 0:
                log.warning("mqtt: ignored an acks message on %s (%d so far): %s", m.topic, self.acks_bad, err)

    def _session(self, client: mqtt.Client) -> None:
        """Publish rows oldest first, at most ``max_inflight`` unacked; ack a row only on its PUBACK."""
        inflight: dict[int, tuple[int, bytes, bool]] = {}  # mid -> (seq, message, is a replay)
        acked: list[int] = []
        up = [True]
        replay, self._replay = self._replay, deque()

        def on_publish(_c: Any, _u: Any, mid: int, rc: Any, _p: Any) -> None:
            item = inflight.pop(mid, None)
            if item is None:
                return
            if rc.is_failure:
                self._once.warn(f"broker refused an event ({rc}); it is resent after the next reconnect")
                return
            self._remember(item[0], item[1])
            if not item[2]:
                acked.append(item[0])
            else:
                self.replay_pending = max(0, self.replay_pending - 1)

        def on_disconnect(_c: Any, _u: Any, _f: Any, rc: Any, _p: Any) -> None:
            up[0] = False
            self._once.warn(f"lost connection to {self.s.host}:{self.s.port} ({rc})")

        client.on_publish = on_publish
        client.on_disconnect = on_disconnect
        sent_upto, more, last_ack = 0, True, time.monotonic()
        last_check = last_ack
        self._resend_upto = 0  # a new session resends every kept row anyway
        while up[0] and not self._stop.is_set():
            if self._wake.is_set():
                self._wake.clear()
                more = True
            if self._resend_upto and not replay:
                flying = {v[0] for v in inflight.values()}
                again = [(q, m) for q, m in self.outbox.pending(RESEND_MAX_ROWS)
                         if q < self._resend_upto and q not in flying]
                replay.extend(again)
                self.resent_total += len(again)
                self._resend_upto = 0
            while replay and len(inflight) < self.s.max_inflight:
                seq, msg = replay.popleft()
                inflight[client.publish(self._events_topic, msg, qos=1).mid] = (seq, msg, True)
            room = self.s.max_inflight - len(inflight)
            if more and room >= max(1, self.s.max_inflight // 2) and not replay:
                rows = self.outbox.pending(room, after=sent_upto)
                more = len(rows) == room
                for seq, msg in rows:
                    inflight[client.publish(self._events_topic, msg, qos=1).mid] = (seq, msg, False)
                    sent_upto = seq
            self._flush_stats(client)
            if self._central_top and time.monotonic() - last_check >= 1.0:
                # also when no further acks come (a quiet node after a broker restart): rows central skipped
                # over are resent RESEND_AFTER_S later, not left until the node's next event
                last_check = time.monotonic()
                self._check_passed_over(self._central_top)
            busy = (more or replay) and room > 0
            if client.loop(0.0 if busy else 0.05) != mqtt.MQTT_ERR_SUCCESS:
                up[0] = False
            if acked and (len(acked) >= 200 or not inflight or time.monotonic() - last_ack > 0.05):
                self._ack(acked)
                last_ack = time.monotonic()
        self._ack(acked)
        if not self._stop.is_set():
            self._plan_replay(replay, [(seq, msg) for seq, msg, again in inflight.values() if again])

    def _check_passed_over(self, top: int) -> None:
        """Rows below what central already states, still not confirmed, were lost between broker and central
        (a broker queue limit, a crash while connected): resend them if that lasts ``RESEND_AFTER_S``."""
        oldest = self.outbox.oldest_seq()
        if oldest is None or oldest >= top:
            self._passed_over_since = None
            return
        now = time.monotonic()
        if self._passed_over_since is None:
            self._passed_over_since = now
        elif now - self._passed_over_since >= RESEND_AFTER_S:
            self._passed_over_since = None
            self._resend_upto = top

    def _remember(self, seq: int, msg: bytes) -> None:
        """Keep what the broker acked in the last ``replay_window`` s: a PUBACK means "in the broker's RAM".
        Not needed end to end: the rows stay in the outbox and every new session resends them."""
        if self.outbox.e2e_active:
            return
        now = time.monotonic()
        self._recent.append((now, seq, msg))
        while self._recent and self._recent[0][0] < now - self.s.replay_window:
            self._recent.popleft()

    def _plan_replay(self, unsent: deque[tuple[int, bytes]], unacked: list[tuple[int, bytes]]) -> None:
        """After an unexpected loss, resend recently acked events: a broker killed before its autosave loses
        them. Duplicates are allowed by contract (``(id, type, seq)``); losses are not."""
        again = {seq: msg for seq, msg in [*unsent, *unacked, *((q, m) for _t, q, m in self._recent)]}
        self._recent.clear()
        if self.outbox.e2e_active:  # every kept row goes out again from the start of the next session
            again = {}
        self._replay = deque(sorted(again.items()))
        self.replayed_total += len(self._replay)
        self.replay_pending = len(self._replay)  # a clean stop waits for these too (they are out of the outbox)

    def _ack(self, acked: list[int]) -> None:
        if acked:
            self.outbox.ack(acked)
            self.published_total += len(acked)
            acked.clear()

    def _status(self, state: str, ts: float) -> bytes:
        """The status message: signed, naming the node, when a signer is set (#18.1)."""
        if self.signer is None:
            return status_message(state, ts, self.version)
        return status_message(state, ts, self.version, node=self.node, signer=self.signer)

    def _flush_stats(self, client: mqtt.Client) -> None:
        while True:
            try:
                payload = self._stats.get_nowait()
            except queue.Empty:
                return
            client.publish(self._stats_topic, payload, qos=0)

    def _say_offline(self, client: mqtt.Client) -> None:
        """Clean shutdown: retained ``offline`` (waiting briefly for its PUBACK), then DISCONNECT (no Will)."""
        done: list[int] = []
        client.on_disconnect = None
        client.on_publish = lambda _c, _u, mid, _rc, _p: done.append(mid)
        info = client.publish(self._status_topic, self._status("offline", time.time()), qos=1, retain=True)
        deadline = time.monotonic() + 2.0
        while info.mid not in done and time.monotonic() < deadline:
            if client.loop(0.05) != mqtt.MQTT_ERR_SUCCESS:
                break
        _drop(client)


