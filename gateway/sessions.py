"""Registry of live proxied sessions: who is connected to what, and how to end it."""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from base.metrics import Metrics


@dataclass(slots=True, eq=False)
class LiveSession:
    """One open session; ``terminate`` asks its proxy to end it with a reason."""

    id: str
    protocol: str
    username: str
    source: str
    target: str
    web_session_id: str
    started: float = field(default_factory=time.time)
    recording_id: str | None = None  # set once the session's journal exists
    terminate: Callable[[str], None] = lambda reason: None


class SessionRegistry:
    """Live sessions of this gateway process, with the ``sessions_active`` gauge kept in step."""

    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics
        self._sessions: dict[str, LiveSession] = {}
        self._ids = itertools.count(1)

    def new_id(self) -> str:
        return f"{int(time.time()):x}-{next(self._ids):04d}"

    def add(self, session: LiveSession) -> None:
        self._sessions[session.id] = session
        self._metrics.sessions_active.labels(protocol=session.protocol).inc()

    def remove(self, session: LiveSession) -> None:
        if self._sessions.pop(session.id, None) is not None:
            self._metrics.sessions_active.labels(protocol=session.protocol).dec()

    def __iter__(self) -> Iterator[LiveSession]:
        return iter(list(self._sessions.values()))

    def __len__(self) -> int:
        return len(self._sessions)

    def terminate_user(self, username: str, reason: str) -> int:
        """End every live session of one user (logout everywhere, user disabled); returns how many."""
        ended = [s for s in self if s.username == username]
        for session in ended:
            session.terminate(reason)
        return len(ended)
