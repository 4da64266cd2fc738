"""``edgecam clips list|pull|verify|hold|release``: the technician's and the installer's clip commands.

``list``/``pull`` and ``hold``/``release --node`` stay stdlib-only (a laptop
without cryptography or numpy can run them); ``verify`` and the on-node
``hold``/``release`` import what they need when they run.
"""

from __future__ import annotations

import argparse
import getpass
import json
import os
import socket
import sys
import urllib.parse
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..api.client import _ID, NodeClient, fetch_list, format_table, parse_time, pull_clip
from ..config import load_config
from ..errors import UserError

if TYPE_CHECKING:
    from ..clips.store import ClipStore


def read_token(args: argparse.Namespace) -> str:
    """--token, else --token-file, else $EDGECAM_TOKEN (the last two keep it out of shell history)."""
    if getattr(args, "token", None):
        return args.token.strip()
    if getattr(args, "token_file", None):
        try:
            return Path(args.token_file).read_text().strip()
        except OSError as err:
            raise UserError(f"cannot read --token-file: {err.strerror}") from None
    token = os.environ.get("EDGECAM_TOKEN", "").strip()
    if not token:
        raise UserError("no token: pass --token, --token-file or set EDGECAM_TOKEN")
    return token


def _client(args: argparse.Namespace) -> NodeClient:
    return NodeClient(args.node, read_token(args), getattr(args, "cafile", None))


def list_clips(args: argparse.Namespace) -> int:
    filters = {"since": parse_time(args.since), "until": parse_time(args.until), "label": args.label,
               "camera": args.camera}
    rows = fetch_list(_client(args), filters)
    if args.json:
        print(json.dumps(rows, indent=1))
    else:
        print(format_table(rows) if rows else "no clips")
    return 0


def pull(args: argparse.Namespace) -> int:
    client = _client(args)
    out = Path(args.output)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise UserError(f"cannot create {out}: {err.strerror}") from None
    items, failed = [], 0
    for cid in args.ids:
        try:
            item = pull_clip(client, cid, out)
        except UserError as err:
            if len(args.ids) == 1:
                raise
            print(f"edgecam: {err}", file=sys.stderr)
            failed += 1
            continue
        items.append(item)
        print(f"{item.file}  {item.file.stat().st_size} bytes  sha256 {item.sha256}  ok")
    if failed:
        tail = "; no bundle written" if args.bundle else ""
        raise UserError(f"{failed} of {len(args.ids)} clip(s) not pulled{tail}")
    if args.bundle:
        from ..clips.evidence import write_bundle  # needs cryptography; a plain pull stays stdlib-only

        health = client.json("/api/v1/health")
        node = str(health.get("node") or urllib.parse.urlsplit(client.base).netloc) if isinstance(health, dict) else ""
        pairs = [(item.file, item.meta) for item in items]
        by = f"edgecam clips pull, user {getpass.getuser()} on {socket.gethostname()}, from {client.base}"
        shots = _pull_best_shots(client, [item.meta for item in items], out)
        path = write_bundle(Path(args.bundle), pairs, client.text("/api/v1/pubkey"), node, exported_by=by,
                            best=shots.get)
        print(f"bundle {path} ({len(items)} clip(s))")
    return 0


def _pull_best_shots(client: NodeClient, metas: list[dict[str, Any]], out: Path) -> dict[str, Path]:
    """The clips' signed best shots (``bundle.best_ids``), saved beside the clips as ``<id>.best.jpg``."""
    from ..clips.bundle import best_ids

    got: dict[str, Path] = {}
    for meta in metas:
        for best_id in best_ids(meta):
            if not _ID.fullmatch(best_id) or best_id in got:
                continue
            try:
                with client.open(f"/api/v1/best/{best_id}.jpg") as resp:
                    data = resp.read()
            except UserError as err:
                print(f"edgecam: best shot {best_id}: {err}", file=sys.stderr)
                continue
            path = out / f"{best_id}.best.jpg"
            path.write_bytes(data)
            got[best_id] = path
    return got


def hold(args: argparse.Namespace) -> int:
    """``edgecam clips hold ID``: on the node (``-c CONFIG``) or over the LAN (``--node URL --token T``)."""
    return _hold(args, True)


def release(args: argparse.Namespace) -> int:
    """``edgecam clips release ID``: the same two ways as hold."""
    return _hold(args, False)


