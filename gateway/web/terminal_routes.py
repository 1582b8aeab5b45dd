"""``GET /ws/ssh/{target}``: the WebSocket that carries one terminal session (:mod:`gateway.terminal_messages`).

Checked and ordered like ``/ws/vnc``: signed in, the gateway's own origin, an ssh target the
policy allows from here (refusals audited), then audited and listed in the registry and the
session directory before the session starts; the session opens its journal, fail-closed,
before any byte reaches the target. The browser's messages are capped at
:data:`MAX_TERMINAL_MESSAGE` bytes (the page cuts longer pastes); a longer one ends the
session with close code 1009. No compression, as for desktops.
"""

from __future__ import annotations

import logging
import time

from aiohttp import web
from sqlalchemy.exc import SQLAlchemyError

from gateway.errors import TargetInUse
from gateway.reach import SshEndpoint
from gateway.session_watch import CloseCode, close_reason
from gateway.sessions import LiveSession
from gateway.terminal import TerminalSession, WebSocketTerminal
from gateway.web.keys import (
    AUDIT,
    CLOCK,
    JUMP_HOSTS,
    LIVE_SESSIONS,
    METRICS,
    NOTICES,
    RECORDINGS,
    SESSION_DIRECTORY,
    SETTINGS,
)
from gateway.web.security import client_address, current_session, error_json, origin_allowed
from gateway.web.session_rules import refuse_in_use, sign_out_after

log = logging.getLogger(__name__)
routes = web.RouteTableDef()

#: The longest WebSocket message a browser terminal may send: a paste the page did not cut is refused.
MAX_TERMINAL_MESSAGE = 64 * 1024


@routes.get("/ws/ssh/{target}")
async def terminal_socket(request: web.Request) -> web.StreamResponse:
    app = request.app
    metrics = app[METRICS]
    name = request.match_info["target"]
    session = current_session(request)
    if session is None:
        return error_json(401, "log in first")
    if not origin_allowed(request):
        log.warning("foreign origin refused", extra={"ctx": {"origin": request.headers.get("Origin"),
                                                             "user": session.identity.username}})
        return error_json(403, "this WebSocket may only be opened from the gateway's own pages")
    settings = app[SETTINGS].current
    target = settings.config.targets.get(name)
    if target is None or target.protocol != "ssh":
        return error_json(404, f"there is no terminal target called {name!r}")
    endpoint = SshEndpoint.from_target(target, settings.config.targets)
    source = client_address(request)
    user = session.identity.username
    audit = app[AUDIT]
    decision = settings.policies.decide(session.identity, source, name, app[CLOCK]())
    if not decision.allowed or decision.policy is None:
        metrics.policy_denied_total.inc()
        metrics.sessions_total.labels(protocol="ssh", outcome="denied").inc()
        await audit.record("session.open", user=user, source=source, target=name, outcome="denied",
                           reason=decision.reason, protocol="ssh")
        return error_json(403, f"you may not open {name} from here: {decision.reason}")

    # + 1: aiohttp refuses a message of max_msg_size bytes or more.
    ws = web.WebSocketResponse(max_msg_size=MAX_TERMINAL_MESSAGE + 1, heartbeat=30.0, compress=False)
    if not ws.can_prepare(request).ok:
        return error_json(400, "expected a WebSocket upgrade")
    await ws.prepare(request)

    registry = app[LIVE_SESSIONS]
    live = LiveSession(id=registry.new_id(), protocol="ssh", username=user, source=str(source), target=name,
                       web_session_id=session.id, groups=session.identity.groups)
    # Listed (which claims a place on the target) and audited before any byte reaches the target, as for desktops.
    directory = app[SESSION_DIRECTORY]
    try:
        await directory.publish(live, target.max_sessions)
    except TargetInUse as refusal:
        await refuse_in_use(request, refusal, "ssh")
        await ws.close(code=CloseCode.IN_USE, message=close_reason(refusal.reason))
        return ws
    try:
        await audit.record("session.open", user=user, source=source, target=name, outcome="allowed",
                           reason=f"policy {decision.policy.name}", protocol="ssh", session=live.id)
    except BaseException:
        await directory.withdraw(live.id)
        raise
    control = registry.add(live)
    started = time.monotonic()
    try:
        ended = await TerminalSession(WebSocketTerminal(ws, MAX_TERMINAL_MESSAGE), endpoint, decision.policy,
                                      control, metrics, app[RECORDINGS], app[NOTICES], audit,
                                      jumps=app[JUMP_HOSTS]).run()
    finally:
        registry.remove(live)
    duration = time.monotonic() - started
    outcome = ended.code.outcome
    metrics.sessions_total.labels(protocol="ssh", outcome=outcome).inc()
    metrics.session_duration_seconds.observe(duration)
    try:
        await directory.withdraw(live.id)
    except SQLAlchemyError as error:
        log.warning("cannot withdraw a session from the directory: %s", error, extra={"ctx": {"session": live.id}})
    await sign_out_after(request, session, live, ended)
    await audit.record("session.close", user=user, source=source, target=name, outcome=outcome,
                       reason=ended.reason, protocol="ssh", session=live.id, recording=control.recording_id,
                       duration=round(duration, 3))
    return ws
