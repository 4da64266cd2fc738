"""Logging: journald gets syslog priorities and no timestamps of ours; elsewhere lines carry a time."""

from __future__ import annotations

import subprocess
import sys

CODE = "import logging; from edge.logs import setup_logging; setup_logging(); logging.getLogger('edgecam').warning('w')"


def run(env: dict) -> str:
    return subprocess.run([sys.executable, "-c", CODE], capture_output=True, text=True, env=env, timeout=60).stderr


def test_journald_form_when_journal_stream_is_set() -> None:
    assert run({"JOURNAL_STREAM": "8:12345", "PATH": "/usr/bin"}) == "<4>edgecam: w\n"


def test_timestamped_form_on_a_terminal() -> None:
    line = run({"PATH": "/usr/bin"}).strip()
    assert line.endswith("WARNING edgecam: w") and line[:4].isdigit()
