"""Signing in and out: the login API and page, logout, the caller's session, TOTP enrollment.

``POST /api/v1/login`` answers 200 with a new session cookie (a new id every time: no
fixation); 401 with one message for a wrong password, a wrong code, a disabled account or
one outside the allowed groups (telling them apart would confirm the password: the audit
log has the reason); 403 for a needed enrollment (``{"enroll": "/enroll"}``, with an
enrollment cookie); 429 with ``Retry-After`` when throttled; 503 when the directory or the
database cannot be asked, or (with ``Retry-After``) when too many password checks are
already running and waiting.
Logout ends every web session of the user and, with them, every desktop they have open.
"""

from __future__ import annotations

import logging
from typing import Any

from aiohttp import web
from sqlalchemy.exc import SQLAlchemyError

from auth.errors import (
    AccessNotGranted,
    AccountDisabled,
    AlreadyEnrolled,
    AuthError,
    DirectoryUnavailable,
    EnrollmentExpired,
    EnrollmentRequired,
    RateLimited,
    ServerBusy,
    TOTPUnavailable,
)
from auth.identity import Identity
from auth.login import answer_of
from auth.totp import provisioning_uri, svg_data_uri
from auth.totp_store import ENROLLMENT_LIFETIME
from auth.websession import csrf_token_for
from gateway.i18n import translator
from gateway.web.auth_messages import refusal_message
from gateway.web.keys import AUDIT, LIVE_SESSIONS, LOGIN, SETTINGS, WEB_SESSIONS
from gateway.web.messages import request_language, say
from gateway.web.pages import page, redirect_to_login
from gateway.web.security import (
    DATABASE_DOWN,
    client_address,
    cookie_name,
    current_session,
    enroll_cookie_name,
    error_json,
    set_cookie,
)

log = logging.getLogger(__name__)
routes = web.RouteTableDef()

MAX_FIELD = 1024
SIGNED_OUT = "you signed out"


def refusal(request: web.Request, error: AuthError) -> web.Response:
    """The HTTP answer to a refused login or enrollment, in the caller's language."""
    message = refusal_message(error, translator(request_language(request)))
    if isinstance(error, RateLimited):
        return error_json(429, message, **{"Retry-After": str(error.retry_after)})
    if isinstance(error, ServerBusy):
        return error_json(503, message, **{"Retry-After": str(error.retry_after)})
    if isinstance(error, (DirectoryUnavailable, TOTPUnavailable)):
        return error_json(503, message)
    if isinstance(error, (AccountDisabled, AccessNotGranted, AlreadyEnrolled)):
        return error_json(403, message)
    if isinstance(error, EnrollmentExpired):  # the page goes back to the login page, whatever the language
        return web.json_response({"error": message, "sign_in": "/login"}, status=401)
    return error_json(401, message)


async def json_fields(request: web.Request, names: tuple[str, ...]) -> list[str] | web.Response:
    """String fields from a JSON object body, or the HTTP error that says what is wrong with it.

    Only ``application/json`` is read: a cross-site HTML form cannot send it.
    """
    if request.content_type != "application/json":
        return error_json(415, "send JSON: {" + ", ".join(f'"{name}"' for name in names) + "}")
    try:
        body: Any = await request.json()
    except ValueError:
        return error_json(400, "the request body is not valid JSON")
    if not isinstance(body, dict):
        return error_json(400, "the request body must be a JSON object")
    fields = []
    for name in names:
        value = body.get(name, "")
        if not isinstance(value, str) or len(value) > MAX_FIELD:
            return error_json(400, f"{name} must be a string of at most {MAX_FIELD} characters")
        fields.append(value)
    return fields


async def start_web_session(request: web.Request, identity: Identity) -> web.Response:
    """A new session for ``identity`` (the caller's old one, if any, ends: no fixation), as a 200 response."""
    sessions = request.app[WEB_SESSIONS]
    old = current_session(request)
    if old is not None:
        await sessions.end(old.id, "replaced by a new sign-in")
    session = await sessions.create(identity, str(client_address(request)))
    log.info("login", extra={"ctx": {"user": identity.username, "source": session.source,
                                     "groups": ",".join(sorted(identity.groups))}})
    response = web.json_response({"username": identity.username, "groups": sorted(identity.groups),
                                  "admin": identity.admin, "csrf_token": session.csrf_token})
    set_cookie(response, request.app, cookie_name(request.app), session.id)
    return response


