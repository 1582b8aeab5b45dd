"""The LDAP password backend (python-ldap): bind, groups, TLS, timeouts, failing closed.

How the user's entry is found, from ``auth.ldap``:

- ``bind_dn`` set: **search-then-bind**. Bind as the service account (password read once
  from ``bind_password_file``), search ``user_base`` (subtree) with ``user_filter``, bind
  as the one entry found, then rebind as the service account to read the groups.
- ``bind_dn`` unset: **DN template**. ``user_base`` must contain ``{username}``
  (``uid={username},ou=people,dc=example,dc=org``); bind as that DN, then read the entry
  itself (base scope) with ``user_filter``, so the filter applies in both modes. Groups are
  read as the user.

Values are escaped where they land: ``escape_filter_chars`` in filters,
``escape_dn_chars`` in the DN template. An empty password is refused before any
connection: to LDAP it is an unauthenticated bind, which *succeeds*.

The identity's name is the entry's value of the attribute that ``user_filter`` compares
with ``{username}`` (``uid`` in ``(uid={username})``), not what was typed: ``ALICE``,
``alice `` and an alias all map to the one entry's name, so per-user state (TOTP secret,
replay and failure counters) cannot be split by spelling the name differently.

Groups are the ``cn`` of the entries under ``group_base`` matching ``group_filter``
(``{dn}`` is the user's DN, ``{username}`` the name typed; default
``(&(objectClass=groupOfNames)(member={dn}))``). When the filter uses ``{dn}``, nesting is
resolved by asking the same filter again with the groups just found as ``{dn}``, up to
``max_group_depth`` levels: this works on any directory, with or without a memberOf overlay.

Every python-ldap call runs in a worker thread with libldap's connect and operation
timeouts set to what is left of ``timeout``, under an ``asyncio.timeout`` of the same
length; the thread's own deadline ends it soon after a cancelled caller stops waiting.
TLS (StartTLS or ldaps://) always demands a valid certificate; the trusted CAs are those
of ``ca_file`` when set, else libldap's (``TLS_CACERT`` in ldap.conf or ``LDAPTLS_CACERT``
at process start; Debian's default is the system store).

Unreachable, slow, TLS-broken or misconfigured directory: :class:`DirectoryUnavailable`
and ``deskgate_ldap_up`` 0. Between logins, :meth:`LDAPBackend.probe` keeps the gauge
current (the gateway calls it periodically), so that an outage alerts before anyone
tries to log in. Unknown user or wrong password: :class:`InvalidCredentials`,
the same for both. Nothing here ever answers with an identity it did not bind for.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import ldap
from ldap.dn import escape_dn_chars, explode_dn, str2dn
from ldap.filter import escape_filter_chars

from auth.errors import DirectoryUnavailable, InvalidCredentials
from auth.identity import Identity
from auth.options import LDAPConfig
from base.errors import ConfigError
from base.metrics import Metrics

logger = logging.getLogger(__name__)

BACKEND = "ldap"
UNAVAILABLE_MESSAGE = "directory unavailable; try again in a minute or contact your administrator"
DEFAULT_GROUP_FILTER = "(&(objectClass=groupOfNames)(member={dn}))"

_PLACEHOLDER = re.compile(r"\{(username|dn)\}")
# The attribute compared with {username}: "uid" in "(&(objectClass=person)(uid={username}))".
_LOGIN_ATTRIBUTE = re.compile(r"\(\s*([A-Za-z][A-Za-z0-9-]*)\s*=\s*\{username\}\s*\)")


class _Refused(Exception):
    """The directory answered, and the answer is no (logged for the operator, shown as InvalidCredentials)."""


class _Unusable(Exception):
    """The directory answered, but this login cannot be decided from it (logged, shown as DirectoryUnavailable)."""


class _DeadlineExceeded(Exception):
    """The overall timeout ran out between two directory operations."""


Connection = Any  # ldap.ldapobject.LDAPObject: python-ldap ships no type hints


class LDAPBackend:
    """Checks a username and password against an LDAP directory; see the module docstring."""

    name = BACKEND

    def __init__(
        self,
        config: LDAPConfig,
        *,
        metrics: Metrics | None = None,
        clock: Callable[[], float] = time.monotonic,
        max_username_length: int = 256,
        max_group_depth: int = 5,
        max_groups: int = 500,
    ) -> None:
        if config.url.startswith("ldap://") and not config.start_tls:
            raise ValueError("auth.ldap: ldap:// without start_tls sends passwords in clear")
        if config.bind_dn is None and "{username}" not in config.user_base:
            raise ValueError(
                "auth.ldap: without bind_dn, user_base must be a DN template containing {username}, "
                "e.g. uid={username},ou=people,dc=example,dc=org"
            )
        login_attribute = _LOGIN_ATTRIBUTE.search(config.user_filter)
        if login_attribute is None:
            raise ValueError("auth.ldap.user_filter must compare an attribute with {username}, e.g. (uid={username})")
        self._config = config
        self._login_attribute = login_attribute.group(1)
        self._group_filter = config.group_filter or DEFAULT_GROUP_FILTER
        self._service_password = (
            _read_password_file(config.bind_password_file) if config.bind_password_file is not None else None
        )
        self._metrics = metrics
        self._clock = clock
        self._max_username_length = max_username_length
        self._max_group_depth = max_group_depth
        self._max_groups = max_groups

    async def authenticate(self, username: str, password: str) -> Identity:
        """The identity for this username and password; raises InvalidCredentials or DirectoryUnavailable."""
        if not _acceptable(password) or not _acceptable(username) or len(username) > self._max_username_length:
            raise InvalidCredentials()  # before any connection: an empty password binds anonymously
        started = self._clock()
        deadline = started + self._config.timeout
        reachable = False
        try:
            async with asyncio.timeout(self._config.timeout):
                identity = await asyncio.to_thread(self._authenticate, username, password, deadline)
            reachable = True
            return identity
        except InvalidCredentials:
            reachable = True
            raise
        except _Unusable as error:
            reachable = True
            logger.error("LDAP login of %r cannot be decided: %s", username, error)
            raise DirectoryUnavailable(UNAVAILABLE_MESSAGE) from None
        except (TimeoutError, _DeadlineExceeded):
            logger.warning("LDAP directory %s did not answer within %.1f s", self._config.url, self._config.timeout)
            raise DirectoryUnavailable(UNAVAILABLE_MESSAGE) from None
        except ldap.LDAPError as error:
            logger.warning("LDAP directory %s unavailable: %s", self._config.url, _describe(error))
            raise DirectoryUnavailable(UNAVAILABLE_MESSAGE) from None
        finally:
            if self._metrics is not None:
                self._metrics.ldap_up.set(1 if reachable else 0)
                self._metrics.auth_duration_seconds.labels(backend=BACKEND).observe(self._clock() - started)

    async def probe(self) -> bool:
        """Whether the directory answers over TLS (and accepts the service account); sets ``ldap_up``."""
        deadline = self._clock() + self._config.timeout
        try:
            async with asyncio.timeout(self._config.timeout):
                await asyncio.to_thread(self._probe, deadline)
            up = True
        except (TimeoutError, _DeadlineExceeded, ldap.SERVER_DOWN, ldap.CONNECT_ERROR, ldap.TIMEOUT,
                ldap.INVALID_CREDENTIALS) as error:
            logger.warning("LDAP directory %s is down: %s", self._config.url,
                           _describe(error) if isinstance(error, ldap.LDAPError) else "no answer in time")
            up = False
        except ldap.LDAPError:
            up = True  # it answered, if only to refuse the question
        if self._metrics is not None:
            self._metrics.ldap_up.set(1 if up else 0)
        return up

    async def canonical_name(self, username: str) -> str | None:
        """The directory's name for ``username`` (for administrators' commands), None if it has none.

        Needs the service account (``bind_dn``): with a DN template nothing can be looked up
        before the user binds, and the name is returned as typed.
        """
        if self._config.bind_dn is None:
            return username
        if not _acceptable(username) or len(username) > self._max_username_length:
            return None
        deadline = self._clock() + self._config.timeout
        try:
            async with asyncio.timeout(self._config.timeout):
                return await asyncio.to_thread(self._lookup, username, deadline)
        except (TimeoutError, _DeadlineExceeded, _Refused, ldap.LDAPError) as error:
            logger.warning("LDAP lookup of %r failed: %s", username,
                           _describe(error) if isinstance(error, ldap.LDAPError) else error or "no answer in time")
            raise DirectoryUnavailable(UNAVAILABLE_MESSAGE) from None

    # -- worker thread -----------------------------------------------------------------------

    def _lookup(self, username: str, deadline: float) -> str | None:
        with self._session(deadline) as connection:
            self._bind_service(connection, deadline)
            found = self._search(connection, self._config.user_base, ldap.SCOPE_SUBTREE,
                                 _fill(self._config.user_filter, username=username), [self._login_attribute], 2,
                                 deadline)
            if len(found) != 1:
                return None
            return self._canonical_username(found[0][0], found[0][1])

    def _probe(self, deadline: float) -> None:
        with self._session(deadline) as connection:
            if self._config.bind_dn is not None:
                self._bind_service(connection, deadline)
            else:
                self._arm(connection, deadline)
                connection.whoami_s()

    def _authenticate(self, username: str, password: str, deadline: float) -> Identity:
        with self._session(deadline) as connection:
            try:
                if self._config.bind_dn is not None:
                    return self._search_then_bind(connection, username, password, deadline)
                return self._bind_template(connection, username, password, deadline)
            except _Refused as refusal:
                logger.error("LDAP login of %r refused: %s", username, refusal)
                raise InvalidCredentials() from None

    @contextlib.contextmanager
    def _session(self, deadline: float) -> Iterator[Connection]:
        """A new connection, StartTLS done when configured; unbound (closed) at the end, whatever happens."""
        connection = self._connection()
        try:
            if self._config.start_tls:
                self._arm(connection, deadline)
                connection.start_tls_s()
            yield connection
        finally:
            with contextlib.suppress(ldap.LDAPError):
                connection.unbind_s()

    def _connection(self) -> Connection:
        connection = ldap.initialize(self._config.url)  # no I/O until the first operation
        connection.set_option(ldap.OPT_PROTOCOL_VERSION, ldap.VERSION3)
        connection.set_option(ldap.OPT_REFERRALS, 0)  # never follow a referral to another server
        # A connection's new TLS context starts empty: give it ca_file, or carry over libldap's
        # trusted CAs (ldap.conf / LDAPTLS_CACERT); demand a valid certificate whatever ldap.conf says.
        if self._config.ca_file is not None:
            connection.set_option(ldap.OPT_X_TLS_CACERTFILE, str(self._config.ca_file))
        else:
            for option in (ldap.OPT_X_TLS_CACERTFILE, ldap.OPT_X_TLS_CACERTDIR):
                value = ldap.get_option(option)
                if value:
                    connection.set_option(option, value)
        connection.set_option(ldap.OPT_X_TLS_REQUIRE_CERT, ldap.OPT_X_TLS_DEMAND)
        connection.set_option(ldap.OPT_X_TLS_NEWCTX, 0)
        return connection

    def _search_then_bind(self, connection: Connection, username: str, password: str, deadline: float) -> Identity:
        assert self._config.bind_dn is not None and self._service_password is not None
        self._bind_service(connection, deadline)
        user_filter = _fill(self._config.user_filter, username=username)
        found = self._search(connection, self._config.user_base, ldap.SCOPE_SUBTREE, user_filter,
                             self._user_attributes, 2, deadline)  # fmt: skip
        if not found:
            raise InvalidCredentials()
        if len(found) > 1:
            raise _Refused(f"{len(found)} entries match {user_filter} under {self._config.user_base}")
        dn, attributes = found[0]
        self._bind_user(connection, dn, password, deadline)
        canonical = self._canonical_username(dn, attributes)
        self._bind_service(connection, deadline)
        return self._identity(canonical, self._groups(connection, dn, username, deadline), attributes)

    def _bind_template(self, connection: Connection, username: str, password: str, deadline: float) -> Identity:
        dn = self._config.user_base.replace("{username}", escape_dn_chars(username))
        self._bind_user(connection, dn, password, deadline)
        user_filter = _fill(self._config.user_filter, username=username)
        try:
            found = self._search(connection, dn, ldap.SCOPE_BASE, user_filter, self._user_attributes, 1, deadline)
        except ldap.NO_SUCH_OBJECT:  # bound, yet cannot read itself: not a user entry
            found = []
        if not found:
            raise _Refused(f"{dn} does not match {user_filter}")
        canonical = self._canonical_username(dn, found[0][1])
        return self._identity(canonical, self._groups(connection, dn, username, deadline), found[0][1])

    @property
    def _user_attributes(self) -> list[str]:
        """What a user's entry is read for: the login name and the display name (or ``cn``)."""
        return list(dict.fromkeys([self._login_attribute, self._config.display_name_attribute, "cn"]))

    def _identity(self, name: str, groups: frozenset[str], attributes: dict[str, list[bytes]]) -> Identity:
        """Who bound: an administrator when in one of ``admin_groups``; their display name (else ``cn``)."""
        shown = _attribute(attributes, self._config.display_name_attribute) or _attribute(attributes, "cn")
        display_name = " ".join(shown[0].split()) if shown else None
        return Identity(name, groups, admin=not groups.isdisjoint(self._config.admin_groups), backend=BACKEND,
                        display_name=display_name or None)

    def _bind_service(self, connection: Connection, deadline: float) -> None:
        self._arm(connection, deadline)
        try:
            connection.simple_bind_s(self._config.bind_dn, self._service_password)
        except ldap.INVALID_CREDENTIALS:
            raise ldap.INVALID_CREDENTIALS(
                {"desc": f"the service account {self._config.bind_dn} was refused; check bind_password_file"}
            ) from None

    def _bind_user(self, connection: Connection, dn: str, password: str, deadline: float) -> None:
        self._arm(connection, deadline)
        try:
            connection.simple_bind_s(dn, password)
        except (ldap.INVALID_CREDENTIALS, ldap.INVALID_DN_SYNTAX):
            raise InvalidCredentials() from None

    def _canonical_username(self, dn: str, attributes: dict[str, list[bytes]]) -> str:
        values = _attribute(attributes, self._login_attribute)
        if not values:
            raise _Refused(f"{dn} has no {self._login_attribute}")
        return min(values)  # one name per entry, whichever value or spelling was typed

    def _groups(self, connection: Connection, user_dn: str, username: str, deadline: float) -> frozenset[str]:
        """The user's groups and, when the filter uses {dn}, the groups of those groups (bounded depth)."""
        if self._config.group_base is None:
            return frozenset()
        names: set[str] = set()
        seen: set[str] = set()
        members = [user_dn]
        for _ in range(self._max_group_depth + 1):
            alternatives = [_fill(self._group_filter, dn=member, username=username) for member in members]
            group_filter = alternatives[0] if len(alternatives) == 1 else f"(|{''.join(alternatives)})"
            try:
                found = self._search(connection, self._config.group_base, ldap.SCOPE_SUBTREE, group_filter,
                                     ["cn"], self._max_groups, deadline)  # fmt: skip
            except ldap.SIZELIMIT_EXCEEDED:
                raise _Unusable(f"more than {self._max_groups} groups (max_groups)") from None
            members = []
            for dn, attributes in found:
                key = _normalized_dn(dn)
                if key not in seen:
                    seen.add(key)
                    members.append(dn)
                    names.add(_group_name(dn, attributes))
            if len(seen) > self._max_groups:
                raise _Unusable(f"more than {self._max_groups} groups (max_groups)")
            if not members or "{dn}" not in self._group_filter:
                break
        return frozenset(names)

    def _search(
        self, connection: Connection, base: str, scope: int, filterstr: str, attributes: list[str],
        size_limit: int, deadline: float,
    ) -> list[tuple[str, dict[str, list[bytes]]]]:  # fmt: skip
        remaining = self._arm(connection, deadline)
        results = connection.search_ext_s(
            base, scope, filterstr, attrlist=attributes, timeout=remaining, sizelimit=size_limit
        )
        return [(dn, attrs) for dn, attrs in results if dn is not None]  # drop search references

    def _arm(self, connection: Connection, deadline: float) -> float:
        """Give the next operation what is left of the overall timeout, connect included."""
        remaining = deadline - self._clock()
        if remaining <= 0:
            raise _DeadlineExceeded()
        connection.set_option(ldap.OPT_NETWORK_TIMEOUT, remaining)
        connection.set_option(ldap.OPT_TIMEOUT, remaining)
        connection.timeout = remaining
        return remaining


