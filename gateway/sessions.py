"""Registry of this process's live proxied sessions: who is connected to what, and how to end one.

A :class:`LiveSession` is immutable data. What changes while a session runs — a request
to end it, the time of the operator's last input, the id of its recording — travels through
the registry: :meth:`SessionRegistry.add` hands the session's proxy a :class:`SessionControl`,
whose ``terminated`` future completes with a reason when anyone asks the registry to end that
session. What every node sees of the sessions is in :mod:`gateway.session_directory`.
"""

from __future__ import annotations

import asyncio
import re
import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

from base.metrics import Metrics

#: A live session id: the start time in hex seconds, then 32 random bits (unique across nodes).
SESSION_ID = re.compile(r"[0-9a-f]{8,12}-[0-9a-f]{8}")


def new_session_id(now: float | None = None) -> str:
    return f"{int(time.time() if now is None else now):x}-{secrets.token_hex(4)}"


def is_live_session_id(text: str) -> bool:
    return SESSION_ID.fullmatch(text) is not None


@dataclass(frozen=True, slots=True)
class LiveSession:
    """One open session: who (and in which groups), from where, to what, since when."""

    id: str
    protocol: str
    username: str
    source: str
    target: str
    web_session_id: str
    groups: frozenset[str]
    started: float = field(default_factory=time.time)
    display_name: str | None = None  # the name people know the user by (Identity.display_name)


@dataclass(frozen=True, slots=True)
class EndRequest:
    """A supervisor's or an administrator's request to end someone's session: who asked, and why."""

    by: str
    reason: str

    @property
    def message(self) -> str:
        """What the operator reads when the session ends."""
        return f"ended by {self.by}: {self.reason}"


class JournalEvents(Protocol):
    """Where a session's journal takes events from outside the session (a live viewer, on any node)."""

    def event(self, type: str, **fields: Any) -> None: ...


class SessionControl:
    """What a session's proxy shares with the registry: termination requests and journal events in;
    input time, recording id out."""

    __slots__ = ("session", "terminated", "end_request", "cause", "last_input", "recording_id", "journal", "held")

    def __init__(self, session: LiveSession) -> None:
        self.session = session
        loop = asyncio.get_running_loop()
        #: Completes with the reason when the session is asked to end.
        self.terminated: asyncio.Future[str] = loop.create_future()
        #: Who asked to end it and why, when a person did (not a logout or a shutdown).
        self.end_request: EndRequest | None = None
        #: Why the gateway itself ended it, as an outcome label (access_changed, outside_hours), when it did.
        self.cause: str | None = None
        #: The event loop's time of the operator's last keyboard or pointer input (set by the proxy).
        self.last_input = loop.time()
        #: Set by the proxy once the session's journal exists.
        self.recording_id: str | None = None
        #: False once the registry let the session go: its directory row must not be renewed or re-inserted.
        self.held = True
        #: The session's journal, for events from outside the session (set by the proxy with recording_id).
        self.journal: JournalEvents | None = None

    def terminate(self, reason: str, cause: str | None = None) -> None:
        """End the session with ``reason`` (for people) and ``cause`` (the outcome label, when not "terminated")."""
        if not self.terminated.done():
            self.cause = cause
            self.terminated.set_result(reason)

    def end(self, request: EndRequest) -> bool:
        """End the session on someone's request; False when it is already ending."""
        if self.terminated.done():
            return False
        self.end_request = request
        self.terminated.set_result(request.message)
        return True

    def last_input_epoch(self) -> float:
        """:attr:`last_input` on the wall clock."""
        return time.time() - (asyncio.get_running_loop().time() - self.last_input)


class SessionRegistry:
    """Live sessions of this gateway process, with the ``sessions_active`` gauge kept in step."""

    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics
        self._sessions: dict[str, SessionControl] = {}

    def new_id(self) -> str:
        return new_session_id()

    def add(self, session: LiveSession) -> SessionControl:
        """Register ``session``; its proxy watches the returned control's ``terminated``."""
        control = self._sessions[session.id] = SessionControl(session)
        self._metrics.sessions_active.labels(protocol=session.protocol).inc()
        return control

    def remove(self, session: LiveSession) -> None:
        control = self._sessions.pop(session.id, None)
        if control is not None:
            control.held = False
            self._metrics.sessions_active.labels(protocol=session.protocol).dec()

    def holds(self, session_id: str) -> bool:
        """Whether the session is live on this node."""
        return session_id in self._sessions

    def recording_id(self, session_id: str) -> str | None:
        control = self._sessions.get(session_id)
        return control.recording_id if control is not None else None

    def journal(self, session_id: str, type: str, fields: dict[str, Any]) -> bool:
        """Write an event into a session's journal; False when the session is not here or has no journal yet."""
        control = self._sessions.get(session_id)
        if control is None or control.journal is None:
            return False
        control.journal.event(type, **fields)
        return True

    def controls(self) -> list[SessionControl]:
        """The controls of every live session (a copy: sessions may end while the caller looks)."""
        return list(self._sessions.values())

    def __iter__(self) -> Iterator[LiveSession]:
        return iter([control.session for control in self._sessions.values()])

    def __len__(self) -> int:
        return len(self._sessions)

    def terminate(self, session_id: str, reason: str) -> bool:
        """Ask one session to end; False when it is not (or no longer) here."""
        control = self._sessions.get(session_id)
        if control is None:
            return False
        control.terminate(reason)
        return True

    def end(self, session_id: str, request: EndRequest) -> bool:
        """End one session on someone's request; False when it is not here, or already ending."""
        control = self._sessions.get(session_id)
        return control is not None and control.end(request)

    def terminate_user(self, username: str, reason: str) -> int:
        """End every live session of one user (logout everywhere, user disabled); returns how many."""
        ended = [control for control in list(self._sessions.values()) if control.session.username == username]
        for control in ended:
            control.terminate(reason)
        return len(ended)
