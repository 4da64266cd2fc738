"""Command-line parsing only: each command calls one handler in ``edge.commands``.

Handlers are imported plainly (the import graph sees them); each imports its
heavy dependencies when it runs, so ``edgecam --help`` stays fast and a Pi
without onnxruntime can still run ``edgecam clips pull``. A handler takes the
parsed arguments and returns the exit code; it raises ``UserError`` (or
``ConfigError``) for a one-line failure.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from . import __version__
from .commands import central as central_cmd
from .commands import clips as clips_cmd
from .commands import keys as keys_cmd
from .commands import model as model_cmd
from .commands import node as node_cmd
from .commands import snapshot as snapshot_cmd
from .commands import tools as tools_cmd
from .config import DEFAULT_CONFIG_PATH, ConfigError
from .errors import UserError  # re-exported: handlers and tests import it from here
from .redact import redact_url


def _add_config(p: argparse.ArgumentParser, default: str | None = str(DEFAULT_CONFIG_PATH)) -> None:
    p.add_argument("-c", "--config", default=default, help=f"config file (default {default})")


def _add_mqtt_client_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--broker", default="127.0.0.1:1883", help="HOST[:PORT] of the broker")
    p.add_argument("--prefix", default="edgecam", help="topic prefix")
    p.add_argument("--tls", action="store_true", help="connect with TLS")
    p.add_argument("--ca-file", help="CA certificate for TLS")
    p.add_argument("--cert-file", help="client certificate for TLS")
    p.add_argument("--key-file", help="client key for TLS")
    p.add_argument("--user", help="MQTT username")
    p.add_argument("--password-file", help="file holding the MQTT password")


def _add_node_client(p: argparse.ArgumentParser) -> None:
    p.add_argument("--node", required=True, help="node URL, e.g. http://10.0.0.5:8080")
    p.add_argument("--token", help="API token (or EDGECAM_TOKEN, or --token-file)")
    p.add_argument("--token-file", help="file holding the API token")
    p.add_argument("--cafile", help="CA/cert to trust for an https node")


def _add_node_commands(sub: argparse._SubParsersAction) -> None:
    """run, check, snapshot, model: what runs on the node."""
    p = sub.add_parser("run", help="run the daemon")
    _add_config(p)
    p.set_defaults(handler=node_cmd.run)

    p = sub.add_parser("check", help="validate config and probe camera, model, storage, broker, clock")
    _add_config(p)
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--config-only", action="store_true", help="only validate the config file")
    p.add_argument("--timeout", type=float, default=10.0, help="seconds per probe")
    p.set_defaults(handler=node_cmd.check)

    p = sub.add_parser("snapshot", help="save one frame, optionally with mask, zones and lines drawn")
    _add_config(p)
    p.add_argument("-o", "--output", required=True, help="JPEG file to write")
    p.add_argument("--camera", help="camera name (default: the first)")
    p.add_argument("--overlay", action="store_true", help="draw motion mask, zones, lines, detections")
    p.set_defaults(handler=snapshot_cmd.snapshot)

    model = sub.add_parser("model", help="model tools").add_subparsers(dest="model_command", metavar="ACTION")
    model.required = True
    p = model.add_parser("prepare", help="make the INT8 model, measure both, write the manifest")
    p.add_argument("--calib", help="directory of calibration images (default: the shared COCO sample)")
    p.add_argument("--out", default="models", help="output directory (default models/)")
    p.add_argument("--fp32", help="FP32 ONNX model (default: the shared YOLOX-Nano)")
    p.add_argument("--threads", type=int, default=2, help="inference threads for the timing")
    p.add_argument("--calib-count", type=int, default=50, help="calibration images (the next 50 measure agreement)")
    p.add_argument("--eval-count", type=int, default=50, help="held-out images for the agreement measurement")
    p.set_defaults(handler=model_cmd.prepare)


def _add_clips_commands(sub: argparse._SubParsersAction) -> None:
    """clips list|pull|verify|hold|release."""
    clips = sub.add_parser("clips", help="list, pull, verify, hold clips").add_subparsers(
        dest="clips_command", metavar="ACTION"
    )
    clips.required = True
    p = clips.add_parser("list", help="list a node's clips over the LAN")
    _add_node_client(p)
    p.add_argument("--since", help="ISO 8601 time (no zone = UTC; add Z or +07:00) or UNIX seconds")
    p.add_argument("--until", help="ISO 8601 time (no zone = UTC; add Z or +07:00) or UNIX seconds")
    p.add_argument("--label")
    p.add_argument("--camera")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=clips_cmd.list_clips)
    p = clips.add_parser("pull", help="download clips (resumable, sha256-verified)")
    _add_node_client(p)
    p.add_argument("ids", nargs="+", metavar="ID")
    p.add_argument("-o", "--output", default=".", help="directory to write into")
    p.add_argument("--bundle", help="also write an evidence bundle ZIP")
    p.set_defaults(handler=clips_cmd.pull)
    p = clips.add_parser("verify", help="offline check of a pulled clip or evidence bundle")
    p.add_argument("file", help="clip .mp4 or evidence bundle .zip")
    p.add_argument("--meta", help="META.json of the clip (default: X.meta.json beside X.mp4)")
    p.add_argument("--pubkey", help="the node's public key (text or a file holding it)")
    p.set_defaults(handler=clips_cmd.verify)
    for action, helptext in (("hold", "keep a clip past retention"), ("release", "stop keeping a clip")):
        p = clips.add_parser(action, help=helptext + " (on the node, or over the LAN with --node/--token)")
        _add_config(p)
        p.add_argument("id")
        p.add_argument("--node", help="node URL: do it over the LAN API, as the page does")
        p.add_argument("--token", help="API token (or EDGECAM_TOKEN, or --token-file)")
        p.add_argument("--token-file", help="file holding the API token")
        p.add_argument("--cafile", help="CA/cert to trust for an https node")
        p.set_defaults(handler=clips_cmd.hold if action == "hold" else clips_cmd.release)


def _add_tool_commands(sub: argparse._SubParsersAction) -> None:
    """key, token, events tail, bench."""
    key = sub.add_parser("key", help="node signing key").add_subparsers(dest="key_command", metavar="ACTION")
    key.required = True
    p = key.add_parser("show", help="print the node's Ed25519 public key")
    _add_config(p)
    p.set_defaults(handler=keys_cmd.key_show)
    p = key.add_parser("new", help="replace the node's signing key (a corrupt or lost key; old files kept)")
    _add_config(p)
    p.add_argument("--force", action="store_true", help="replace an existing key file")
    p.set_defaults(handler=keys_cmd.key_new)

    token = sub.add_parser("token", help="LAN API tokens").add_subparsers(dest="token_command", metavar="ACTION")
    token.required = True
    p = token.add_parser("new", help="print a new token once, and the config line with its hash")
    p.add_argument("--name", required=True)
    p.set_defaults(handler=keys_cmd.token_new)

    events = sub.add_parser("events", help="event tools").add_subparsers(dest="events_command", metavar="ACTION")
    events.required = True
    p = events.add_parser("tail", help="subscribe and print events")
    _add_mqtt_client_options(p)
    p.add_argument("--node", help="only this node")
    p.add_argument("--json", action="store_true", help="one JSON object per line")
    p.add_argument("--count", type=int, default=0, help="exit after this many events (0 = never)")
    p.set_defaults(handler=tools_cmd.events_tail)

    p = sub.add_parser("bench", help="run the pipeline flat out on a file and report costs")
    p.add_argument("--source", required=True, help="video file")
    p.add_argument("--json", action="store_true")
    p.add_argument("--detect-fps", type=float, default=5.0)
    p.add_argument("--baselines", action="store_true", help="also run MOG2 and every-frame detection")
    p.add_argument("--model", help="ONNX model (default: per manifest)")
    p.set_defaults(handler=tools_cmd.bench)

    plates = sub.add_parser("plates", help="licence-plate tools (needs the plates extra)").add_subparsers(
        dest="plates_command", metavar="ACTION"
    )
    plates.required = True
    p = plates.add_parser("read", help="read plates in still images (a plate or vehicle crop, or a whole photo)")
    p.add_argument("files", nargs="+", metavar="FILE")
    p.add_argument("--json", action="store_true", help="one JSON object per file")
    p.add_argument("--threads", type=int, default=1, help="inference threads")
    p.set_defaults(handler=tools_cmd.plates_read)


def _add_central_commands(sub: argparse._SubParsersAction) -> None:
    """the central server's commands (central.toml)."""
    central = sub.add_parser("central", help="the central server's consumer and queries").add_subparsers(
        dest="central_command", metavar="ACTION"
    )
    central.required = True
    p = central.add_parser("run", help="subscribe and store events idempotently")
    _add_config(p, default="central.toml")
    p.set_defaults(handler=central_cmd.run)
    p = central.add_parser("status", help="fleet table: online, last seen, seq gaps, outbox, clock")
    _add_config(p, default="central.toml")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=central_cmd.status)
    p = central.add_parser("search", help="search stored events")
    _add_config(p, default="central.toml")
    for opt in ("--since", "--until", "--label", "--node", "--camera", "--zone"):
        p.add_argument(opt)
    p.add_argument("--count-by", choices=["line"], help="directional line counts per hour")
    p.add_argument("--limit", type=int, default=1000)
    p.add_argument("--json", action="store_true")
    p.add_argument("--raw", action="store_true", help="one row per message (start/update/end), not per object")
    # wiring: identification search (#16.4)
    p.add_argument("--plate", help="plate, punctuation ignored; * any run, ? one character")
    p.add_argument("--fuzzy", action="store_true", help="with --plate: also plates within one edit, best first")
    p.add_argument("--color", help="white, black, grey, red, blue, green, yellow or brown")
    p.add_argument("--heading", help="up, up-right, right, down-right, down, down-left, left or up-left")
    p.set_defaults(handler=central_cmd.search)
    # wiring: retention by month (#18.4)
    p = central.add_parser("prune", help="drop every event of the months before --before (whole partitions)")
    _add_config(p, default="central.toml")
    p.add_argument("--before", required=True, metavar="YYYY-MM", help="first month kept")
    p.set_defaults(handler=central_cmd.prune)
    p = central.add_parser("register-node", help="record a node's public key")
    _add_config(p, default="central.toml")
    p.add_argument("--node", required=True)
    p.add_argument("--pubkey", required=True)
    p.add_argument("--api", help="the node's LAN API URL, shown by search")
    p.add_argument("--baseline-seq", type=int, help="seqs up to N are not gaps (sent before central listened)")
    p.add_argument("--from", dest="valid_from", metavar="TIME",
                   help="a new key (rotation) signs messages from TIME (ISO or UNIX; default now); older keys"
                        " stay valid for messages before it")
    p.add_argument("--token-file", help="a LAN API token of the node's, made for central (used by central fetch)")
    p.set_defaults(handler=central_cmd.register_node)
    p = central.add_parser("ack-trust", help="acknowledge the trust faults so far (unsigned, bad signature,"
                                             " unregistered, conflict): clears their alarm")
    _add_config(p, default="central.toml")
    p.add_argument("--reason", required=True)
    p.add_argument("--by", help="who acknowledges (default: the login user)")
    p.set_defaults(handler=central_cmd.ack_trust)
    p = central.add_parser("init", help="make central's Ed25519 key (signs push fetch requests)")
    _add_config(p, default="central.toml")
    p.set_defaults(handler=central_cmd.init)
    p = central.add_parser("fetch", help="fetch a clip from a node into the evidence store, verified")
    _add_config(p, default="central.toml")
    p.add_argument("--node", required=True)
    p.add_argument("--clip", required=True)
    p.add_argument("--via", choices=["pull", "push"], default="pull")
    p.add_argument("--wait", type=float, default=0.0, help="seconds to keep trying an unreachable node")
    p.set_defaults(handler=central_cmd.fetch)
    case = central.add_parser("case", help="evidence cases: collect stored clips, export them").add_subparsers(
        dest="case_command", metavar="ACTION")
    case.required = True
    p = case.add_parser("new", help="open a case")
    _add_config(p, default="central.toml")
    p.add_argument("name", help="the case number")
    p.add_argument("--notes", help="free text kept with the case")
    p.set_defaults(handler=central_cmd.case_new)
    p = case.add_parser("add", help="add a clip to a case (fetched and verified first if not stored yet)")
    _add_config(p, default="central.toml")
    p.add_argument("name", help="the case number")
    p.add_argument("--node", required=True)
    p.add_argument("--clip", required=True)
    p.add_argument("--note", help="why this clip belongs to the case")
    p.set_defaults(handler=central_cmd.case_add)
    p = case.add_parser("export", help="write the case as a ZIP that `edgecam clips verify` checks offline")
    _add_config(p, default="central.toml")
    p.add_argument("name", help="the case number")
    p.add_argument("-o", "--output", required=True, help="FILE.zip")
    p.set_defaults(handler=central_cmd.case_export)
    for action, text in (("close", "close a case: retention may delete its clips once --older-than has passed"
                                   " since the close"), ("reopen", "reopen a closed case: its clips are held again")):
        p = case.add_parser(action, help=text)
        _add_config(p, default="central.toml")
        p.add_argument("name", help="the case number")
        p.add_argument("--reason", help="kept in the custody log")
        p.set_defaults(handler=getattr(central_cmd, f"case_{action}"))
    evidence = central.add_parser("evidence", help="central's evidence store").add_subparsers(
        dest="evidence_command", metavar="ACTION")
    evidence.required = True
    p = evidence.add_parser("prune", help="delete stored clips older than N days (never one in an open case)")
    _add_config(p, default="central.toml")
    p.add_argument("--older-than", type=float, required=True, metavar="DAYS")
    p.add_argument("--dry-run", action="store_true")
    p.set_defaults(handler=central_cmd.evidence_prune)
    p = central.add_parser("web", help="serve the evidence desk (central run serves it too with [web] listen)")
    _add_config(p, default="central.toml")
    p.add_argument("--listen", help="HOST:PORT (default: [web] listen, else 127.0.0.1:8090)")
    p.set_defaults(handler=central_cmd.web)
    user = central.add_parser("user", help="the desk's users (web page)").add_subparsers(
        dest="user_command", metavar="ACTION")
    user.required = True
    for action, text in (("add", "add a user"), ("passwd", "set a new password (ends the user's sessions)"),
                         ("disable", "disable a user (ends the user's sessions)")):
        p = user.add_parser(action, help=text)
        _add_config(p, default="central.toml")
        p.add_argument("name")
        if action == "add":
            p.add_argument("--role", required=True, choices=["viewer", "investigator", "admin"])
        if action != "disable":
            p.add_argument("--password-file", help="read the password from this file's first line")
        p.set_defaults(handler={"add": central_cmd.user_add, "passwd": central_cmd.user_passwd,
                                    "disable": central_cmd.user_disable}[action])
    p = central.add_parser("ack-gap", help="acknowledge a missing seq range (clears its alarm)")
    _add_config(p, default="central.toml")
    p.add_argument("--node", required=True)
    p.add_argument("--from", dest="first", type=int, required=True)
    p.add_argument("--to", dest="last", type=int, required=True)
    p.add_argument("--reason", required=True)
    p.add_argument("--by", help="who acknowledges (default: the login user)")
    p.set_defaults(handler=central_cmd.ack_gap)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="edgecam", description="edge camera node: capture, detect, record, publish")
    parser.add_argument("--version", action="version", version=f"edgecam {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    _add_node_commands(sub)
    _add_clips_commands(sub)
    _add_tool_commands(sub)
    _add_central_commands(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from .logs import setup_logging

    setup_logging(logging.DEBUG if args.verbose else logging.INFO)
    try:
        return int(args.handler(args) or 0)
    except ConfigError as err:
        print(redact_url(f"edgecam: config error: {err}"), file=sys.stderr)
        return 2
    except UserError as err:
        print(redact_url(f"edgecam: {err}"), file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
