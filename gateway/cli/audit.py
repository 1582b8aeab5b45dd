"""``deskgate audit list`` and ``verify``: the hash-chained audit log, read from the database."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Callable
from typing import Any

from base.db import Store
from base.times import isoformat_utc, parse_time
from gateway.audit import AuditEvent, AuditLog, VerifyResult
from gateway.cli.common import CommandGroups
from gateway.config import Config, load_config


def add_commands(commands: CommandGroups, common: argparse.ArgumentParser) -> None:
    audit = commands.add_parser("audit", help="the audit log").add_subparsers(
        dest="audit_command", required=True, metavar="COMMAND")
    audit_list = audit.add_parser("list", parents=[common], help="audit events, oldest first")
    audit_list.add_argument("--user", metavar="U",
                            help="only this user's history: what they did, and what administrators did to them")
    audit_list.add_argument("--since", metavar="ISO", help="only events at or after this time or date")
    audit_list.add_argument("--json", action="store_true", help="one JSON object per event and line")
    audit_list.set_defaults(handler=lambda args: audit_list_command(load_config(args.config), args.user,
                                                                    args.since, args.json))
    audit_verify = audit.add_parser("verify", parents=[common], help="check the audit log's hash chain")
    audit_verify.set_defaults(handler=lambda args: audit_verify_command(load_config(args.config)))


async def _with_audit_log(config: Config, use: Callable[[AuditLog], Any]) -> Any:
    store = await Store.open(config.storage.database)
    try:
        return await use(AuditLog(store))
    finally:
        await store.close()


def audit_list_command(config: Config, user: str | None, since: str | None, as_json: bool) -> int:
    """``deskgate audit list``: oldest first; one JSON object per line with ``--json``."""
    try:
        since_time = parse_time(since) if since else None
    except ValueError as exc:
        print(f"deskgate: --since: {exc}", file=sys.stderr)
        return 1
    events: list[AuditEvent] = asyncio.run(
        _with_audit_log(config, lambda audit: audit.list(user=user, since=since_time, limit=None)))
    for event in events:
        if as_json:
            print(json.dumps(event.to_json(), ensure_ascii=False))
        else:
            reason = f"  ({event.reason})" if event.reason else ""
            print(f"{isoformat_utc(event.time)}  #{event.id}  {event.user or '-'}  {event.source or '-'}  "
                  f"{event.action}  {event.target or '-'}  {event.outcome}{reason}")
    return 0


def audit_verify_command(config: Config) -> int:
    """``deskgate audit verify``: exit 0 when the chain is intact, 1 (saying where and why) when not."""
    verdict: VerifyResult = asyncio.run(_with_audit_log(config, lambda audit: audit.verify()))
    if verdict.ok:
        print(f"audit log intact: {verdict.checked} events checked")
        return 0
    print(f"audit log TAMPERED at event #{verdict.first_bad_id}: {verdict.reason} "
          f"({verdict.checked} events before it are intact)")
    return 1
