"""The audit log: who did what, from where, to what, with which outcome — in the database and the log.

Events are chained: each stores the previous event's hash and its own,
``hash = sha256(prev_hash + canonical JSON of the event)`` (hex; the first event follows
:data:`GENESIS_HASH`). Editing an event changes its hash; deleting or inserting one breaks
the link of the event after it. :meth:`AuditLog.verify` walks the chain and names the first
event that does not fit. The chain has no secret: someone who can rewrite the whole table
can recompute it, and dropping the newest events leaves a shorter valid chain — which is
why every event, hash included, also goes to the log stream, a second witness kept elsewhere.

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
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Column, Index, Integer, String, Table, Text, and_, insert, or_, select
from sqlalchemy.engine import Row

from base.db import Store, UTCDateTime, metadata
from base.times import isoformat_utc

log = logging.getLogger(__name__)

GENESIS_HASH = "0" * 64
#: Actions done *to* a person, who is their target (an administrator disabling a user, resetting
#: their TOTP, …): they belong to that person's history as much as to the actor's. Prefixes.
ACTIONS_ON_A_PERSON = ("user.",)
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
    """The chain's verdict: ``ok``, how many events were checked, and the first that does not fit."""

    ok: bool
    checked: int
    first_bad_id: int | None = None
    reason: str | None = None


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

    async def verify(self) -> VerifyResult:
        """Walk the whole chain, oldest first; stop at the first event that was edited, deleted or inserted."""
        expected_prev, previous_id, checked = GENESIS_HASH, None, 0
        async with self.store.read() as connection:
            result = await connection.stream(select(audit_events).order_by(audit_events.c.id))
            async for row in result:
                after = f"event #{previous_id}" if previous_id is not None else "the start of the log"
                if row.prev_hash != expected_prev:
                    return VerifyResult(False, checked, row.id, f"event #{row.id} does not follow {after}: "
                                        "an event between them was deleted or inserted, or the link was edited")
                try:
                    detail = json.loads(row.detail)
                except json.JSONDecodeError:
                    return VerifyResult(False, checked, row.id, f"event #{row.id} was edited: its detail is not JSON")
                fields = _chained_fields(row.time, row.user, row.source, row.action, row.target, row.outcome,
                                         row.reason, detail)
                if chain_hash(row.prev_hash, fields) != row.hash:
                    return VerifyResult(False, checked, row.id,
                                        f"event #{row.id} was edited: its contents do not match its hash")
                expected_prev, previous_id, checked = row.hash, row.id, checked + 1
        return VerifyResult(True, checked)
