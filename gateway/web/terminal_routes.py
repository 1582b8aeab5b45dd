"""``GET /ws/ssh/{target}``: the WebSocket that carries one terminal session (:mod:`gateway.terminal_messages`).

Checked and ordered like ``/ws/vnc``: signed in, the gateway's own origin, an ssh target the
policy allows from here (refusals audited); then :func:`~gateway.terminal_launch.launch_terminal`
(shared with the native SSH listener) refuses it while the node drains (4015) or recording storage is
nearly full (4016), lists and audits it before the session starts; the session opens its journal,
fail-closed, before any byte reaches the target. The browser's messages are capped at
:data:`MAX_TERMINAL_MESSAGE` bytes (the page cuts longer pastes); a longer one ends the
session with close code 1009. No compression, as for desktops.
"""

from __future__ import annotations

from aiohttp import web

from gateway.session_watch import SessionEnded
from gateway.sessions import LiveSession
from gateway.terminal import WebSocketTerminal
from gateway.terminal_launch import TerminalRequest, launch_terminal
from gateway.web.keys import AUDIT, CLOCK, METRICS, SETTINGS
from gateway.web.messages import say
from gateway.web.security import client_address, error_json
from gateway.web.session_rules import sign_out_after, websocket_caller

routes = web.RouteTableDef()

#: The longest WebSocket message a browser terminal may send: a paste the page did not cut is refused.
MAX_TERMINAL_MESSAGE = 64 * 1024


@routes.get("/ws/ssh/{target}")
async def terminal_socket(request: web.Request) -> web.StreamResponse:
    app = request.app
    metrics = app[METRICS]
    name = request.match_info["target"]
    session = websocket_caller(request)
    if isinstance(session, web.Response):
        return session
    settings = app[SETTINGS].current
    target = settings.config.targets.get(name)
    if target is None or target.protocol != "ssh":
        return error_json(404, say(request, "there is no terminal target called {name}", name=repr(name)))
    source = client_address(request)
    user = session.identity.username
    audit = app[AUDIT]
    decision = settings.policies.decide(session.identity, source, name, app[CLOCK]())
    if not decision.allowed or decision.policy is None:
        metrics.policy_denied_total.inc()
        metrics.sessions_total.labels(protocol="ssh", outcome="denied").inc()
        await audit.record("session.open", user=user, source=source, target=name, outcome="denied",
                           reason=decision.reason, protocol="ssh")
        return error_json(403, say(request, "you may not open {name} from here: {reason}", name=name,
                                   reason=decision.reason))

    # + 1: aiohttp refuses a message of max_msg_size bytes or more.
    ws = web.WebSocketResponse(max_msg_size=MAX_TERMINAL_MESSAGE + 1, heartbeat=30.0, compress=False)
    if not ws.can_prepare(request).ok:
        return error_json(400, "expected a WebSocket upgrade")
    await ws.prepare(request)

    opening = TerminalRequest(session.identity, source, name, decision.policy, session.id, channel="web")

    async def after(live: LiveSession, ended: SessionEnded) -> None:
        await sign_out_after(request, session, live, ended)

    await launch_terminal(app, WebSocketTerminal(ws, MAX_TERMINAL_MESSAGE), opening, after)
    return ws
