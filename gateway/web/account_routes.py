"""A user's own account: ``POST /api/v1/password`` changes a local user's own password.

JSON ``{"current", "new", "repeat"}``. The current password is checked (argon2id, in a worker
thread) and counted by the login throttle like a sign-in, so a stolen session cannot guess it
faster than the login form; the new one must follow the administrators' rules (at least
:data:`~gateway.useradmin.MIN_PASSWORD_LENGTH` characters, not the current one). On success
every *other* web session of the user ends (and with them their desktops); this one stays.
Audited as ``user.passwd`` with the user as actor and target; counted in
``deskgate_password_changes_total{result}``. Directory users change theirs in the directory (409).
"""

from __future__ import annotations

import asyncio

from aiohttp import web

from auth.errors import AuthError, InvalidCredentials, RateLimited
from gateway.useradmin import password_problem
from gateway.web.auth_routes import json_fields, refusal
from gateway.web.keys import AUDIT, LOGIN, METRICS, WEB_SESSIONS
from gateway.web.messages import N_, say
from gateway.web.security import client_address, current_session, error_json

routes = web.RouteTableDef()

OTHER_SESSIONS_ENDED = "you changed your password; sign in again with the new one"


@routes.post("/api/v1/password")
async def change_own_password(request: web.Request) -> web.Response:
    session = current_session(request)
    if session is None:
        return error_json(401, say(request, "log in first"))
    fields = await json_fields(request, ("current", "new", "repeat"))
    if isinstance(fields, web.Response):
        return fields
    current, new, repeat = fields
    app, name, source = request.app, session.identity.username, client_address(request)
    results = app[METRICS].password_changes_total
    login = app[LOGIN]
    users = login.local_users
    if session.identity.backend != "local" or users is None or users.get(name) is None:
        results.labels(result="refused").inc()
        return error_json(409, say(request, "your password is kept by the directory; change it there "
                                            "(ask your administrator how)"))
    problem = password_problem(new) or (N_("the two new passwords differ; type the same one twice") if new != repeat
                                        else N_("the new password is the current one; choose another")
                                        if new == current else None)
    if problem is not None:
        results.labels(result="refused").inc()
        return error_json(400, say(request, problem))

    async def audit(outcome: str, reason: str | None = None, **detail: object) -> None:
        await app[AUDIT].record("user.passwd", user=name, source=source, target=name, outcome=outcome,
                                reason=reason, self_service=True, **detail)

    try:
        attempt = await login.throttle.reserve(name, source)
    except RateLimited as limited:
        results.labels(result="rate_limited").inc()
        await audit("denied", limited.reason)
        return refusal(request, limited)
    try:
        await asyncio.to_thread(users.authenticate, name, current)
    except InvalidCredentials:
        results.labels(result="wrong_password").inc()
        await audit("failure", "wrong current password")
        return error_json(403, say(request, "the current password is wrong"))
    except AuthError as error:
        await login.throttle.withdraw(attempt)
        results.labels(result="refused").inc()
        await audit("failure", str(error))
        return refusal(request, error)
    await login.throttle.withdraw(attempt)
    await asyncio.to_thread(users.set_password, name, new)
    ended = await app[WEB_SESSIONS].end_others(name, session.id, OTHER_SESSIONS_ENDED)
    results.labels(result="ok").inc()
    await audit("success", web_sessions_ended=ended)
    return web.json_response({"ok": True, "web_sessions_ended": ended})
