"""``deskgate sessions list`` and ``end``: every node's live sessions, from the shared database.

Ending a session from here works like the supervisors' ``DELETE /api/v1/sessions/{id}``: the
request is audited, written into the session's row for the node that holds it (its watcher ends
the session within a couple of seconds), and the operator's pages are told who ended it and why.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import sys
import time

from base.metrics import Metrics
from gateway.audit import AuditLog
from gateway.cli.common import CommandGroups
from gateway.cli.messages import _
from gateway.config import Config, load_config
from gateway.notices import NoticeBoard, SessionEnded
from gateway.schema import open_current_store
from gateway.session_directory import DirectoryEntry, SessionDirectory
from gateway.sessions import EndRequest, is_live_session_id

SOURCE = "cli"


def add_commands(commands: CommandGroups, common: argparse.ArgumentParser) -> None:
    sessions = commands.add_parser("sessions", help="live sessions on every node").add_subparsers(
        dest="sessions_command", required=True, metavar="COMMAND")
    listing = sessions.add_parser("list", parents=[common], help="live sessions, oldest first")
    listing.add_argument("--json", action="store_true", help="one JSON object per session and line")
    listing.set_defaults(handler=lambda args: sessions_list_command(load_config(args.config), args.json))
    end = sessions.add_parser("end", parents=[common], help="end a live session; the operator reads the reason")
    end.add_argument("id", metavar="ID")
    end.add_argument("--reason", required=True, metavar="TEXT", help="why (shown to the operator, audited)")
    end.set_defaults(handler=lambda args: sessions_end_command(load_config(args.config), args.id, args.reason))


def _idle(seconds: int) -> str:
    minutes, rest = divmod(seconds, 60)
    return f"{minutes}m{rest:02d}s" if minutes else f"{rest}s"


def sessions_list_command(config: Config, as_json: bool) -> int:
    async def listing() -> list[DirectoryEntry]:
        store = await open_current_store(config.storage.database)
        try:
            return await SessionDirectory(store).list()
        finally:
            await store.close()

    entries = asyncio.run(listing())
    now = time.time()
    for entry in entries:
        fields = entry.to_json(now)
        if as_json:
            print(json.dumps(fields, ensure_ascii=False))
        else:
            print(f"{fields['id']}  {fields['user']:<16} {fields['target']:<16} {fields['protocol']:<4} "
                  f"from {fields['source']:<15} since {fields['started']}  idle {_idle(fields['idle_seconds'])}"
                  f"  viewers {fields['viewers']}  node {fields['node']}{'  (ending)' if fields['ending'] else ''}")
    if not entries and not as_json:
        print("no live sessions")
    return 0


def sessions_end_command(config: Config, session_id: str, reason: str) -> int:
    reason = " ".join(reason.split())  # one line: it ends up in a close frame and a notice
    if not reason:
        print(_("deskgate: say why you end this session (--reason): the operator reads it"), file=sys.stderr)
        return 1
    operator = getpass.getuser()

    async def end() -> str | None:
        store = await open_current_store(config.storage.database)
        try:
            directory = SessionDirectory(store)
            if len(reason) > directory.max_reason:
                return _("the reason is longer than {limit} characters; shorten it", limit=directory.max_reason)
            entry = await directory.get(session_id) if is_live_session_id(session_id) else None
            if entry is None:
                return _("there is no live session {session}; it may have ended already (sessions list)",
                         session=repr(session_id[:64]))
            if entry.end_request is not None:
                return _("{by} already asked to end this session", by=entry.end_request.by)
            request = EndRequest(f"{operator} ({SOURCE})", reason)
            await AuditLog(store).record("session.end", user=operator, source=SOURCE, target=entry.username,
                                        outcome="allowed", reason=reason, session=entry.id, desktop=entry.target,
                                        node=entry.node)
            if not await directory.request_end(entry.id, request):
                return _("this session is already ending")
            board = NoticeBoard(store, Metrics())  # a registry of its own: this process exports nothing
            await board.post(entry.username, SessionEnded(request.by, reason, entry.target))
            print(f"ending {entry.username}'s session {entry.id} on {entry.target} (node {entry.node})")
            return None
        finally:
            await store.close()

    error = asyncio.run(end())
    if error is not None:
        print(_("deskgate: {error}", error=error), file=sys.stderr)
        return 1
    return 0
