"""``deskgate user ...``: administrators' changes to users, each one audited.

A user is found in the users file first, then in the directory (``auth.ldap``), whose
spelling of the name is the one stored (so that a reset reaches the account that logs
in). TOTP secrets go into the database, sealed with ``auth.totp.secret_key_file``;
disabling a user, or resetting their authenticator, ends every web session of theirs,
and each running gateway closes their desktops within seconds.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from auth.accounts import DisabledAccounts
from auth.errors import UserAdminError
from auth.ldap import LDAPBackend
from auth.local import LocalUserStore
from auth.secretbox import SecretBox
from auth.totp import new_secret, provisioning_uri, terminal_qr
from auth.totp_store import TOTPSecrets
from auth.websession import WebSessionStore
from base.db import Store
from gateway.audit import AuditLog
from gateway.cli.common import CommandGroups
from gateway.config import Config, load_config

SOURCE = "cli"
MIN_PASSWORD_LENGTH = 12
T = TypeVar("T")


def add_commands(commands: CommandGroups, common: argparse.ArgumentParser) -> None:
    user = commands.add_parser("user", help="local users").add_subparsers(
        dest="user_command", required=True, metavar="COMMAND")
    add = user.add_parser("add", parents=[common], help="add a local user and enroll their authenticator")
    add.add_argument("name", metavar="NAME")
    add.add_argument("--group", action="append", default=[], metavar="G", help="a group (repeatable)")
    add.add_argument("--admin", action="store_true", help="may supervise and administer")
    add.add_argument("--password-stdin", action="store_true", help="read the password from the first line of stdin")
    add.set_defaults(handler=cmd_add)
    totp_reset = user.add_parser("totp-reset", parents=[common],
                                 help="give a user (local or directory) a new TOTP secret")
    totp_reset.add_argument("name", metavar="NAME")
    totp_reset.set_defaults(handler=cmd_totp_reset)
    disable = user.add_parser("disable", parents=[common], help="refuse a user's logins and end their sessions")
    disable.add_argument("name", metavar="NAME")
    disable.add_argument("--reason", metavar="TEXT", help="why, for the audit log")
    disable.set_defaults(handler=cmd_disable)
    enable = user.add_parser("enable", parents=[common], help="let a disabled user log in again")
    enable.add_argument("name", metavar="NAME")
    enable.set_defaults(handler=cmd_enable)


def _print_enrollment(config: Config, name: str, secret: str) -> None:
    uri = provisioning_uri(secret, name, config.auth.totp.issuer)
    print(f"Scan this with an authenticator app for {name}, or enter the URI by hand:")
    print(uri)
    print(terminal_qr(uri))


def cmd_add(args: argparse.Namespace) -> int:
    if not args.password_stdin:
        print("deskgate: pass the password on stdin with --password-stdin "
              "(it never goes on the command line)", file=sys.stderr)
        return 1
    password = sys.stdin.readline().removesuffix("\n").removesuffix("\r")
    if not password:
        print("deskgate: the password on stdin is empty", file=sys.stderr)
        return 1
    if len(password) < MIN_PASSWORD_LENGTH:
        print(f"deskgate: the password is too short; use at least {MIN_PASSWORD_LENGTH} characters", file=sys.stderr)
        return 1
    config = load_config(args.config)
    secret = run_user_admin(config, lambda admin: admin.add_local(args.name, password, args.group, args.admin))
    assert config.auth.local is not None  # add_local refuses otherwise
    print(f"added user {args.name} to {config.auth.local.users_file}")
    _print_enrollment(config, args.name, secret)
    return 0


def cmd_totp_reset(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    name, secret = run_user_admin(config, lambda admin: admin.reset_totp(args.name))
    print(f"new TOTP secret for {name}; the previous authenticator no longer works and their sessions have ended")
    _print_enrollment(config, name, secret)
    return 0


def cmd_disable(args: argparse.Namespace) -> int:
    name, changed = run_user_admin(load_config(args.config),
                                   lambda admin: admin.set_disabled(args.name, True, args.reason))
    print(f"disabled {name}; every session of theirs is ending" if changed
          else f"{name} was already disabled; any session left is ending")
    return 0


def cmd_enable(args: argparse.Namespace) -> int:
    name, changed = run_user_admin(load_config(args.config), lambda admin: admin.set_disabled(args.name, False, None))
    print(f"enabled {name}" if changed else f"{name} was not disabled")
    return 0


@dataclass(slots=True)
class UserAdmin:
    """The stores an administrator's command changes, opened from the configuration."""

    config: Config
    local_users: LocalUserStore | None
    store: Store
    audit: AuditLog
    secrets: TOTPSecrets
    sessions: WebSessionStore
    disabled: DisabledAccounts
    operator: str

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

    async def add_local(self, name: str, password: str, groups: list[str], admin: bool) -> str:
        """Add a local user and their TOTP secret (into the database); return the secret."""
        users = self.local_users
        if users is None:
            raise UserAdminError("local users are switched off in this configuration (auth.local)")
        secret = await asyncio.to_thread(users.add_user, name, password, groups, admin)
        await self.secrets.set(name, secret)
        await asyncio.to_thread(users.clear_totp, name, secret)
        await self._audit("user.add", name, backend="local", groups=sorted(groups), admin=admin)
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
        changed = await self.disabled.disable(stored, self.operator, reason)
        ended = await self.sessions.end_user(stored, "your account was disabled")
        await self._audit("user.disable", stored, changed=changed, web_sessions_ended=ended, note=reason)
        return stored, changed

    async def _audit(self, action: str, target: str, **detail: Any) -> None:
        await self.audit.record(action, user=self.operator, source=SOURCE, target=target, outcome="success",
                                **detail)


def run_user_admin(config: Config, use: Callable[[UserAdmin], Awaitable[T]]) -> T:
    """Open the database and key, run ``use``, close them."""

    async def run() -> T:
        store = await Store.open(config.storage.database)
        try:
            box = SecretBox.from_file(config.auth.totp.secret_key_file)
            web = config.auth.web_session
            local = LocalUserStore(config.auth.local.users_file) if config.auth.local is not None else None
            admin = UserAdmin(config, local, store, AuditLog(store), TOTPSecrets(store, box),
                              WebSessionStore(store, web.idle_timeout, web.absolute_timeout),
                              DisabledAccounts(store), getpass.getuser())
            return await use(admin)
        finally:
            await store.close()

    return asyncio.run(run())
