"""``GET /ws/vnc/{target}``: the WebSocket that carries one desktop session.

The browser's WebSocket messages are capped at the longest legitimate RFB client message
(:attr:`BrowserLimits.largest_message`: a ClientCutText at the cut-text limit, 1 MiB and
8 bytes): aiohttp buffers a whole message before the session sees it, so the cap bounds
that buffer, and noVNC, which flushes every 10 KiB, never comes near it. A longer message
ends the session with close code 1009. Compression (permessage-deflate) is never
negotiated: inflating and deflating would cost CPU per byte on the throughput path, and a
few compressed bytes could carry a whole message of input.

Each session is listed in the session directory for every node's supervisors from the moment
it opens until it ends (:mod:`gateway.session_directory`).
"""

from __future__ import annotations

import logging
import time

from aiohttp import web
from sqlalchemy.exc import SQLAlchemyError

from gateway.desktop import DesktopSession
from gateway.rfb.browser_limits import BrowserLimits
from gateway.sessions import LiveSession
from gateway.web.keys import AUDIT, CLOCK, LIVE_SESSIONS, METRICS, NOTICES, RECORDINGS, SESSION_DIRECTORY, SETTINGS
from gateway.web.security import (
    client_address,
    current_session,
    error_json,
    origin_allowed,
)

log = logging.getLogger(__name__)
routes = web.RouteTableDef()

#: What each browser may send (the WebSocket message cap is its largest message).
BROWSER_LIMITS = BrowserLimits()


@routes.get("/ws/vnc/{target}")
async def desktop_socket(request: web.Request) -> web.StreamResponse:
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
    endpoint = settings.vnc_endpoints.get(name)
    if target is None or endpoint is None:
        return error_json(404, f"there is no desktop called {name!r}")
    source = client_address(request)
    user = session.identity.username
    audit = app[AUDIT]
    decision = settings.policies.decide(session.identity, source, name, app[CLOCK]())
    if not decision.allowed or decision.policy is None:
        metrics.policy_denied_total.inc()
        metrics.sessions_total.labels(protocol="vnc", outcome="denied").inc()
        await audit.record("session.open", user=user, source=source, target=name, outcome="denied",
                           reason=decision.reason, protocol="vnc")
        if decision.outside_hours:
            return error_json(403, f"{name} is outside its working hours: {decision.reason}")
        return error_json(403, f"you may not open {name} from here")

    # + 1: aiohttp refuses a message of max_msg_size bytes or more.
    ws = web.WebSocketResponse(protocols=("binary",), max_msg_size=BROWSER_LIMITS.largest_message + 1,
                               heartbeat=30.0, compress=False)
    if not ws.can_prepare(request).ok:
        return error_json(400, "expected a WebSocket upgrade")
    await ws.prepare(request)

    registry = app[LIVE_SESSIONS]
    live = LiveSession(id=registry.new_id(), protocol="vnc", username=user, source=str(source), target=name,
                       web_session_id=session.id, groups=session.identity.groups)
    # Audited and listed before any byte reaches the target: a session the audit log cannot hold does not
    # start, and none runs unseen by the supervisors.
    await audit.record("session.open", user=user, source=source, target=name, outcome="allowed",
                       reason=f"policy {decision.policy.name}", protocol="vnc", session=live.id)
    directory = app[SESSION_DIRECTORY]
    await directory.publish(live)
    control = registry.add(live)
    started = time.monotonic()
    try:
        ended = await DesktopSession(ws, endpoint, decision.policy, live, control, metrics, app[RECORDINGS],
                                     app[NOTICES], browser_limits=BROWSER_LIMITS).run()
    finally:
        registry.remove(live)  # no more heartbeats: should the withdrawal below fail, the row expires
    duration = time.monotonic() - started
    outcome = ended.code.outcome
    metrics.sessions_total.labels(protocol="vnc", outcome=outcome).inc()
    metrics.session_duration_seconds.observe(duration)
    try:
        await directory.withdraw(live.id)
    except SQLAlchemyError as error:
        log.warning("cannot withdraw a session from the directory: %s", error, extra={"ctx": {"session": live.id}})
    await audit.record("session.close", user=user, source=source, target=name, outcome=outcome,
                       reason=ended.reason, protocol="vnc", session=live.id, recording=control.recording_id,
                       duration=round(duration, 3))
    return ws
