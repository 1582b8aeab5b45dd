"""Doing one claimed job: counted, given up after its last attempt, else released to be tried again later.

Shared by the recorder jobs (:mod:`recorder.remote`) and the screen-text jobs (:mod:`recorder.screen_jobs`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Collection
from dataclasses import dataclass
from typing import TypeVar

from base.metrics import Metrics
from recorder.jobs import Job, JobKind, JobQueue

log = logging.getLogger(__name__)

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Retries:
    """A failed job is tried again after ``delay`` seconds times its attempts, ``attempts`` times in all."""

    attempts: int
    delay: float


async def claim_and_do(queue: JobQueue, kinds: Collection[JobKind], do: Callable[[Job], Awaitable[T]],
                       metrics: Metrics, retries: Retries, failure: str) -> tuple[Job, T | None] | None:
    """Claim one job of ``kinds`` and ``do`` it; None when there was none.

    Returns the job and what ``do`` returned, or None in its place when it failed (logged as
    ``failure``). Cancelled, the job is released at once for another node.
    """
    job = await queue.claim(kinds=kinds)
    if job is None:
        return None
    try:
        result = await do(job)
    except asyncio.CancelledError:
        with contextlib.suppress(Exception):
            await asyncio.shield(queue.release(job, 0.0))
        raise
    except Exception as exc:
        metrics.jobs_done_total.labels(kind=job.kind.value, outcome="failed").inc()
        log.error(failure, extra={"ctx": {"job": job.kind.value, "recording": job.recording_id,
                                          "attempt": job.attempts, "error": exc}})
        if job.attempts >= retries.attempts:
            await queue.done(job.kind, job.recording_id)
        else:
            await queue.release(job, retries.delay * job.attempts)
        return job, None
    await queue.done(job.kind, job.recording_id)
    metrics.jobs_done_total.labels(kind=job.kind.value, outcome="ok").inc()
    return job, result
