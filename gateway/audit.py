"""The audit log: who did what, from where, to what, with which outcome — in the database and the log.

Events are chained: each stores the previous event's hash and its own,
``hash = sha256(prev_hash + canonical JSON of the event)`` (hex; the first event follows
:data:`GENESIS_HASH`). Editing an event changes its hash; deleting or inserting one breaks
the link of the event after it. :meth:`AuditLog.verify` walks the chain and names the first
event that does not fit. The chain has no secret: someone who can rewrite the whole table
can recompute it, and dropping the newest events leaves a shorter valid chain. So every
event, hash included, also goes to the log stream, a second witness kept elsewhere; and a
:class:`CheckpointWriter` anchors the chain's head outside the database at intervals and at
shutdown (:mod:`gateway.audit_checkpoints`), which :meth:`AuditLog.verify` checks the chain
against: a cut tail or a rolled-back table is found up to the newest checkpoint.

Appends are serialized so that two events never claim the same predecessor: an
:class:`asyncio.Lock` within the process, and :meth:`Store.serialized` across processes
and nodes (``BEGIN IMMEDIATE`` on SQLite, an advisory lock on PostgreSQL).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Column, Index, Integer, String, Table, Text, and_, func, insert, or_, select
from sqlalchemy.engine import Row
from sqlalchemy.exc import SQLAlchemyError

from auth.secretbox import load_or_create_key
from base.db import Store, UTCDateTime, metadata
from base.metrics import Metrics
from base.times import isoformat_utc
from gateway.audit_checkpoints import (
    Checkpoint,
    CheckpointKey,
    append_checkpoint,
    checkpoint_file,
    last_checkpoint,
)
from gateway.config.model import AuditConfig

log = logging.getLogger(__name__)

GENESIS_HASH = "0" * 64
#: Actions done *to* a person, who is their target (an administrator disabling a user, resetting
#: their TOTP, …): they belong to that person's history as much as to the actor's. Prefixes.
ACTIONS_ON_A_PERSON = ("user.", "session.end")  # admin actions on an account; a supervisor ending a session
_CHAIN_LOCK = "deskgate.audit_events"
_CHAINED_FIELDS = ("time", "user", "source", "action", "target", "outcome", "reason", "detail")

#: The audit log, each row chained to the previous one by hash.
audit_events = Table(
    "audit_events",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("time", UTCDateTime, nullable=False),
    Column("user", String(255), nullable=True),
    Column("source", String(64), nullable=True),
    Column("action", String(64), nullable=False),
    Column("target", String(255), nullable=True),
    Column("outcome", String(32), nullable=False),
    Column("reason", Text, nullable=True),
    Column("detail", Text, nullable=False),  # canonical JSON object
    Column("prev_hash", String(64), nullable=False),
    Column("hash", String(64), nullable=False),
    Index("ix_audit_events_time", "time"),
    Index("ix_audit_events_user_time", "user", "time"),
)


@dataclass(frozen=True, slots=True)
class AuditEvent:
    """One stored audit event."""

    id: int
    time: datetime
    user: str | None
    source: str | None
    action: str  # dotted, e.g. "login", "recording.view"
    target: str | None
    outcome: str  # "allowed", "denied", "success", "failure", ...
    reason: str | None
    detail: dict[str, Any] = field(default_factory=dict)
    prev_hash: str = GENESIS_HASH
    hash: str = ""

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "time": isoformat_utc(self.time), "user": self.user, "source": self.source,
                "action": self.action, "target": self.target, "outcome": self.outcome, "reason": self.reason,
                "detail": self.detail, "prev_hash": self.prev_hash, "hash": self.hash}


@dataclass(frozen=True, slots=True)
class VerifyResult:
    """The chain's verdict: ``ok``, how many events were checked, and the first that does not fit.

    ``anchor`` is the newest checkpoint the chain matches, ``unanchored`` the number of events
    after it (their deletion would go unnoticed); ``truncated`` says the chain ends before a
    checkpointed head (then ``first_bad_id`` is None: the missing events are not there to name).
    """

    ok: bool
    checked: int
    first_bad_id: int | None = None
    reason: str | None = None
    anchor: Checkpoint | None = None
    unanchored: int = 0
    truncated: bool = False


@dataclass(frozen=True, slots=True)
class ChainHead:
    """The newest event's id and hash, and the number of events in the chain up to it."""

    id: int
    hash: str
    count: int


