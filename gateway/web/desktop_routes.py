"""``GET /ws/vnc/{target}``: the WebSocket that carries one desktop session.

The browser's WebSocket messages are capped at the longest legitimate RFB client message
(:attr:`BrowserLimits.largest_message`: a ClientCutText at the cut-text limit, 1 MiB and
8 bytes): aiohttp buffers a whole message before the session sees it, so the cap bounds
that buffer, and noVNC, which flushes every 10 KiB, never comes near it. A longer message
ends the session with close code 1009. Compression (permessage-deflate) is never
negotiated: inflating and deflating would cost CPU per byte on the throughput path, and a
few compressed bytes could carry a whole message of input.

Each session is listed in the session directory for every node's supervisors from the moment
it opens until it ends (:mod:`gateway.session_directory`); listing it is also where a target's
``max_sessions`` is kept, across nodes. A session refused there (the target is in use) is
refused after the WebSocket is accepted: it closes with :attr:`CloseCode.IN_USE` and the reason,
which the page shows. The page first asks ``GET /api/v1/targets/{target}/check``, which answers
every refusal it can foresee (no such desktop, no policy, the node draining or its recording storage
nearly full, in use) with its reason, so that the
operator reads why rather than a lost connection.

A session that ends for idleness or its maximum length ends the web sign-in that opened it too
(:attr:`CloseCode.signs_out`), before the page hears of it: its "Reconnect" leads to the login page.
"""

from __future__ import annotations

import logging
import time

from aiohttp import web
from sqlalchemy.exc import SQLAlchemyError

from auth.websession import WebSession
from gateway.desktop import DesktopSession
from gateway.drain import DRAIN, NODE_DRAINING
from gateway.errors import TargetInUse
from gateway.i18n import translator
from gateway.policy import Policy
from gateway.rfb.browser_limits import BrowserLimits
from gateway.session_watch import CloseCode, SessionEnded, close_reason
from gateway.sessions import LiveSession
from gateway.settings import Settings
from gateway.web.keys import (
    AUDIT,
    CLOCK,
    DISK_SPACE,
    JUMP_HOSTS,
    LIVE_SESSIONS,
    METRICS,
    NOTICES,
    RECORDINGS,
    SESSION_DIRECTORY,
    SETTINGS,
)
from gateway.web.messages import request_language, say
from gateway.web.security import (
    client_address,
    current_session,
    error_json,
)
from gateway.web.session_rules import refuse_in_use, sign_out_after, websocket_caller

log = logging.getLogger(__name__)
routes = web.RouteTableDef()

#: What each browser may send (the WebSocket message cap is its largest message).
BROWSER_LIMITS = BrowserLimits()


async def _admit(request: web.Request, session: WebSession, settings: Settings, name: str) -> Policy | web.Response:
    """The policy that lets the caller open desktop ``name`` from here, or the refusal (audited and counted)."""
    app = request.app
    metrics = app[METRICS]
    if name not in settings.config.targets or name not in settings.vnc_endpoints:
        return error_json(404, say(request, "there is no desktop called {name}", name=repr(name)))
    source = client_address(request)
    decision = settings.policies.decide(session.identity, source, name, app[CLOCK]())
    if not decision.allowed or decision.policy is None:
        metrics.policy_denied_total.inc()
        metrics.sessions_total.labels(protocol="vnc", outcome="denied").inc()
        await app[AUDIT].record("session.open", user=session.identity.username, source=source, target=name,
                                outcome="denied", reason=decision.reason, protocol="vnc")
        if decision.outside_hours:
            return error_json(403, say(request, "{name} is outside its working hours: {reason}", name=name,
                                                  reason=decision.reason))
        return error_json(403, say(request, "you may not open {name} from here: {reason}", name=name, reason=decision.reason))
    return decision.policy


def _node_refusal(request: web.Request) -> tuple[CloseCode, str] | None:
    """Why this node takes no new desktop now: it drains, or recording storage is nearly full; None when it does."""
    if request.app[DRAIN].draining:
        return CloseCode.DRAINING, NODE_DRAINING
    disk_full = request.app[DISK_SPACE].refusal
    return None if disk_full is None else (CloseCode.DISK_FULL, disk_full)


async def _refuse_on_node(request: web.Request, username: str, target: str, refusal: tuple[CloseCode, str]) -> None:
    """Count, log and audit a desktop refused by :func:`_node_refusal`."""
    code, reason = refusal
    metrics = request.app[METRICS]
    metrics.sessions_refused_total.labels(reason=code.outcome).inc()
    metrics.sessions_total.labels(protocol="vnc", outcome=code.outcome).inc()
    volumes = ", ".join(sorted(request.app[DISK_SPACE].low_volumes)) if code is CloseCode.DISK_FULL else None
    log.warning("desktop refused: %s", code.outcome, extra={"ctx": {"user": username, "target": target,
                                                                   "volumes": volumes}})
    await request.app[AUDIT].record("session.open", user=username, source=client_address(request), target=target,
                                    outcome=code.outcome, reason=reason, protocol="vnc",
                                    **({"volumes": volumes} if volumes else {}))


