"""TOTP state in the gateway's database: sealed secrets, used steps, pending enrollments.

Secrets are sealed with :class:`~auth.secretbox.SecretBox` (bound to the user's name), so
a copy of the database gives none away. The last accepted time step per user is updated
with single conditional statements (``INSERT … ON CONFLICT DO NOTHING``, then ``UPDATE …
WHERE last_step < :step``), so two nodes accepting the same code at the same moment
cannot both succeed.

An enrollment starts when a user whose password was just accepted has no secret: a new
secret is sealed into ``totp_enrollments`` under a random token (the browser holds it in a
cookie; the table holds its SHA-256). It is saved as the user's secret only when confirmed
with a valid code, and only if the user still has none: a second enrollment racing the
first cannot replace it.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import delete, select, update

from auth.identity import Identity
from auth.secretbox import SecretBox
from auth.tables import totp_enrollments, totp_secrets, totp_used_steps
from auth.totp import new_secret
from base.db import Store

ENROLLMENT_LIFETIME = 600.0
ENROLLMENT_MAX_FAILURES = 5


def _context(username: str) -> str:
    return f"deskgate totp secret for {username}"


def token_hash(token: str) -> str:
    """What the database keeps of a bearer token: its SHA-256, never the token."""
    return hashlib.sha256(token.encode()).hexdigest()


class TOTPSecrets:
    """Each user's sealed TOTP secret."""

    def __init__(self, store: Store, box: SecretBox, clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.box = box
        self.clock = clock

    async def get(self, username: str) -> str | None:
        """The user's secret, or None when not enrolled; raises SecretKeyError when it cannot be opened."""
        async with self.store.read() as connection:
            sealed = await connection.scalar(select(totp_secrets.c.secret).where(totp_secrets.c.username == username))
        return None if sealed is None else self.box.open(sealed, _context(username)).decode()

    async def set(self, username: str, secret: str) -> None:
        """Give ``username`` this secret, replacing any other (an administrator's reset)."""
        row = self._row(username, secret)
        async with self.store.transaction() as connection:
            await connection.execute(self.store.upsert(totp_secrets, row))

    async def add_if_absent(self, username: str, secret: str) -> bool:
        """Save the secret unless the user already has one; True when saved."""
        async with self.store.transaction() as connection:
            result = await connection.execute(self.store.insert_if_absent(totp_secrets, self._row(username, secret)))
        return bool(result.rowcount)

    async def delete(self, username: str) -> bool:
        """Forget ``username``'s secret and used codes (the user is deleted); True when there was a secret."""
        async with self.store.transaction() as connection:
            result = await connection.execute(delete(totp_secrets).where(totp_secrets.c.username == username))
            await connection.execute(delete(totp_used_steps).where(totp_used_steps.c.username == username))
        return bool(result.rowcount)

    async def enrolled(self) -> dict[str, datetime]:
        """When each enrolled user got their secret."""
        async with self.store.read() as connection:
            rows = (await connection.execute(select(totp_secrets.c.username, totp_secrets.c.enrolled))).all()
        return {row.username: row.enrolled for row in rows}

    def _row(self, username: str, secret: str) -> dict[str, object]:
        return {"username": username, "secret": self.box.seal(secret.encode(), _context(username)),
                "enrolled": datetime.fromtimestamp(self.clock(), UTC)}


class DatabaseUsedCodes:
    """:class:`~auth.totp.UsedCodes` in the database: holds across restarts and between nodes."""

    def __init__(self, store: Store) -> None:
        self.store = store

    async def check_and_mark(self, username: str, step: int) -> bool:
        table = totp_used_steps
        async with self.store.transaction() as connection:
            first = await connection.execute(
                self.store.insert_if_absent(table, {"username": username, "last_step": step}))
            if first.rowcount:
                return True
            later = await connection.execute(
                update(table).where(table.c.username == username, table.c.last_step < step).values(last_step=step))
            return bool(later.rowcount)


@dataclass(frozen=True, slots=True)
class PendingEnrollment:
    """An enrollment waiting for its first code."""

    token: str
    identity: Identity
    source: str
    secret: str
    created: datetime
    failures: int


class Enrollments:
    """Pending enrollments: started at a first login, confirmed with a code, or expired."""

    def __init__(self, store: Store, box: SecretBox, clock: Callable[[], float] = time.time,
                 lifetime: float = ENROLLMENT_LIFETIME, max_failures: int = ENROLLMENT_MAX_FAILURES) -> None:
        self.store = store
        self.box = box
        self.clock = clock
        self.lifetime = lifetime
        self.max_failures = max_failures

    async def start(self, identity: Identity, source: str) -> PendingEnrollment:
        """A new enrollment with a fresh secret; any earlier one of the same user is dropped."""
        table = totp_enrollments
        pending = PendingEnrollment(secrets.token_urlsafe(32), identity, source, new_secret(), self._now(), 0)
        async with self.store.transaction() as connection:
            await connection.execute(delete(table).where(table.c.username == identity.username))
            await connection.execute(table.insert().values(
                id_hash=token_hash(pending.token), username=identity.username, identity=identity.attributes_json(),
                source=source, secret=self.box.seal(pending.secret.encode(), _context(identity.username)),
                created=pending.created, failures=0))
        return pending

    async def get(self, token: str) -> PendingEnrollment | None:
        """The pending enrollment of this token, or None when unknown, expired or used up."""
        table = totp_enrollments
        async with self.store.read() as connection:
            row = (await connection.execute(select(table).where(table.c.id_hash == token_hash(token)))).first()
        if row is None or self._now() - row.created >= timedelta(seconds=self.lifetime):
            return None
        secret = self.box.open(row.secret, _context(row.username)).decode()
        return PendingEnrollment(token, Identity.from_attributes_json(row.username, row.identity), row.source,
                                 secret, row.created, row.failures)

    async def record_failure(self, pending: PendingEnrollment) -> bool:
        """Count a wrong code; True while tries remain, False once the enrollment is used up (and dropped)."""
        table = totp_enrollments
        key = table.c.id_hash == token_hash(pending.token)
        async with self.store.transaction() as connection:
            await connection.execute(update(table).where(key).values(failures=table.c.failures + 1))
            failures = await connection.scalar(select(table.c.failures).where(key))
            if failures is None or failures >= self.max_failures:
                await connection.execute(delete(table).where(key))
                return False
        return True

    async def finish(self, pending: PendingEnrollment) -> None:
        async with self.store.transaction() as connection:
            await connection.execute(delete(totp_enrollments).where(
                totp_enrollments.c.id_hash == token_hash(pending.token)))

    async def purge_expired(self) -> int:
        cutoff = self._now() - timedelta(seconds=self.lifetime)
        async with self.store.transaction() as connection:
            result = await connection.execute(delete(totp_enrollments).where(totp_enrollments.c.created <= cutoff))
        return int(result.rowcount)

    def _now(self) -> datetime:
        return datetime.fromtimestamp(self.clock(), UTC)
