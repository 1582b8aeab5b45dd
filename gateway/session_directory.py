"""Every node's live sessions, in the database: what supervisors list, and how an end request finds its session.

The node holding a session keeps its row current: :meth:`SessionDirectory.publish` inserts it
when the session opens, :meth:`~SessionDirectory.sync` (every ``sync_interval`` seconds, from
the session watcher) renews its heartbeat and the time of the operator's last input, and
:meth:`~SessionDirectory.withdraw` deletes it at the end. A node that dies leaves its rows
behind: a row whose heartbeat is older than ``expiry`` is no longer listed, and is purged. A
row purged while its node was cut off from the database is inserted again at the next sync.

Ending a session works from any node: :meth:`~SessionDirectory.request_end` writes who asked
and why into the session's row; the holding node's watcher reads the requests for its own
sessions every round (:meth:`~SessionDirectory.end_requests`) and ends them. Live viewers are
counted in the row by whichever node serves them (:meth:`~SessionDirectory.viewer_joined`).

A target's ``max_sessions`` is kept across nodes at :meth:`~SessionDirectory.publish`: the count
of the target's listed sessions and the insert run in one transaction serialized on that
target (a PostgreSQL advisory lock; SQLite's write lock), so of two operators opening the
last free place at once on any two nodes, exactly one gets it. Live viewers are not rows of
their own and do not count.

Events for a session's journal from another node (a live viewer's ``viewed_by``) go the same
way: :meth:`~SessionDirectory.post_event` stores one in ``live_session_events``, and the holding
node's watcher takes those of its sessions every round (:meth:`~SessionDirectory.take_events`)
and writes them into their journals. Events nobody took (the session ended first) are purged
with the expired rows.

Times are each node's wall clock, as for web sessions: nodes keep their clocks in step (NTP).
"""

from __future__ import annotations

import json
import platform
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    Column,
    ColumnElement,
    Index,
    Integer,
    String,
    Table,
    Text,
    bindparam,
    delete,
    func,
    insert,
    select,
    update,
)
from sqlalchemy.engine import RowMapping

from base.db import Store, UTCDateTime, metadata
from base.times import isoformat_utc
from gateway.errors import TargetInUse
from gateway.sessions import EndRequest, LiveSession, SessionControl

#: The live sessions of every node; each row is kept by the node holding the session.
live_sessions = Table(
    "live_sessions",
    metadata,
    Column("id", String(32), primary_key=True),  # gateway.sessions.SESSION_ID
    Column("username", String(255), nullable=False),
    Column("user_groups", Text, nullable=False),  # JSON ["group", ...], sorted
    Column("source", String(64), nullable=False),
    Column("target", String(255), nullable=False),
    Column("protocol", String(16), nullable=False),
    Column("node", String(255), nullable=False),
    Column("started", UTCDateTime, nullable=False),
    Column("last_input", UTCDateTime, nullable=False),
    Column("heartbeat", UTCDateTime, nullable=False),
    Column("viewers", Integer, nullable=False, server_default="0"),
    Column("end_reason", Text, nullable=True),  # an end request: why, by whom, when
    Column("end_by", String(255), nullable=True),
    Column("end_requested", UTCDateTime, nullable=True),
    Column("display_name", String(255), nullable=True),  # the name people know the user by; None: none
    Index("ix_live_sessions_heartbeat", "heartbeat"),
)


#: Journal events posted for a session held by another node, until that node takes them.
live_session_events = Table(
    "live_session_events",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("session_id", String(32), nullable=False),
    Column("type", String(32), nullable=False),
    Column("payload", Text, nullable=False),  # JSON object: the event's fields
    Column("posted", UTCDateTime, nullable=False),
    Index("ix_live_session_events_session_id", "session_id"),
)


@dataclass(frozen=True, slots=True)
class PostedEvent:
    """A journal event for the session ``session_id``, posted on any node."""

    session_id: str
    type: str
    fields: dict[str, Any]


@dataclass(frozen=True, slots=True)
class DirectoryEntry:
    """One live session as every node sees it."""

    id: str
    username: str
    groups: frozenset[str]
    source: str
    target: str
    protocol: str
    node: str
    started: datetime
    last_input: datetime
    viewers: int
    end_request: EndRequest | None
    display_name: str | None = None

    def to_json(self, now: float) -> dict[str, Any]:
        """The fields of ``GET /api/v1/sessions`` (idle seconds at ``now``)."""
        return {
            "id": self.id, "user": self.username, "source": self.source, "target": self.target,
            "protocol": self.protocol, "started": isoformat_utc(self.started),
            "idle_seconds": max(0, round(now - self.last_input.timestamp())), "viewers": self.viewers,
            "node": self.node, "groups": sorted(self.groups), "ending": self.end_request is not None,
            "display_name": self.display_name,
        }