@routes.get("/api/v1/targets/{target}/check")
async def check_desktop(request: web.Request) -> web.Response:
    """Whether the caller may open this desktop now: 200, or 403/404/409 with the reason the page shows."""
    session = current_session(request)
    if session is None:
        return error_json(401, say(request, "log in first"))
    settings = request.app[SETTINGS].current
    name = request.match_info["target"]
    admitted = await _admit(request, session, settings, name)
    if isinstance(admitted, web.Response):
        return admitted
    on_node = _node_refusal(request)
    if on_node is not None:
        await _refuse_on_node(request, session.identity.username, name, on_node)
        return error_json(503, on_node[1])
    max_sessions = settings.config.targets[name].max_sessions
    if max_sessions is not None:
        holders = tuple(await request.app[SESSION_DIRECTORY].holders(name))
        if len(holders) >= max_sessions:
            refusal = TargetInUse(name, max_sessions, holders, session.identity.username)
            await refuse_in_use(request, refusal, "vnc")
            return error_json(409, refusal.explain(translator(request_language(request))))
    return web.json_response({"target": name, "available": True})


@routes.get("/ws/vnc/{target}")
async def desktop_socket(request: web.Request) -> web.StreamResponse:
    app = request.app
    metrics = app[METRICS]
    name = request.match_info["target"]
    session = websocket_caller(request)
    if isinstance(session, web.Response):
        return session
    settings = app[SETTINGS].current
    policy = await _admit(request, session, settings, name)
    if isinstance(policy, web.Response):
        return policy
    endpoint = settings.vnc_endpoints[name]
    source = client_address(request)
    user = session.identity.username
    audit = app[AUDIT]

    # + 1: aiohttp refuses a message of max_msg_size bytes or more.
    ws = web.WebSocketResponse(protocols=("binary",), max_msg_size=BROWSER_LIMITS.largest_message + 1,
                               heartbeat=30.0, compress=False)
    if not ws.can_prepare(request).ok:
        return error_json(400, "expected a WebSocket upgrade")
    await ws.prepare(request)
    on_node = _node_refusal(request)
    if on_node is not None:  # live sessions go on
        await _refuse_on_node(request, user, name, on_node)
        await ws.close(code=on_node[0], message=close_reason(on_node[1]))
        return ws

    registry = app[LIVE_SESSIONS]
    live = LiveSession(id=registry.new_id(), protocol="vnc", username=user, source=str(source), target=name,
                       web_session_id=session.id, groups=session.identity.groups,
                       display_name=session.identity.display_name)
    # Listed (which claims a place on the target) and audited before any byte reaches the target: a session
    # the audit log cannot hold does not start, and none runs unseen by the supervisors.
    directory = app[SESSION_DIRECTORY]
    try:
        await directory.publish(live, settings.config.targets[name].max_sessions)
    except TargetInUse as refusal:
        await refuse_in_use(request, refusal, "vnc")
        await ws.close(code=CloseCode.IN_USE, message=close_reason(refusal.reason))
        return ws
    try:
        await audit.record("session.open", user=user, source=source, target=name, outcome="allowed",
                           reason=f"policy {policy.name}", protocol="vnc", session=live.id,
                           **({"display_name": live.display_name} if live.display_name is not None else {}))
    except BaseException:
        await directory.withdraw(live.id)
        raise
    control = registry.add(live)

    async def before_close(ended: SessionEnded) -> None:
        registry.remove(live)  # no more heartbeats: should the withdrawal below fail, the row expires
        try:
            await directory.withdraw(live.id)
        except SQLAlchemyError as error:
            log.warning("cannot withdraw a session from the directory: %s", error,
                        extra={"ctx": {"session": live.id}})
        await sign_out_after(request, session, live, ended)

    started = time.monotonic()
    try:
        ended = await DesktopSession(ws, endpoint, policy, live, control, metrics, app[RECORDINGS],
                                     app[NOTICES], browser_limits=BROWSER_LIMITS, before_close=before_close,
                                     jumps=app[JUMP_HOSTS]).run()
    finally:
        registry.remove(live)  # when the session failed before its end (remove is idempotent)
    duration = time.monotonic() - started
    outcome = ended.code.outcome
    metrics.sessions_total.labels(protocol="vnc", outcome=outcome).inc()
    metrics.session_duration_seconds.observe(duration)
    await audit.record("session.close", user=user, source=source, target=name, outcome=outcome,
                       reason=ended.reason, protocol="vnc", session=live.id, recording=control.recording_id,
                       duration=round(duration, 3))
    return ws
