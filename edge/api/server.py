"""The LAN clip API: an aiohttp server on its own thread and event loop inside the daemon.

It only reads files and asks the catalog, on a small thread pool, so it never
competes with capture or analysis for anything but a little CPU. Security in
one place: the auth middleware (bearer token, throttling of bad tokens), the
error middleware (every failure is a short JSON body, never a traceback), and
strict parser limits and timeouts on the connection.

CSRF: state-changing calls (POST/DELETE hold) need the ``Authorization``
header. Browsers never attach it on their own (no cookies are used) and no
CORS headers are sent, so a cross-site page or form cannot forge a call. The
only other credential is a ticket (``?ticket=``, from ``POST /api/v1/ticket``):
short-lived, for one clip/thumbnail/snapshot path, GET/HEAD only.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import re
import sqlite3
import ssl
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import NoReturn

from aiohttp import web
from aiohttp import web_response as _aiohttp_response
from aiohttp.abc import AbstractAccessLogger

from ..interfaces import ClipCatalog, NodeView
from .auth import FailureLimiter, LogBudget, TicketSigner, TokenChecker, bearer_token, parse_token_lines
from .handlers import TOKEN_NAME, Handlers, json_error
from .webroutes import WebRoutes

log = logging.getLogger("edge.api")
access_log = logging.getLogger("edge.api.access")
server_log = logging.getLogger("edge.api.http")


class _OneLine(logging.Filter):
    """aiohttp logs parser errors (oversized headers, garbage) with a traceback: keep one line instead."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and record.exc_info[1] is not None:
            exc = record.exc_info[1]
            first = " ".join(str(exc).split())[:160]
            record.msg = f"{record.getMessage()}: {type(exc).__name__}: {first}"
            record.args = ()
            record.exc_info = None
            record.exc_text = None
        return True

_FROM = re.compile(r" from (\S+)")


class _Budgeted(logging.Filter):
    """Parser errors from unauthenticated clients: at most a budget of lines per minute, the rest counted."""

    def __init__(self, budget: LogBudget) -> None:
        super().__init__()
        self.budget = budget

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.WARNING:
            return True
        found = _FROM.search(record.getMessage())  # "Error handling request from ADDR" (args may be folded in)
        return self.budget.allow("parser errors", found.group(1).rstrip(":") if found else "?")


def _own_server_log(budget: LogBudget) -> logging.Logger:
    """A logger for one server's aiohttp lines, outside logging's registry and parented to ``edge.api.http``.

    Its filters (one line per error, the server's own log budget) then apply to this server alone: a filter
    added to the shared named logger would outlive a server that was never stopped and would swallow or
    miscount the lines of every later server in the process.
    """
    own = logging.Logger(server_log.name)
    own.parent = server_log
    own.addFilter(_Budgeted(budget))
    own.addFilter(_OneLine())
    return own


SERVER_NAME = "edgecam"  # the Server: header; never Python's or aiohttp's version (fingerprinting)
PUBLIC_PATHS = ("/healthz", "/")
SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Content-Security-Policy": "default-src 'self'; img-src 'self' blob: data:; media-src 'self' blob:; "
    "script-src 'self'; style-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
}


class _AccessLog(AbstractAccessLogger):
    """One line per request: address, token name (never the token), request line, status, bytes, ms."""

    budget: LogBudget | None = None  # set per server (see ApiServer._access_class)

    def log(self, request, response, time: float) -> None:  # noqa: A002 - aiohttp's signature
        name = request.get(TOKEN_NAME, "-") if hasattr(request, "get") else "-"
        if name == "-" and self.budget is not None and not self.budget.allow("unauthenticated requests",
                                                                               str(request.remote)):
            return
        self.logger.info(
            "%s %s %s %s %d %d %.0fms",
            request.remote, name, request.method, request.raw_path.split("?")[0][:200], response.status,
            response.body_length, time * 1000,
        )


def make_ssl_context(cert: Path, key: Path) -> ssl.SSLContext:
    """A server TLS context from a PEM cert/key pair (``scripts/make-api-cert`` makes one)."""
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        ctx.load_cert_chain(str(cert), str(key))
    except (OSError, ssl.SSLError) as err:
        raise ValueError(f"api.tls_cert/api.tls_key: cannot load {cert} / {key}: {err}") from None
    return ctx


