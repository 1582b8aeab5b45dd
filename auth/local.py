"""Local users: a YAML file of argon2id password hashes, groups and flags.

    users:
      alice: {password: "$argon2id$...", groups: [operators], admin: false, disabled: false}

A ``totp_secret: BASE32...`` written by :meth:`LocalUserStore.add_user` (or by hand) is how
a secret is handed over: the gateway moves it into its database, sealed, at the user's
next login or right away from ``deskgate user add`` (see ``auth.login.adopt_local_secret``),
and removes it from the file.

The file is written atomically (temporary file in the same directory, fsync, rename)
with mode 0600, under an advisory lock so that the CLI and a running gateway do not
lose each other's changes. The store re-reads the file whenever it changes on disk.
"""

from __future__ import annotations

import fcntl
import logging
import os
import re
import secrets
import tempfile
import threading
import unicodedata
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path

import yaml
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from auth.errors import AccountDisabled, InvalidCredentials, UserAdminError
from auth.identity import Identity
from auth.totp import new_secret
from base.errors import ConfigError
from base.yamlnodes import NodeReader, compose_yaml_file

logger = logging.getLogger(__name__)

USERNAME = re.compile(r"[a-z_][a-z0-9_.-]{0,31}")
GROUP = re.compile(r"[^\s,]{1,64}")
TOTP_SECRET = re.compile(r"[A-Z2-7]{16,128}=*")
BACKEND = "local"
MAX_DISPLAY_NAME = 64  # characters of a display name (a person's name, e.g. 山田 太郎)


@dataclass(frozen=True, slots=True)
class LocalUser:
    """One entry of the users file."""

    name: str
    password_hash: str
    totp_secret: str | None
    groups: tuple[str, ...]
    admin: bool
    disabled: bool
    display_name: str | None = None

    def identity(self) -> Identity:
        return Identity(self.name, frozenset(self.groups), self.admin, BACKEND, self.display_name)