def _hold(args: argparse.Namespace, held: bool) -> int:
    if not getattr(args, "node", None):
        return _set_held(args, held)  # on the node: the index itself (needs no token)
    if not _ID.match(args.id) or ".." in args.id:
        raise UserError(f"bad clip id {args.id!r}")
    client = _client(args)
    with client.open(f"/api/v1/clips/{args.id}/hold", method="POST" if held else "DELETE") as resp:
        answer = json.loads(resp.read() or b"{}")
    if answer.get("held") is not held:
        raise UserError(f"node did not confirm: {answer}")
    print(f"{'held' if held else 'released'} {args.id} on {client.base}")
    return 0


def _cli_store(args: argparse.Namespace) -> ClipStore:
    cfg = load_config(args.config)
    root = Path(cfg.storage.path)
    if not (root / "clips.db").exists():
        raise UserError(f"no clip index at {root / 'clips.db'} (has the node run?)")
    from ..clips.store import ClipStore

    return ClipStore(root, None)


def _set_held(args: argparse.Namespace, held: bool) -> int:
    """Hold or release in the node's own index (``-c CONFIG``): no token, no daemon needed."""
    store = _cli_store(args)
    try:
        found = store.catalog.hold(args.id) if held else store.catalog.release(args.id)
    finally:
        store.close()
    if not found:
        raise UserError(f"no clip {args.id!r}")
    print(f"{'held' if held else 'released'} {args.id}")
    return 0


def verify(args: argparse.Namespace) -> int:
    """``edgecam clips verify FILE [--meta META.json] [--pubkey KEY]``: one line per check, exit 1 on failure."""
    from ..clips.evidence import Check, check_best, check_bundle, check_clip, parse_public_key

    path = Path(args.file)
    if not path.is_file():
        raise UserError(f"{path}: no such file")
    try:
        if zipfile.is_zipfile(path):
            from ..central.casefile import check_case, is_case  # hook: central's case exports

            with zipfile.ZipFile(path) as zf:
                case = is_case(zf)
            check = check_case if case else check_bundle
            checks = check(path, _key_text(args.pubkey) if args.pubkey else None)
        else:
            meta_path = Path(args.meta) if args.meta else beside_meta(path)
            meta = json.loads(meta_path.read_text())
            checks = []
            key = _key_text(args.pubkey) if args.pubkey else str(meta.get("pubkey") or "")
            if not args.pubkey:
                note = f"using {meta_path.name}'s own pubkey (pass --pubkey to check origin)"
                checks.append(Check("key", True, note))
            pub = parse_public_key(key)
            checks += check_clip(path.read_bytes(), meta, pub)
            cid = str((meta.get("record") or {}).get("clip", ""))
            checks += check_best(cid, meta, pub, lambda i: _best_beside(path, i), "beside the clip")
    except (OSError, ValueError, KeyError, zipfile.BadZipFile) as err:
        raise UserError(f"cannot verify {path}: {err}") from None
    for c in checks:
        print(c.line())
    failed = [c for c in checks if not c.ok]
    breaks = sum(1 for c in checks if c.ok and c.name == "chain" and "BREAK recorded" in c.detail)
    noted = f" ({breaks} chain break(s) recorded by the node, see above)" if breaks else ""
    print(f"verified{noted}" if not failed else f"FAILED: {len(failed)} check(s)")
    return 1 if failed else 0


def _best_beside(clip: Path, best_id: str) -> bytes | None:
    """A best shot where ``clips pull --bundle`` (``<id>.best.jpg`` beside) or an unzipped bundle (``../best/``)
    puts it; None when neither has it."""
    for p in (clip.with_name(f"{best_id}.best.jpg"), clip.parent.parent / "best" / f"{best_id}.jpg"):
        if p.is_file():
            return p.read_bytes()
    return None


def beside_meta(clip: Path) -> Path:
    """``X.meta.json`` next to ``X.mp4`` (how ``clips pull`` and unzipped bundles lay them out)."""
    meta = clip.with_name(clip.name.removesuffix(".mp4") + ".meta.json")
    if not meta.is_file():
        raise UserError(f"no {meta.name} beside {clip.name}: pass --meta META.json")
    return meta


def _key_text(value: str) -> str:
    """``--pubkey`` is the key itself or a file holding it."""
    p = Path(value)
    return p.read_text().strip() if p.is_file() else value
