"""``edgecam central run|status|search|register-node``: config in, plain values to the store and consumer."""

from __future__ import annotations

import argparse
import base64
import binascii
import json
import re
import signal
import sys
import threading
import time
from datetime import datetime, timezone
from typing import Any

from ..errors import UserError
from ..mqttclient import read_password
from ..redact import redact_url
from .config import CentralConfig, load_central_config
from .consumer import BrokerSettings, Consumer
from .fleet import fleet_rows, format_fleet
from .store import SearchFilter, Store, StoreError

NODE_ID = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")


def broker_settings(cfg: CentralConfig) -> BrokerSettings:
    m = cfg.mqtt
    try:
        password = read_password(m.password_file)
    except OSError as err:
        raise UserError(str(err)) from None
    return BrokerSettings(host=m.host, port=m.port, prefix=m.prefix, protocol=m.protocol, client_id=m.client_id,
                          keepalive=m.keepalive, username=m.username, password=password, tls=m.tls,
                          ca_file=m.ca_file, cert_file=m.cert_file, key_file=m.key_file,
                          shared_group=m.shared_group, session_expiry=m.session_expiry)


def _open_store(cfg: CentralConfig) -> Store:
    try:
        return Store(cfg.database.url)
    except StoreError as err:
        raise UserError(str(err)) from None


def run_command(args: argparse.Namespace) -> int:
    """Run the consumer until SIGTERM/SIGINT, then commit what was received and exit 0."""
    cfg = load_central_config(args.config)
    consumer = Consumer(broker_settings(cfg), cfg.database.url, cfg.mqtt.batch_size, cfg.mqtt.batch_wait)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    try:
        consumer.start()
    except StoreError as err:
        raise UserError(str(err)) from None
    try:
        while not stop.wait(1.0):
            if consumer.writer_dead.is_set():  # supervised: a dead writer stores nothing; end so systemd restarts
                break
    finally:
        consumer.stop()
    if consumer.failure is not None:
        err = consumer.failure
        raise UserError(f"central writer died ({type(err).__name__}: {redact_url(str(err).strip()[:200])});"
                        " unacknowledged messages stay with the broker")
    return 0


def status_command(args: argparse.Namespace) -> int:
    cfg = load_central_config(args.config)
    store = _open_store(cfg)
    try:
        rows = fleet_rows(store, time.time(), cfg.gaps.alarm_after, cfg.nodes.stale_after)
    finally:
        store.close()
    if args.json:
        for row in rows:
            print(json.dumps(row, separators=(",", ":")))
    else:
        print(format_fleet(rows))
    return 0


def parse_time(text: str | None, name: str) -> float | None:
    """ISO 8601 (naive means local time) or UNIX seconds."""
    if text is None:
        return None
    try:
        return float(text)
    except ValueError:
        pass
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except ValueError:
        raise UserError(f"{name}: {text!r} is neither an ISO time nor UNIX seconds") from None


def iso(ts: float | None) -> str | None:
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


def search_command(args: argparse.Namespace) -> int:
    cfg = load_central_config(args.config)
    if args.limit < 1:
        raise UserError("--limit must be at least 1")
    f = SearchFilter(since=parse_time(args.since, "--since"), until=parse_time(args.until, "--until"),
                     label=args.label, node=args.node, camera=args.camera, zone=args.zone, limit=args.limit)
    store = _open_store(cfg)
    try:
        rows = store.line_counts(f) if args.count_by == "line" else store.search(f)
    finally:
        store.close()
    if args.count_by == "line":
        _print_counts(rows, args.json)
    else:
        _print_events(rows, args.json)
    return 0


def _event_json(row: dict[str, Any]) -> dict[str, Any]:
    out = dict(row)
    out["time"] = iso(row["ts"])
    out["box"] = json.loads(row["box"])
    out["zones"] = json.loads(row["zones"])
    out["time_ok"] = bool(row["time_ok"])
    out["line"] = {"name": row["line_name"], "dir": row["line_dir"]} if row["line_name"] else None
    for key in ("line_name", "line_dir"):
        out.pop(key)
    return out


def _print_events(rows: list[dict[str, Any]], as_json: bool) -> None:
    if as_json:
        for row in rows:
            print(json.dumps(_event_json(row), separators=(",", ":"), ensure_ascii=False))
        return
    table = [("TIME (UTC)", "NODE", "SEQ", "CAMERA", "TYPE", "LABEL", "SCORE", "ZONES", "LINE", "CLIP", "API")]
    for r in rows:
        line = f"{r['line_name']}:{r['line_dir']}" if r["line_name"] else "-"
        table.append((iso(r["ts"]) or "", r["node"], str(r["seq"]), r["camera"], r["type"], r["label"],
                      f"{r['score']:.2f}", ",".join(json.loads(r["zones"])) or "-", line, r["clip"] or "-",
                      r["api_url"] or "-"))
    print(_table(table))
    print(f"{len(rows)} event(s)", file=sys.stderr)


def _print_counts(rows: list[dict[str, Any]], as_json: bool) -> None:
    if as_json:
        for row in rows:
            print(json.dumps({**row, "hour": iso(row["hour"])}, separators=(",", ":"), ensure_ascii=False))
        return
    table = [("HOUR (UTC)", "NODE", "CAMERA", "LINE", "IN", "OUT")]
    table += [(iso(r["hour"]) or "", r["node"], r["camera"], r["line"], str(r["in"]), str(r["out"])) for r in rows]
    print(_table(table))


def _table(rows: list[tuple[str, ...]]) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows)


def check_pubkey(text: str) -> str:
    """A non-empty single line; an ``ed25519:`` key must be base64 of 32 bytes."""
    key = text.strip()
    if not key or "\n" in key or "\r" in key:
        raise UserError("--pubkey: must be one non-empty line (the output of `edgecam key show`)")
    if key.lower().startswith("ed25519:"):
        try:
            raw = base64.b64decode(key.split(":", 1)[1], validate=True)
        except (binascii.Error, ValueError):
            raise UserError("--pubkey: the text after 'ed25519:' is not base64") from None
        if len(raw) != 32:
            raise UserError(f"--pubkey: an Ed25519 public key is 32 bytes, this one is {len(raw)}")
    return key


def register_node_command(args: argparse.Namespace) -> int:
    cfg = load_central_config(args.config)
    if not NODE_ID.match(args.node):
        raise UserError(f"--node: {args.node!r} is not a node id (letters, digits, _ . -; at most 64)")
    key = check_pubkey(args.pubkey)
    if args.api is not None and not re.match(r"^https?://[^\s/]+", args.api):
        raise UserError(f"--api: {args.api!r} is not an http(s):// URL")
    store = _open_store(cfg)
    try:
        store.register_node(args.node, key, args.api)
    finally:
        store.close()
    print(f"registered {args.node}: {key}" + (f" at {args.api}" if args.api else ""))
    return 0
