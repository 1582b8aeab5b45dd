"""Recorder work any node can do, claimed from the database: the ``jobs`` table.

A job is (kind, recording id) with a lease: the node that claims it holds it until
``lease_until`` and renews it while it works; a job whose lease has passed may be claimed
by any node, so a node started beside another finishes what the first left.

- ``recover``: queued, already leased by the recording node, when a session starts; the node
  renews the leases of its live sessions every third of a lease and deletes the job when the session ends.
  If the node dies, the lease runs out and another node finalizes and seals the recording
  from its segments.
- ``index``: queued when a recording is sealed: index it, render its video and poster, upload them.
- ``ocr``: queued once a recording is indexed (with ``ocr.enabled``): read its screen text and find personal
  data (:mod:`recorder.screen_jobs`, which claims only these, so OCR never holds up indexing).

Claiming: on PostgreSQL ``SELECT … FOR UPDATE SKIP LOCKED`` (nodes never wait on each other's
rows); on SQLite, whose writers are serialized by the database's single write lock, the
same conditional UPDATE under that lock — SQLite is meant for one node (a shared SQLite file
over a network filesystem is not supported).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum

from sqlalchemy import delete, func, select, update

from base.db import Store
from recorder.tables import jobs

#: How long a claim holds a job without being renewed.
LEASE_SECONDS = 30.0


class JobKind(StrEnum):
    RECOVER = "recover"
    INDEX = "index"
    OCR = "ocr"


@dataclass(frozen=True, slots=True)
class Job:
    id: int
    kind: JobKind
    recording_id: str
    attempts: int


class JobQueue:
    """The ``jobs`` table as a queue of leased work; ``node`` names this node in its claims."""

    def __init__(self, store: Store, node: str, *, lease: float = LEASE_SECONDS,
                 clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.node = node
        self.lease = lease
        self._clock = clock

    async def add(self, kind: JobKind, recording_id: str, *, leased: bool = False) -> None:
        """Queue a job (nothing if the same one is queued); ``leased``: this node holds it from now on."""
        row = {"kind": kind.value, "recording_id": recording_id, "node": self.node if leased else None,
               "lease_until": self._clock() + self.lease if leased else 0.0, "attempts": 0,
               "created": datetime.now(UTC)}
        statement = self.store._dialect_insert(jobs, row).on_conflict_do_nothing(
            index_elements=["kind", "recording_id"])
        async with self.store.transaction() as connection:
            await connection.execute(statement)

    async def renew_all(self, kind: JobKind, recording_ids: list[str]) -> None:
        """Extend this node's leases on the jobs of ``recording_ids`` (a live node's heartbeat)."""
        if not recording_ids:
            return
        async with self.store.transaction() as connection:
            await connection.execute(update(jobs).where(
                jobs.c.kind == kind.value, jobs.c.recording_id.in_(recording_ids), jobs.c.node == self.node,
            ).values(lease_until=self._clock() + self.lease))

    async def done(self, kind: JobKind, recording_id: str) -> None:
        async with self.store.transaction() as connection:
            await connection.execute(delete(jobs).where(jobs.c.kind == kind.value,
                                                        jobs.c.recording_id == recording_id))

    async def claim(self, kinds: Collection[JobKind] | None = None) -> Job | None:
        """Take the oldest job (of ``kinds``; None: any) whose lease has passed, leased to this node; None: none."""
        now = self._clock()
        ready = select(jobs.c.id, jobs.c.kind, jobs.c.recording_id, jobs.c.attempts).where(
            jobs.c.lease_until <= now).order_by(jobs.c.id).limit(1)
        if kinds is not None:
            ready = ready.where(jobs.c.kind.in_(sorted(kind.value for kind in kinds)))
        if self.store.dialect == "postgresql":
            ready = ready.with_for_update(skip_locked=True)
            context = self.store.transaction()
        else:
            context = self.store.serialized("deskgate.jobs")
        async with context as connection:
            found = (await connection.execute(ready)).first()
            if found is None:
                return None
            claimed = await connection.execute(update(jobs).where(jobs.c.id == found.id, jobs.c.lease_until <= now)
                                               .values(node=self.node, lease_until=now + self.lease,
                                                       attempts=jobs.c.attempts + 1))
            if claimed.rowcount != 1:
                return None
        return Job(found.id, JobKind(found.kind), found.recording_id, found.attempts + 1)

    async def release(self, job: Job, retry_in: float) -> None:
        """Give a failed job back, to be claimed again after ``retry_in`` seconds."""
        async with self.store.transaction() as connection:
            await connection.execute(update(jobs).where(jobs.c.id == job.id)
                                     .values(node=None, lease_until=self._clock() + retry_in))

    async def waiting(self) -> int:
        """Jobs that may be claimed now."""
        async with self.store.read() as connection:
            count = await connection.scalar(select(func.count()).select_from(jobs)
                                            .where(jobs.c.lease_until <= self._clock()))
        return int(count or 0)