class ApiServer:
    """Serve ``catalog`` and ``view`` on host:port; ``start()`` returns once listening."""

    def __init__(
        self,
        catalog: ClipCatalog,
        view: NodeView,
        host: str,
        port: int,
        token_hashes: list[str],
        ssl_context: ssl.SSLContext | None = None,
        *,
        idle_timeout: float = 15.0,
        write_timeout: float = 60.0,
        limiter: FailureLimiter | None = None,
        log_budget: LogBudget | None = None,
    ) -> None:
        self._tokens = TokenChecker(parse_token_lines(token_hashes))
        self._limiter = limiter or FailureLimiter()
        self._budget = log_budget or LogBudget()
        self._server_log = _own_server_log(self._budget)
        self._tickets = TicketSigner()
        self._host, self._port, self._ssl = host, port, ssl_context
        self._idle_timeout = idle_timeout
        self._pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="api-io")
        self._handlers = Handlers(catalog, view, self._pool, write_timeout, self._tickets)
        self._web = WebRoutes(self._handlers)
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._error: BaseException | None = None
        self.port = port

    def set_tokens(self, token_hashes: list[str]) -> int:
        """Replace the accepted tokens (SIGHUP reload); ValueError names a bad line and changes nothing."""
        checker = TokenChecker(parse_token_lines(token_hashes))
        self._tokens = checker  # one reference swap: a request in flight sees the old set or the new one
        log.info("api: tokens reloaded (%d token(s))", len(checker))
        return len(checker)

    @property
    def url(self) -> str:
        scheme = "https" if self._ssl else "http"
        host = "127.0.0.1" if self._host in ("0.0.0.0", "") else self._host
        return f"{scheme}://{host}:{self.port}" if ":" not in host else f"{scheme}://[{host}]:{self.port}"

    def start(self, timeout: float = 10.0) -> None:
        """Bind and serve on a daemon thread; raise RuntimeError with one line when it cannot listen."""
        ready = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(ready,), name="api", daemon=True)
        self._thread.start()
        if not ready.wait(timeout):
            raise RuntimeError(f"api: not listening on {self._host}:{self._port} after {timeout:.0f} s")
        if self._error is not None:
            raise RuntimeError(f"api: cannot listen on {self._host}:{self._port}: {self._error}")
        log.info("api: listening on %s (%d token(s))", self.url, len(self._tokens))
        if not len(self._tokens):
            log.warning("api: no tokens in [api] tokens, so every call is refused; make one: edgecam token new")

    def stop(self, timeout: float = 5.0) -> None:
        """Close the listener and open connections, then join the thread."""
        if self._thread is not None and self._thread.is_alive() and self._loop is not None and self._stop is not None:
            try:
                self._loop.call_soon_threadsafe(self._stop.set)
            except RuntimeError:
                pass  # the loop already closed (a failed start is ending): nothing left to stop
            self._thread.join(timeout)
        self._pool.shutdown(wait=False, cancel_futures=True)

    def _run(self, ready: threading.Event) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            runner = loop.run_until_complete(self._setup())
        except Exception as err:  # bind failures and bad TLS files: reported by start()
            self._error = err
            ready.set()
            loop.close()
            return
        ready.set()
        summaries = loop.create_task(self._summaries())
        stop = self._stop
        assert stop is not None  # made by _setup, which just ran
        try:
            loop.run_until_complete(stop.wait())
            summaries.cancel()
            loop.run_until_complete(runner.cleanup())
        finally:
            self._log_summary()
            loop.close()

    async def _summaries(self) -> None:
        """Once per budget window: one line for the log lines held back (bad tokens, parser errors)."""
        while True:
            await asyncio.sleep(self._budget.window)
            self._log_summary()

    def _log_summary(self) -> None:
        line = self._budget.summary()
        if line:
            log.warning("%s", line)

    async def _setup(self) -> web.AppRunner:
        self._stop = asyncio.Event()
        # aiohttp stamps "Server: Python/3.x aiohttp/3.y" on every answer, its own parser errors included
        # (those skip on_response_prepare); its one module default is the only switch that covers both
        _aiohttp_response.SERVER_SOFTWARE = SERVER_NAME
        app = web.Application(middlewares=[self._errors, self._auth], client_max_size=64 * 1024)
        app.add_routes(self._handlers.routes())
        app.add_routes(self._web.routes())  # evidence bundles for the web page
        app.on_response_prepare.append(_security_headers)
        runner = web.AppRunner(
            app,
            access_log_class=type("_BudgetedAccessLog", (_AccessLog,), {"budget": self._budget}),
            access_log=access_log,
            logger=self._server_log,
            keepalive_timeout=self._idle_timeout,
            max_line_size=8190,
            max_field_size=8190,
            max_headers=64,
            shutdown_timeout=2.0,
            handle_signals=False,
        )
        await runner.setup()
        site = web.TCPSite(runner, self._host, self._port, ssl_context=self._ssl, backlog=64)
        await site.start()
        server = getattr(site, "_server", None)
        if server is not None and server.sockets:
            self.port = server.sockets[0].getsockname()[1]
        return runner

    @web.middleware
    async def _errors(self, request: web.Request, handler) -> web.StreamResponse:
        """Every failure becomes a short JSON error; unexpected ones are logged as one line."""
        try:
            return await handler(request)
        except web.HTTPException as exc:
            if exc.status < 400:
                raise
            keep = ("retry-after", "www-authenticate", "allow")
            headers = {k: v for k, v in exc.headers.items() if k.lower() in keep}
            text = exc.text or ""
            return json_error(exc.status, exc.reason.lower() if text.startswith(f"{exc.status}:") else text, headers)
        except (asyncio.CancelledError, ConnectionError):
            raise
        except OSError as exc:  # the node's disk, not the request: say so (507), never a bare 500
            log.error("api: %s %s failed: %s", request.method, request.path[:200], exc)
            if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                return json_error(507, "no space left on the node's storage; free some or try fewer clips")
            return json_error(503, f"storage error on the node: {exc.strerror or type(exc).__name__}")
        except sqlite3.Error as exc:  # the clip index refused (full disk, locked, read-only): the node's state
            log.error("api: %s %s failed: clip index: %s", request.method, request.path[:200], exc)
            if "full" in str(exc).lower():
                return json_error(507, "no space left on the node's storage (clip index)")
            return json_error(503, "the node's clip index is unavailable; try again shortly")
        except RecursionError:  # input nested past Python's limit somewhere a parser recursed
            return json_error(400, "request nested too deeply")
        except Exception as exc:  # the one place that keeps tracebacks off the wire
            log.error("api: %s %s failed: %s: %s", request.method, request.path[:200], type(exc).__name__, exc)
            return json_error(500, "internal error")

    @web.middleware
    async def _auth(self, request: web.Request, handler) -> web.StreamResponse:
        """A valid token (or ticket) is always served; only failures are throttled (see FailureLimiter)."""
        if request.path in PUBLIC_PATHS or request.path.startswith("/static/"):
            return await handler(request)
        addr = request.remote or "?"
        token = bearer_token(request.headers.get("Authorization"))
        name = self._tokens.name_for(token)
        ticket = request.query.get("ticket")
        if name is None and ticket is not None and request.method in ("GET", "HEAD"):
            token = ticket
            name = self._tickets.check(request.path, ticket)
        if name is None:
            self._refuse(addr, token is not None)
        request[TOKEN_NAME] = name
        return await handler(request)

    def _refuse(self, addr: str, guessed: bool) -> NoReturn:
        """401, or 429 while this address or the whole node is over its failure budget; lines are budgeted."""
        if guessed:
            wait = self._limiter.retry_after(addr)
            if wait > 0:
                retry = {"Retry-After": str(int(wait) + 1)}
                raise web.HTTPTooManyRequests(text="too many bad tokens; try later", headers=retry)
            self._limiter.record_failure(addr)
            if self._budget.allow("bad tokens", addr):
                log.warning("api: bad token from %s", addr)
        challenge = {"WWW-Authenticate": 'Bearer realm="edgecam"'}
        raise web.HTTPUnauthorized(text="missing or bad token", headers=challenge)


async def _security_headers(request: web.Request, response: web.StreamResponse) -> None:
    response.headers["Server"] = SERVER_NAME
    for key, value in SECURITY_HEADERS.items():
        response.headers.setdefault(key, value)

