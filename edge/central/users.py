"""The desk's users, roles, passwords and server-side sessions (``desk.db`` under ``[evidence] path``).

Passwords: ``hashlib.scrypt`` (the standard library's binding of OpenSSL's scrypt), memory-hard, with
N=2^15, r=8, p=3 (32 MiB, one of OWASP's equivalent minimum settings); no extra dependency to keep patched
on a station PC. The stored line names its parameters (``scrypt$N$r$p$salt$hash``) so they can be raised
later and old hashes still verify.

Sessions: a 256-bit random id in an HttpOnly, SameSite=Strict cookie; only its sha256 is stored, with the
user, its CSRF token, an idle expiry and an absolute expiry. Disabling a user or changing a password ends
the user's sessions.
"""

from __future__ import annotations

import argparse
import base64
import functools
import getpass
import hashlib
import hmac
import os
import re
import secrets
import sqlite3
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from ..errors import UserError

ROLES = ("viewer", "investigator", "admin")
USER_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$")
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**15, 8, 3
MIN_PASSWORD = 10


def hash_password(password: str, n: int = SCRYPT_N, r: int = SCRYPT_R, p: int = SCRYPT_P) -> str:
    salt = os.urandom(16)
    dk = hashlib.scrypt(password.encode(), salt=salt, n=n, r=r, p=p, maxmem=256 * 1024 * 1024, dklen=32)
    return f"scrypt${n}${r}${p}${base64.b64encode(salt).decode()}${base64.b64encode(dk).decode()}"


def check_password(password: str, stored: str) -> bool:
    try:
        kind, n, r, p, salt, dk = stored.split("$")
        if kind != "scrypt":
            return False
        got = hashlib.scrypt(password.encode(), salt=base64.b64decode(salt), n=int(n), r=int(r), p=int(p),
                             maxmem=256 * 1024 * 1024, dklen=32)
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(got, base64.b64decode(dk))


@functools.cache
def _dummy() -> str:
    """A hash to check unknown user names against: they cost the same KDF time as a wrong password."""
    return hash_password("timing-equaliser")


@dataclass(frozen=True)
class User:
    name: str
    role: str
    disabled: bool


@dataclass(frozen=True)
class Session:
    user: str
    role: str
    csrf: str
    expires: float


def role_at_least(role: str, needed: str) -> bool:
    return ROLES.index(role) >= ROLES.index(needed)


class UserBook:
    def __init__(self, path: Path, idle: float = 1800.0, lifetime: float = 12 * 3600.0) -> None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        self.idle, self.lifetime = idle, lifetime
        self.db = sqlite3.connect(str(path), timeout=30, isolation_level=None, check_same_thread=False)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("""CREATE TABLE IF NOT EXISTS users (name TEXT PRIMARY KEY, role TEXT NOT NULL,
            hash TEXT NOT NULL, disabled INTEGER NOT NULL DEFAULT 0, created_ts REAL NOT NULL)""")
        self.db.execute("""CREATE TABLE IF NOT EXISTS sessions (id_hash TEXT PRIMARY KEY, user TEXT NOT NULL,
            csrf TEXT NOT NULL, created_ts REAL NOT NULL, seen_ts REAL NOT NULL, address TEXT NOT NULL)""")

    def close(self) -> None:
        self.db.close()

    def add(self, name: str, role: str, password: str) -> None:
        if not USER_NAME.match(name):
            raise UserError(f"user {name!r}: 1..64 letters, digits, _ . @ - (starting with a letter or digit)")
        if role not in ROLES:
            raise UserError(f"--role: one of {', '.join(ROLES)}")
        _check_strength(password)
        try:
            self.db.execute("INSERT INTO users VALUES (?,?,?,0,?)", (name, role, hash_password(password), time.time()))
        except sqlite3.IntegrityError:
            raise UserError(f"user {name!r} exists already (change the password with `central user passwd`)") from None

    def get(self, name: str) -> User | None:
        row = self.db.execute("SELECT name, role, disabled FROM users WHERE name = ?", (name,)).fetchone()
        return User(row[0], row[1], bool(row[2])) if row else None

    def _require(self, name: str) -> User:
        user = self.get(name)
        if user is None:
            raise UserError(f"no user {name!r}")
        return user

    def passwd(self, name: str, password: str) -> None:
        self._require(name)
        _check_strength(password)
        self.db.execute("UPDATE users SET hash = ? WHERE name = ?", (hash_password(password), name))
        self.db.execute("DELETE FROM sessions WHERE user = ?", (name,))

    def set_disabled(self, name: str, disabled: bool = True) -> None:
        self._require(name)
        self.db.execute("UPDATE users SET disabled = ? WHERE name = ?", (int(disabled), name))
        if disabled:
            self.db.execute("DELETE FROM sessions WHERE user = ?", (name,))

    def authenticate(self, name: str, password: str) -> User | None:
        """The user if the password is right and the account enabled; the KDF runs in every case."""
        row = self.db.execute("SELECT name, role, disabled, hash FROM users WHERE name = ?", (name,)).fetchone()
        ok = check_password(password, row[3] if row else _dummy())
        if not row or not ok or row[2]:
            return None
        return User(row[0], row[1], False)

    def open_session(self, user: User, address: str) -> tuple[str, Session]:
        sid, csrf, now = secrets.token_urlsafe(32), secrets.token_urlsafe(32), time.time()
        self.db.execute("DELETE FROM sessions WHERE seen_ts < ? OR created_ts < ?",
                        (now - self.idle, now - self.lifetime))
        self.db.execute("INSERT INTO sessions VALUES (?,?,?,?,?,?)", (_h(sid), user.name, csrf, now, now, address))
        return sid, Session(user.name, user.role, csrf, min(now + self.idle, now + self.lifetime))

    def session(self, sid: str | None) -> Session | None:
        """The live session for a cookie value (its idle timer restarts), else None."""
        if not sid or len(sid) > 100:
            return None
        now = time.time()
        row = self.db.execute(
            "SELECT s.user, u.role, s.csrf, s.created_ts, s.seen_ts, u.disabled FROM sessions s"
            " JOIN users u ON u.name = s.user WHERE s.id_hash = ?", (_h(sid),)).fetchone()
        if not row or row[5] or now - row[4] > self.idle or now - row[3] > self.lifetime:
            if row:
                self.db.execute("DELETE FROM sessions WHERE id_hash = ?", (_h(sid),))
            return None
        self.db.execute("UPDATE sessions SET seen_ts = ? WHERE id_hash = ?", (now, _h(sid)))
        return Session(row[0], row[1], row[2], min(now + self.idle, row[3] + self.lifetime))

    def close_session(self, sid: str) -> None:
        self.db.execute("DELETE FROM sessions WHERE id_hash = ?", (_h(sid),))


