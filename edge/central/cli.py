"""``edgecam central run|status|search|register-node|ack-gap``: config in, plain values to the store and consumer."""

from __future__ import annotations

import argparse
import base64
import binascii
import getpass
import json
import math
import os
import re
import signal
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any

from ..errors import UserError
from ..mqttclient import read_password
from ..redact import redact_url
from ..signals import deferred
from . import scale
from .config import CentralConfig, load_central_config, window_end
from .consumer import BrokerSettings, Consumer
from .fleet import fleet_rows, format_fleet
from .messages import MAX_SEQ
from .printable import json_line, local_text, printable, utc_iso, zone_name
from .store import GapAck, SearchFilter, Store, StoreError
from .trust import TrustPolicy

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
    consumer = Consumer(broker_settings(cfg), cfg.database.url, cfg.mqtt.batch_size, cfg.mqtt.batch_wait,
                        trust=TrustPolicy(window_end(cfg.trust.accept_unsigned_until)))
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, deferred(stop.set))
    try:
        consumer.start()
    except StoreError as err:
        raise UserError(str(err)) from None
    desk = None
    if cfg.web.listen:  # wiring: desk (the evidence desk's web page, edge.central.web)
        from .web import DeskServer, parse_listen

        try:
            desk = DeskServer(cfg, *parse_listen(cfg.web.listen))
            desk.start()
        except UserError:
            consumer.stop()
            raise
    try:
        while not stop.wait(1.0):
            if consumer.writer_dead.is_set():  # supervised: a dead writer stores nothing; end so systemd restarts
                break
    finally:
        if desk is not None:
            desk.stop()
        consumer.stop()
    if consumer.failure is not None:
        failure = consumer.failure
        raise UserError(f"central writer died ({type(failure).__name__}: {redact_url(str(failure).strip()[:200])});"
                        " unacknowledged messages stay with the broker")
    return 0


@contextmanager
def quiet_pipe() -> Iterator[None]:
    """``central ... | head`` ends quietly: a reader that went away is not an error worth a traceback."""
    try:
        yield
        sys.stdout.flush()
    except BrokenPipeError:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # the interpreter's final flush must not raise again


def status_command(args: argparse.Namespace) -> int:
    """The fleet table; exit 1 while an unacknowledged gap alarm stands (for monitoring), else 0."""
    cfg = load_central_config(args.config)
    store = _open_store(cfg)
    try:
        rows = fleet_rows(store, time.time(), cfg.gaps.alarm_after, cfg.nodes.stale_after)
        faults = store.trust_faults()
    finally:
        store.close()
    with quiet_pipe():
        if args.json:
            known = {r["node"] for r in rows}
            for row in rows:
                print(json_line({**row, "trust_faults": [f for f in faults if f["node"] == row["node"]]}))
            for fault in faults:  # names with no fleet row (an unregistered node's messages make none)
                if fault["node"] not in known:
                    print(json_line({"trust_fault": fault}))
        else:
            print(format_fleet(rows))
            if faults:
                print(format_trust(faults))
    return 1 if any(r["alarm"] for r in rows) or faults else 0


def parse_time(text: str | None, name: str) -> float | None:
    """UNIX seconds, or ISO 8601 with a zone or ``Z``; a naive ISO time is the central machine's local time."""
    if text is None:
        return None
    try:
        value = float(text)
    except ValueError:
        pass
    else:
        if not math.isfinite(value):
            raise UserError(f"{name}: {text!r} is not a time")
        return value
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00")).timestamp()
    except (ValueError, OverflowError, OSError):
        raise UserError(f"{name}: {text!r} is neither an ISO time (e.g. 2026-03-01T08:00Z) nor UNIX seconds") from None


def iso(ts: float | None) -> str | None:
    return utc_iso(ts)


def search_command(args: argparse.Namespace) -> int:
    cfg = load_central_config(args.config)
    if args.limit < 1:
        raise UserError("--limit must be at least 1")
    f = SearchFilter(since=parse_time(args.since, "--since"), until=parse_time(args.until, "--until"),
                     label=args.label, node=args.node, camera=args.camera, zone=args.zone, limit=args.limit,
                     **identification_filter(args))
    store = _open_store(cfg)
    try:
        if args.count_by == "line":
            rows, total = store.line_counts(f), None
        elif getattr(args, "raw", False):
            rows, total = store.search(f), store.count(f)
        else:
            rows, total = store.search_objects(f)
    finally:
        store.close()
    with quiet_pipe():
        if args.count_by == "line":
            _print_counts(rows, args.json)
        elif getattr(args, "raw", False):
            _print_messages(rows, args.json)
        else:
            _print_objects(rows, args.json)
    if total is not None:
        what = "message(s)" if getattr(args, "raw", False) else "tracked object(s)"
        more = f"; {total - len(rows)} more, raise --limit" if total > len(rows) else ""
        print(f"{len(rows)} {what}, newest first{more}", file=sys.stderr)
    return 0


