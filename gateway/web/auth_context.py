"""Authentication services, built on the database at start-up, and the watcher that keeps them honest.

:func:`auth_context` (an ``app.cleanup_ctx`` entry after the database's) builds the login
service and the web-session store, then runs :class:`SessionWatcher` until shutdown. Every
``interval`` seconds the watcher closes this node's live desktops, and notice streams, whose
web session has ended — logged out or disabled on any node, or expired — with the reason;
ends this node's desktops someone asked to end from any node (the session directory's end
requests: "ended by S: reason"); keeps the web sessions of open desktops alive (a desktop in
use is activity, though its page is quiet) and, every ``sync_interval``, their rows in the
session directory; probes the LDAP directory for ``deskgate_ldap_up``; and purges stale rows.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from aiohttp import web
from sqlalchemy.exc import SQLAlchemyError

from auth.accounts import DisabledAccounts
from auth.ldap import LDAPBackend
from auth.local import LocalUserStore
from auth.login import LocalBackend, LoginPolicy, LoginService, PasswordBackend
from auth.ratelimit import LoginThrottle
from auth.secretbox import SecretBox
from auth.totp import TOTPVerifier
from auth.totp_store import DatabaseUsedCodes, Enrollments, TOTPSecrets
from auth.websession import WebSessionStore
from gateway.sessions import LiveSession
from gateway.web.keys import (
    AUDIT,
    CLOCK,
    LDAP,
    LIVE_SESSIONS,
    LOGIN,
    METRICS,
    NOTICES,
    SESSION_DIRECTORY,
    SETTINGS,
    STORE,
    WEB_SESSIONS,
)

log = logging.getLogger(__name__)

#: How often the watcher looks for ended sign-ins and end requests: a session ends within about this.
REVOCATION_CHECK_INTERVAL = 1.0
LDAP_PROBE_INTERVAL = 30.0
PURGE_INTERVAL = 300.0


def build_auth(app: web.Application) -> None:
    """Put the login service, the web sessions and (if configured) the LDAP backend into ``app``."""
    config, store, clock, metrics = app[SETTINGS].current.config, app[STORE], app[CLOCK], app[METRICS]
    auth = config.auth
    local_users = LocalUserStore(auth.local.users_file) if auth.local is not None else None
    available: dict[str, PasswordBackend] = {}
    if local_users is not None:
        available["local"] = LocalBackend(local_users, metrics)
    metrics.ldap_configured.set(0 if auth.ldap is None else 1)  # the LDAP-down alert asks it first
    if auth.ldap is not None:
        ldap = LDAPBackend(auth.ldap, metrics=metrics)
        app[LDAP] = ldap
        available["ldap"] = ldap
    box = SecretBox.from_file(auth.totp.secret_key_file)
    app[LOGIN] = LoginService(
        [available[name] for name in auth.order],
        local_users=local_users,
        totp_secrets=TOTPSecrets(store, box, clock),
        verifier=TOTPVerifier(DatabaseUsedCodes(store), clock),
        enrollments=Enrollments(store, box, clock),
        throttle=LoginThrottle(store, clock),
        disabled=DisabledAccounts(store, clock),
        audit=app[AUDIT],
        metrics=metrics,
        policy=LoginPolicy(auth.totp.required, auth.ldap.allowed_groups if auth.ldap is not None else None),
    )
    app[WEB_SESSIONS] = WebSessionStore(store, auth.web_session.idle_timeout, auth.web_session.absolute_timeout,
                                        clock)


async def auth_context(app: web.Application) -> AsyncIterator[None]:
    """``app.cleanup_ctx`` entry after the database: build the services, watch sessions until shutdown."""
    build_auth(app)
    watcher = asyncio.create_task(SessionWatcher(app).run(), name="deskgate-session-watcher")
    try:
        yield
    finally:
        watcher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watcher


class SessionWatcher:
    """The periodic checks of the module docstring; each round is :meth:`check`."""

    def __init__(self, app: web.Application, interval: float = REVOCATION_CHECK_INTERVAL) -> None:
        self.app = app
        self.interval = interval
        self._last_keep_alive = float("-inf")
        self._last_sync = float("-inf")
        self._last_probe = float("-inf")
        self._last_purge = float("-inf")

    async def run(self) -> None:
        while True:
            try:
                await self.check()
            except (SQLAlchemyError, OSError) as error:  # the database is away: try again next round
                log.warning("session watcher: %s", error)
            except Exception:  # a bug must not silently stop revocations: say so, and keep watching
                log.exception("session watcher round failed")
            await asyncio.sleep(self.interval)

    async def check(self) -> int:
        """One round; returns how many live sessions it ended."""
        app = self.app
        sessions = app[WEB_SESSIONS]
        now = asyncio.get_running_loop().time()
        registry = app[LIVE_SESSIONS]
        live = list(registry)
        ids = {session.web_session_id for session in live}
        ended = await sessions.why_ended(ids | app[NOTICES].web_session_ids())
        app[NOTICES].end_web_sessions(ended)
        for session in live:
            reason = ended.get(session.web_session_id)
            if reason is not None:
                log.info("ending a session whose sign-in ended", extra={"ctx": {
                    "user": session.username, "session": session.id, "reason": reason}})
                registry.terminate(session.id, reason)
        ended_on_request = await self._end_requested(live)
        await self._journal_posted_events(live)
        if sessions.clock() - self._last_keep_alive >= sessions.touch_interval:  # on the sessions' own clock
            self._last_keep_alive = sessions.clock()
            await sessions.keep_alive(ids - ended.keys())
        directory = app[SESSION_DIRECTORY]
        if now - self._last_sync >= directory.sync_interval:
            self._last_sync = now
            await directory.sync(registry.controls())
        ldap = app.get(LDAP)
        if ldap is not None and now - self._last_probe >= LDAP_PROBE_INTERVAL:
            self._last_probe = now
            await ldap.probe()
        if now - self._last_purge >= PURGE_INTERVAL:
            self._last_purge = now
            await self._purge()
        return len([session for session in live if session.web_session_id in ended]) + ended_on_request

    async def _end_requested(self, live: list[LiveSession]) -> int:
        """End this node's sessions someone asked to end (on any node); returns how many."""
        registry = self.app[LIVE_SESSIONS]
        requests = await self.app[SESSION_DIRECTORY].end_requests(session.id for session in live)
        ended = [session_id for session_id, request in requests.items() if registry.end(session_id, request)]
        for session_id in ended:
            log.info("ending a session on request", extra={"ctx": {
                "session": session_id, "by": requests[session_id].by, "reason": requests[session_id].reason}})
        return len(ended)

    async def _journal_posted_events(self, live: list[LiveSession]) -> None:
        """Write the journal events other nodes posted for this node's sessions (a live viewer's ``viewed_by``)."""
        registry = self.app[LIVE_SESSIONS]
        for posted in await self.app[SESSION_DIRECTORY].take_events(session.id for session in live):
            if not registry.journal(posted.session_id, posted.type, posted.fields):
                log.warning("a journal event for a session without a journal was lost", extra={"ctx": {
                    "session": posted.session_id, "type": posted.type}})

    async def _purge(self) -> None:
        login = self.app[LOGIN]
        await self.app[WEB_SESSIONS].purge()
        await login.enrollments.purge_expired()
        await login.throttle.purge()
        await self.app[SESSION_DIRECTORY].purge()
        await self.app[NOTICES].purge()
