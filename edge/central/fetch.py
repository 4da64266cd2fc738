"""``edgecam central fetch``: a clip from a node into central's evidence store, verified before it is accepted.

Pull: central calls the node's LAN API (``register-node --api URL --token-file F``) with the node client the
technician's ``clips pull`` uses (``.part`` file resumed with ``Range`` + ``If-Range`` after a drop), then
runs the checks of ``edgecam clips verify`` (hash, signature, chain link; ``edge.clips.evidence``) against
the key *registered* for the node, never the key the node sends. Only then does the clip enter the store;
a clip that fails is removed from staging and the refusal is written to the custody log.

Node tokens are kept under ``[evidence] path``/``secrets/<node>.token`` (0600, directory 0700): the
database (possibly a shared PostgreSQL) never holds them.
"""

from __future__ import annotations

import argparse
import os
import socket
import sys
import time
from collections.abc import Callable
from http.client import HTTPException
from pathlib import Path

from ..api.client import NodeClient, pull_clip
from ..clips.bundle import best_ids
from ..clips.evidence import check_best, check_clip, parse_public_key
from ..errors import UserError
from ..fsutil import write_atomic
from .config import CentralConfig, load_central_config
from .custody import CustodyLog
from .evidence import EvidenceStore, StoredClip

RETRY_PAUSE = 1.0
MAX_BEST = 8 << 20  # a best shot is a JPEG of at most 1280 px: anything this large is not one
_RETRYABLE = ("cannot reach node", "connection lost", "partial file")


def evidence_root(cfg: CentralConfig) -> Path:
    return Path(cfg.evidence.path)


def token_path(root: Path, node: str) -> Path:
    return root / "secrets" / f"{node}.token"


def save_node_token(root: Path, node: str, token_file: str) -> None:
    """Copy the token central uses on this node's API into its 0600 file (read once, at registration)."""
    try:
        token = Path(token_file).read_text().strip()
    except (OSError, UnicodeDecodeError) as err:
        raise UserError(f"--token-file {token_file}: cannot read it ({getattr(err, 'strerror', err)})") from None
    if not token or any(c.isspace() for c in token) or len(token) > 512:
        raise UserError(f"--token-file {token_file}: must hold one token (the output of `edgecam token new`)")
    path = token_path(root, node)
    path.parent.mkdir(parents=True, exist_ok=True)
    os.chmod(path.parent, 0o700)
    write_atomic(path, (token + "\n").encode(), mode=0o600)


def read_node_token(root: Path, node: str) -> str:
    try:
        return token_path(root, node).read_text().strip()
    except OSError:
        raise UserError(f"no API token for node {node!r}: register it with"
                        " `edgecam central register-node --node N --pubkey K --api URL --token-file F`") from None


def _retryable(err: UserError) -> bool:
    return any(s in str(err) for s in _RETRYABLE)


def fetch_pull(cfg: CentralConfig, node: dict, clip: str, wait: float, who: str,
               address: str = "") -> tuple[StoredClip, bool]:
    """Fetch, verify, store; (the stored clip, whether it was new). ``wait``: seconds to keep retrying an
    unreachable node or a dropped transfer (a request to an offline node completes when it returns)."""
    root = evidence_root(cfg)
    name = node["node"]
    store = EvidenceStore.at(root)
    have = store.get(name, clip)
    if have is not None:
        return have, False
    if not node.get("api_url"):
        raise UserError(f"node {name!r} has no registered API URL: fetch by push (`edgecam central fetch --via"
                        " push`), or register its API (`edgecam central register-node --api URL --token-file F`)")
    client = NodeClient(node["api_url"], read_node_token(root, name))
    staging = root / "incoming" / name
    staging.mkdir(parents=True, exist_ok=True)
    log = CustodyLog(root / "custody.db")
    subject = f"{name}/{clip}"
    try:
        deadline = time.monotonic() + max(0.0, wait)
        while True:
            try:
                pulled = pull_clip(client, clip, staging)
                break
            except UserError as err:
                if not _retryable(err) or time.monotonic() + RETRY_PAUSE > deadline:
                    log.append(who, "fetch-failed", subject, address, f"via pull: {err}")
                    raise
                time.sleep(RETRY_PAUSE)
        (staging / f"{clip}.meta.json").unlink(missing_ok=True)
        stored = accept_clip(store, log, node, clip, pulled.file, pulled.meta, who, address,
                             f"via pull from {node['api_url']}")
        pull_best_shots(client, store, log, node, clip, pulled.meta, who, address)
        return stored, True
    finally:
        log.close()


