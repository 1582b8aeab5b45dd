"""Login and logout: ``POST /api/v1/login``, ``POST /api/v1/logout`` and the login page."""

from __future__ import annotations

import logging
from typing import Any

from aiohttp import web

from auth.errors import AccountDisabled, AuthError, DirectoryUnavailable, InvalidTOTP, TOTPNotEnrolled
from gateway.web.keys import CONFIG, LIVE_SESSIONS, LOGIN, METRICS, WEB_SESSIONS
from gateway.web.pages import page
from gateway.web.security import client_address, cookie_name, current_session, error_json, origin_allowed

log = logging.getLogger(__name__)
routes = web.RouteTableDef()

MAX_FIELD = 1024


def _outcome(exc: AuthError) -> tuple[int, str]:
    """HTTP status and metric result for a refused login."""
    if isinstance(exc, InvalidTOTP):
        return 401, "bad_totp"
    if isinstance(exc, (AccountDisabled, TOTPNotEnrolled)):
        return 403, exc.__class__.__name__.lower()
    if isinstance(exc, DirectoryUnavailable):
        return 503, "directory_unavailable"
    return 401, "bad_password"


async def _credentials(request: web.Request) -> tuple[str, str, str]:
    """The three login fields from a JSON body, or an HTTP error that says what is wrong."""
    if request.content_type != "application/json":
        raise error_json(415, "send the login as JSON: {\"username\", \"password\", \"totp\"}")
    try:
        body: Any = await request.json()
    except ValueError:
        raise error_json(400, "the request body is not valid JSON") from None
    if not isinstance(body, dict):
        raise error_json(400, "the request body must be a JSON object")
    fields = []
    for name in ("username", "password", "totp"):
        value = body.get(name, "")
        if not isinstance(value, str) or len(value) > MAX_FIELD:
            raise error_json(400, f"{name} must be a string of at most {MAX_FIELD} characters")
        fields.append(value)
    return fields[0].strip(), fields[1], fields[2].strip()


@routes.post("/api/v1/login")
async def login(request: web.Request) -> web.Response:
    app = request.app
    if "Origin" in request.headers and not origin_allowed(request):
        return error_json(403, "cross-site login refused")
    username, password, totp_code = await _credentials(request)
    source = client_address(request)
    ctx = {"user": username, "source": source}
    try:
        identity = await app[LOGIN].login(username, password, totp_code)
    except AuthError as exc:
        status, result = _outcome(exc)
        app[METRICS].auth_attempts_total.labels(method="password+totp", result=result).inc()
        log.warning("login refused", extra={"ctx": {**ctx, "reason": result}})
        return error_json(status, str(exc))
    app[METRICS].auth_attempts_total.labels(method="password+totp", result="ok").inc()
    old = current_session(request)
    if old is not None:  # a new id at every login: no session fixation
        app[WEB_SESSIONS].revoke(old.id)
    session = app[WEB_SESSIONS].create(identity, str(source))
    log.info("login", extra={"ctx": {**ctx, "groups": ",".join(sorted(identity.groups))}})
    response = web.json_response(
        {"username": identity.username, "groups": sorted(identity.groups), "admin": identity.admin}
    )
    tls = app[CONFIG].tls.enabled
    response.set_cookie(cookie_name(app), session.id, httponly=True, samesite="Strict", secure=tls, path="/")
    return response


@routes.post("/api/v1/logout")
async def logout(request: web.Request) -> web.Response:
    if not origin_allowed(request):
        return error_json(403, "cross-site logout refused")
    session = current_session(request)
    response = web.json_response({"ok": True})
    if session is not None:
        ended = request.app[LIVE_SESSIONS].terminate_web_session(session.id, "you logged out")
        request.app[WEB_SESSIONS].revoke(session.id)
        log.info("logout", extra={"ctx": {"user": session.identity.username, "sessions_ended": ended}})
    response.del_cookie(cookie_name(request.app), path="/")
    return response


@routes.get("/login")
async def login_page(request: web.Request) -> web.StreamResponse:
    return page("login.html")