class LocalUserStore:
    """Users from a YAML file; safe to use from worker threads.

    ``password_hasher`` defaults to argon2-cffi's argon2id parameters (RFC 9106 low-memory
    profile); hashes made with other parameters are upgraded on the next successful login.
    """

    def __init__(
        self,
        path: Path,
        password_hasher: PasswordHasher | None = None,
        max_password_length: int = 1024,
    ) -> None:
        self.path = Path(path)
        self.max_password_length = max_password_length
        self._hasher = password_hasher or PasswordHasher()
        # Unknown users are checked against this hash, so a login takes as long whether or not the name exists.
        self._dummy_hash = self._hasher.hash(secrets.token_urlsafe(16))
        self._lock = threading.Lock()
        self._users: dict[str, LocalUser] = {}
        self._signature: tuple[int, int, int] | None = None  # (inode, size, mtime_ns) of what _users holds

    # -- reading

    def get(self, name: str) -> LocalUser | None:
        """The user called ``name``, as the file says now."""
        return self._current().get(name)

    def totp_secret(self, username: str) -> str | None:
        """The user's TOTP secret, or ``None`` when not enrolled (or no such user)."""
        user = self.get(username)
        return user.totp_secret if user else None

    def authenticate(self, username: str, password: str) -> Identity:
        """Check the password (slow: argon2id; call it in a worker thread) and return who this is."""
        if not password or len(password) > self.max_password_length:
            raise InvalidCredentials()
        user = self.get(username)
        if user is None:
            self._verify(self._dummy_hash, password)
            raise InvalidCredentials()
        if not self._verify(user.password_hash, password):
            raise InvalidCredentials()
        if user.disabled:
            raise AccountDisabled()
        if self._hasher.check_needs_rehash(user.password_hash):
            self._rehash(user, password)
        return user.identity()

    # -- changing

    def add_user(
        self,
        name: str,
        password: str,
        groups: Iterable[str] = (),
        admin: bool = False,
        *,
        replace: bool = False,
        display_name: str | None = None,
    ) -> str:
        """Create (or with ``replace=True`` overwrite) a user; return the new TOTP secret."""
        if not USERNAME.fullmatch(name):
            raise UserAdminError(
                f"{name!r} is not a valid user name; use a lowercase letter or '_' then up to 31 of a-z 0-9 _ . -"
            )
        if not password:
            raise UserAdminError("the password is empty")
        group_list = _valid_groups(groups)
        shown = valid_display_name(display_name)
        secret = new_secret()
        user = LocalUser(name, self._hasher.hash(password), secret, group_list, admin, disabled=False, display_name=shown)

        def add(users: dict[str, LocalUser]) -> None:
            if name in users and not replace:
                raise UserAdminError(f"user {name!r} already exists in {self.path}")
            users[name] = user

        self._modify(add)
        return secret

    def set_password(self, name: str, password: str) -> None:
        """Give ``name`` a new password (hashed here: slow, call it in a worker thread)."""
        if not password:
            raise UserAdminError("the password is empty")
        new_hash = self._hasher.hash(password)
        self._modify(lambda users: self._change(users, name, lambda user: replace(user, password_hash=new_hash)))

    def set_display_name(self, name: str, display_name: str | None) -> str | None:
        """Give ``name`` a display name (None or blank: none); returns it as stored."""
        shown = valid_display_name(display_name)
        self._modify(lambda users: self._change(users, name, lambda user: replace(user, display_name=shown)))
        return shown

    def set_groups(self, name: str, groups: Iterable[str]) -> tuple[str, ...]:
        """Replace ``name``'s groups; returns them as stored (duplicates dropped)."""
        group_list = _valid_groups(groups)
        self._modify(lambda users: self._change(users, name, lambda user: replace(user, groups=group_list)))
        return group_list

    def delete_user(self, name: str) -> None:
        """Remove ``name`` from the file."""

        def delete(users: dict[str, LocalUser]) -> None:
            if users.pop(name, None) is None:
                raise UserAdminError(f"no user {name!r} in {self.path}")

        self._modify(delete)

    def all(self) -> list[LocalUser]:
        """Every user of the file, by name."""
        return sorted(self._current().values(), key=lambda user: user.name)

    def _change(self, users: dict[str, LocalUser], name: str, change: Callable[[LocalUser], LocalUser]) -> None:
        if name not in users:
            raise UserAdminError(f"no user {name!r} in {self.path}")
        users[name] = change(users[name])

    def clear_totp(self, name: str, secret: str) -> None:
        """Remove ``name``'s TOTP secret from the file if it is still ``secret`` (it moved to the database)."""

        def clear(users: dict[str, LocalUser]) -> None:
            if name in users and users[name].totp_secret == secret:
                users[name] = replace(users[name], totp_secret=None)

        self._modify(clear)

    # -- internals

    def _verify(self, password_hash: str, password: str) -> bool:
        try:
            return self._hasher.verify(password_hash, password)
        except (VerificationError, InvalidHashError):
            return False

    def _rehash(self, user: LocalUser, password: str) -> None:
        new_hash = self._hasher.hash(password)

        def upgrade(users: dict[str, LocalUser]) -> None:
            current = users.get(user.name)
            if current is not None and current.password_hash == user.password_hash:  # unchanged meanwhile
                users[user.name] = replace(current, password_hash=new_hash)

        try:
            self._modify(upgrade)
        except (OSError, ConfigError) as error:  # the login is valid; the upgrade can wait
            logger.warning("could not upgrade a password hash: %s", error, extra={"ctx": {"user": user.name}})

    def _current(self) -> dict[str, LocalUser]:
        with self._lock:
            stat = self._stat()
            signature = None if stat is None else (stat.st_ino, stat.st_size, stat.st_mtime_ns)
            if signature != self._signature:
                if stat is not None and stat.st_mode & 0o077:
                    logger.warning("users file is open to other users; chmod 600 it", extra={"ctx": {"path": str(self.path)}})
                self._users = self._read() if stat else {}
                self._signature = signature
            return self._users

    def _stat(self) -> os.stat_result | None:
        try:
            return self.path.stat()
        except FileNotFoundError:
            return None

    def _read(self) -> dict[str, LocalUser]:
        reader = NodeReader(self.path)
        top = reader.mapping(compose_yaml_file(self.path), "", ["users"])
        users_node = top.get("users")
        users = {}
        for name, node in reader.mapping(users_node, "users", None).items():
            key = f"users.{name}"
            if not USERNAME.fullmatch(name):
                raise reader.error(reader.key_node(users_node, name), key, "is not a valid user name")
            fields = reader.mapping(
                node, key, ["password", "totp_secret", "groups", "admin", "disabled", "display_name"],
                required=["password"]
            )
            password_hash = reader.string(fields["password"], f"{key}.password")
            if not password_hash.startswith("$argon2"):
                raise reader.error(fields["password"], f"{key}.password",
                                   "is not an argon2 hash; set the user again with `deskgate user add --replace`")
            secret = reader.optional_string(fields.get("totp_secret"), f"{key}.totp_secret")
            if secret is not None and not TOTP_SECRET.fullmatch(secret):
                raise reader.error(fields.get("totp_secret"), f"{key}.totp_secret",
                                   "is not a base32 secret; reset it with `deskgate user totp-reset`")
            groups = reader.sequence(fields.get("groups"), f"{key}.groups")
            users[name] = LocalUser(
                name=name,
                password_hash=password_hash,
                totp_secret=secret,
                groups=tuple(reader.string(item, item_key) for item, item_key in groups),
                admin=reader.boolean(fields.get("admin"), f"{key}.admin", False),
                disabled=reader.boolean(fields.get("disabled"), f"{key}.disabled", False),
                display_name=reader.optional_string(fields.get("display_name"), f"{key}.display_name"),
            )
        return users

    def _modify(self, change: Callable[[dict[str, LocalUser]], None]) -> None:
        """Read the file afresh, apply ``change``, write it back; all under an inter-process lock."""
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        with self._lock, _locked(self.path.with_name(self.path.name + ".lock")):
            users = self._read() if self._stat() else {}
            change(users)
            self._write(users)
            self._signature = None  # re-read on next access: the file is the truth

    def _write(self, users: dict[str, LocalUser]) -> None:
        document = {
            "users": {
                user.name: {
                    "password": user.password_hash,
                    "totp_secret": user.totp_secret,
                    "groups": list(user.groups),
                    "admin": user.admin,
                    "disabled": user.disabled,
                    **({"display_name": user.display_name} if user.display_name is not None else {}),
                }
                for user in users.values()
            }
        }
        text = "# deskgate local users; change with `deskgate user ...`\n"
        text += yaml.safe_dump(document, sort_keys=False, default_flow_style=False, allow_unicode=True)
        descriptor, temporary = tempfile.mkstemp(dir=self.path.parent, prefix=f".{self.path.name}.", suffix=".tmp")
        try:
            with os.fdopen(descriptor, "w", encoding="utf-8") as file:  # mkstemp creates it 0600
                file.write(text)
                file.flush()
                os.fsync(file.fileno())
            os.replace(temporary, self.path)
        except BaseException:
            os.unlink(temporary)
            raise
        directory = os.open(self.path.parent, os.O_RDONLY)
        try:
            os.fsync(directory)  # make the rename itself durable
        finally:
            os.close(directory)


def valid_display_name(text: str | None) -> str | None:
    """``text`` as a display name: NFC, spaces collapsed, at most MAX_DISPLAY_NAME characters, no control
    characters; None when blank. UserAdminError says what is wrong."""
    if text is None:
        return None
    shown = " ".join(unicodedata.normalize("NFC", text).split())
    if not shown:
        return None
    if len(shown) > MAX_DISPLAY_NAME:
        raise UserAdminError(f"the display name is longer than {MAX_DISPLAY_NAME} characters; shorten it")
    if any(unicodedata.category(character)[0] == "C" for character in shown):
        raise UserAdminError("the display name contains control or invisible characters; type it again")
    return shown


def _valid_groups(groups: Iterable[str]) -> tuple[str, ...]:
    group_list = tuple(dict.fromkeys(groups))
    for group in group_list:
        if not GROUP.fullmatch(group):
            raise UserAdminError(f"{group!r} is not a valid group name; no spaces or commas, at most 64 characters")
    return group_list


@contextmanager
def _locked(lock_path: Path) -> Iterator[None]:
    descriptor = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX)
        yield
    finally:
        os.close(descriptor)  # closing releases the lock
