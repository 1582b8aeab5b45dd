"""Accounts an administrator disabled, whatever backend vouches for them (local file or LDAP).

A disabled user cannot log in, and disabling one ends every web session of theirs
(see :meth:`auth.websession.WebSessionStore.end_user`): each gateway node then closes
that user's desktops within its revocation check interval.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime

from sqlalchemy import delete, select

from auth.tables import disabled_accounts
from base.db import Store


class DisabledAccounts:
    """The ``disabled_accounts`` table."""

    def __init__(self, store: Store, clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.clock = clock

    async def is_disabled(self, username: str) -> bool:
        async with self.store.read() as connection:
            found = await connection.scalar(select(disabled_accounts.c.username)
                                            .where(disabled_accounts.c.username == username))
        return found is not None

    async def all(self) -> frozenset[str]:
        """Every disabled account's name."""
        async with self.store.read() as connection:
            return frozenset((await connection.scalars(select(disabled_accounts.c.username))).all())

    async def disable(self, username: str, by: str, reason: str | None) -> bool:
        """Disable ``username``; False when it already was."""
        row = {"username": username, "since": datetime.fromtimestamp(self.clock(), UTC), "by": by, "reason": reason}
        async with self.store.transaction() as connection:
            result = await connection.execute(self.store.insert_if_absent(disabled_accounts, row))
        return bool(result.rowcount)

    async def enable(self, username: str) -> bool:
        """Enable ``username`` again; False when it was not disabled."""
        async with self.store.transaction() as connection:
            result = await connection.execute(delete(disabled_accounts)
                                              .where(disabled_accounts.c.username == username))
        return bool(result.rowcount)
