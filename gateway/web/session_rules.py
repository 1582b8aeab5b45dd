"""What desktop and terminal sessions share at their edges: who opens them, a target that is full, and a sign-in
that ends with them.

A session's WebSocket is opened only by a signed-in user from the gateway's own pages
(:func:`websocket_caller`).

A target's ``max_sessions`` is kept when the session is listed (:meth:`SessionDirectory.publish`);
a refusal there is counted and audited here. A session that ends for idleness or its maximum
length (:attr:`CloseCode.signs_out`) ends the web sign-in that opened it too, before the page
hears of it, so that its "Reconnect" leads to the login page.
"""

from __future__ import annotations

import logging

from aiohttp import web
from sqlalchemy.exc import SQLAlchemyError

from auth.websession import WebSession
from gateway.errors import TargetInUse
from gateway.session_watch import CloseCode, SessionEnded
from gateway.sessions import LiveSession
from gateway.web.keys import AUDIT, METRICS, WEB_SESSIONS
from gateway.web.messages import say
from gateway.web.security import client_address, current_session, error_json, origin_allowed

log = logging.getLogger(__name__)


def websocket_caller(request: web.Request) -> WebSession | web.Response:
    """The web session opening a session's WebSocket; a 401 without one, a 403 from a page not the gateway's."""
    session = current_session(request)
    if session is None:
        return error_json(401, say(request, "log in first"))
    if not origin_allowed(request):
        log.warning("foreign origin refused", extra={"ctx": {"origin": request.headers.get("Origin"),
                                                             "user": session.identity.username}})
        return error_json(403, say(request, "this WebSocket may only be opened from the gateway's own pages"))
    return session


async def refuse_in_use(request: web.Request, refusal: TargetInUse, protocol: str) -> None:
    """Count and audit a session refused because its target is full."""
    metrics = request.app[METRICS]
    metrics.sessions_refused_total.labels(reason=refusal.metric_reason).inc()
    metrics.sessions_total.labels(protocol=protocol, outcome=CloseCode.IN_USE.outcome).inc()
    log.info("session refused: in use", extra={"ctx": {"user": refusal.username, "target": refusal.target,
                                                       "holders": ", ".join(refusal.holders)}})
    await request.app[AUDIT].record("session.open", user=refusal.username, source=client_address(request),
                                    target=refusal.target, outcome=CloseCode.IN_USE.outcome, reason=refusal.reason,
                                    protocol=protocol, max_sessions=refusal.max_sessions,
                                    holders=list(refusal.holders))


async def sign_out_after(request: web.Request, web_session: WebSession, live: LiveSession,
                         ended: SessionEnded) -> None:
    """End the sign-in behind ``live`` when the session ended for idleness or its length (audited, counted)."""
    if not ended.code.signs_out:
        return
    app = request.app
    reason = ended.code.outcome
    try:
        await app[WEB_SESSIONS].end(web_session.id, ended.reason)
        await app[AUDIT].record("logout", user=live.username, source=client_address(request), target=live.target,
                                outcome=reason, reason=ended.reason, session=live.id)
    except SQLAlchemyError as error:  # the watcher cannot retry this: say so loudly
        log.error("cannot end the sign-in of a session that ended on %s: %s", reason, error,
                  extra={"ctx": {"session": live.id, "user": live.username}})
        return
    app[METRICS].sign_outs_total.labels(reason=reason).inc()
