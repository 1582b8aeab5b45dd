"""The login sequence: password against each backend in turn, then the second factor.

Password hashing (argon2id) and directory lookups are slow and blocking, so they run
in a worker thread, never on the event loop. TOTP secrets are kept in the local
users file whatever backend checked the password.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Protocol

from auth.errors import DirectoryUnavailable, InvalidCredentials, TOTPNotEnrolled
from auth.identity import Identity
from auth.local import LocalUserStore
from auth.totp import TOTPVerifier
from gateway.config import TOTPConfig
from gateway.errors import ConfigError

logger = logging.getLogger(__name__)


class PasswordBackend(Protocol):
    """Anything that can check a username and password (local file now, LDAP later)."""

    def authenticate(self, username: str, password: str) -> Identity:
        """Return the identity, or raise an :class:`~auth.errors.AuthError`; may block."""
        ...


class LoginService:
    """Runs a full login and returns the identity, or raises an AuthError subclass."""

    def __init__(
        self,
        users: LocalUserStore,
        totp: TOTPVerifier,
        totp_config: TOTPConfig,
        backends: Sequence[PasswordBackend] | None = None,
    ) -> None:
        self.users = users
        self.totp = totp
        self.totp_config = totp_config
        # Tried in order; InvalidCredentials from one moves on to the next.
        self.backends: tuple[PasswordBackend, ...] = tuple(backends) if backends is not None else (users,)

    async def login(self, username: str, password: str, totp_code: str) -> Identity:
        """Check password, then (when required, or when the user is enrolled) the TOTP code."""
        identity, secret = await asyncio.to_thread(self._check_password, username, password)
        if secret is None:
            if self.totp_config.required:
                raise TOTPNotEnrolled()
            return identity
        self.totp.verify(identity.username, secret, totp_code)
        return identity

    def _check_password(self, username: str, password: str) -> tuple[Identity, str | None]:
        """Worker-thread part: the first backend that accepts the password, and the user's TOTP secret."""
        try:
            for backend in self.backends:
                try:
                    identity = backend.authenticate(username, password)
                except InvalidCredentials:
                    continue
                return identity, self.users.totp_secret(identity.username)
        except ConfigError as error:  # a broken users file: refuse everyone, tell the operator why
            logger.error("cannot read the users file: %s", error)
            raise DirectoryUnavailable() from error
        raise InvalidCredentials()