@routes.post("/api/v1/login")
async def login(request: web.Request) -> web.Response:
    fields = await json_fields(request, ("username", "password", "totp"))
    if isinstance(fields, web.Response):
        return fields
    username, password, totp_code = fields
    try:
        identity = await request.app[LOGIN].login(username.strip(), password, totp_code.strip(),
                                                  client_address(request))
        return await start_web_session(request, identity)
    except EnrollmentRequired as needed:
        message = refusal_message(needed, translator(request_language(request)))
        response = web.json_response({"error": message, "enroll": "/enroll"}, status=403)
        set_cookie(response, request.app, enroll_cookie_name(request.app), needed.token,
                   max_age=int(ENROLLMENT_LIFETIME))
        return response
    except AuthError as error:
        return refusal(request, answer_of(error))
    except SQLAlchemyError as error:
        log.error("login failed on the database: %s", error)
        return error_json(503, say(request, DATABASE_DOWN))


@routes.post("/api/v1/logout")
async def logout(request: web.Request) -> web.Response:
    session = current_session(request)
    response = web.json_response({"ok": True})
    if session is not None:
        user = session.identity.username
        sessions_ended = await request.app[WEB_SESSIONS].end_user(user, SIGNED_OUT)
        desktops_ended = request.app[LIVE_SESSIONS].terminate_user(user, SIGNED_OUT)
        await request.app[AUDIT].record("logout", user=user, source=client_address(request), outcome="success",
                                        web_sessions=sessions_ended, desktops=desktops_ended)
    response.del_cookie(cookie_name(request.app), path="/")
    return response


@routes.get("/api/v1/session")
async def whoami(request: web.Request) -> web.Response:
    """The caller's session: who, and the CSRF token the pages send with every state change."""
    session = current_session(request)
    if session is None:
        return error_json(401, say(request, "log in first"))
    settings = request.app[SETTINGS].current.config.auth.web_session
    return web.json_response({
        "username": session.identity.username, "groups": sorted(session.identity.groups),
        "admin": session.identity.admin, "csrf_token": session.csrf_token,
        "idle_timeout": settings.idle_timeout, "expires": session.created + settings.absolute_timeout,
    })


@routes.get("/login")
async def login_page(request: web.Request) -> web.StreamResponse:
    return page(request, "login.html")


# -- enrollment of an authenticator at the first login ------------------------------------------


@routes.get("/enroll")
async def enroll_page(request: web.Request) -> web.StreamResponse:
    if "lang" not in request.query and not request.cookies.get(enroll_cookie_name(request.app)):
        raise redirect_to_login()
    return page(request, "enroll.html")


@routes.get("/api/v1/totp/enrollment")
async def enrollment(request: web.Request) -> web.Response:
    """The pending enrollment's secret, as a QR code (SVG) and as text, for the authenticator app."""
    token = request.cookies.get(enroll_cookie_name(request.app), "")
    try:
        pending = await request.app[LOGIN].pending_enrollment(token)
    except AuthError as error:
        return refusal(request, error)
    uri = provisioning_uri(pending.secret, pending.identity.username, request.app[SETTINGS].current.config.auth.totp.issuer)
    return web.json_response({"username": pending.identity.username, "secret": pending.secret, "uri": uri,
                              "qr": svg_data_uri(uri), "csrf_token": csrf_token_for(token)})


@routes.post("/api/v1/totp/enrollment")
async def confirm_enrollment(request: web.Request) -> web.Response:
    """Confirm with a code from the app: the secret is saved and the user is signed in."""
    fields = await json_fields(request, ("totp",))
    if isinstance(fields, web.Response):
        return fields
    (totp_code,) = fields
    token = request.cookies.get(enroll_cookie_name(request.app), "")
    try:
        identity = await request.app[LOGIN].confirm_enrollment(token, totp_code.strip(), client_address(request))
        response = await start_web_session(request, identity)
    except AuthError as error:
        return refusal(request, error)
    except SQLAlchemyError as error:
        log.error("enrollment failed on the database: %s", error)
        return error_json(503, say(request, DATABASE_DOWN))
    response.del_cookie(enroll_cookie_name(request.app), path="/")
    return response
