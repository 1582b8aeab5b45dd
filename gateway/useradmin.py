"""Administrators' changes to users, shared by ``deskgate user ...`` and the admin console; each one audited.

A user is found in the users file first, then in the directory (``auth.ldap``), whose
spelling of the name is the one stored (so that a reset reaches the account that logs in).
TOTP secrets live in the database, sealed. Disabling a user, resetting their authenticator
or password, or changing their groups ends every web session of theirs (each gateway then
closes their desktops within seconds): the next sign-in carries what changed.

Every change is an audit event with the acting person as ``user`` (the OS user for the CLI,
whose ``source`` is ``cli``; the administrator and their address for the console) and the
changed user as ``target``, so that it is part of that user's history
(``deskgate audit list --user NAME``; see :data:`gateway.audit.ACTIONS_ON_A_PERSON`).
"""

from __future__ import annotations

import asyncio
import functools
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select

from auth.accounts import DisabledAccounts
from auth.errors import UserAdminError
from auth.identity import Identity
from auth.ldap import LDAPBackend
from auth.local import LocalUser, LocalUserStore
from auth.tables import auth_known_sources, web_sessions
from auth.totp import new_secret
from auth.totp_store import TOTPSecrets
from auth.websession import WebSessionStore
from base.db import Store
from base.times import isoformat_utc
from gateway.audit import AuditLog
from gateway.config import Config

#: The shortest password an administrator or a user may set.
MIN_PASSWORD_LENGTH = 12


def password_problem(password: str, min_length: int = MIN_PASSWORD_LENGTH) -> str | None:
    """Why ``password`` may not be set (a sentence), or None."""
    if not password:
        return "the password is empty"
    if len(password) < min_length:
        return f"the password is too short; use at least {min_length} characters"
    return None


@dataclass(frozen=True, slots=True)
class UserEntry:
    """One user as an administrator sees them; ``None`` where it is not known (a directory user's groups
    are known only from their latest sign-in)."""

    name: str
    source: str  # local | ldap | unknown
    groups: tuple[str, ...] | None
    admin: bool | None
    disabled: bool
    totp_enrolled: bool
    last_login: datetime | None
    display_name: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "display_name": self.display_name, "source": self.source,
                "groups": None if self.groups is None else list(self.groups), "admin": self.admin,
                "disabled": self.disabled, "totp_enrolled": self.totp_enrolled,
                "last_login": None if self.last_login is None else isoformat_utc(self.last_login)}


