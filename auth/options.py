"""The options of authentication, validated once by the gateway's configuration (``auth:``)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True, slots=True)
class LocalAuthConfig:
    users_file: Path


@dataclass(frozen=True, slots=True)
class LDAPConfig:
    url: str
    start_tls: bool
    bind_dn: str | None
    bind_password_file: Path | None
    user_base: str
    user_filter: str
    group_base: str | None
    group_filter: str | None
    timeout: float
    ca_file: Path | None = None  # CAs to trust for the directory's certificate; None: libldap's (ldap.conf)
    # Directory users must be in one of these groups to log in (or enroll); None: anyone the directory knows.
    allowed_groups: frozenset[str] | None = None
    # Directory users in one of these groups are administrators (and may log in, whatever allowed_groups says).
    admin_groups: frozenset[str] = frozenset()
    # The attribute holding the name people know a user by (Unicode); ``cn`` when the entry lacks it.
    display_name_attribute: str = "displayName"


@dataclass(frozen=True, slots=True)
class TOTPConfig:
    required: bool
    issuer: str
    secret_key_file: Path  # AES key sealing TOTP secrets in the database; created (0600) if missing


@dataclass(frozen=True, slots=True)
class WebSessionConfig:
    idle_timeout: float
    absolute_timeout: float


@dataclass(frozen=True, slots=True)
class AuthConfig:
    local: LocalAuthConfig | None
    ldap: LDAPConfig | None
    totp: TOTPConfig
    web_session: WebSessionConfig
    order: tuple[str, ...] = ("local", "ldap")  # password backends, tried in this order (configured ones only)
