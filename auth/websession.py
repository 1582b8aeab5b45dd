"""Server-side web sessions: an unguessable id in a cookie, everything else on the server.

A session ends when it has been idle for ``idle_timeout`` seconds, when it is
``absolute_timeout`` seconds old however busy it is, or when revoked. Every login
creates a new session (a new id), so an id planted before login is worthless.
Sessions live in memory for now: a restart logs everyone out.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, replace

from auth.identity import Identity


@dataclass(frozen=True, slots=True)
class WebSession:
    """One logged-in browser; times are readings of the store's clock."""

    id: str
    identity: Identity
    source: str
    created: float
    last_seen: float
    csrf_token: str


class WebSessionStore:
    """Creates, looks up (touching), expires and revokes web sessions."""

    def __init__(
        self,
        idle_timeout: float,
        absolute_timeout: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not 0 < idle_timeout <= absolute_timeout:
            raise ValueError("need 0 < idle_timeout <= absolute_timeout")
        self.idle_timeout = idle_timeout
        self.absolute_timeout = absolute_timeout
        self.clock = clock
        self._sessions: dict[str, WebSession] = {}

    def __len__(self) -> int:
        return len(self._sessions)

    def create(self, identity: Identity, source: str) -> WebSession:
        """A new session for ``identity`` logging in from ``source``."""
        self.purge_expired()
        now = self.clock()
        session = WebSession(
            id=secrets.token_urlsafe(32),
            identity=identity,
            source=source,
            created=now,
            last_seen=now,
            csrf_token=secrets.token_urlsafe(32),
        )
        self._sessions[session.id] = session
        return session

    def get(self, session_id: str) -> WebSession | None:
        """The live session with this id, marked as seen now; ``None`` if unknown or expired."""
        session = self._sessions.get(session_id)
        if session is None:
            return None
        now = self.clock()
        if self._expired(session, now):
            del self._sessions[session_id]
            return None
        session = replace(session, last_seen=now)
        self._sessions[session_id] = session
        return session

    def revoke(self, session_id: str) -> bool:
        """End one session (logout); True if it existed."""
        return self._sessions.pop(session_id, None) is not None

    def revoke_user(self, username: str) -> list[str]:
        """End every session of ``username``; return their ids."""
        revoked = [id_ for id_, session in self._sessions.items() if session.identity.username == username]
        for session_id in revoked:
            del self._sessions[session_id]
        return revoked

    def purge_expired(self) -> int:
        """Drop every expired session (they are also dropped lazily by :meth:`get`); return how many."""
        now = self.clock()
        expired = [id_ for id_, session in self._sessions.items() if self._expired(session, now)]
        for session_id in expired:
            del self._sessions[session_id]
        return len(expired)

    def _expired(self, session: WebSession, now: float) -> bool:
        return now - session.last_seen >= self.idle_timeout or now - session.created >= self.absolute_timeout
