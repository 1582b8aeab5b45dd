"""The authentication exception tree.

    AuthError
     ├── InvalidCredentials    wrong username or password (never says which)
     │    └── UnusableUsername  a name refused before any backend is asked (see auth.names)
     ├── InvalidTOTP           wrong, expired or replayed authenticator code
     ├── EnrollmentRequired    the password is right; the user must enroll an authenticator first
     ├── EnrollmentExpired     the enrollment is unknown, expired or used up: sign in again
     ├── AlreadyEnrolled       an authenticator was enrolled meanwhile (a second enrollment lost the race)
     ├── AccountDisabled       the account exists, the password is right, but it is disabled
     ├── AccessNotGranted      a directory user outside the groups allowed to use the gateway
     ├── RateLimited           too many failures for this user or source: try again later
     ├── ServerBusy            too many password checks in flight and waiting: try again shortly
     ├── DirectoryUnavailable  a directory (LDAP) could not be asked
     ├── TOTPUnavailable       the gateway cannot read the stored authenticator secret
     ├── SecretKeyError        a sealed secret cannot be opened with the key file (operators)
     └── UserAdminError        an administrative change to a user store is refused (operators)

Every login-time message is safe to show to the person logging in: none reveals
whether a username exists. At the login itself, a wrong code, a disabled account and a
refused group are answered exactly like a wrong password (:data:`LOGIN_REFUSED`, see
:func:`auth.login.answer_of`): telling them apart would confirm the password. Their
``reason`` keeps the truth for the audit log. ``SecretKeyError`` and ``UserAdminError``
are for operators (the log, the CLI) only.
"""

from __future__ import annotations

from auth.identity import Identity
from auth.names import COMPATIBILITY_FORM

#: What a person is told of a refused login, whether the password, the code, the account or its groups were
#: refused: the one answer that confirms nothing.
LOGIN_REFUSED = "wrong username or password, or wrong or expired authenticator code; check all three and try again"


class AuthError(Exception):
    """Base class of every authentication failure; ``reason`` is for the audit log, never the user."""

    default_message = "authentication failed"
    default_reason = "authentication failed"

    def __init__(self, message: str | None = None, *, reason: str | None = None) -> None:
        super().__init__(message or self.default_message)
        self.reason = reason or self.default_reason


class InvalidCredentials(AuthError):
    default_message = "wrong username or password"
    default_reason = "wrong username or password"


class UnusableUsername(InvalidCredentials):
    """The typed name holds characters no account name may hold; the message says how to type it."""

    def __init__(self, problem: str) -> None:
        advice = "with the input method off for Latin letters" if problem == COMPATIBILITY_FORM else "exactly"
        super().__init__(f"{problem}; type it as your administrator wrote it, {advice}", reason=problem)


class InvalidTOTP(AuthError):
    default_message = "wrong or expired authenticator code"
    default_reason = "wrong authenticator code"


class EnrollmentRequired(AuthError):
    """The password was accepted, no authenticator is enrolled, and one is required."""

    default_message = "set up your authenticator app to finish signing in"
    default_reason = "no authenticator enrolled"

    def __init__(self, identity: Identity, token: str) -> None:
        super().__init__()
        self.identity = identity
        self.token = token  # the pending enrollment's bearer token, for the browser's cookie


class EnrollmentExpired(AuthError):
    default_message = "setting up your authenticator took too long or failed too often; sign in again"
    default_reason = "enrollment expired or used up"


class AlreadyEnrolled(AuthError):
    default_message = "an authenticator is already set up for this account; sign in with its code"
    default_reason = "an authenticator was enrolled meanwhile"


class AccountDisabled(AuthError):
    default_message = "this account is disabled; ask an administrator"
    default_reason = "account disabled"


class AccessNotGranted(AuthError):
    default_message = "your account is not in a group allowed to use this gateway; ask an administrator"
    default_reason = "not in an allowed group"


class RateLimited(AuthError):
    """Too many recent failures; ``retry_after`` is in whole seconds."""

    default_message = "too many failed sign-ins; wait a little and try again"

    def __init__(self, retry_after: int, scope: str) -> None:
        super().__init__(f"too many failed sign-ins; try again in {retry_after} s",
                         reason=f"rate limited ({scope})")
        self.retry_after = retry_after
        self.scope = scope


class ServerBusy(AuthError):
    """Too many password checks in flight and waiting; ``retry_after`` is in whole seconds."""

    def __init__(self, retry_after: int, reason: str) -> None:
        super().__init__(f"the gateway is busy checking other sign-ins; try again in {retry_after} s",
                         reason=reason)
        self.retry_after = retry_after


class DirectoryUnavailable(AuthError):
    default_message = "the user directory is unavailable; try again later"
    default_reason = "directory unavailable"


class TOTPUnavailable(AuthError):
    default_message = "the gateway cannot check authenticator codes right now; contact your administrator"
    default_reason = "stored authenticator secret unreadable"


class SecretKeyError(AuthError):
    """A key file is unusable, or a sealed value does not open with it; the message says what to do."""

    default_message = "a stored secret cannot be opened with the key file"


class UserAdminError(AuthError):
    """A user store refused an administrative change (bad name, user exists, no such user)."""

    default_message = "the user store refused the change"
