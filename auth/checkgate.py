"""A bound on the password checks in flight: argon2id verifications and LDAP binds.

Anyone who can reach the login page can ask for a password check, and each one costs
(argon2id: 64 MiB and a fifth of a second of a core; a bind: a directory connection).
At most ``slots`` run at once. A login takes its place in line the moment it arrives
(:meth:`PasswordCheckGate.admit`), before any database work; a line longer than ``queue``
places, or a wait longer than ``max_wait`` seconds, is refused with :class:`ServerBusy`
(503 with ``Retry-After``). A login refused on arrival has cost next to nothing: nothing
hashed, no throttle counter touched (the login service audits such refusals at most once
a minute).

Logins from a network the named user signed in from lately (the throttle's *familiar*
networks) have ``familiar_queue`` places of their own and are served first: a flood from
strangers' addresses, however many, fills only the strangers' line, and the people who
work here still sign in.

A check keeps its slot until it has ended, even when the login waiting for it is
cancelled: the work in a worker thread goes on, and so does the bound.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable
from typing import TypeVar

from auth.errors import ServerBusy
from base.metrics import Metrics

T = TypeVar("T")

QUEUE_FULL = "too many password checks waiting"
WAITED_TOO_LONG = "waited too long for a password check"


class PasswordCheckGate:
    """Lets password checks run ``slots`` at a time, familiar networks first; see the module docstring."""

    def __init__(self, *, slots: int = 2, queue: int = 16, familiar_queue: int = 16, max_wait: float = 5.0,
                 retry_after: int = 5, metrics: Metrics | None = None) -> None:
        if slots < 1 or queue < 0 or familiar_queue < 0 or max_wait <= 0 or retry_after < 1:
            raise ValueError("need slots >= 1, queues >= 0, max_wait > 0 and retry_after >= 1")
        self.slots = slots
        self.queue = queue
        self.familiar_queue = familiar_queue
        self.max_wait = max_wait
        self.retry_after = retry_after
        self._metrics = metrics
        self._running = 0  # slots given out: to a check, or to an admission about to start one
        self._familiar: deque[asyncio.Future[None]] = deque()
        self._strangers: deque[asyncio.Future[None]] = deque()
        self._checks: set[asyncio.Task[object]] = set()

    @property
    def running(self) -> int:
        """Slots in use now."""
        return self._running

    @property
    def waiting(self) -> int:
        """Logins in line for a slot now."""
        return len(self._familiar) + len(self._strangers)

    def admit(self, *, familiar: bool) -> Admission:
        """A place in line, taken at once; raises :class:`ServerBusy` when the line is full."""
        loop = asyncio.get_running_loop()
        turn = loop.create_future()
        if self._running < self.slots and not self.waiting:
            self._running += 1
            turn.set_result(None)
        else:
            line, places = (self._familiar, self.familiar_queue) if familiar else (self._strangers, self.queue)
            if len(line) >= places:
                self._refuse("queue_full")
                raise ServerBusy(self.retry_after, QUEUE_FULL)
            line.append(turn)
        self._measure()
        return Admission(self, turn, loop.time() + self.max_wait)

    async def _hold(self, check: Callable[[], Awaitable[T]]) -> T:
        try:
            return await check()
        finally:
            self._release()

    def _forget(self, task: asyncio.Task[object]) -> None:
        self._checks.discard(task)
        if not task.cancelled():
            task.exception()  # retrieved: the caller may have stopped waiting for it

    def _release(self) -> None:
        """Hand the slot to the first login in line (familiar networks first), or free it."""
        for line in (self._familiar, self._strangers):
            while line:
                turn = line.popleft()
                if not turn.done():  # a wait given up is skipped
                    turn.set_result(None)
                    self._measure()
                    return
        self._running -= 1
        self._measure()

    def _leave_line(self, turn: asyncio.Future[None]) -> None:
        for line in (self._familiar, self._strangers):
            if turn in line:
                line.remove(turn)
        self._measure()

    def _refuse(self, reason: str) -> None:
        if self._metrics is not None:
            self._metrics.password_checks_refused_total.labels(reason=reason).inc()

    def _measure(self) -> None:
        if self._metrics is not None:
            self._metrics.password_checks_running.set(self._running)
            self._metrics.password_checks_waiting.set(self.waiting)


class Admission:
    """One login's place in line: :meth:`run` its check once, or :meth:`leave` (always safe to call)."""

    def __init__(self, gate: PasswordCheckGate, turn: asyncio.Future[None], deadline: float) -> None:
        self._gate = gate
        self._turn = turn
        self._deadline = deadline
        self._over = False  # the slot went to a check, or the place was given back

    async def run(self, check: Callable[[], Awaitable[T]]) -> T:
        """Wait for a slot (until ``max_wait`` after admission), then run ``check`` in it."""
        if self._over:
            raise RuntimeError("an admission runs one check")
        try:
            async with asyncio.timeout_at(self._deadline):
                await asyncio.shield(self._turn)
        except TimeoutError:
            self.leave()
            self._gate._refuse("wait_timeout")
            raise ServerBusy(self._gate.retry_after, WAITED_TOO_LONG) from None
        except BaseException:
            self.leave()
            raise
        self._over = True
        task: asyncio.Task[T] = asyncio.ensure_future(self._gate._hold(check))
        self._gate._checks.add(task)  # kept until done: a cancelled caller does not end it
        task.add_done_callback(self._gate._forget)
        return await asyncio.shield(task)

    def leave(self) -> None:
        """Give the place back, or the slot if it came and no check started; nothing once one did."""
        if self._over:
            return
        self._over = True
        if self._turn.done():
            self._gate._release()
        else:
            self._turn.cancel()
            self._gate._leave_line(self._turn)
