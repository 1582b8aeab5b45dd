"""What every proxied session (desktop or terminal) shares: how it ends, and the watchdog that ends it.

A session's pumps raise :class:`SessionEnded` with a :class:`CloseCode` (the WebSocket close
code the pages explain, and the ``outcome`` label of ``sessions_total`` and the audit log).
:func:`watch_session` ends a session on idle timeout, maximum length, a failed journal or
a termination request, and warns the operator (page notice and journal) before an idle end.
"""

from __future__ import annotations

import asyncio
import time
from enum import IntEnum
from typing import NoReturn

from base.metrics import Metrics
from gateway.journals import SessionJournal
from gateway.notices import IdleWarning, NoticePoster
from gateway.policy import Policy
from gateway.sessions import SessionControl

#: The idle warning comes this long before an idle logout, or after four fifths of a shorter timeout.
IDLE_WARNING_LEAD = 60.0

#: A WebSocket close frame's reason holds at most 123 bytes.
MAX_CLOSE_REASON = 123


def idle_warning_lead(idle_timeout: float) -> float:
    """How many seconds before the idle logout the operator is warned (page) and the journal says so."""
    return min(IDLE_WARNING_LEAD, idle_timeout / 5)


def close_reason(reason: str) -> bytes:
    """``reason`` cut to fit a close frame, never inside a UTF-8 character (the page shows it)."""
    return reason.encode()[:MAX_CLOSE_REASON].decode("utf-8", "ignore").encode()


class CloseCode(IntEnum):
    """WebSocket close codes the desktop and terminal pages explain to the operator, each with its outcome label.

    The label names how the session ended in ``sessions_total{outcome}`` and the audit log.
    """

    outcome: str

    def __new__(cls, code: int, outcome: str) -> CloseCode:
        member = int.__new__(cls, code)
        member._value_ = code
        member.outcome = outcome
        return member

    NORMAL = 1000, "closed"
    PROTOCOL_ERROR = 1008, "protocol_error"
    MESSAGE_TOO_BIG = 1009, "message_too_big"
    INTERNAL_ERROR = 1011, "error"
    TARGET_UNAVAILABLE = 4004, "target_unavailable"
    TARGET_CLOSED = 4005, "target_closed"
    IDLE_TIMEOUT = 4008, "idle_timeout"
    MAX_SESSION = 4009, "max_session"
    TERMINATED = 4010, "terminated"
    RECORDING_FAILED = 4011, "recording_failed"
    INPUT_FLOOD = 4012, "input_flood"
    IN_USE = 4013, "in_use"  # refused before the session starts: the target holds its max_sessions
    HOST_KEY_REFUSED = 4014, "host_key_refused"  # an SSH target's host key is unknown or changed
    DRAINING = 4015, "draining"  # refused before the session starts: this node is stopping
    DISK_FULL = 4016, "disk_full"  # refused before the session starts: recording storage is nearly full
    ACCESS_CHANGED = 4020, "access_changed"  # a reload: the policies in force no longer allow it
    OUTSIDE_HOURS = 4021, "outside_hours"  # its policy's time window closed

    @classmethod
    def ending(cls, cause: str | None) -> CloseCode:
        """The code of a session the gateway ended for ``cause`` (an outcome label); TERMINATED for any other."""
        return next((code for code in cls if code.outcome == cause), cls.TERMINATED)

    @property
    def signs_out(self) -> bool:
        """Whether a session ending so ends the web sign-in that opened it too (idle, too long)."""
        return self in (CloseCode.IDLE_TIMEOUT, CloseCode.MAX_SESSION)


class SessionEnded(Exception):
    """Raised by a pump to end the session with a close code and a reason for people."""

    def __init__(self, code: CloseCode, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


async def watch_session(policy: Policy, control: SessionControl, journal: SessionJournal, notices: NoticePoster,
                        metrics: Metrics) -> NoReturn:
    """Raise SessionEnded on idle timeout, maximum duration, a recording failure or a termination.

    Idleness is measured from ``control.last_input`` (the session's pumps set it on the operator's input).
    """
    loop = asyncio.get_running_loop()
    live = control.session
    started = loop.time()
    warned_for: float | None = None  # the last input time an idle warning was journaled for
    while True:
        now = loop.time()
        last_input = control.last_input
        deadlines = []
        if policy.idle_timeout is not None:
            idle_deadline = last_input + policy.idle_timeout
            if now >= idle_deadline:
                metrics.idle_logouts_total.inc()
                raise SessionEnded(CloseCode.IDLE_TIMEOUT, f"no input for {policy.idle_timeout:.0f} s: you were "
                                   "signed out for safety; sign in again to continue")
            warning_at = idle_deadline - idle_warning_lead(policy.idle_timeout)
            if now < warning_at:
                deadlines.append(warning_at)
            elif warned_for != last_input:  # once per idle stretch
                warned_for = last_input
                journal.event("idle_warning", seconds_left=round(idle_deadline - now, 1))
                notices.post_nowait(live.username, IdleWarning(time.time() + idle_deadline - now, live.target))
            deadlines.append(idle_deadline)
        if policy.max_session is not None:
            max_deadline = started + policy.max_session
            if now >= max_deadline:
                raise SessionEnded(CloseCode.MAX_SESSION, f"maximum session length of {policy.max_session:.0f} s "
                                   "reached: you were signed out; sign in again to continue")
            deadlines.append(max_deadline)
        wait = min(deadlines) - now if deadlines else None
        done, _ = await asyncio.wait((control.terminated, journal.failure), timeout=wait,
                                     return_when=asyncio.FIRST_COMPLETED)
        if journal.failure in done:
            raise SessionEnded(CloseCode.RECORDING_FAILED, str(journal.failure.result()))
        if control.terminated in done:
            request = control.end_request
            if request is not None:
                journal.event("ended_by", by=request.by, reason=request.reason)
            raise SessionEnded(CloseCode.ending(control.cause), control.terminated.result())
