"""Server-side web sessions: an unguessable id in a cookie, everything else in the database.

A session ends when it has been idle for ``idle_timeout`` seconds, when it is
``absolute_timeout`` seconds old however busy it is, or when ended on purpose (logout,
user disabled) — which is kept with its reason, so that every node can close that
session's desktops saying why. Every login creates a new session (a new id), so an id
planted before login is worthless. The database holds the SHA-256 of each id, never the
id itself, and the CSRF token is derived from the id, so it needs no storage at all.

Reading a session marks it as seen at most every ``touch_interval`` seconds, so that a
busy page does not turn every request into a database write; idle expiry is therefore
exact to within that interval.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import ColumnElement, and_, delete, or_, select, update
from sqlalchemy.engine import Row

from auth.identity import Identity
from auth.tables import web_sessions
from auth.totp_store import token_hash
from base.db import Store

EXPIRED_IDLE = "your sign-in expired after a period of inactivity"
EXPIRED_ABSOLUTE = "your sign-in reached its maximum lifetime; sign in again"
ENDED_UNKNOWN = "your sign-in ended"


def csrf_token_for(session_id: str) -> str:
    """The CSRF token that goes with a session (or enrollment) id."""
    digest = hmac.new(session_id.encode(), b"deskgate csrf", hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


@dataclass(frozen=True, slots=True)
class WebSession:
    """One logged-in browser; times are readings of the store's clock (epoch seconds)."""

    id: str
    identity: Identity
    source: str
    created: float
    last_seen: float

    @property
    def csrf_token(self) -> str:
        return csrf_token_for(self.id)


class WebSessionStore:
    """Creates, looks up (touching), expires and ends web sessions."""

    def __init__(self, store: Store, idle_timeout: float, absolute_timeout: float,
                 clock: Callable[[], float] = time.time, touch_interval: float | None = None) -> None:
        if not 0 < idle_timeout <= absolute_timeout:
            raise ValueError("need 0 < idle_timeout <= absolute_timeout")
        self.store = store
        self.idle_timeout = idle_timeout
        self.absolute_timeout = absolute_timeout
        self.clock = clock
        self.touch_interval = min(30.0, idle_timeout / 30) if touch_interval is None else touch_interval

    async def create(self, identity: Identity, source: str) -> WebSession:
        """A new session for ``identity`` logging in from ``source``."""
        now = self.clock()
        session = WebSession(secrets.token_urlsafe(32), identity, source, now, now)
        async with self.store.transaction() as connection:
            await connection.execute(web_sessions.insert().values(
                id_hash=token_hash(session.id), username=identity.username, identity=identity.attributes_json(),
                source=source, created=_time(now), last_seen=_time(now)))
        return session

    async def get(self, session_id: str) -> WebSession | None:
        """The live session with this id, marked as seen now; ``None`` if unknown, ended or expired."""
        key = token_hash(session_id)
        async with self.store.read() as connection:
            row = (await connection.execute(select(web_sessions).where(web_sessions.c.id_hash == key))).first()
        now = self.clock()
        if row is None or row.ended is not None or self._expiry_reason(row, now) is not None:
            return None
        last_seen = row.last_seen.timestamp()
        if (_time(now) - row.last_seen).total_seconds() >= self.touch_interval:
            async with self.store.transaction() as connection:
                await connection.execute(update(web_sessions).where(web_sessions.c.id_hash == key,
                                                                    web_sessions.c.ended.is_(None))
                                         .values(last_seen=_time(now)))
            last_seen = now
        identity = Identity.from_attributes_json(row.username, row.identity)
        return WebSession(session_id, identity, row.source, row.created.timestamp(), last_seen)

    async def end(self, session_id: str, reason: str) -> bool:
        """End one session; True if it was live."""
        return await self._end(web_sessions.c.id_hash == token_hash(session_id), reason) > 0

    async def end_user(self, username: str, reason: str) -> int:
        """End every live session of ``username`` (logout everywhere, user disabled); return how many."""
        return await self._end(web_sessions.c.username == username, reason)

    async def end_others(self, username: str, keep: str, reason: str) -> int:
        """End every live session of ``username`` but ``keep`` (a session id); return how many."""
        return await self._end(and_(web_sessions.c.username == username,
                                    web_sessions.c.id_hash != token_hash(keep)), reason)

    async def why_ended(self, session_ids: Iterable[str]) -> dict[str, str]:
        """For each of ``session_ids`` that is no longer live, why; live ones are left out."""
        by_hash = {token_hash(session_id): session_id for session_id in session_ids}
        if not by_hash:
            return {}
        async with self.store.read() as connection:
            rows = (await connection.execute(select(web_sessions).where(web_sessions.c.id_hash.in_(by_hash)))).all()
        now = self.clock()
        reasons = dict.fromkeys(by_hash.values(), ENDED_UNKNOWN)
        for row in rows:
            reason = (row.end_reason or ENDED_UNKNOWN) if row.ended is not None else self._expiry_reason(row, now)
            if reason is None:
                del reasons[by_hash[row.id_hash]]
            else:
                reasons[by_hash[row.id_hash]] = reason
        return reasons

    async def keep_alive(self, session_ids: Iterable[str]) -> None:
        """Mark sessions as seen now: an open desktop is activity, though the page makes no requests."""
        hashes = [token_hash(session_id) for session_id in session_ids]
        if hashes:
            async with self.store.transaction() as connection:
                await connection.execute(update(web_sessions).where(web_sessions.c.id_hash.in_(hashes),
                                                                    web_sessions.c.ended.is_(None))
                                         .values(last_seen=_time(self.clock())))

    async def purge(self, keep_ended: float = 86400.0) -> int:
        """Delete sessions expired or ended more than ``keep_ended`` seconds ago; return how many."""
        now = self.clock()
        cutoff = _time(now - keep_ended)
        async with self.store.transaction() as connection:
            result = await connection.execute(delete(web_sessions).where(or_(
                web_sessions.c.ended < cutoff,
                web_sessions.c.last_seen < _time(now - self.idle_timeout - keep_ended),
                web_sessions.c.created < _time(now - self.absolute_timeout - keep_ended))))
        return int(result.rowcount)

    async def _end(self, which: ColumnElement[bool], reason: str) -> int:
        now = self.clock()
        live = [web_sessions.c.ended.is_(None),
                web_sessions.c.last_seen > _time(now - self.idle_timeout),
                web_sessions.c.created > _time(now - self.absolute_timeout)]
        async with self.store.transaction() as connection:
            result = await connection.execute(update(web_sessions).where(which, *live)
                                              .values(ended=_time(now), end_reason=reason))
        return int(result.rowcount)

    def _expiry_reason(self, row: Row[Any], now: float) -> str | None:
        moment = _time(now)  # compared as stored: to the microsecond, so that no rounding tips the balance
        if (moment - row.created).total_seconds() >= self.absolute_timeout:
            return EXPIRED_ABSOLUTE
        if (moment - row.last_seen).total_seconds() >= self.idle_timeout:
            return EXPIRED_IDLE
        return None


def _time(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, UTC)
