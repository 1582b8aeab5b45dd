"""``deskgate audit list`` and ``verify``: the hash-chained audit log, read from the database.

``verify`` checks the chain against the checkpoints of every node in ``audit.checkpoint_dir``
and in the files given with ``--checkpoints`` (another node's checkpoint file, or a log
export holding their ``audit checkpoint`` lines), with the key in ``audit.checkpoint_key_file``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from auth.secretbox import read_key
from base.times import isoformat_utc, parse_time
from gateway.audit import AuditEvent, AuditLog, VerifyResult
from gateway.audit_checkpoints import CheckpointKey, CheckpointReading, checkpoint_files, read_checkpoints
from gateway.cli.common import CommandGroups
from gateway.config import Config, load_config
from gateway.schema import open_current_store


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
    audit_verify = audit.add_parser("verify", parents=[common],
                                    help="check the audit log's hash chain against the nodes' checkpoints")
    audit_verify.add_argument("--checkpoints", type=Path, action="append", default=[], metavar="FILE",
                              help="also check against the checkpoints in FILE (a checkpoint file or a log); "
                                   "repeatable")
    audit_verify.set_defaults(handler=lambda args: audit_verify_command(load_config(args.config),
                                                                        args.checkpoints))


async def _with_audit_log(config: Config, use: Callable[[AuditLog], Any]) -> Any:
    store = await open_current_store(config.storage.database)
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


def audit_verify_command(config: Config, extra_checkpoints: Sequence[Path] = ()) -> int:
    """``deskgate audit verify``: exit 0 when the chain is intact and holds every checkpoint, else 1.

    Says where and why it is not, and which events no checkpoint vouches for yet.
    """
    files = checkpoint_files(config.audit.checkpoint_dir) + list(extra_checkpoints)
    reading = CheckpointReading((), (), ())
    if files:
        try:
            key = CheckpointKey(read_key(config.audit.checkpoint_key_file))
        except FileNotFoundError:
            print(f"deskgate: cannot check the audit checkpoints: the key file {config.audit.checkpoint_key_file} "
                  "is missing; copy it from a gateway node (every node uses the same)", file=sys.stderr)
            return 1
        reading = read_checkpoints(key, files)
    checkpoints = [found.checkpoint for found in reading.found]
    verdict: VerifyResult = asyncio.run(_with_audit_log(config, lambda audit: audit.verify(checkpoints)))
    for rejected in reading.rejected:
        print(f"audit checkpoint REJECTED: {rejected}")
    for torn in reading.torn:
        print(f"note: {torn}: a checkpoint cut short (the node stopped while writing it); ignored")
    print(_verdict_line(config, verdict, reading))
    return 0 if verdict.ok and not reading.rejected else 1


def _verdict_line(config: Config, verdict: VerifyResult, reading: CheckpointReading) -> str:
    if verdict.truncated:
        return f"audit log TRUNCATED: {verdict.reason} (the {verdict.checked} events left are intact)"
    if not verdict.ok:
        return (f"audit log TAMPERED at event #{verdict.first_bad_id}: {verdict.reason} "
                f"({verdict.checked} events before it are intact)")
    line = f"audit log intact: {verdict.checked} events checked"
    anchor = verdict.anchor
    if anchor is not None:
        nodes = len({found.checkpoint.node for found in reading.found})
        line += (f", anchored up to event #{anchor.head_id} by node {anchor.node}'s checkpoint of "
                 f"{isoformat_utc(anchor.time)} ({len(reading.found)} checkpoints from {nodes} nodes)")
    elif verdict.checked and not reading.found:
        return (f"{line}, but NOT ANCHORED: no checkpoint found in {config.audit.checkpoint_dir}, so deleting the "
                "newest events would go unnoticed; the gateway writes checkpoints while it runs (or pass "
                "--checkpoints with a log that holds them)")
    if verdict.unanchored:
        line += (f"; the newest {verdict.unanchored} events are not anchored yet: deleting them would go unnoticed "
                 "until the next checkpoint")
    return line
