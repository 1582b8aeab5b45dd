"""``deskgate db upgrade`` and ``deskgate db status``: the database schema's migrations (:mod:`gateway.schema`)."""

from __future__ import annotations

import argparse
import asyncio

from gateway.cli.common import CommandGroups
from gateway.config import load_config
from gateway.schema import head_revision, revision_of, upgrade


def add_commands(commands: CommandGroups, common: argparse.ArgumentParser) -> None:
    db = commands.add_parser("db", help="the database schema").add_subparsers(
        dest="db_command", required=True, metavar="COMMAND")
    up = db.add_parser("upgrade", parents=[common],
                       help="migrate storage.database to this version's schema (back it up first)")
    up.set_defaults(handler=cmd_db_upgrade)
    status = db.add_parser("status", parents=[common], help="the database's schema revision and this version's")
    status.set_defaults(handler=cmd_db_status)


def cmd_db_upgrade(args: argparse.Namespace) -> int:
    before, after = asyncio.run(upgrade(load_config(args.config).storage.database))
    if before == after:
        print(f"database already at revision {after}")
    else:
        print(f"database upgraded from revision {before or 'none (made before migrations)'} to {after}")
    return 0


def cmd_db_status(args: argparse.Namespace) -> int:
    current = asyncio.run(revision_of(load_config(args.config).storage.database))
    head = head_revision()
    state = "up to date" if current == head else "run: deskgate db upgrade"
    print(f"database revision {current or 'none'}; this version needs {head}: {state}")
    return 0 if current == head else 1