def _zone_note() -> str:
    return f"times in {zone_name()} (this machine's zone), UTC beside"


def _object_json(row: dict[str, Any]) -> dict[str, Any]:
    out = dict(row)
    out["first_seen"] = utc_iso(row["first_ts"])
    out["last_seen"] = utc_iso(row["last_ts"])
    return out


def _print_objects(rows: list[dict[str, Any]], as_json: bool) -> None:
    if as_json:
        for row in rows:
            print(json_line(_object_json(row)))
        return
    zone = zone_name()
    table = [(f"FIRST SEEN ({zone})", "UTC", "LAST SEEN", "NODE", "CAMERA", "LABEL", "BEST", "ZONES", "LINE",
              "COLOR", "HEADING", "PLATE", "CLIP", "BEST SHOT", "API", "ID")]
    for r in rows:
        line = f"{r['line']['name']}:{r['line']['dir']}" if r["line"] else "-"
        table.append((local_text(r["first_ts"]), utc_iso(r["first_ts"]) or "", local_text(r["last_ts"]),
                      r["node"], r["camera"], r["label"], f"{r['score']:.2f}", ",".join(r["zones"]) or "-", line,
                      r.get("color") or "-", r.get("heading") or "-", r.get("plate") or "-",
                      r["clip"] or "-", r.get("best") or "-", r["api_url"] or "-", r["id"]))
    print(_table(table))
    print(_zone_note(), file=sys.stderr)


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


def _print_messages(rows: list[dict[str, Any]], as_json: bool) -> None:
    if as_json:
        for row in rows:
            print(json_line(_event_json(row)))
        return
    table = [(f"TIME ({zone_name()})", "UTC", "NODE", "SEQ", "CAMERA", "TYPE", "LABEL", "SCORE", "ZONES", "LINE",
              "CLIP", "API")]
    for r in rows:
        line = f"{r['line_name']}:{r['line_dir']}" if r["line_name"] else "-"
        table.append((local_text(r["ts"]), iso(r["ts"]) or "", r["node"], str(r["seq"]), r["camera"], r["type"],
                      r["label"], f"{r['score']:.2f}", ",".join(json.loads(r["zones"])) or "-", line,
                      r["clip"] or "-", r["api_url"] or "-"))
    print(_table(table))
    print(_zone_note(), file=sys.stderr)


def _print_counts(rows: list[dict[str, Any]], as_json: bool) -> None:
    if as_json:
        for row in rows:
            print(json_line({**row, "hour": iso(row["hour"])}))
        return
    table = [(f"HOUR ({zone_name()})", "UTC", "NODE", "CAMERA", "LINE", "IN", "OUT")]
    table += [(local_text(r["hour"]), iso(r["hour"]) or "-", r["node"], r["camera"], r["line"], str(r["in"]),
               str(r["out"])) for r in rows]
    print(_table(table))


def _table(rows: Sequence[tuple[str, ...]]) -> str:
    """Aligned columns; every cell made printable (node-supplied text may carry terminal escapes)."""
    cells = [tuple(printable(c) for c in r) for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(cells[0]))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in cells)


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
    valid_from = parse_time(getattr(args, "valid_from", None), "--from")
    baseline = getattr(args, "baseline_seq", None)
    if baseline is not None and not 0 <= baseline <= MAX_SEQ:
        raise UserError(f"--baseline-seq: {baseline} is not in 0..2^53")
    if getattr(args, "token_file", None):  # central fetch's token for this node, kept out of the database
        from .fetch import evidence_root, save_node_token

        if args.api is None:
            raise UserError("--token-file needs --api URL (the node's LAN API the token opens)")
        save_node_token(evidence_root(cfg), args.node, args.token_file)
    store = _open_store(cfg)
    try:
        added = store.register_node(args.node, key, args.api, baseline, valid_from=valid_from)
    finally:
        store.close()
    if added is None:
        keynote = "" if key.lower().startswith("ed25519:") else " (not an Ed25519 key: its messages cannot verify)"
    elif added <= 0:
        keynote = " (signs all its messages)"
    else:
        keynote = f" (signs messages from {utc_iso(added)}; the previous key stays valid before that)"
    with quiet_pipe():
        print(f"registered {args.node}: {key}{keynote}" + (f" at {args.api}" if args.api else "")
              + (f"; seqs up to {baseline} are not gaps" if baseline is not None else ""))
    return 0


