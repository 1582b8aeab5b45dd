"""The tables of authentication: web sessions, TOTP state, login failures, disabled accounts."""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, Index, Integer, String, Table, Text

from base.db import UTCDateTime, metadata

#: Web sessions, by the SHA-256 of their cookie id (a copy of the table lets nobody in); see auth.websession.
web_sessions = Table(
    "web_sessions",
    metadata,
    Column("id_hash", String(64), primary_key=True),
    Column("username", String(255), nullable=False),
    Column("identity", Text, nullable=False),  # JSON {"groups", "admin", "backend"}
    Column("source", String(64), nullable=False),
    Column("created", UTCDateTime, nullable=False),
    Column("last_seen", UTCDateTime, nullable=False),
    Column("ended", UTCDateTime, nullable=True),  # set by logout, user disable, admin action
    Column("end_reason", Text, nullable=True),
    Index("ix_web_sessions_username", "username"),
    Index("ix_web_sessions_last_seen", "last_seen"),
)

#: TOTP secrets, sealed (AES-256-GCM, key from auth.totp.secret_key_file); see auth.totp_store.
totp_secrets = Table(
    "totp_secrets",
    metadata,
    Column("username", String(255), primary_key=True),
    Column("secret", Text, nullable=False),
    Column("enrolled", UTCDateTime, nullable=False),
)

#: The last TOTP time step accepted per user: a code is usable once, on every node.
totp_used_steps = Table(
    "totp_used_steps",
    metadata,
    Column("username", String(255), primary_key=True),
    Column("last_step", BigInteger, nullable=False),
)

#: Enrollments started at a first login and not yet confirmed with a code.
totp_enrollments = Table(
    "totp_enrollments",
    metadata,
    Column("id_hash", String(64), primary_key=True),
    Column("username", String(255), nullable=False),
    Column("identity", Text, nullable=False),  # JSON, as in web_sessions
    Column("source", String(64), nullable=False),
    Column("secret", Text, nullable=False),  # sealed, as in totp_secrets
    Column("created", UTCDateTime, nullable=False),
    Column("failures", Integer, nullable=False, server_default="0"),
    Index("ix_totp_enrollments_created", "created"),
)

#: Failed logins, one row per failure and scope ("user", "source", "user_source"); see auth.ratelimit.
auth_failures = Table(
    "auth_failures",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("scope", String(16), nullable=False),
    Column("key", String(320), nullable=False),
    Column("time", UTCDateTime, nullable=False),
    Index("ix_auth_failures_scope_key_time", "scope", "key", "time"),
    Index("ix_auth_failures_time", "time"),
)

#: Networks each user recently logged in from: exempt from the per-user lock (see auth.ratelimit).
auth_known_sources = Table(
    "auth_known_sources",
    metadata,
    Column("username", String(255), primary_key=True),
    Column("network", String(64), primary_key=True),
    Column("last_success", UTCDateTime, nullable=False),
)

#: Accounts an administrator disabled (any backend); see auth.accounts.
disabled_accounts = Table(
    "disabled_accounts",
    metadata,
    Column("username", String(255), primary_key=True),
    Column("since", UTCDateTime, nullable=False),
    Column("by", String(255), nullable=False),
    Column("reason", Text, nullable=True),
)
