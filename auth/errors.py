"""The authentication exception tree.

    AuthError
     ├── InvalidCredentials    wrong username or password (never says which)
     ├── InvalidTOTP           wrong, expired or replayed authenticator code
     ├── TOTPNotEnrolled       a second factor is required but the user has none
     ├── AccountDisabled       the account exists, the password is right, but it is disabled
     ├── DirectoryUnavailable  a directory (LDAP) could not be asked
     └── UserAdminError        an administrative change to a user store is refused

Every login-time message is safe to show to the person logging in: none reveals
whether a username exists. ``UserAdminError`` is for operators (the CLI) only.
"""

from __future__ import annotations


class AuthError(Exception):
    """Base class of every authentication failure."""

    default_message = "authentication failed"

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message or self.default_message)


class InvalidCredentials(AuthError):
    default_message = "wrong username or password"


class InvalidTOTP(AuthError):
    default_message = "wrong or expired authenticator code"


class TOTPNotEnrolled(AuthError):
    default_message = "no authenticator is enrolled for this account; ask an administrator"


class AccountDisabled(AuthError):
    default_message = "this account is disabled; ask an administrator"


class DirectoryUnavailable(AuthError):
    default_message = "the user directory is unavailable; try again later"


class UserAdminError(AuthError):
    """A user store refused an administrative change (bad name, user exists, no such user)."""

    default_message = "the user store refused the change"
