"""Hot reload in the running gateway, and the watcher that keeps live sessions within the policies in force.

:func:`reload_context` (an ``app.cleanup_ctx`` entry after authentication's) runs two loops:

- :class:`ConfigReloader` reloads on request (SIGHUP, see :func:`gateway.web.app.serve_until_signalled`)
  and when the config file changes (a digest, polled every ``poll_interval``; a change is acted
  on once two polls agree, so a file caught half-written is not reloaded). A reload loads and
  validates the whole file; an invalid one is refused (log, ``config_reloads_total{result="error"}``,
  audit ``config.reload`` with the error) and the settings in force stay. A valid one replaces
  them at once (:meth:`LiveSettings.replace`; what needs a restart keeps its old value,
  :func:`gateway.reload.merge`), the listeners' admission follows, and every live session is
  decided again. A change of the local users file alone decides the live sessions of local users
  again, without a reload.
- :class:`AccessWatcher` decides every live session of this node again after each reload and, for
  time windows, each ``interval``, against the policies in force and the time: a session still
  allowed goes on untouched, with the terms it started with (clipboard, input recording, idle and
  maximum length are not changed under a running session); one no longer allowed ends, with
  "access changed by the administrator" (outcome ``access_changed``) or, when a policy's hours
  have closed, "outside working hours" (``outside_hours``). A session whose window closes
  within the policy's ``hours_warning`` is warned first through the notice board
  (:class:`~gateway.notices.WindowClosing`). After a reload a local user is decided with their
  entry in the users file as it is now (groups; removed or disabled: no access); otherwise with
  the groups they signed in with.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable, Mapping
from ipaddress import ip_address
from pathlib import Path

from aiohttp import web
from sqlalchemy.exc import SQLAlchemyError

from auth.identity import Identity
from base.errors import ConfigError
from gateway.config import load_config
from gateway.notices import WindowClosing
from gateway.reload import ReloadOutcome, file_signature, merge, write_atomically
from gateway.sessions import LiveSession, SessionControl
from gateway.settings import Settings
from gateway.web.keys import AUDIT, CLOCK, LIVE_SESSIONS, LOGIN, METRICS, NOTICES, SETTINGS, WEB_SESSIONS

log = logging.getLogger(__name__)

ACCESS_CHANGED = "access changed by the administrator"
OUTSIDE_HOURS = "outside working hours"
#: How often the config and users files are looked at, and live sessions decided again (seconds).
POLL_INTERVAL = 1.0
CHECK_INTERVAL = 1.0


class AccessWatcher:
    """Ends the live sessions the policies in force no longer allow; warns before a time window closes."""

    def __init__(self, app: web.Application, interval: float = CHECK_INTERVAL) -> None:
        self.app = app
        self.interval = interval
        self._warned: dict[str, float] = {}  # session id -> the closing time its operator was warned of

    async def run(self) -> None:
        while True:
            try:
                self.check()
            except Exception:  # a bug must not silently stop the checks: say so, and keep watching
                log.exception("access watcher round failed")
            await asyncio.sleep(self.interval)

    def check(self, identities: Mapping[str, Identity | None] | None = None, *, reloaded: bool = False) -> int:
        """One round; returns how many sessions it ended.

        Between reloads only the time changes, so only a closed window ends a session; after a reload
        (``reloaded``) any refusal does. ``identities`` (by session id) replace the ones the sessions
        signed in with; None there: no access.
        """
        settings = self.app[SETTINGS].current
        now = self.app[CLOCK]()
        controls = [control for control in self.app[LIVE_SESSIONS].controls() if not control.terminated.done()]
        self._warned = {key: value for key, value in self._warned.items()
                        if key in {control.session.id for control in controls}}
        ended = 0
        for control in controls:
            session = control.session
            identity = (identities or {}).get(session.id, _signed_in(session))
            verdict = self._verdict(settings, session, identity, now)
            if verdict is None:
                self._warn_before_closing(settings, control, identity, now)
            elif reloaded or verdict[0] == "outside_hours":
                cause, reason, why = verdict
                log.info("ending a session the policies no longer allow", extra={"ctx": {
                    "user": session.username, "session": session.id, "target": session.target, "why": why}})
                control.terminate(reason, cause)
                ended += 1
        return ended

    @staticmethod
    def _verdict(settings: Settings, session: LiveSession, identity: Identity | None,
                 now: float) -> tuple[str, str, str] | None:
        """None while the session is allowed; else its outcome label, the reason for people, and why."""
        source = ip_address(session.source)
        if identity is None:
            return "access_changed", ACCESS_CHANGED, f"{session.username} is no longer a user, or is disabled"
        if not settings.netacl.is_allowed(source):
            return "access_changed", ACCESS_CHANGED, f"source {source} is no longer in network.allow"
        if session.target not in settings.config.targets:
            return "access_changed", ACCESS_CHANGED, f"target {session.target} is no longer configured"
        decision = settings.policies.decide(identity, source, session.target, now)
        if decision.allowed:
            return None
        if decision.outside_hours:
            return "outside_hours", OUTSIDE_HOURS, decision.reason
        return "access_changed", ACCESS_CHANGED, decision.reason

    def _warn_before_closing(self, settings: Settings, control: SessionControl, identity: Identity | None,
                             now: float) -> None:
        session = control.session
        if identity is None:
            return
        source = ip_address(session.source)
        decision = settings.policies.decide(identity, source, session.target, now)
        hours = decision.policy.hours if decision.policy is not None else None
        closing = hours.closing(now) if hours is not None else None
        if hours is None or closing is None or closing - now > hours.warning or self._warned.get(session.id) == closing:
            return
        if settings.policies.decide(identity, source, session.target, closing).allowed:
            return  # another policy takes over when this one's hours end
        self._warned[session.id] = closing
        self.app[METRICS].window_warnings_total.inc()
        log.info("warning of a closing time window", extra={"ctx": {
            "user": session.username, "session": session.id, "closing": hours.local_time(closing)}})
        self.app[NOTICES].post_nowait(session.username, WindowClosing(closing, session.target))


def _signed_in(session: LiveSession) -> Identity:
    return Identity(session.username, session.groups, False, "")


class ConfigReloader:
    """Reloads the configuration on request and when its file (or the users file) changes; see the module docstring."""

    def __init__(self, app: web.Application, watcher: AccessWatcher, poll_interval: float = POLL_INTERVAL) -> None:
        self.app = app
        self.watcher = watcher
        self.poll_interval = poll_interval
        config = app[SETTINGS].current.config
        self.files = (config.path,) + ((config.auth.local.users_file,) if config.auth.local is not None else ())
        #: Called with the new settings after each successful reload (the listeners' admission follows them).
        self.on_replace: list[Callable[[Settings], None]] = []
        #: Where the outcome of each reload is written for ``deskgate config reload`` (set by ``deskgate serve``).
        self.status_file: Path | None = None
        self.last: ReloadOutcome | None = None
        self._applied = self._signatures()
        self._seen = self._applied
        self._lock = asyncio.Lock()
        self._requests: set[asyncio.Task[ReloadOutcome]] = set()

    def request(self, trigger: str = "signal") -> None:
        """Reload in the background (from a signal handler)."""
        task = asyncio.get_running_loop().create_task(self.reload(trigger))
        self._requests.add(task)
        task.add_done_callback(self._requests.discard)

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self.poll_interval)
            try:
                await self.poll()
            except Exception:
                log.exception("config file watch round failed")

    async def poll(self) -> ReloadOutcome | None:
        """Act on a changed file once two looks agree on its content: reload the config, or decide local users again."""
        seen, self._seen = self._seen, self._signatures()
        if self._seen == self._applied or self._seen != seen:
            return None
        async with self._lock:
            if self._signatures() == self._applied:  # a signal's reload got there first
                return None
            if self._seen[0] != self._applied[0]:
                return await self._reload("file")
            self._applied = self._seen
            ended = await self._decide_again()
            log.info("users file changed", extra={"ctx": {"file": str(self.files[-1]), "sessions_ended": ended}})
            return None

    async def reload(self, trigger: str) -> ReloadOutcome:
        """Load, validate and apply the config file; refuse it whole when it is invalid."""
        async with self._lock:
            return await self._reload(trigger)

    async def _reload(self, trigger: str) -> ReloadOutcome:
        started = time.time()
        self._applied = self._seen = self._signatures()
        live = self.app[SETTINGS]
        metrics = self.app[METRICS]
        try:
            config, changed, kept = merge(live.current.config, load_config(live.current.config.path))
            settings = Settings.from_config(config)
        except ConfigError as error:
            metrics.config_reloads_total.labels(result="error").inc()
            log.error("configuration reload refused; the previous configuration stays in force",
                      extra={"ctx": {"trigger": trigger, "error": str(error)}})
            return await self._finish(ReloadOutcome(trigger, started, "error", error=str(error)))
        live.replace(settings)
        for follow in self.on_replace:
            follow(settings)
        metrics.config_reloads_total.labels(result="ok").inc()
        log.info("configuration reloaded", extra={"ctx": {"trigger": trigger, "changed": ",".join(changed)}})
        if kept:
            log.warning("configuration changes that need a restart were not applied; the old values stay",
                        extra={"ctx": {"sections": ",".join(kept)}})
        ended = await self._decide_again()
        return await self._finish(ReloadOutcome(trigger, started, "ok", changed, kept, sessions_ended=ended))

    async def _decide_again(self) -> int:
        """Decide every live session again, local users with their entry in the users file now; how many ended."""
        try:
            identities = await self._local_identities()
        except SQLAlchemyError as error:  # the database is away: decide with the groups people signed in with
            log.warning("cannot look up the users of live sessions: %s", error)
            identities = {}
        return self.watcher.check(identities, reloaded=True)

    async def _finish(self, outcome: ReloadOutcome) -> ReloadOutcome:
        self.last = outcome
        try:
            await self.app[AUDIT].record("config.reload", user=None, source=None, target=str(self.files[0]),
                                         outcome=outcome.result, reason=outcome.error, trigger=outcome.trigger,
                                         changed=list(outcome.changed), restart_needed=list(outcome.kept),
                                         sessions_ended=outcome.sessions_ended, error=outcome.error)
        except SQLAlchemyError as error:  # the reload stands; the log line is its record
            log.error("cannot audit a configuration reload: %s", error)
        if self.status_file is not None:
            try:
                write_atomically(self.status_file, outcome.to_json())
            except OSError as error:
                log.error("cannot write the reload status file %s: %s", self.status_file, error)
        return outcome

    async def _local_identities(self) -> dict[str, Identity | None]:
        """Each live session of a local user, with that user's entry in the users file now."""
        users = self.app[LOGIN].local_users
        if users is None:
            return {}
        identities: dict[str, Identity | None] = {}
        for session in self.app[LIVE_SESSIONS]:
            web_session = await self.app[WEB_SESSIONS].get(session.web_session_id)
            if web_session is None or web_session.identity.backend != "local":
                continue
            try:
                entry = users.get(session.username)
            except ConfigError as error:  # an invalid users file changes nobody's access
                log.error("cannot read the users file: %s", error)
                return {}
            identities[session.id] = None if entry is None or entry.disabled else entry.identity()
        return identities

    def _signatures(self) -> tuple[bytes | None, ...]:
        return tuple(file_signature(path) for path in self.files)


RELOADER = web.AppKey("reloader", ConfigReloader)


async def reload_context(app: web.Application) -> AsyncIterator[None]:
    """``app.cleanup_ctx`` entry after authentication's: the reloader and the access watcher, until shutdown."""
    watcher = AccessWatcher(app)
    reloader = app[RELOADER] = ConfigReloader(app, watcher)
    tasks = [asyncio.create_task(watcher.run(), name="deskgate-access-watcher"),
             asyncio.create_task(reloader.run(), name="deskgate-config-watch")]
    try:
        yield
    finally:
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