def _entry(row: RowMapping) -> DirectoryEntry:
    request = EndRequest(row["end_by"], row["end_reason"]) if row["end_reason"] is not None else None
    return DirectoryEntry(
        id=row["id"], username=row["username"], groups=frozenset(json.loads(row["user_groups"])),
        source=row["source"], target=row["target"], protocol=row["protocol"], node=row["node"],
        started=row["started"], last_input=row["last_input"], viewers=row["viewers"], end_request=request,
        display_name=row["display_name"],
    )


def _time(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, UTC)


class SessionDirectory:
    """This node's view of the ``live_sessions`` table: publish, keep current, list, and end across nodes."""

    def __init__(self, store: Store, node: str | None = None, clock: Callable[[], float] = time.time,
                 sync_interval: float = 5.0, expiry: float = 30.0, max_reason: int = 300) -> None:
        """``expiry``: how long a row outlives its last heartbeat (at least three sync intervals);
        ``max_reason``: the longest reason someone may give for ending a session (characters)."""
        if not 0 < 3 * sync_interval <= expiry:
            raise ValueError("need 0 < 3 * sync_interval <= expiry: a row must survive a missed heartbeat or two")
        self.store = store
        self.node = node or platform.node()
        self.clock = clock
        self.sync_interval = sync_interval
        self.expiry = expiry
        self.max_reason = max_reason

    async def publish(self, live: LiveSession, max_sessions: int | None = None) -> None:
        """Insert ``live``'s row, as its session opens on this node; raises :class:`TargetInUse` (and inserts
        nothing) when its target already has ``max_sessions`` listed sessions (None: no limit)."""
        async with self.store.serialized(f"deskgate.target.{live.target}") as connection:
            now = self.clock()
            if max_sessions is not None:
                c = live_sessions.c
                holders: tuple[str, ...] = tuple((await connection.execute(select(c.username).where(
                    c.target == live.target, c.id != live.id, self._listed(now)).order_by(c.started))).scalars())
                if len(holders) >= max_sessions:
                    raise TargetInUse(live.target, max_sessions, holders, live.username)
            await connection.execute(self.store.upsert(live_sessions, self._row(live, now, now)))

    async def holders(self, target: str) -> list[str]:
        """Who holds a listed session on ``target`` now (user names, oldest first)."""
        c = live_sessions.c
        query = select(c.username).where(c.target == target, self._listed(self.clock())).order_by(c.started)
        async with self.store.read() as connection:
            return list((await connection.execute(query)).scalars())

    async def withdraw(self, session_id: str) -> None:
        """Delete the row of a session that ended on this node."""
        async with self.store.transaction() as connection:
            await connection.execute(delete(live_sessions).where(live_sessions.c.id == session_id))

    async def sync(self, controls: Iterable[SessionControl]) -> None:
        """Renew the heartbeat and last input time of the sessions this node holds; re-insert purged rows."""
        held = {control.session.id: control for control in controls}
        if not held:
            return
        now = self.clock()
        async with self.store.transaction() as connection:
            present: set[str] = set((await connection.execute(
                select(live_sessions.c.id).where(live_sessions.c.id.in_(held)))).scalars())
            # A session the registry let go while this ran is being withdrawn: never bring its row back.
            missing = [self._row(held[session_id].session, now, held[session_id].last_input_epoch())
                       for session_id in held.keys() - present if held[session_id].held]
            if missing:
                await connection.execute(insert(live_sessions), missing)
            changes = [{"key": session_id, "input_at": _time(held[session_id].last_input_epoch()),
                        "renewed": _time(now)} for session_id in present]
            if changes:
                await connection.execute(
                    update(live_sessions).where(live_sessions.c.id == bindparam("key"))
                    .values(last_input=bindparam("input_at"), heartbeat=bindparam("renewed")), changes)

    async def end_requests(self, session_ids: Iterable[str]) -> dict[str, EndRequest]:
        """The end requests recorded for any of ``session_ids`` (this node's sessions)."""
        ids = list(session_ids)
        if not ids:
            return {}
        c = live_sessions.c
        query = select(c.id, c.end_by, c.end_reason).where(c.id.in_(ids), c.end_reason.is_not(None))
        async with self.store.read() as connection:
            rows = (await connection.execute(query)).all()
        return {row.id: EndRequest(row.end_by, row.end_reason) for row in rows}

    async def request_end(self, session_id: str, request: EndRequest) -> bool:
        """Record a request to end a listed session; False when it is gone or someone asked first."""
        if not 0 < len(request.reason) <= self.max_reason:
            raise ValueError(f"a reason is 1 to {self.max_reason} characters")
        c = live_sessions.c
        now = self.clock()
        async with self.store.transaction() as connection:
            result = await connection.execute(
                update(live_sessions).where(c.id == session_id, c.end_reason.is_(None), self._listed(now))
                .values(end_reason=request.reason, end_by=request.by, end_requested=_time(now)))
        return result.rowcount > 0

    async def list(self) -> list[DirectoryEntry]:
        """Every node's live sessions, oldest first."""
        query = select(live_sessions).where(self._listed(self.clock())).order_by(
            live_sessions.c.started, live_sessions.c.id)
        async with self.store.read() as connection:
            return [_entry(row) for row in (await connection.execute(query)).mappings()]

    async def get(self, session_id: str) -> DirectoryEntry | None:
        """One listed session, or None."""
        query = select(live_sessions).where(live_sessions.c.id == session_id, self._listed(self.clock()))
        async with self.store.read() as connection:
            row = (await connection.execute(query)).mappings().first()
        return _entry(row) if row is not None else None

    async def viewer_joined(self, session_id: str) -> None:
        """Count one more live viewer of a session (held by any node)."""
        await self._count_viewer(session_id, +1)

    async def viewer_left(self, session_id: str) -> None:
        await self._count_viewer(session_id, -1)

    async def post_event(self, session_id: str, type: str, fields: dict[str, Any]) -> None:
        """Store a journal event for a session the holding node (any node) writes into its journal."""
        async with self.store.transaction() as connection:
            await connection.execute(insert(live_session_events).values(
                session_id=session_id, type=type, payload=json.dumps(fields), posted=_time(self.clock())))

    async def take_events(self, session_ids: Iterable[str]) -> tuple[PostedEvent, ...]:
        """The journal events posted for any of ``session_ids`` (this node's sessions), oldest first; they are
        deleted as they are taken."""
        ids = list(session_ids)
        if not ids:
            return ()
        c = live_session_events.c
        async with self.store.transaction() as connection:
            rows = (await connection.execute(select(live_session_events).where(c.session_id.in_(ids))
                                             .order_by(c.id))).all()
            if rows:
                await connection.execute(delete(live_session_events).where(c.id.in_([row.id for row in rows])))
        return tuple(PostedEvent(row.session_id, row.type, json.loads(row.payload)) for row in rows)

    async def purge(self) -> int:
        """Delete the rows of sessions whose node stopped renewing them, and events nobody took; returns how many."""
        cutoff = _time(self.clock() - self.expiry)
        async with self.store.transaction() as connection:
            result = await connection.execute(delete(live_sessions).where(live_sessions.c.heartbeat < cutoff))
            await connection.execute(delete(live_session_events).where(live_session_events.c.posted < cutoff))
        return int(result.rowcount)

    async def _count_viewer(self, session_id: str, change: int) -> None:
        viewers = live_sessions.c.viewers
        async with self.store.transaction() as connection:
            await connection.execute(update(live_sessions).where(live_sessions.c.id == session_id)
                                     .values(viewers=func.max(viewers + change, 0) if self.store.dialect == "sqlite"
                                             else func.greatest(viewers + change, 0)))

    def _listed(self, now: float) -> ColumnElement[bool]:
        return live_sessions.c.heartbeat >= _time(now - self.expiry)

    def _row(self, live: LiveSession, now: float, last_input: float) -> dict[str, Any]:
        return {
            "id": live.id, "username": live.username, "user_groups": json.dumps(sorted(live.groups)),
            "source": live.source, "target": live.target, "protocol": live.protocol, "node": self.node,
            "started": _time(live.started), "last_input": _time(last_input), "heartbeat": _time(now), "viewers": 0,
            "display_name": live.display_name,
        }