EMPTY_CHAIN = ChainHead(0, GENESIS_HASH, 0)


def canonical_json(value: Any) -> str:
    """Sorted keys, no spaces, UTF-8 as is: one spelling per value. Non-JSON values become text."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def chain_hash(prev_hash: str, fields: dict[str, Any]) -> str:
    """The hash of an event with ``fields`` (the :data:`_CHAINED_FIELDS`) following ``prev_hash``."""
    return hashlib.sha256((prev_hash + canonical_json(fields)).encode()).hexdigest()


def _chained_fields(time_: datetime, user: str | None, source: str | None, action: str, target: str | None,
                    outcome: str, reason: str | None, detail: dict[str, Any]) -> dict[str, Any]:
    return {"time": isoformat_utc(time_), "user": user, "source": source, "action": action, "target": target,
            "outcome": outcome, "reason": reason, "detail": detail}


def _event(row: Row[Any]) -> AuditEvent:
    return AuditEvent(id=row.id, time=row.time, user=row.user, source=row.source, action=row.action,
                      target=row.target, outcome=row.outcome, reason=row.reason, detail=json.loads(row.detail),
                      prev_hash=row.prev_hash, hash=row.hash)


def _optional_text(value: object) -> str | None:
    return None if value is None else str(value)


class AuditLog:
    """Appends audit events to the store (hash-chained) and the log; lists and verifies them."""

    def __init__(self, store: Store, clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.clock = clock
        self._lock = asyncio.Lock()

    async def record(self, action: str, *, user: object, source: object, target: object = None,
                     outcome: str, reason: str | None = None, **detail: Any) -> AuditEvent:
        """Store and log one event; ``detail`` must be JSON-able (anything else is stored as text).

        Raises the database's error if it cannot be stored: a caller guarding an action
        should then refuse it rather than act unaudited.
        """
        moment = datetime.fromtimestamp(self.clock(), UTC)
        user_text, source_text, target_text = _optional_text(user), _optional_text(source), _optional_text(target)
        detail = json.loads(canonical_json(detail))  # what the database will give back, to hash exactly that
        fields = _chained_fields(moment, user_text, source_text, action, target_text, outcome, reason, detail)
        async with self._lock, self.store.serialized(_CHAIN_LOCK) as connection:
            latest = await connection.scalar(select(audit_events.c.hash).order_by(audit_events.c.id.desc()).limit(1))
            prev_hash = latest or GENESIS_HASH
            event_hash = chain_hash(prev_hash, fields)
            result = await connection.execute(insert(audit_events).values(
                time=moment, user=user_text, source=source_text, action=action, target=target_text,
                outcome=outcome, reason=reason, detail=canonical_json(detail), prev_hash=prev_hash, hash=event_hash))
            inserted = result.inserted_primary_key
            assert inserted is not None
            event_id = int(inserted[0])
        event = AuditEvent(event_id, moment, user_text, source_text, action, target_text, outcome, reason, detail,
                           prev_hash, event_hash)
        level = logging.INFO if outcome in ("allowed", "success") else logging.WARNING
        log.log(level, f"audit {action}", extra={"ctx": {"audit_id": event_id, **fields, "hash": event_hash}})
        return event

    async def list(self, user: str | None = None, since: datetime | None = None,
                   limit: int | None = 1000) -> list[AuditEvent]:
        """Events oldest first: the newest ``limit`` of ``user``'s history at or after ``since``.

        A user's history is what they did and what was done to them (:data:`ACTIONS_ON_A_PERSON`
        with them as the target).
        """
        query = select(audit_events)
        if user is not None:
            c = audit_events.c
            done_to = and_(c.target == user, or_(*(c.action.startswith(prefix, autoescape=True)
                                                   for prefix in ACTIONS_ON_A_PERSON)))
            query = query.where(or_(c.user == user, done_to))
        if since is not None:
            query = query.where(audit_events.c.time >= since)
        query = query.order_by(audit_events.c.id.desc())
        if limit is not None:
            query = query.limit(limit)
        async with self.store.read() as connection:
            rows = (await connection.execute(query)).all()
        return [_event(row) for row in reversed(rows)]

    async def latest(self, action: str, since: datetime | None = None) -> AuditEvent | None:
        """The newest event of ``action`` (at or after ``since``), or None."""
        query = select(audit_events).where(audit_events.c.action == action)
        if since is not None:
            query = query.where(audit_events.c.time >= since)
        async with self.store.read() as connection:
            row = (await connection.execute(query.order_by(audit_events.c.id.desc()).limit(1))).first()
        return None if row is None else _event(row)

    async def head(self, since: ChainHead | None = None) -> tuple[ChainHead, bool]:
        """The chain's head now, and whether ``since`` (an earlier head) is still in it, unchanged.

        When it is, only the events after it are counted; otherwise (or without ``since``) all are.
        """
        async with self.store.read() as connection:
            newest = (await connection.execute(select(audit_events.c.id, audit_events.c.hash)
                                               .order_by(audit_events.c.id.desc()).limit(1))).first()
            if newest is None:
                return EMPTY_CHAIN, since is None or since.count == 0
            holds = since is None or since.id == 0 or await connection.scalar(
                select(audit_events.c.hash).where(audit_events.c.id == since.id)) == since.hash
            counted = since if since is not None and holds else EMPTY_CHAIN
            more = await connection.scalar(select(func.count()).select_from(audit_events).where(
                audit_events.c.id > counted.id, audit_events.c.id <= newest.id))
        return ChainHead(newest.id, newest.hash, counted.count + int(more or 0)), holds

    async def verify(self, checkpoints: Iterable[Checkpoint] = ()) -> VerifyResult:
        """Walk the whole chain, oldest first; stop at the first event that was edited, deleted or inserted.

        Each checkpoint must find its head in the chain as the same event at the same position:
        a chain that ends before one lost its tail; one that holds another event there (or skips
        its id) was rolled back and written anew after the checkpoint.
        """
        pending = deque(sorted((c for c in checkpoints if c.count > 0), key=lambda c: (c.head_id, c.time)))
        expected_prev, previous_id, checked = GENESIS_HASH, None, 0
        anchor: Checkpoint | None = None
        first_unanchored: int | None = None
        async with self.store.read() as connection:
            result = await connection.stream(select(audit_events).order_by(audit_events.c.id))
            async for row in result:
                broken = _broken_link(row, expected_prev, previous_id)
                if broken is not None:
                    return VerifyResult(False, checked, row.id, broken, anchor, checked - _count(anchor))
                expected_prev, previous_id, checked = row.hash, row.id, checked + 1
                if first_unanchored is None:
                    first_unanchored = row.id
                while pending and pending[0].head_id <= row.id:
                    checkpoint = pending.popleft()
                    if (checkpoint.head_id, checkpoint.head_hash, checkpoint.count) != (row.id, row.hash, checked):
                        suspect = row.id if first_unanchored is None else first_unanchored
                        return VerifyResult(False, _count(anchor), suspect, _rolled_back(checkpoint, row.id, suspect),
                                            anchor)
                    anchor, first_unanchored = checkpoint, None
        if pending:
            newest = max(pending, key=lambda c: (c.count, c.time))
            return VerifyResult(False, checked, None, _truncated(newest, previous_id, checked), anchor,
                                checked - _count(anchor), truncated=True)
        return VerifyResult(True, checked, anchor=anchor, unanchored=checked - _count(anchor))


def _broken_link(row: Row[Any], expected_prev: str, previous_id: int | None) -> str | None:
    """Why ``row`` does not fit the chain after ``previous_id``; None when it does."""
    after = f"event #{previous_id}" if previous_id is not None else "the start of the log"
    if row.prev_hash != expected_prev:
        return (f"event #{row.id} does not follow {after}: "
                "an event between them was deleted or inserted, or the link was edited")
    try:
        detail = json.loads(row.detail)
    except json.JSONDecodeError:
        return f"event #{row.id} was edited: its detail is not JSON"
    fields = _chained_fields(row.time, row.user, row.source, row.action, row.target, row.outcome, row.reason, detail)
    if chain_hash(row.prev_hash, fields) != row.hash:
        return f"event #{row.id} was edited: its contents do not match its hash"
    return None


def _count(anchor: Checkpoint | None) -> int:
    return 0 if anchor is None else anchor.count


def _by(checkpoint: Checkpoint) -> str:
    return f"node {checkpoint.node}'s checkpoint of {isoformat_utc(checkpoint.time)}"


def _rolled_back(checkpoint: Checkpoint, row_id: int, suspect: int) -> str:
    if checkpoint.head_id == row_id:
        found = f"event #{row_id} is not the event {_by(checkpoint)} recorded as #{row_id}"
    else:
        found = f"event #{checkpoint.head_id}, which {_by(checkpoint)} recorded, is gone and the log goes on without it"
    return (f"{found}: the log was rolled back (its newest events deleted, or an older copy restored) and other "
            f"events were written since; events from #{suspect} on are not the ones checkpointed")


def _truncated(checkpoint: Checkpoint, last_id: int | None, checked: int) -> str:
    ends = f"ends at event #{last_id} ({checked} events)" if last_id is not None else "is empty"
    missing = checkpoint.count - checked
    return (f"the log {ends}, but {_by(checkpoint)} recorded {checkpoint.count} events up to event "
            f"#{checkpoint.head_id}: {f'at least {missing} of ' if missing > 0 else ''}the newest events, "
            f"recorded before {isoformat_utc(checkpoint.time)}, were deleted")


class CheckpointWriter:
    """Anchors the chain's head outside the database: one node's checkpoints, to its file and the log.

    :meth:`running` writes one at start-up, then every ``interval`` seconds when the head has
    moved, and a last one at shutdown. Before each, it checks that the head of its previous
    checkpoint is still in the chain; when it is not, the tail was cut or the table rolled back
    while this node was looking away: an error in the log and ``audit_chain_rollbacks_total``.
    """

    def __init__(self, audit: AuditLog, key: CheckpointKey, directory: Path, node: str, interval: float,
                 metrics: Metrics | None = None, clock: Callable[[], float] = time.time) -> None:
        self.audit = audit
        self.key = key
        self.path = checkpoint_file(directory, node)
        self.node = node
        self.interval = interval
        self.metrics = metrics
        self.clock = clock
        self._last: Checkpoint | None = None

    @classmethod
    def from_config(cls, audit: AuditLog, config: AuditConfig, metrics: Metrics | None = None) -> CheckpointWriter:
        """The writer ``config`` (``audit:``) describes; the key file is created (0600) if missing."""
        key = CheckpointKey(load_or_create_key(config.checkpoint_key_file))
        return cls(audit, key, config.checkpoint_dir, config.node, config.checkpoint_interval, metrics)

    async def write(self) -> Checkpoint | None:
        """Checkpoint the head if it moved since this node's last checkpoint; the new checkpoint, or None."""
        last = self._last
        since = None if last is None else ChainHead(last.head_id, last.head_hash, last.count)
        head, holds = await self.audit.head(since)
        if not holds and last is not None:
            log.error("audit log rolled back: an event this node checkpointed is gone or changed; "
                      "run deskgate audit verify and compare with the log",
                      extra={"ctx": {"node": self.node, "checkpoint_head_id": last.head_id,
                                     "checkpoint_count": last.count, "head_id": head.id, "count": head.count}})
            if self.metrics is not None:
                self.metrics.audit_chain_rollbacks_total.inc()
        elif since == head:
            return None
        checkpoint = Checkpoint(self.node, datetime.fromtimestamp(int(self.clock()), UTC), head.id, head.count,
                                head.hash)
        token = self.key.sign(checkpoint)
        await asyncio.to_thread(append_checkpoint, self.path, token)
        self._last = checkpoint
        if self.metrics is not None:
            self.metrics.audit_checkpoints_total.labels(result="written").inc()
        log.info("audit checkpoint", extra={"ctx": {"node": self.node, "head_id": head.id, "count": head.count,
                                                    "head_hash": head.hash, "checkpoint": token}})
        return checkpoint

    @asynccontextmanager
    async def running(self) -> AsyncIterator[CheckpointWriter]:
        """Checkpoint now (a failure here is raised: the gateway should not start unanchored),
        every ``interval`` while the block runs, and once more when it ends."""
        self._last = await asyncio.to_thread(last_checkpoint, self.path, self.key)
        await self.write()
        task = asyncio.create_task(self._every_interval(), name="audit checkpoints")
        try:
            yield self
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            await self._write_logging_failure()

    async def _every_interval(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            await self._write_logging_failure()

    async def _write_logging_failure(self) -> None:
        try:
            await self.write()
        except (OSError, SQLAlchemyError) as error:  # the disk or the database: say so, keep serving, retry
            if self.metrics is not None:
                self.metrics.audit_checkpoints_total.labels(result="failed").inc()
            log.error("could not write an audit checkpoint", extra={"ctx": {"node": self.node, "error": str(error)}})