def _h(sid: str) -> str:
    return hashlib.sha256(sid.encode()).hexdigest()


def _check_strength(password: str) -> None:
    if len(password) < MIN_PASSWORD:
        raise UserError(f"password too short: at least {MIN_PASSWORD} characters")
    if len(password) > 1024:
        raise UserError("password too long: at most 1024 characters")


def _read_password(args: argparse.Namespace) -> str:
    """--password-file F (first line), else two prompts on a terminal, else one line on stdin (scripts)."""
    if getattr(args, "password_file", None):
        try:
            return Path(args.password_file).read_text().splitlines()[0]
        except (OSError, IndexError, UnicodeDecodeError):
            raise UserError(f"--password-file {args.password_file}: cannot read a first line") from None
    if sys.stdin.isatty():
        first = getpass.getpass("new password: ")
        if getpass.getpass("again: ") != first:
            raise UserError("the two passwords differ")
        return first
    return sys.stdin.readline().rstrip("\n")


def _book(args: argparse.Namespace) -> UserBook:
    from .config import load_central_config
    from .fetch import evidence_root

    return UserBook(evidence_root(load_central_config(args.config)) / "desk.db")


def _log(args: argparse.Namespace, detail: str) -> None:
    from .cli import _login_user
    from .config import load_central_config
    from .custody import CustodyLog
    from .fetch import evidence_root

    log = CustodyLog(evidence_root(load_central_config(args.config)) / "custody.db")
    try:
        log.append(_login_user(), "user", f"user:{args.name}", "cli", detail)
    finally:
        log.close()


def user_add_command(args: argparse.Namespace) -> int:
    book = _book(args)
    try:
        book.add(args.name, args.role, _read_password(args))
    finally:
        book.close()
    _log(args, f"added with role {args.role}")
    print(f"user {args.name} added ({args.role})")
    return 0


def user_passwd_command(args: argparse.Namespace) -> int:
    book = _book(args)
    try:
        book.passwd(args.name, _read_password(args))
    finally:
        book.close()
    _log(args, "password changed; sessions ended")
    print(f"user {args.name}: password changed, sessions ended")
    return 0


def user_disable_command(args: argparse.Namespace) -> int:
    book = _book(args)
    try:
        book.set_disabled(args.name, True)
    finally:
        book.close()
    _log(args, "disabled; sessions ended")
    print(f"user {args.name} disabled, sessions ended")
    return 0
