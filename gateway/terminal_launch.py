"""Starting an authorised terminal session, whatever the operator's side (browser WebSocket or native SSH).

:func:`launch_terminal` is what ``/ws/ssh/{target}`` and the native SSH listener share once a
person is signed in and a policy allows the target: the node must take new sessions (not
draining: close code 4015; recording storage not nearly full: 4016), the session is listed
in the directory (which keeps the target's ``max_sessions``: 4013) and audited before any
byte reaches the target, registered for the watchdog and the supervisors, its output offered
to live viewers (:class:`~gateway.terminal_tail.TerminalTails`), and, at its end, counted,
withdrawn and audited. Every refusal is counted (``sessions_refused_total{reason}``,
``sessions_total{protocol="ssh"}``), logged and audited as ``session.open``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv6Address

from aiohttp import web
from sqlalchemy.exc import SQLAlchemyError

from auth.identity import Identity
from gateway.disk_space import NEARLY_FULL
from gateway.drain import DRAIN
from gateway.errors import TargetInUse
from gateway.policy import Policy
from gateway.reach import SshEndpoint
from gateway.session_watch import CloseCode, SessionEnded
from gateway.sessions import LiveSession
from gateway.terminal import OperatorTerminal, TerminalSession
from gateway.terminal_tail import TERMINAL_TAILS
from gateway.web.keys import (
    AUDIT,
    DISK_SPACE,
    JUMP_HOSTS,
    LIVE_SESSIONS,
    METRICS,
    NOTICES,
    RECORDINGS,
    SESSION_DIRECTORY,
    SETTINGS,
)

log = logging.getLogger(__name__)

#: What an operator opening a terminal on a draining node reads.
TERMINAL_NODE_DRAINING = "this gateway node is restarting; open the terminal again in a moment"
PROTOCOL = "ssh"


@dataclass(frozen=True, slots=True)
class TerminalRequest:
    """Who opens which terminal target, from where, under which policy, and the sign-in behind it."""

    identity: Identity
    source: IPv4Address | IPv6Address
    target: str
    policy: Policy
    web_session_id: str
    channel: str  # how the operator reached the gateway: web or ssh (audited)


def node_refusal(app: web.Application) -> tuple[CloseCode, str] | None:
    """Why this node takes no new terminal now (draining, or recording storage nearly full); None when it does."""
    if app[DRAIN].draining:
        return CloseCode.DRAINING, TERMINAL_NODE_DRAINING
    return None if app[DISK_SPACE].refusal is None else (CloseCode.DISK_FULL, NEARLY_FULL)


async def refuse(app: web.Application, request: TerminalRequest, code: CloseCode, reason: str,
                 refused_as: str | None = None, **detail: object) -> SessionEnded:
    """Count (``sessions_refused_total{reason=refused_as}``, the close code's outcome by default), log and audit a
    terminal refused before it started; returns the end to tell the operator."""
    metrics = app[METRICS]
    metrics.sessions_refused_total.labels(reason=refused_as or code.outcome).inc()
    metrics.sessions_total.labels(protocol=PROTOCOL, outcome=code.outcome).inc()
    username = request.identity.username
    log.warning("terminal refused: %s", code.outcome, extra={"ctx": {"user": username, "target": request.target,
                                                                    "channel": request.channel}})
    await app[AUDIT].record("session.open", user=username, source=request.source, target=request.target,
                            outcome=code.outcome, reason=reason, protocol=PROTOCOL, channel=request.channel,
                            **detail)
    return SessionEnded(code, reason)


async def launch_terminal(app: web.Application, operator: OperatorTerminal, request: TerminalRequest,
                          after: Callable[[LiveSession, SessionEnded], Awaitable[None]] | None = None) -> SessionEnded:
    """Run one terminal session for ``request`` on ``operator``'s side to its end (see the module docstring).

    ``after`` runs once the session has ended and was withdrawn, before its close is audited
    (the web's sign-out after an idle end). A refusal closes the operator's side with its code.
    """
    settings = app[SETTINGS].current
    target = settings.config.targets[request.target]
    endpoint = SshEndpoint.from_target(target, settings.config.targets)
    on_node = node_refusal(app)
    if on_node is not None:
        code, reason = on_node
        volumes = ", ".join(sorted(app[DISK_SPACE].low_volumes)) if code is CloseCode.DISK_FULL else None
        ended = await refuse(app, request, code, reason, **({"volumes": volumes} if volumes else {}))
        await operator.close(ended)
        return ended
    identity = request.identity
    registry, directory, audit, metrics = app[LIVE_SESSIONS], app[SESSION_DIRECTORY], app[AUDIT], app[METRICS]
    live = LiveSession(id=registry.new_id(), protocol=PROTOCOL, username=identity.username, source=str(request.source),
                       target=request.target, web_session_id=request.web_session_id, groups=identity.groups,
                       display_name=identity.display_name)
    try:
        await directory.publish(live, target.max_sessions)
    except TargetInUse as refusal:
        ended = await refuse(app, request, CloseCode.IN_USE, refusal.reason, refusal.metric_reason,
                             max_sessions=refusal.max_sessions, holders=list(refusal.holders))
        await operator.close(ended)
        return ended
    try:
        await audit.record("session.open", user=identity.username, source=request.source, target=request.target,
                           outcome="allowed", reason=f"policy {request.policy.name}", protocol=PROTOCOL,
                           session=live.id, channel=request.channel)
    except BaseException:
        await directory.withdraw(live.id)
        raise
    control = registry.add(live)
    tails = app[TERMINAL_TAILS]
    tail = tails.open(live.id)
    started = time.monotonic()
    try:
        ended = await TerminalSession(operator, endpoint, request.policy, control, metrics, app[RECORDINGS],
                                      app[NOTICES], audit, jumps=app[JUMP_HOSTS], tail=tail).run()
    finally:
        tails.close(live.id)
        registry.remove(live)
    duration = time.monotonic() - started
    metrics.sessions_total.labels(protocol=PROTOCOL, outcome=ended.code.outcome).inc()
    metrics.session_duration_seconds.observe(duration)
    try:
        await directory.withdraw(live.id)
    except SQLAlchemyError as error:
        log.warning("cannot withdraw a session from the directory: %s", error, extra={"ctx": {"session": live.id}})
    if after is not None:
        await after(live, ended)
    await audit.record("session.close", user=identity.username, source=request.source, target=request.target,
                       outcome=ended.code.outcome, reason=ended.reason, protocol=PROTOCOL, session=live.id,
                       recording=control.recording_id, duration=round(duration, 3), channel=request.channel)
    return ended
