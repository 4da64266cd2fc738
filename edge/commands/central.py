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


def ack_trust(args: argparse.Namespace) -> int:
    """``edgecam central ack-trust``: acknowledge the trust faults so far."""
    from ..central import cli

    return int(cli.ack_trust_command(args) or 0)


def init(args: argparse.Namespace) -> int:
    """``edgecam central init``: make central's Ed25519 key."""
    from ..central import fetch

    return int(fetch.init_command(args) or 0)


def fetch(args: argparse.Namespace) -> int:
    """``edgecam central fetch``: a clip from a node into the evidence store."""
    from ..central import fetch

    return int(fetch.fetch_command(args) or 0)


def case_new(args: argparse.Namespace) -> int:
    """``edgecam central case new``."""
    from ..central import cases

    return int(cases.case_new_command(args) or 0)


def case_add(args: argparse.Namespace) -> int:
    """``edgecam central case add``."""
    from ..central import cases

    return int(cases.case_add_command(args) or 0)


def case_export(args: argparse.Namespace) -> int:
    """``edgecam central case export``."""
    from ..central import cases

    return int(cases.case_export_command(args) or 0)


def case_close(args: argparse.Namespace) -> int:
    """``edgecam central case close``: retention may delete its clips once their age has passed since the close."""
    from ..central import cases

    return int(cases.case_close_command(args) or 0)


def case_reopen(args: argparse.Namespace) -> int:
    """``edgecam central case reopen``: its clips are held again."""
    from ..central import cases

    return int(cases.case_reopen_command(args) or 0)


def prune(args: argparse.Namespace) -> int:
    """``edgecam central prune``: drop the events of the months before ``--before`` (whole partitions)."""
    from ..central import cli

    return int(cli.prune_command(args) or 0)


def evidence_prune(args: argparse.Namespace) -> int:
    """``edgecam central evidence prune``."""
    from ..central import retention

    return int(retention.prune_command(args) or 0)


def web(args: argparse.Namespace) -> int:
    """``edgecam central web``: the evidence desk."""
    from ..central import web

    return int(web.web_command(args) or 0)


def user_add(args: argparse.Namespace) -> int:
    """``edgecam central user add``."""
    from ..central import users

    return int(users.user_add_command(args) or 0)


def user_passwd(args: argparse.Namespace) -> int:
    """``edgecam central user passwd``."""
    from ..central import users

    return int(users.user_passwd_command(args) or 0)


def user_disable(args: argparse.Namespace) -> int:
    """``edgecam central user disable``."""
    from ..central import users

    return int(users.user_disable_command(args) or 0)
