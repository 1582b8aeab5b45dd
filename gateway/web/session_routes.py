"""Live sessions on every node, for the people who look after them: list them, end one, and the page ``/sessions``.

``GET /api/v1/sessions`` lists the live sessions of every node (the session directory) whose
user the caller may watch (:mod:`gateway.watch`: the policies' ``watch``, administrators
everyone). ``DELETE /api/v1/sessions/{id}`` with a JSON ``{"reason"}`` asks the node holding
that session to end it: the request is written into the directory, the holding node's watcher
ends the session within about a second (at once when it is this node), and the operator's page
says "ended by S: reason" (close reason and a notice). A caller who may watch nobody gets 403
on both; ending the session of someone outside one's scope is 403 too. Every refusal and every
end is audited (``session.list``/``session.end``) and counted; listing itself is not audited,
the page asks every few seconds.
"""

from __future__ import annotations

from aiohttp import web

from gateway.notices import SessionEnded
from gateway.sessions import EndRequest, is_live_session_id
from gateway.watch import WatchScope, watch_scope
from gateway.web.auth_routes import json_fields
from gateway.web.keys import AUDIT, LIVE_SESSIONS, METRICS, NOTICES, SESSION_DIRECTORY, SETTINGS
from gateway.web.messages import N_, say
from gateway.web.pages import signed_in_page
from gateway.web.security import client_address, current_session, error_json

routes = web.RouteTableDef()

MAY_WATCH_NOBODY = N_("you may not see live sessions: no policy lets you watch anyone's work")


async def _refuse(request: web.Request, action: str, scope_action: str, message: str, *, target: str | None = None,
                  reason: str, status: int = 403, **detail: object) -> web.Response:
    """A refusal to list or end sessions: counted, audited, answered."""
    session = current_session(request)
    assert session is not None
    request.app[METRICS].supervision_denied_total.labels(action=scope_action).inc()
    await request.app[AUDIT].record(action, user=session.identity.username, source=client_address(request),
                                    target=target, outcome="denied", reason=reason, **detail)
    return error_json(status, message)


def _scope(request: web.Request) -> WatchScope | None:
    session = current_session(request)
    if session is None:
        return None
    return watch_scope(session.identity, client_address(request), request.app[SETTINGS].current.policies)


@routes.get("/api/v1/sessions")
async def list_sessions(request: web.Request) -> web.Response:
    scope = _scope(request)
    if scope is None:
        return error_json(401, say(request, "log in first"))
    if scope.nobody:
        return await _refuse(request, "session.list", "list", say(request, MAY_WATCH_NOBODY), reason=scope.describe())
    directory = request.app[SESSION_DIRECTORY]
    entries = await directory.list()
    now = directory.clock()
    return web.json_response({"sessions": [entry.to_json(now) for entry in entries if scope.covers(entry.groups)]})


@routes.delete("/api/v1/sessions/{id}")
async def end_session(request: web.Request) -> web.Response:
    scope = _scope(request)
    session = current_session(request)
    if scope is None or session is None:
        return error_json(401, say(request, "log in first"))
    session_id = request.match_info["id"]
    if scope.nobody:
        return await _refuse(request, "session.end", "end", say(request, MAY_WATCH_NOBODY), reason=scope.describe(),
                             session=session_id[:64])
    fields = await json_fields(request, ("reason",))
    if isinstance(fields, web.Response):
        return fields
    directory = request.app[SESSION_DIRECTORY]
    reason = " ".join(fields[0].split())  # one line: it ends up in a close frame and a notice
    if not reason:
        return error_json(400, say(request, "say why you end this session: the operator reads the reason"))
    if len(reason) > directory.max_reason:
        return error_json(400, say(request, "the reason is longer than {limit} characters; shorten it",
                                        limit=directory.max_reason))
    entry = await directory.get(session_id) if is_live_session_id(session_id) else None
    if entry is None:
        return error_json(404, say(request, "there is no live session {session}; it may have ended already",
                                        session=repr(session_id[:64])))
    if not scope.covers(entry.groups):
        return await _refuse(request, "session.end", "end", say(request, "you may not end {user}'s session",
                                                                  user=entry.username),
                             target=entry.username, reason=f"not watched: the user's groups are outside the "
                             f"caller's watch ({scope.describe()})", session=entry.id, desktop=entry.target)
    if entry.end_request is not None:
        return error_json(409, say(request, "{by} already asked to end this session", by=entry.end_request.by))
    by = session.identity.username
    end = EndRequest(by, reason)
    await request.app[AUDIT].record("session.end", user=by, source=client_address(request), target=entry.username,
                                    outcome="allowed", reason=reason, session=entry.id, desktop=entry.target,
                                    node=entry.node)
    if not await directory.request_end(entry.id, end):
        return error_json(409, say(request, "this session is already ending"))
    request.app[METRICS].sessions_end_requested_total.inc()
    request.app[LIVE_SESSIONS].end(entry.id, end)  # at once when this node holds it; else its watcher does
    request.app[NOTICES].post_nowait(entry.username, SessionEnded(by, reason, entry.target))
    return web.json_response({"id": entry.id, "user": entry.username, "status": "ending"}, status=202)


routes.get("/sessions")(signed_in_page("sessions.html"))
