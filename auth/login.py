"""The login sequence, with its throttle, audit events and metrics.

1. The login takes its place in line for a password check
   (:class:`~auth.checkgate.PasswordCheckGate`; familiar networks first), or is refused at
   once when the line is full (503, before any write; such refusals are audited at most
   once per ``busy_audit_interval``, with how many there were).
2. The attempt is reserved with the :class:`~auth.ratelimit.LoginThrottle` under the folded
   name (:func:`auth.names.name_key`: every spelling a directory would take for one entry
   counts as that entry), 429 if it must wait. A name no account may have (compatibility,
   control or invisible characters: :func:`auth.names.name_problem`) is then refused,
   counted, before any backend is asked.
3. Once its turn comes (503 if not within ``max_wait``: not counted), the password is tried
   against each backend in the configured order; ``InvalidCredentials`` moves on to the
   next, anything else stops the chain. A directory that cannot be asked fails the login
   closed, even when a later backend might know the name: it must not decide whose account
   a name is. From here on, per-user state is kept under the name the backend returned.
4. The account must not be disabled (in the database, or in the users file), and a directory
   user must be in one of ``auth.ldap.allowed_groups``.
5. The second factor: the user's TOTP secret from the database (a local user's secret found in
   the users file is moved there first, replacing any older one). None enrolled: with TOTP required, an enrollment
   starts (:class:`EnrollmentRequired`) and is confirmed by :meth:`LoginService.confirm_enrollment`.

Every attempt ends in one ``login`` audit event (with the real reason) and one
``auth_attempts_total`` sample. What the person is told is :func:`answer_of` the error:
a wrong code, a disabled account and a refused group are told exactly what a wrong
password is told, after the same password check.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv6Address
from typing import Any, Protocol

from auth.accounts import DisabledAccounts
from auth.checkgate import PasswordCheckGate
from auth.errors import (
    LOGIN_REFUSED,
    AccessNotGranted,
    AccountDisabled,
    AlreadyEnrolled,
    AuthError,
    DirectoryUnavailable,
    EnrollmentExpired,
    EnrollmentRequired,
    InvalidCredentials,
    InvalidTOTP,
    RateLimited,
    SecretKeyError,
    ServerBusy,
    TOTPUnavailable,
    UnusableUsername,
)
from auth.identity import Identity
from auth.local import LocalUserStore
from auth.names import name_problem
from auth.ratelimit import LoginThrottle
from auth.totp import REPLAYED, TOTPVerifier
from auth.totp_store import Enrollments, PendingEnrollment, TOTPSecrets
from base.errors import ConfigError
from base.metrics import Metrics

log = logging.getLogger(__name__)

MAX_USERNAME = 255
MAX_PASSWORD = 1024
#: Failures that count against the throttle; any other refusal is withdrawn from it.
COUNTED = (InvalidCredentials, InvalidTOTP, AccountDisabled, AccessNotGranted)
#: Refusals a person is told of exactly as of a wrong password: telling them apart would confirm the password.
LIKE_A_WRONG_PASSWORD = COUNTED
RESULTS: dict[type[AuthError], str] = {
    InvalidCredentials: "bad_password", UnusableUsername: "bad_username", InvalidTOTP: "bad_totp",
    AccountDisabled: "disabled", AccessNotGranted: "not_granted", DirectoryUnavailable: "directory_unavailable",
    TOTPUnavailable: "error", ServerBusy: "busy", EnrollmentRequired: "enroll", EnrollmentExpired: "enroll_expired",
    AlreadyEnrolled: "bad_totp",
}
IPAddress = IPv4Address | IPv6Address
#: The ``method`` label of a login: by the web's form or API, or by the native SSH listener's keyboard-interactive.
PASSWORD_TOTP = "password+totp"
SSH_PASSWORD_TOTP = "ssh:password+totp"


def answer_of(error: AuthError) -> AuthError:
    """What the person logging in is told of ``error``: one answer for every refusal that could confirm a password.

    A refused name (:class:`UnusableUsername`) keeps its own message: it depends on the name alone.
    """
    if isinstance(error, LIKE_A_WRONG_PASSWORD) and not isinstance(error, UnusableUsername):
        return InvalidCredentials(LOGIN_REFUSED, reason=error.reason)
    return error


class PasswordBackend(Protocol):
    """Anything that can check a username and password (the local file, LDAP)."""

    name: str

    async def authenticate(self, username: str, password: str) -> Identity:
        """Return the identity, or raise an :class:`~auth.errors.AuthError`."""
        ...


class LocalBackend:
    """The users file as a :class:`PasswordBackend`: argon2id in a worker thread."""

    name = "local"

    def __init__(self, users: LocalUserStore, metrics: Metrics | None = None) -> None:
        self.users = users
        self._metrics = metrics

    async def authenticate(self, username: str, password: str) -> Identity:
        started = time.monotonic()
        try:
            return await asyncio.to_thread(self.users.authenticate, username, password)
        except ConfigError as error:  # a broken users file: refuse everyone, tell the operator why
            log.error("cannot read the users file: %s", error)
            raise DirectoryUnavailable() from error
        finally:
            if self._metrics is not None:
                self._metrics.auth_duration_seconds.labels(backend=self.name).observe(time.monotonic() - started)


@dataclass(frozen=True, slots=True)
class LoginPolicy:
    """What a login demands beyond a password."""

    totp_required: bool = True
    ldap_allowed_groups: frozenset[str] | None = None  # None: any directory user


class AuditTrail(Protocol):
    """Where login and enrollment events go (the gateway's hash-chained audit log)."""

    async def record(self, action: str, *, user: object, source: object, target: object = None,
                     outcome: str, reason: str | None = None, **detail: Any) -> object: ...


class LoginService:
    """Runs logins and enrollments; see the module docstring."""

    def __init__(self, backends: Sequence[PasswordBackend], *, local_users: LocalUserStore | None,
                 totp_secrets: TOTPSecrets, verifier: TOTPVerifier, enrollments: Enrollments,
                 throttle: LoginThrottle, disabled: DisabledAccounts, audit: AuditTrail, metrics: Metrics,
                 policy: LoginPolicy, gate: PasswordCheckGate | None = None,
                 busy_audit_interval: float = 60.0) -> None:
        if not backends:
            raise ValueError("at least one password backend is needed")
        self.backends = tuple(backends)
        self.local_users = local_users
        self.totp_secrets = totp_secrets
        self.verifier = verifier
        self.enrollments = enrollments
        self.throttle = throttle
        self.disabled = disabled
        self.audit = audit
        self.metrics = metrics
        self.policy = policy
        self.gate = gate or PasswordCheckGate(metrics=metrics)
        self.busy_audit_interval = busy_audit_interval
        self._busy_refusals = 0  # since the last one audited
        self._busy_audited = float("-inf")

    async def login(self, username: str, password: str, totp_code: str, source: IPAddress,
                    method: str = PASSWORD_TOTP) -> Identity:
        """The identity of a full login; raises an AuthError subclass (audited, counted) otherwise.

        ``method`` labels the attempt in the audit log and ``auth_attempts_total`` (the web's
        :data:`PASSWORD_TOTP`, or the native SSH listener's :data:`SSH_PASSWORD_TOTP`); throttle and checks are the same.
        """
        known: list[Identity] = []
        named = username[:MAX_USERNAME]  # as counted and audited; a longer name is refused anyway
        try:
            admission = self.gate.admit(familiar=await self.throttle.familiar(named, source))
        except ServerBusy as error:
            await self._refused("login", method, named, source, error)
            raise

        async def attempt() -> Identity:
            if not username or len(username) > MAX_USERNAME or not password or len(password) > MAX_PASSWORD:
                raise InvalidCredentials()
            problem = name_problem(username)
            if problem is not None:
                raise UnusableUsername(problem)
            identity = await admission.run(lambda: self._check_password(username, password))
            known.append(identity)
            await self._check_account(identity)
            secret = await self._secret(identity)
            if secret is None:
                if self.policy.totp_required:
                    pending = await self.enrollments.start(identity, str(source))
                    await self.audit.record("totp.enroll", user=identity.username, source=source,
                                            outcome="started", reason="first login without an authenticator")
                    raise EnrollmentRequired(identity, pending.token)
                return identity
            await self.verifier.verify(identity.username, secret, totp_code)
            return identity

        try:
            return await self._settle("login", named, source, attempt, known, method)
        finally:
            admission.leave()  # the place in line, if no check took it (throttled, refused name)

    async def confirm_enrollment(self, token: str, totp_code: str, source: IPAddress) -> Identity:
        """Save a pending enrollment's secret once a code from it checks out; the identity logs in."""
        try:
            pending = await self._pending(token)
        except AuthError as error:
            await self._refused("totp.enroll", "totp_enroll", None, source, error)
            raise
        known = [pending.identity]

        async def attempt() -> Identity:
            await self._check_account(pending.identity)
            username = pending.identity.username
            step = self.verifier.matching_step(pending.secret, totp_code)
            if step is None:
                if not await self.enrollments.record_failure(pending):  # used up: the next try is told to start over
                    raise InvalidTOTP(reason="wrong authenticator code; enrollment used up")
                raise InvalidTOTP()
            if not await self.verifier.used_codes.check_and_mark(username, step):
                raise InvalidTOTP(reason=REPLAYED)
            await self.enrollments.finish(pending)
            if not await self.totp_secrets.add_if_absent(username, pending.secret):
                raise AlreadyEnrolled()
            await self.audit.record("totp.enroll", user=username, source=source, outcome="success",
                                    reason="confirmed with a code", backend=pending.identity.backend)
            return pending.identity

        return await self._settle("totp.enroll", pending.identity.username, source, attempt, known, "totp_enroll")

    async def pending_enrollment(self, token: str) -> PendingEnrollment:
        """The enrollment a browser holds the token of; raises EnrollmentExpired."""
        return await self._pending(token)

    # -- steps -----------------------------------------------------------------------------

    async def _settle(self, action: str, username: str, source: IPAddress,
                      attempt: Callable[[], Awaitable[Identity]], known: list[Identity], method: str) -> Identity:
        """Run ``attempt`` between the throttle's reservation and verdict; audit and count the outcome."""
        try:
            reservation = await self.throttle.reserve(username, source)
        except AuthError as error:
            await self._refused(action, method, username, source, error)
            raise
        try:
            identity = await attempt()
        except AuthError as error:
            if not isinstance(error, COUNTED):
                await self.throttle.withdraw(reservation)
            await self._refused(action, method, known[-1].username if known else username, source, error)
            raise
        except BaseException:
            await self.throttle.withdraw(reservation)
            raise
        await self.throttle.succeeded(reservation)
        self.metrics.auth_attempts_total.labels(method=method, result="ok").inc()
        await self.audit.record("login", user=identity.username, source=source, outcome="success",
                                backend=identity.backend, method=method, groups=sorted(identity.groups))
        return identity

    async def _refused(self, action: str, method: str, username: str | None, source: IPAddress,
                       error: AuthError) -> None:
        result = "rate_limited" if isinstance(error, RateLimited) else RESULTS.get(type(error), "error")
        if isinstance(error, InvalidTOTP) and error.reason == REPLAYED:
            result = "replayed_totp"
        self.metrics.auth_attempts_total.labels(method=method, result=result).inc()
        if isinstance(error, EnrollmentRequired):
            outcome = "pending"
        elif isinstance(error, (InvalidCredentials, InvalidTOTP)):
            outcome = "failure"
        elif isinstance(error, (DirectoryUnavailable, TOTPUnavailable, ServerBusy)):
            outcome = "error"
        else:
            outcome = "denied"
        detail: dict[str, Any] = {}
        if isinstance(error, ServerBusy):  # a flood must not flood the audit log: one event per interval
            self._busy_refusals += 1
            now = self.throttle.clock()
            if now - self._busy_audited < self.busy_audit_interval:
                return
            detail["busy_refusals"], self._busy_refusals, self._busy_audited = self._busy_refusals, 0, now
        await self.audit.record("login", user=username, source=source, outcome=outcome, reason=error.reason,
                                method=method, step=action, **detail)

    async def _check_password(self, username: str, password: str) -> Identity:
        for backend in self.backends:
            try:
                return await backend.authenticate(username, password)
            except InvalidCredentials:
                continue
        raise InvalidCredentials()

    async def _check_account(self, identity: Identity) -> None:
        if await self.disabled.is_disabled(identity.username):
            raise AccountDisabled()
        allowed = self.policy.ldap_allowed_groups
        if identity.backend == "ldap" and allowed is not None and identity.groups.isdisjoint(allowed):
            raise AccessNotGranted()

    async def _secret(self, identity: Identity) -> str | None:
        """The user's TOTP secret from the database, moving a local user's from the users file first."""
        try:
            secret = None
            if identity.backend == "local" and self.local_users is not None:
                secret = await adopt_local_secret(self.local_users, self.totp_secrets, identity.username)
            if secret is None:
                secret = await self.totp_secrets.get(identity.username)
        except SecretKeyError as error:
            log.error("cannot open the TOTP secret of %s: %s", identity.username, error)
            raise TOTPUnavailable() from None
        return secret

    async def _pending(self, token: str) -> PendingEnrollment:
        try:
            pending = await self.enrollments.get(token) if token else None
        except SecretKeyError as error:
            log.error("cannot open a pending enrollment: %s", error)
            raise TOTPUnavailable() from None
        if pending is None:
            raise EnrollmentExpired()
        return pending


async def adopt_local_secret(users: LocalUserStore, totp_secrets: TOTPSecrets, username: str) -> str | None:
    """Move ``username``'s secret, if the users file has one, into the database (sealed); return it.

    A secret in the file is newer than any in the database (moving it removes it from the
    file), so it replaces that one: writing ``totp_secret`` into the file is how a secret is
    handed over. A file that cannot be rewritten (a read-only mount) keeps it, logged.
    """
    secret = await asyncio.to_thread(users.totp_secret, username)
    if secret is None:
        return None
    await totp_secrets.set(username, secret)
    try:
        await asyncio.to_thread(users.clear_totp, username, secret)
    except (OSError, ConfigError) as error:
        log.warning("moved a TOTP secret into the database but could not remove it from the users file: %s",
                    error, extra={"ctx": {"user": username}})
    return secret
