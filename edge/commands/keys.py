"""``edgecam key show|new`` and ``edgecam token new``: the node's signing key and LAN API tokens."""

from __future__ import annotations

import argparse
import os
import re
import secrets
import sys
import time
from pathlib import Path

from ..api.auth import hash_line
from ..config import load_config
from ..errors import UserError


def key_new(args: argparse.Namespace) -> int:
    """``edgecam key new -c CONFIG [--force]``: replace the node key (old files kept, never deleted).

    Refused while a daemon holds the storage lock. The next clip's signed record
    carries a chain break ("signing key changed") naming the last record of the old key.
    """
    from ..clips.evidence import KEY_FILE, PUB_FILE, NodeKey
    from ..storagelock import StorageLock

    cfg = load_config(args.config)
    storage = Path(cfg.storage.path)
    storage.mkdir(parents=True, exist_ok=True)
    lock = StorageLock(storage).acquire()
    try:
        path = storage / "keys" / KEY_FILE
        kept = ""
        if path.exists() or path.with_name(PUB_FILE).exists():
            if not getattr(args, "force", False):
                raise UserError(f"{path} exists; `edgecam key new --force` replaces it (the old file is kept)")
            stamp = time.strftime("%Y%m%dT%H%M%S")
            for name in (KEY_FILE, PUB_FILE):
                old = path.with_name(name)
                if old.exists():
                    os.replace(old, old.with_name(f"{name}.replaced-{stamp}"))
            kept = f"; the old key is kept as keys/{KEY_FILE}.replaced-{stamp}"
        key = NodeKey.create(path)
    finally:
        lock.release()
    print(key.public_text())
    print(f"edgecam: new node key{kept}; register it at central (central register-node --pubkey ...);"
          " the next clip's record notes the chain break", file=sys.stderr)
    return 0


def key_show(args: argparse.Namespace) -> int:
    """``edgecam key show -c CONFIG``: the node's public key, one line (creates the key on first use)."""
    from ..clips.evidence import NodeKey

    cfg = load_config(args.config)
    print(NodeKey.load_or_create(Path(cfg.storage.path) / "keys").public_text())
    return 0


def token_new(args: argparse.Namespace) -> int:
    """``edgecam token new --name NAME``: print the token once, and the config line with its hash."""
    name = args.name
    if not re.fullmatch(r"[A-Za-z0-9_.@-]{1,64}", name):
        raise UserError("token name must be 1-64 of A-Z a-z 0-9 _ . @ -")
    token = secrets.token_urlsafe(32)
    print(f"token (shown once, give it to the technician): {token}")
    print("add this line to [api] tokens in the node's config:")
    print(f'  "{hash_line(token, name)}",')
    print("then make the running daemon read it (no restart, recording goes on): "
          "sudo systemctl reload edgecam   (or: kill -HUP <daemon pid>)")
    return 0