@dataclass(slots=True)
class UserAdmin:
    """The stores an administrator's change touches, and who makes it (``actor`` from ``source``)."""

    config: Config
    local_users: LocalUserStore | None
    store: Store
    audit: AuditLog
    secrets: TOTPSecrets
    sessions: WebSessionStore
    disabled: DisabledAccounts
    actor: str
    source: str

    async def find(self, name: str) -> tuple[str, str]:
        """``(backend, stored name)`` of the user called ``name``; UserAdminError if there is none."""
        auth = self.config.auth
        if self.local_users is not None and self.local_users.get(name) is not None:
            return "local", name
        if auth.ldap is not None:
            found = await LDAPBackend(auth.ldap).canonical_name(name)
            if found is not None:
                return "ldap", found
        places = " or ".join(where for where, on in (("the users file", auth.local), ("the directory", auth.ldap)) if on)
        raise UserAdminError(f"no user {name!r} in {places}")

    async def add_local(self, name: str, password: str, groups: list[str], admin: bool,
                        display_name: str | None = None) -> str:
        """Add a local user and their TOTP secret (into the database); return the secret."""
        users = self._local_store()
        problem = password_problem(password)
        if problem is not None:
            raise UserAdminError(problem)
        secret = await asyncio.to_thread(
            functools.partial(users.add_user, name, password, groups, admin, display_name=display_name))
        await self.secrets.set(name, secret)
        await asyncio.to_thread(users.clear_totp, name, secret)
        shown = users.get(name)
        await self._audit("user.add", name, backend="local", groups=sorted(set(groups)), admin=admin,
                          display_name=shown.display_name if shown is not None else None)
        return secret

    async def reset_totp(self, name: str) -> tuple[str, str]:
        """A new TOTP secret for the user (the old authenticator stops working); ``(stored name, secret)``."""
        backend, stored = await self.find(name)
        if backend == "local" and self.local_users is not None:
            # First: a secret left in the file would be moved into the database at the next login.
            leftover = await asyncio.to_thread(self.local_users.totp_secret, stored)
            if leftover is not None:
                await asyncio.to_thread(self.local_users.clear_totp, stored, leftover)
        secret = new_secret()
        await self.secrets.set(stored, secret)
        ended = await self.sessions.end_user(stored, "your authenticator was reset; sign in again")
        await self._audit("user.totp_reset", stored, backend=backend, web_sessions_ended=ended)
        return stored, secret

    async def set_disabled(self, name: str, disabled: bool, reason: str | None) -> tuple[str, bool]:
        """Disable (ending every session) or enable a user; ``(stored name, whether anything changed)``."""
        _, stored = await self.find(name)
        if not disabled:
            changed = await self.disabled.enable(stored)
            await self._audit("user.enable", stored, changed=changed)
            return stored, changed
        await self._refuse_last_admin(stored, "disable")
        changed = await self.disabled.disable(stored, self.actor, reason)
        ended = await self.sessions.end_user(stored, "your account was disabled")
        await self._audit("user.disable", stored, changed=changed, web_sessions_ended=ended, note=reason)
        return stored, changed

    async def set_password(self, name: str, password: str) -> int:
        """Give a local user a new password, ending their web sessions; returns how many ended."""
        users = self._local_store()
        problem = password_problem(password)
        if problem is not None:
            raise UserAdminError(problem)
        self._local_user(name)
        await asyncio.to_thread(users.set_password, name, password)
        ended = await self.sessions.end_user(name, "your password was changed by an administrator; sign in again")
        await self._audit("user.passwd", name, web_sessions_ended=ended)
        return ended

    async def set_groups(self, name: str, groups: list[str]) -> tuple[str, ...]:
        """Replace a local user's groups, ending their web sessions (the next sign-in carries the new ones)."""
        users = self._local_store()
        before = self._local_user(name).groups
        stored = await asyncio.to_thread(users.set_groups, name, groups)
        ended = await self.sessions.end_user(name, "your groups were changed by an administrator; sign in again")
        await self._audit("user.groups", name, before=list(before), groups=list(stored), web_sessions_ended=ended)
        return stored

    async def set_display_name(self, name: str, display_name: str | None) -> str | None:
        """Give a local user the name people know them by (None or blank: none); returns it as stored."""
        users = self._local_store()
        before = self._local_user(name).display_name
        shown = await asyncio.to_thread(users.set_display_name, name, display_name)
        await self._audit("user.display_name", name, before=before, display_name=shown)
        return shown

    async def delete(self, name: str) -> None:
        """Remove a local user with their TOTP state, ending their web sessions; never the last administrator."""
        users = self._local_store()
        self._local_user(name)
        await self._refuse_last_admin(name, "delete")
        await asyncio.to_thread(users.delete_user, name)
        had_totp = await self.secrets.delete(name)
        await self.disabled.enable(name)  # a new user of the same name starts afresh
        ended = await self.sessions.end_user(name, "your account was deleted")
        await self._audit("user.delete", name, totp_removed=had_totp, web_sessions_ended=ended)

    async def list_users(self) -> list[UserEntry]:
        """Every local user, then everyone else the database knows (enrolled, disabled), by name."""
        local = {user.name: user for user in await asyncio.to_thread(self._all_local)}
        enrolled = await self.secrets.enrolled()
        disabled = await self.disabled.all()
        others = (set(enrolled) | disabled) - set(local)
        async with self.store.read() as connection:
            rows = (await connection.execute(
                select(auth_known_sources.c.username, func.max(auth_known_sources.c.last_success).label("last"))
                .group_by(auth_known_sources.c.username))).all()
        logins: dict[str, datetime] = {row.username: row.last for row in rows}
        seen = await self.last_identities(others)
        entries = []
        for name in sorted(set(local) | others):
            user = local.get(name)
            known = seen.get(name)
            source = "local" if user is not None else "ldap" if self.config.auth.ldap is not None else "unknown"
            groups = user.groups if user is not None else tuple(sorted(known.groups)) if known else None
            admin = user.admin if user is not None else known.admin if known else None
            totp = name in enrolled or (user is not None and user.totp_secret is not None)
            shown = user.display_name if user is not None else known.display_name if known else None
            entries.append(UserEntry(name, source, groups, admin, name in disabled or bool(user and user.disabled),
                                     totp, logins.get(name), shown))
        return entries

    async def identity_of(self, name: str) -> Identity | None:
        """Who ``name`` is for the policies: the users file's entry, else their latest sign-in's identity."""
        if self.local_users is not None:
            user = await asyncio.to_thread(self.local_users.get, name)
            if user is not None:
                return user.identity()
        return (await self.last_identities({name})).get(name)

    async def last_identities(self, names: set[str]) -> dict[str, Identity]:
        """The identity of each of ``names``'s latest web session still stored (groups as they signed in)."""
        if not names:
            return {}
        async with self.store.read() as connection:
            rows = (await connection.execute(
                select(web_sessions.c.username, web_sessions.c.identity).where(web_sessions.c.username.in_(names))
                .order_by(web_sessions.c.created))).all()
        return {row.username: Identity.from_attributes_json(row.username, row.identity) for row in rows}

    def _all_local(self) -> list[LocalUser]:
        return self.local_users.all() if self.local_users is not None else []

    def _local_store(self) -> LocalUserStore:
        if self.local_users is None:
            raise UserAdminError("local users are switched off in this configuration (auth.local)")
        return self.local_users

    def _local_user(self, name: str) -> LocalUser:
        user = self._local_store().get(name)
        if user is None:
            directory = " (directory users are changed in the directory)" if self.config.auth.ldap else ""
            raise UserAdminError(f"no local user {name!r} in {self._local_store().path}{directory}")
        return user

    async def _refuse_last_admin(self, name: str, verb: str) -> None:
        """Refuse to ``verb`` the only enabled local administrator: nobody could administer the gateway."""
        disabled = await self.disabled.all()
        admins = [user.name for user in await asyncio.to_thread(self._all_local)
                  if user.admin and not user.disabled and user.name not in disabled]
        if admins == [name]:
            raise UserAdminError(f"{name} is the last administrator; make another user an administrator first "
                                 f"(deskgate user add NAME --admin), then {verb} {name}")

    async def _audit(self, action: str, target: str, **detail: Any) -> None:
        await self.audit.record(action, user=self.actor, source=self.source, target=target, outcome="success",
                                **detail)