def pull_best_shots(client: NodeClient, store: EvidenceStore, log: CustodyLog, node: dict, clip: str, meta: dict,
                    who: str, address: str) -> int:
    """The clip's signed best shots (``bundle.best_ids``), each checked against the clip's signed record and its
    own (``check_best``) with the key registered for the node; how many are kept. A shot that cannot be fetched
    or does not verify is a custody entry and is not kept; the clip stays (it verified on its own)."""
    name, kept = node["node"], 0
    pub = parse_public_key(str(node.get("pubkey") or ""))
    for best_id in best_ids(meta):
        if store.best(name, best_id) is not None:
            continue
        subject = f"{name}/{clip}/best/{best_id}"
        try:
            with client.open(f"/api/v1/best/{best_id}.jpg") as resp:
                data = resp.read(MAX_BEST + 1)
        except (UserError, OSError, HTTPException) as err:
            log.append(who, "fetch-failed", subject, address, f"best shot: {err}")
            continue
        checks = [c for c in check_best(clip, meta, pub, _only(best_id, data)) if f"best/{best_id}.jpg" in c.detail]
        if len(data) > MAX_BEST or not checks or not all(c.ok for c in checks):
            why = "; ".join(c.line() for c in checks if not c.ok) or f"over {MAX_BEST} bytes"
            log.append(who, "fetch-failed", subject, address, f"best shot refused, not stored: {why}")
            continue
        sha = store.add_best(name, best_id, clip, data)
        log.append(who, "fetch", subject, address, f"best shot: {checks[0].detail}; sha256 {sha}")
        kept += 1
    return kept


def _only(best_id: str, data: bytes) -> Callable[[str], bytes | None]:
    """``check_best``'s reader with one shot at hand."""
    return lambda i: data if i == best_id else None


def verify_against(node: dict, clip: str, file: Path, meta: dict) -> list[str]:
    """``clips verify``'s checks against the key registered for ``node``, plus: the record is this clip's."""
    try:
        pub = parse_public_key(str(node.get("pubkey") or ""))
    except ValueError:
        return [f"key: FAIL: node {node['node']!r} has no registered Ed25519 key"]
    problems = [c.line() for c in check_clip(file.read_bytes(), meta, pub) if not c.ok]
    record = meta.get("record") or {}
    if record.get("clip") != clip:
        problems.append(f"record: FAIL: the signed record is for clip {record.get('clip')!r}, not {clip!r}")
    if record.get("node") not in (None, node["node"]):
        problems.append(f"record: FAIL: the signed record names node {record.get('node')!r}, not {node['node']!r}")
    return problems


def accept_clip(store: EvidenceStore, log: CustodyLog, node: dict, clip: str, file: Path, meta: dict, who: str,
                address: str, how: str) -> StoredClip:
    """Verify a staged clip and store it; a failure removes the staged file and is a custody entry."""
    subject = f"{node['node']}/{clip}"
    problems = verify_against(node, clip, file, meta)
    if problems:
        file.unlink(missing_ok=True)
        detail = "refused, not stored: " + "; ".join(problems)
        log.append(who, "fetch-failed", subject, address, f"{how}: {detail}")
        raise UserError(f"{subject}: {detail}")
    stored = store.add(node["node"], clip, file, meta, str(node["pubkey"]))
    file.unlink(missing_ok=True)
    log.append(who, "fetch", subject, address, f"{how}: verified (hash, signature, chain) sha256 {stored.sha256}")
    return stored


def storage_errors(fn):
    """A command's disk faults (unwritable ``[evidence] path``, full disk) as one line, never a traceback."""
    import functools

    @functools.wraps(fn)
    def wrapped(args: argparse.Namespace) -> int:
        try:
            return fn(args)
        except OSError as err:
            where = f" ({err.filename})" if getattr(err, "filename", None) else ""
            raise UserError(f"evidence store: {err.strerror or err}{where}") from None
    return wrapped


@storage_errors
def init_command(args: argparse.Namespace) -> int:
    """``edgecam central init -c C``: central's Ed25519 key (made once); prints the public half for nodes."""
    from .push import init_key, key_path

    root = evidence_root(load_central_config(args.config))
    pub, made = init_key(root)
    print(pub)
    print(f"edgecam: central key {'made' if made else 'exists'} at {key_path(root)}; give the line above to each"
          " node as [central] pubkey", file=sys.stderr)
    return 0


def registered_node(cfg: CentralConfig, name: str) -> dict:
    """The node's registry row (key, API URL), or one line saying how to register it."""
    from .cli import _open_store

    db = _open_store(cfg)
    try:
        node = db.node(name)
    finally:
        db.close()
    if node is None:
        raise UserError(f"--node: {name!r} is not registered (`edgecam central register-node`)")
    return node


@storage_errors
def fetch_command(args: argparse.Namespace) -> int:
    """Exit 0 once the clip is verified in the store; prints ``<sha256>  <path>`` (sha256sum's format)."""
    from .cli import _login_user

    cfg = load_central_config(args.config)
    if args.wait < 0:
        raise UserError("--wait must be 0 or more seconds")
    node = registered_node(cfg, args.node)
    where = f"cli@{socket.gethostname()}"
    if args.via == "push":
        from .push import push_fetch

        stored = push_fetch(cfg, node, args.clip, args.wait, _login_user(), where)
    else:
        stored, _new = fetch_pull(cfg, node, args.clip, args.wait, _login_user(), where)
    print(f"{stored.sha256}  {stored.path}")
    return 0
