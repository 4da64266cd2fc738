"""Fixtures shared by the whole suite: real brokers and real sample media."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from support.broker import Broker  # noqa: E402
from support.central import pg_base_url, pg_schema, sqlite_url  # noqa: E402


@pytest.fixture
def broker(tmp_path: Path):
    """A fresh mosquitto on a free port, persistence on; killed after the test."""
    b = Broker(tmp_path / "broker").start()
    yield b
    b.stop()


@pytest.fixture
def make_broker(tmp_path: Path):
    """Factory for brokers with extra config (TLS, passwords); all stopped after the test."""
    made: list[Broker] = []

    def factory(extra: list[str] | None = None, name: str = "broker2", start: bool = True) -> Broker:
        b = Broker(tmp_path / name, extra=extra)
        made.append(b)
        return b.start() if start else b

    yield factory
    for b in made:
        b.stop()


@pytest.fixture(scope="session")
def pg_url() -> str | None:
    """The test PostgreSQL's URL, or None when it is unreachable (probed once per run)."""
    return pg_base_url()


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request, tmp_path: Path, pg_url: str | None):
    """A fresh central database URL: SQLite in tmp_path, then a throwaway PostgreSQL schema (skipped if none)."""
    if request.param == "sqlite":
        yield sqlite_url(tmp_path)
        return
    if pg_url is None:
        pytest.skip("PostgreSQL at 127.0.0.1:5432 is unreachable")
    with pg_schema(pg_url) as url:
        yield url
