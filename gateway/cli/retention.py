"""``deskgate recordings hold``, ``release`` and ``retention``; what ``verify`` says of a deleted recording."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import sys
import time
from collections.abc import Callable

from base.db import Store
from base.metrics import Metrics
from gateway.audit import AuditLog
from gateway.config import Config, load_config
from gateway.recording_service import recorder_storage
from gateway.retention import HoldError, Retention, Tombstone, hold, release, tombstone
from recorder.index import RecordingIndex
from recorder.seal import read_key

#: ``recordings verify``'s exit status for a recording retention deleted (1: tampered or torn).
EXIT_DELETED = 3


def add_commands(recordings: argparse._SubParsersAction[argparse.ArgumentParser],
                 common: argparse.ArgumentParser) -> None:
    held = recordings.add_parser("hold", parents=[common], help="put a recording on legal hold (never deleted)")
    held.add_argument("id", metavar="ID")
    held.add_argument("--reason", required=True, help="why it must be kept, e.g. the case number")
    held.set_defaults(handler=lambda args: hold_command(load_config(args.config), args.id, args.reason))
    freed = recordings.add_parser("release", parents=[common], help="release a recording's legal hold")
    freed.add_argument("id", metavar="ID")
    freed.set_defaults(handler=lambda args: release_command(load_config(args.config), args.id))
    retention = recordings.add_parser("retention", parents=[common],
                                      help="delete the recordings older than storage.retention, except held ones")
    retention.add_argument("--dry-run", action="store_true", help="only list what would be deleted")
    retention.set_defaults(handler=lambda args: retention_command(load_config(args.config), args.dry_run))


def _operator() -> str:
    return f"cli:{getpass.getuser()}"


async def _with_store(config: Config, work: Callable[[Store], object]) -> object:
    store = await Store.open(config.storage.database)
    try:
        result = work(store)
        return await result if asyncio.iscoroutine(result) else result
    finally:
        await store.close()


def hold_command(config: Config, recording_id: str, reason: str) -> int:
    try:
        asyncio.run(_with_store(config, lambda store: hold(store, AuditLog(store), recording_id, by=_operator(),
                                                           reason=reason)))
    except HoldError as exc:
        print(f"deskgate: {exc}", file=sys.stderr)
        return 1
    print(f"{recording_id}: on hold ({reason}); retention will not delete it until released")
    return 0


def release_command(config: Config, recording_id: str) -> int:
    try:
        asyncio.run(_with_store(config, lambda store: release(store, AuditLog(store), recording_id, by=_operator())))
    except HoldError as exc:
        print(f"deskgate: {exc}", file=sys.stderr)
        return 1
    print(f"{recording_id}: released; retention applies to it again")
    return 0


async def run_retention(config: Config, *, dry_run: bool, clock: Callable[[], float] = time.time) -> list[str]:
    """Apply ``storage.retention`` once (or only list, with ``dry_run``); the ids deleted (or to be)."""
    keep = config.storage.retention
    if keep is None:
        return []
    store = await Store.open(config.storage.database)
    try:
        async with recorder_storage(config, read_key(config.storage.recording_key_file)) as remote:
            retention = Retention(RecordingIndex(store, None), AuditLog(store), Metrics(), keep=keep,
                                  root=config.storage.recordings, remote=remote, node=config.audit.node, clock=clock)
            rows = await retention.expired() if dry_run else await retention.run()
        return [f"{row.id}\t{row.user}\t{row.target}\t{row.started.isoformat()}" for row in rows]
    finally:
        await store.close()


def retention_command(config: Config, dry_run: bool) -> int:
    if config.storage.retention is None:
        print("storage.retention is off: recordings are kept forever; nothing to delete")
        return 0
    lines = asyncio.run(run_retention(config, dry_run=dry_run))
    for line in lines:
        print(f"{'would delete' if dry_run else 'deleted'}\t{line}")
    print(f"{len(lines)} recording(s) {'would be deleted' if dry_run else 'deleted'}", file=sys.stderr)
    return 0


def deleted_message(config: Config, recording_id: str) -> int | None:
    """If retention deleted ``recording_id``: say so and return EXIT_DELETED; else None."""
    found = asyncio.run(_with_store(config, lambda store: tombstone(store, recording_id)))
    if not isinstance(found, Tombstone):
        return None
    print(f"{recording_id}: DELETED by retention on {found.deleted.isoformat()} ({found.reason}); "
          f"{found.user} to {found.target}, started {found.started.isoformat()}; "
          f"its seal vouched for SHA-256 {found.sha256 or 'unknown'}")
    return EXIT_DELETED
