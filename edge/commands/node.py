"""``edgecam run`` and ``edgecam check``: the node's own commands (config in, exit code out)."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from ..config import load_config


def run(args: argparse.Namespace) -> int:
    """``edgecam run -c CONFIG``."""
    from ..node.daemon import Daemon

    cfg = load_config(args.config)
    logging.getLogger().setLevel(logging.DEBUG if getattr(args, "verbose", False) else cfg.log.level.upper())
    daemon = Daemon(cfg)
    daemon.config_path = args.config
    return daemon.run()


def check(args: argparse.Namespace) -> int:
    """``edgecam check -c CONFIG [--json] [--config-only]``: exit 1 when any line is a failure."""
    from ..check import as_json, config_result, render, run_checks

    path = Path(args.config)
    cfg = load_config(path)  # ConfigError -> edge.cli prints one line, exit 2
    results = [config_result(cfg)] if args.config_only else run_checks(cfg, args.timeout)
    if args.json:
        print(as_json(path, results))
    else:
        print(f"edgecam check {path}")
        print(render(results))
    sys.stdout.flush()
    return 1 if any(r.failed for r in results) else 0
