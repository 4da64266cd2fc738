"""Logging set-up: journald-friendly on systemd, timestamps elsewhere."""

from __future__ import annotations

import logging
import os
import sys

from .redact import redact_url


def setup_logging(level: int = logging.INFO) -> None:
    """Log to stderr; journald adds its own timestamps, so we drop ours there."""
    if os.environ.get("JOURNAL_STREAM"):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(_JournalFormatter("%(name)s: %(message)s"))
    else:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s"))
    handler.addFilter(RedactFilter())  # credentials in URLs never reach the journal
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for noisy in ("libav", "aiohttp.access"):
        logging.getLogger(noisy).setLevel(max(level, logging.WARNING))


class _JournalFormatter(logging.Formatter):
    """Prefix lines with syslog priorities (``<3>`` error … ``<7>`` debug) that journald reads."""

    _PRIORITY = {logging.DEBUG: 7, logging.INFO: 6, logging.WARNING: 4, logging.ERROR: 3, logging.CRITICAL: 2}

    def format(self, record: logging.LogRecord) -> str:
        return f"<{self._PRIORITY.get(record.levelno, 6)}>{super().format(record)}"


class RedactFilter(logging.Filter):
    """A handler filter: every record's final message is redacted before any handler formats it (``edge.redact``)."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a bad format string is logging's problem, not ours to raise
            return True
        clean = redact_url(message)
        if clean != message:
            record.msg, record.args = clean, None
        if record.exc_info and not record.exc_text:
            record.exc_text = redact_url(logging.Formatter().formatException(record.exc_info))
        elif record.exc_text:
            record.exc_text = redact_url(record.exc_text)
        return True
