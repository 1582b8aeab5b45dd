"""Registry of live proxied sessions: who is connected to what, and how to end one.

A :class:`LiveSession` is immutable data. What changes while a session runs — a request
to end it, the id of its recording — travels through the registry: :meth:`SessionRegistry.add`
hands the session's proxy a :class:`SessionControl`, whose ``terminated`` future completes
with a reason when anyone asks the registry to end that session.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

from base.metrics import Metrics


@dataclass(frozen=True, slots=True)
class LiveSession:
    """One open session: who, from where, to what, since when."""

    id: str
    protocol: str
    username: str
    source: str
    target: str
    web_session_id: str
    started: float = field(default_factory=time.time)


class SessionControl:
    """What a session's proxy gets from the registry: termination requests in, its recording id out."""

    __slots__ = ("session", "terminated", "recording_id")

    def __init__(self, session: LiveSession) -> None:
        self.session = session
        #: Completes with the reason when the session is asked to end.
        self.terminated: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        #: Set by the proxy once the session's journal exists.
        self.recording_id: str | None = None

    def terminate(self, reason: str) -> None:
        if not self.terminated.done():
            self.terminated.set_result(reason)


class SessionRegistry:
    """Live sessions of this gateway process, with the ``sessions_active`` gauge kept in step."""

    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics
        self._sessions: dict[str, SessionControl] = {}
        self._ids = itertools.count(1)

    def new_id(self) -> str:
        return f"{int(time.time()):x}-{next(self._ids):04d}"

    def add(self, session: LiveSession) -> SessionControl:
        """Register ``session``; its proxy watches the returned control's ``terminated``."""
        control = self._sessions[session.id] = SessionControl(session)
        self._metrics.sessions_active.labels(protocol=session.protocol).inc()
        return control

    def remove(self, session: LiveSession) -> None:
        if self._sessions.pop(session.id, None) is not None:
            self._metrics.sessions_active.labels(protocol=session.protocol).dec()

    def recording_id(self, session_id: str) -> str | None:
        control = self._sessions.get(session_id)
        return control.recording_id if control is not None else None

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

    def terminate_user(self, username: str, reason: str) -> int:
        """End every live session of one user (logout everywhere, user disabled); returns how many."""
        ended = [control for control in list(self._sessions.values()) if control.session.username == username]
        for control in ended:
            control.terminate(reason)
        return len(ended)
