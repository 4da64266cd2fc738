"""``edgecam central run|status|search|register-node|ack-gap``: the station's commands.

The handlers live with the central server (``edge.central.cli``, a program of
its own that shares the entry point); these wrappers import it only when a
central command runs, so a node's ``edgecam --help`` never loads pydantic
models or a database driver.
"""

from __future__ import annotations

import argparse


def run(args: argparse.Namespace) -> int:
    """``edgecam central run``: subscribe and store events idempotently."""
    from ..central import cli

    return cli.run_command(args)


def status(args: argparse.Namespace) -> int:
    """``edgecam central status``: the fleet table."""
    from ..central import cli

    return cli.status_command(args)


def search(args: argparse.Namespace) -> int:
    """``edgecam central search``: stored events."""
    from ..central import cli

    return cli.search_command(args)


def register_node(args: argparse.Namespace) -> int:
    """``edgecam central register-node``: record a node's public key."""
    from ..central import cli

    return cli.register_node_command(args)


def ack_gap(args: argparse.Namespace) -> int:
    """``edgecam central ack-gap``: acknowledge a missing seq range."""
    from ..central import cli

    return cli.ack_gap_command(args)
