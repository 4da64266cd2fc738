"""Fixtures shared by the whole suite: real brokers and real sample media."""

from __future__ import annotations

import logging
import sys
import threading
import time
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


# ---- isolation: what one test leaves behind must not reach the next -------------------------------------------

# Thread names the edge code gives its workers (edge/api/server.py, edge/outbox/*, edge/node/daemon.py, ...).
OUR_THREADS = ("api", "api-io", "central-", "clips-", "capture-", "analysis-", "mqtt-publisher", "outbox-",
               "probe-")
THREAD_GRACE_S = 3.0


# Pool workers start lazily (an API request, playwright's event loop executor): a module-scoped server or
# browser grows them during a test; the module check sees them.
LAZY_POOL_THREADS = ("api-io", "asyncio_")


def _ours(thread: threading.Thread, lazy_ok: bool) -> bool:
    if lazy_ok and thread.name.startswith(LAZY_POOL_THREADS):
        return False
    return not thread.daemon or thread.name.startswith(OUR_THREADS)


def _left_running(before: set[threading.Thread], lazy_ok: bool) -> list[threading.Thread]:
    """Threads started since ``before`` that are still alive after a short grace to finish."""
    deadline = time.monotonic() + THREAD_GRACE_S
    left = [t for t in threading.enumerate()
            if t not in before and t is not threading.current_thread() and _ours(t, lazy_ok)]
    for t in left:
        t.join(max(0.0, deadline - time.monotonic()))
    return [t for t in left if t.is_alive()]


def _check_threads(before: set[threading.Thread], where: str, lazy_ok: bool = False) -> None:
    left = _left_running(before, lazy_ok)
    if left:
        names = ", ".join(f"{t.name}{'' if t.daemon else ' (non-daemon)'}" for t in left)
        pytest.fail(f"{where} left threads running after teardown: {names}; stop and join what you start",
                    pytrace=False)


@pytest.fixture(autouse=True)
def _no_leftover_threads():
    """Fail a test whose own fixtures or body leave an edge worker (or any non-daemon thread) running.

    Threads of wider-scoped fixtures (a module's API server) were started before this snapshot and are
    checked by ``_no_leftover_module_threads`` when their module ends.
    """
    before = set(threading.enumerate())
    yield
    _check_threads(before, "this test", lazy_ok=True)


@pytest.fixture(autouse=True, scope="module")
def _no_leftover_module_threads():
    before = set(threading.enumerate())
    yield
    _check_threads(before, "this module's fixtures")


@pytest.fixture(autouse=True)
def _restore_root_logging():
    """An in-process ``edge.cli.main`` installs a stderr handler on the root logger (``edge.logs``).

    Under pytest that stderr is the test's capture stream, closed when the test ends; a server thread of a
    later test (test_web's API) then logged into it: "--- Logging error --- I/O operation on closed file".
    Put the root logger back as it was after each test.
    """
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
