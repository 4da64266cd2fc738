"""The one-line failure every layer may raise; lives here so stages need not import the CLI."""

from __future__ import annotations


class UserError(Exception):
    """A failure to report as one line on stderr (exit 1), never a traceback."""