def format_trust(faults: list[dict[str, Any]]) -> str:
    """One line per node and kind of trust fault since the last ack-trust, then what to do."""
    lines = []
    for f in faults:
        lines.append(f"TRUST {printable(f['node'] or '-')}: {f['count']} {f['kind']} message(s) quarantined,"
                     f" last {utc_iso(f['last'])}: {printable(f['reason'][:160])}")
    lines.append("messages not verified as their node's are not stored (see the quarantine table);"
                 " `edgecam central ack-trust --reason ...` clears this alarm")
    return "\n".join(lines)


def ack_trust_command(args: argparse.Namespace) -> int:
    """Record that an operator has looked at the trust faults so far: `status` raises only newer ones."""
    cfg = load_central_config(args.config)
    reason = args.reason.strip()
    if not reason or len(reason) > 500 or any(ord(ch) < 32 for ch in reason):
        raise UserError("--reason: one line of 1..500 characters saying what was found")
    who = (args.by or _login_user()).strip()[:100]
    store = _open_store(cfg)
    try:
        faults = store.trust_faults()
        store.ack_trust(who, reason, time.time())
    finally:
        store.close()
    with quiet_pipe():
        print(f"acknowledged {sum(f['count'] for f in faults)} trust fault(s) by {printable(who)}: {printable(reason)}")
    return 0


def _login_user() -> str:
    for var in ("SUDO_USER", "LOGNAME", "USER"):
        if os.environ.get(var):
            return os.environ[var]
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return f"uid {os.getuid()}"


def ack_gap_command(args: argparse.Namespace) -> int:
    """Record an operator's acknowledgement of a missing range (who, when, why): it is no alarm any more."""
    cfg = load_central_config(args.config)
    if not 1 <= args.first <= args.last <= MAX_SEQ:
        raise UserError(f"--from {args.first} --to {args.last}: need 1 <= FROM <= TO <= 2^53")
    reason = args.reason.strip()
    if not reason or len(reason) > 500 or any(ord(ch) < 32 for ch in reason):
        raise UserError("--reason: one line of 1..500 characters saying why the range is accepted as lost")
    who = (args.by or _login_user()).strip()[:100]
    store = _open_store(cfg)
    try:
        if store.node(args.node) is None:
            raise UserError(f"--node: {args.node!r} is not a node central knows (see `edgecam central status`)")
        store.ack_gap(GapAck(args.node, args.first, args.last, reason, who, time.time()))
        report = store.gaps(args.node)
    finally:
        store.close()
    covered = sum(min(g.last, args.last) - max(g.first, args.first) + 1 for g in report.gaps
                  if g.first <= args.last and g.last >= args.first)
    with quiet_pipe():
        print(f"acknowledged {args.node} seqs {args.first}-{args.last} ({covered} missing now) by"
              f" {printable(who)}: {printable(reason)}")
    return 0


COLORS = ("white", "black", "grey", "red", "blue", "green", "yellow", "brown")
HEADINGS = ("up", "up-right", "right", "down-right", "down", "down-left", "left", "up-left")


def identification_filter(args: argparse.Namespace) -> dict[str, Any]:
    """``--plate/--fuzzy/--color/--heading`` checked against the words the nodes send (#16.4)."""
    plate, fuzzy = getattr(args, "plate", None), bool(getattr(args, "fuzzy", False))
    color, heading = getattr(args, "color", None), getattr(args, "heading", None)
    if fuzzy and plate is None:
        raise UserError("--fuzzy needs --plate")
    if plate is not None and not scale.plate_pattern(plate).strip("*"):
        raise UserError(f"--plate: {plate!r} has no letter or digit to match")
    if color is not None and color.lower() not in COLORS:
        raise UserError(f"--color: {color!r} is not one of {', '.join(COLORS)}")
    if heading is not None and heading.lower() not in HEADINGS:
        raise UserError(f"--heading: {heading!r} is not one of {', '.join(HEADINGS)}")
    return {"plate": plate, "fuzzy": fuzzy, "color": color and color.lower(), "heading": heading and heading.lower()}


def prune_command(args: argparse.Namespace) -> int:
    """Retention: every event of the months before ``--before`` goes (PostgreSQL: whole partitions dropped)."""
    cfg = load_central_config(args.config)
    try:
        month = scale.parse_month(args.before)
    except ValueError:
        raise UserError(f"--before: {args.before!r} is not a month (YYYY-MM, e.g. 2026-01)") from None
    if month > scale.month_of(time.time()):
        raise UserError(f"--before: {args.before} is after this month; that would drop events still arriving")
    store = _open_store(cfg)
    try:
        months, rows = scale.prune(store, month)
    finally:
        store.close()
    names = ", ".join(f"{m // 100}-{m % 100:02d}" for m in months) or "none"
    with quiet_pipe():
        print(f"dropped {rows} event(s) before {args.before} (months: {names})")
    return 0