def _acceptable(value: str) -> bool:
    """Non-empty, and valid UTF-8 once encoded (a lone surrogate is not)."""
    if not value:
        return False
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _fill(template: str, **values: str) -> str:
    """Replace {username}/{dn} in one pass, each value escaped for a filter."""
    return _PLACEHOLDER.sub(lambda match: escape_filter_chars(values.get(match.group(1), "")), template)


def _attribute(attributes: dict[str, list[bytes]], name: str) -> list[str]:
    """An attribute's values, whatever case the server spelled its name in."""
    for key, values in attributes.items():
        if key.lower() == name.lower():
            return [value.decode("utf-8", "replace") for value in values]
    return []


def _group_name(dn: str, attributes: dict[str, list[bytes]]) -> str:
    names = _attribute(attributes, "cn")
    if names:
        return names[0]
    return str(str2dn(dn)[0][0][1])  # the RDN's value


def _normalized_dn(dn: str) -> str:
    return ",".join(explode_dn(dn)).lower()


def _describe(error: ldap.LDAPError) -> str:
    details = error.args[0] if error.args and isinstance(error.args[0], dict) else {}
    text = " ".join(str(details[key]) for key in ("desc", "info") if details.get(key))
    return text or repr(error)


def _read_password_file(path: Path) -> str:
    try:
        password = path.read_text(encoding="utf-8").rstrip("\r\n")
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError(path, None, "auth.ldap.bind_password_file", f"cannot read the password: {error}") from None
    if not password:
        # An empty password is an unauthenticated bind that succeeds: never send one.
        raise ConfigError(path, None, "auth.ldap.bind_password_file", "the file is empty; write the service password")
    return password
