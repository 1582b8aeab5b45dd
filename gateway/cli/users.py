"""``deskgate user ...``: administrators' changes to users, each one audited (see :mod:`gateway.useradmin`).

The audit events name the OS user who ran the command as the actor (source ``cli``) and
the changed user as the target. TOTP secrets go into the database, sealed with
``auth.totp.secret_key_file``.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import sys
from collections.abc import Awaitable, Callable
from typing import TypeVar

from auth.accounts import DisabledAccounts
from auth.local import LocalUserStore
from auth.secretbox import SecretBox
from auth.totp import provisioning_uri, terminal_qr
from auth.totp_store import TOTPSecrets
from auth.websession import WebSessionStore
from base.times import isoformat_utc
from gateway.audit import AuditLog
from gateway.cli.common import CommandGroups
from gateway.cli.messages import _
from gateway.config import Config, load_config
from gateway.schema import open_current_store
from gateway.useradmin import UserAdmin, UserEntry, password_problem

SOURCE = "cli"
T = TypeVar("T")


def add_commands(commands: CommandGroups, common: argparse.ArgumentParser) -> None:
    user = commands.add_parser("user", help="users and their roles").add_subparsers(
        dest="user_command", required=True, metavar="COMMAND")
    listing = user.add_parser("list", parents=[common], help="every user: groups, admin, disabled, TOTP, last login")
    listing.add_argument("--json", action="store_true", help="one JSON object per line")
    listing.set_defaults(handler=cmd_list)
    add = user.add_parser("add", parents=[common], help="add a local user and enroll their authenticator",
                          description="Add a local user; prints the TOTP URI and QR code to scan once.")
    add.add_argument("name", metavar="NAME")
    add.add_argument("--group", action="append", default=[], metavar="G", help="a group (repeatable)")
    add.add_argument("--display-name", metavar="TEXT", help="the name people know them by (Unicode, e.g. 山田 太郎)")
    add.add_argument("--admin", action="store_true",
                     help="an administrator: the admin console (/admin), every live session and recording; "
                          "directory users become administrators through auth.ldap.admin_groups")
    add.add_argument("--password-stdin", action="store_true", help="read the password from the first line of stdin")
    add.set_defaults(handler=cmd_add)
    passwd = user.add_parser("passwd", parents=[common], help="set a local user's password; ends their sessions")
    passwd.add_argument("name", metavar="NAME")
    passwd.add_argument("--password-stdin", action="store_true", help="read the password from the first line of stdin")
    passwd.set_defaults(handler=cmd_passwd)
    set_groups = user.add_parser("set-groups", parents=[common],
                                 help="replace a local user's groups (none: no group); ends their sessions")
    set_groups.add_argument("name", metavar="NAME")
    set_groups.add_argument("groups", nargs="*", metavar="G")
    set_groups.set_defaults(handler=cmd_set_groups)

    display = user.add_parser("set-display-name", parents=[common],
                              help="set (or with no TEXT, remove) the name people know a local user by")
    display.add_argument("name", metavar="NAME")
    display.add_argument("text", nargs="?", default=None, metavar="TEXT")
    display.set_defaults(handler=cmd_set_display_name)
    delete = user.add_parser("delete", parents=[common],
                             help="delete a local user and their TOTP secret; never the last administrator")
    delete.add_argument("name", metavar="NAME")
    delete.set_defaults(handler=cmd_delete)
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


def _password_from_stdin(args: argparse.Namespace) -> str | None:
    """The first line of stdin, or None after saying on stderr what is wrong."""
    if not args.password_stdin:
        print(_("deskgate: pass the password on stdin with --password-stdin (it never goes on the command line)"),
              file=sys.stderr)
        return None
    password = sys.stdin.readline().removesuffix("\n").removesuffix("\r")
    problem = password_problem(password)
    if problem is not None:
        print(f"deskgate: {problem.replace('the password', 'the password on stdin', 1)}", file=sys.stderr)
        return None
    return password


def cmd_list(args: argparse.Namespace) -> int:
    users = run_user_admin(load_config(args.config), lambda admin: admin.list_users())
    if args.json:
        for entry in users:
            print(json.dumps(entry.to_json(), ensure_ascii=False))
        return 0
    print(f"{'NAME':<20} {'SOURCE':<7} {'ADMIN':<5} {'DISABLED':<8} {'TOTP':<4} {'LAST LOGIN':<20} GROUPS")
    for entry in users:
        print(_row(entry))
    return 0


def _row(entry: UserEntry) -> str:
    def yes_no(value: bool | None) -> str:
        return "?" if value is None else "yes" if value else "no"

    groups = "?" if entry.groups is None else ",".join(entry.groups) or "-"
    login = isoformat_utc(entry.last_login) if entry.last_login is not None else "-"
    return (f"{entry.name:<20} {entry.source:<7} {yes_no(entry.admin):<5} {yes_no(entry.disabled):<8} "
            f"{yes_no(entry.totp_enrolled):<4} {login:<20} {groups}")


def cmd_add(args: argparse.Namespace) -> int:
    password = _password_from_stdin(args)
    if password is None:
        return 1
    config = load_config(args.config)
    secret = run_user_admin(config, lambda admin: admin.add_local(args.name, password, args.group, args.admin,
                                                                  args.display_name))
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


def cmd_passwd(args: argparse.Namespace) -> int:
    password = _password_from_stdin(args)
    if password is None:
        return 1
    ended = run_user_admin(load_config(args.config), lambda admin: admin.set_password(args.name, password))
    print(f"new password for {args.name}; {ended} web session(s) of theirs ended")
    return 0


def cmd_set_groups(args: argparse.Namespace) -> int:
    groups = run_user_admin(load_config(args.config), lambda admin: admin.set_groups(args.name, args.groups))
    print(f"{args.name} is now in {', '.join(groups) if groups else 'no group'}; their sessions have ended")
    return 0


def cmd_set_display_name(args: argparse.Namespace) -> int:
    shown = run_user_admin(load_config(args.config), lambda admin: admin.set_display_name(args.name, args.text))
    print(f"{args.name} is now shown as {shown}" if shown else f"{args.name} has no display name now")
    return 0


def cmd_delete(args: argparse.Namespace) -> int:
    run_user_admin(load_config(args.config), lambda admin: admin.delete(args.name))
    print(f"deleted {args.name} and their TOTP secret; their sessions have ended")
    return 0


def run_user_admin(config: Config, use: Callable[[UserAdmin], Awaitable[T]]) -> T:
    """Open the database and key, run ``use``, close them."""

    async def run() -> T:
        store = await open_current_store(config.storage.database)
        try:
            box = SecretBox.from_file(config.auth.totp.secret_key_file)
            web = config.auth.web_session
            # Off the loop: the store hashes a dummy password (argon2, several threads) when it is made.
            local = (await asyncio.to_thread(LocalUserStore, config.auth.local.users_file)
                     if config.auth.local is not None else None)
            admin = UserAdmin(config, local, store, AuditLog(store), TOTPSecrets(store, box),
                              WebSessionStore(store, web.idle_timeout, web.absolute_timeout),
                              DisabledAccounts(store), getpass.getuser(), SOURCE)
            return await use(admin)
        finally:
            await store.close()

    return asyncio.run(run())
