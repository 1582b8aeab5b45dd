"""Failed logins counted per user and per source address, with exponential backoff.

Three counters, each over a sliding window of :attr:`Backoff.window` seconds, in the
database so that every node sees the same numbers:

- ``source``: failures from one network (an IPv4 address, an IPv6 /64: a host holds a whole
  /64 and rotates through it), whatever the user names (password spraying);
- ``user``: failures for one user name from addresses it has not logged in from lately;
- ``user_source``: failures for one user from a network it *has* logged in from lately.

After ``free_failures`` failures the next attempt must wait ``base_delay · 2ⁿ`` seconds
after the latest failure (capped at ``max_delay``); at ``max_failures`` within the window
every attempt waits for the oldest failure to leave it. The defaults allow about 17
failures per hour and user, well inside ASVS 2.2.1 and NIST SP 800-63B §5.2.2 (at most 100).

Locks are temporary and cannot be made permanent by a stranger: a network the user
logged in from within ``known_for`` is judged by its own ``user_source`` counter, not by
the ``user`` counter that anyone on the internet can drive up ("familiar locations").

Users are counted by :func:`~auth.names.name_key` of the name typed (NFKC, case folded), the
way a directory compares names: ``ａｌｉｃｅ``, ``ALICE`` and ``alice`` are one counter.

Each attempt is *reserved* before the password is checked — a failure is written first,
in one serialized transaction with the check, and withdrawn if the attempt succeeds or
could not be decided — so that a burst of parallel attempts cannot slip through together.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from ipaddress import IPv4Address, IPv6Address, ip_network

from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from auth.errors import RateLimited
from auth.names import name_key
from auth.tables import auth_failures, auth_known_sources
from base.db import Store

_LOCK = "deskgate.auth_failures"


@dataclass(frozen=True, slots=True)
class Backoff:
    """How many failures are free, and how long each one after that makes the next attempt wait."""

    free_failures: int
    base_delay: float = 1.0
    max_delay: float = 900.0
    window: float = 3600.0
    max_failures: int = 100

    def wait(self, failures: int, since_latest: float, since_oldest: float) -> float:
        """Seconds the next attempt must still wait, given the failures inside the window."""
        if failures >= self.max_failures:
            return max(0.0, self.window - since_oldest)
        if failures < self.free_failures:
            return 0.0
        delay = min(self.base_delay * 2.0 ** min(failures - self.free_failures, 32), self.max_delay)
        return max(0.0, delay - since_latest)


USER_BACKOFF = Backoff(free_failures=5)
SOURCE_BACKOFF = Backoff(free_failures=20, max_failures=300)


def user_key(username: str) -> str:
    """One counter per person however the name is typed (a directory folds width and case)."""
    return name_key(username)[:255]


def network_of(address: IPv4Address | IPv6Address) -> str:
    """The network an address is judged by: itself for IPv4, its /64 for IPv6 (privacy addresses rotate)."""
    if isinstance(address, IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return str(ip_network(f"{address}/{32 if address.version == 4 else 64}", strict=False))


@dataclass(frozen=True, slots=True)
class Attempt:
    """A reserved attempt: the failure rows already written for it."""

    user: str
    network: str
    row_ids: tuple[int, ...]


class LoginThrottle:
    """Reserves, then settles, each login attempt; raises :class:`RateLimited` when one must wait."""

    def __init__(self, store: Store, clock: Callable[[], float] = time.time, *, user: Backoff = USER_BACKOFF,
                 source: Backoff = SOURCE_BACKOFF, known_for: float = 30 * 86400.0) -> None:
        self.store = store
        self.clock = clock
        self.user = user
        self.source = source
        self.known_for = known_for

    async def familiar(self, username: str, source: IPv4Address | IPv6Address) -> bool:
        """Whether the user logged in from the source's network within ``known_for`` (a read: no lock)."""
        async with self.store.read() as connection:
            return await self._known(connection, user_key(username), network_of(source)) is not None

    async def reserve(self, username: str, source: IPv4Address | IPv6Address) -> Attempt:
        """Check every counter and, if none says wait, count this attempt as a failure until settled."""
        now = datetime.fromtimestamp(self.clock(), UTC)
        user, network = user_key(username), network_of(source)
        async with self.store.serialized(_LOCK) as connection:
            known = await self._known(connection, user, network)
            user_scope = ("user_source", f"{user}|{network}") if known is not None else ("user", user)
            for (scope, key), backoff in ((("source", network), self.source), (user_scope, self.user)):
                failures, oldest, latest = (await connection.execute(
                    select(func.count(), func.min(auth_failures.c.time), func.max(auth_failures.c.time)).where(
                        auth_failures.c.scope == scope, auth_failures.c.key == key,
                        auth_failures.c.time > now - timedelta(seconds=backoff.window)))).one()
                if failures:
                    wait = backoff.wait(failures, _seconds(now, latest), _seconds(now, oldest))
                    if wait > 0:
                        raise RateLimited(max(1, math.ceil(wait)), scope)
            row_ids = []
            for scope, key in (("source", network), ("user", user), ("user_source", f"{user}|{network}")):
                result = await connection.execute(auth_failures.insert().values(scope=scope, key=key, time=now))
                assert result.inserted_primary_key is not None
                row_ids.append(int(result.inserted_primary_key[0]))
        return Attempt(user, network, tuple(row_ids))

    async def withdraw(self, attempt: Attempt) -> None:
        """The attempt could not be decided (directory down, …): it does not count."""
        async with self.store.transaction() as connection:
            await connection.execute(delete(auth_failures).where(auth_failures.c.id.in_(attempt.row_ids)))

    async def succeeded(self, attempt: Attempt) -> None:
        """A full login: the user's counters start again, and this network becomes familiar."""
        now = datetime.fromtimestamp(self.clock(), UTC)
        async with self.store.transaction() as connection:
            await connection.execute(delete(auth_failures).where(auth_failures.c.id.in_(attempt.row_ids)))
            await connection.execute(delete(auth_failures).where(
                auth_failures.c.scope == "user", auth_failures.c.key == attempt.user))
            await connection.execute(delete(auth_failures).where(
                auth_failures.c.scope == "user_source", auth_failures.c.key.startswith(f"{attempt.user}|",
                                                                                        autoescape=True)))
            await connection.execute(self.store.upsert(
                auth_known_sources, {"username": attempt.user, "network": attempt.network, "last_success": now}))

    async def _known(self, connection: AsyncConnection, user: str, network: str) -> datetime | None:
        now = datetime.fromtimestamp(self.clock(), UTC)
        last_success: datetime | None = await connection.scalar(
            select(auth_known_sources.c.last_success).where(
                auth_known_sources.c.username == user, auth_known_sources.c.network == network,
                auth_known_sources.c.last_success > now - timedelta(seconds=self.known_for)))
        return last_success

    async def purge(self) -> None:
        """Forget failures older than any window, and networks not used for ``known_for``."""
        now = datetime.fromtimestamp(self.clock(), UTC)
        window = max(self.user.window, self.source.window)
        async with self.store.transaction() as connection:
            await connection.execute(delete(auth_failures).where(auth_failures.c.time < now - timedelta(seconds=window)))
            await connection.execute(delete(auth_known_sources).where(
                auth_known_sources.c.last_success < now - timedelta(seconds=self.known_for)))


def _seconds(now: datetime, then: datetime | None) -> float:
    return 0.0 if then is None else (now - then).total_seconds()
