"""The admin console's page and its users API: administrators only, every change audited.

``GET /admin`` serves the console (``admin.html`` + ``static/admin.js``) to administrators;
anyone else signed in gets a 403 page. Under ``/api/v1/admin/users``:

- ``GET ?q=PART`` — every user (local file, then those the database knows), names containing PART;
- ``POST`` ``{"name", "password", "groups": [...], "admin": bool}`` — add a local user; the answer
  holds the TOTP URI, secret and QR code, shown once;
- ``POST {name}/disable`` ``{"reason"}``, ``POST {name}/enable``;
- ``POST {name}/totp-reset`` — a new secret (answer as for adding);
- ``POST {name}/password`` ``{"password"}`` — a new password (local users);
- ``PUT {name}/groups`` ``{"groups": [...]}`` — replace a local user's groups.

Every state change is audited by :class:`~gateway.useradmin.UserAdmin` with the administrator
as ``user`` and the changed user as ``target``; a refused change is audited as a ``failure``.
Non-administrators get 403 (audited ``admin.denied``, counted in ``deskgate_admin_denied_total``);
the CSRF middleware demands the session's token on every change.
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any

from aiohttp import web

from auth.errors import UserAdminError
from auth.totp import provisioning_uri, svg_data_uri
from auth.websession import WebSession
from gateway.useradmin import UserAdmin
from gateway.web.keys import AUDIT, LOGIN, METRICS, SETTINGS, STORE, WEB_SESSIONS
from gateway.web.messages import N_, say
from gateway.web.pages import page, redirect_to_login
from gateway.web.security import client_address, current_session, error_json

routes = web.RouteTableDef()

NOT_AN_ADMIN = N_("the admin console is for administrators; ask one if you need a change")
MAX_BODY_ITEMS = 100  # groups in one request
MAX_TEXT = 1024


async def refuse_non_admin(request: web.Request) -> WebSession | web.Response:
    """The caller's session when they are an administrator; else the 401/403 answer (a 403 is audited)."""
    session = current_session(request)
    if session is None:
        return error_json(401, say(request, "log in first"))
    if session.identity.admin:
        return session
    request.app[METRICS].admin_denied_total.inc()
    await request.app[AUDIT].record("admin.denied", user=session.identity.username, source=client_address(request),
                                    target=request.path[:255], outcome="denied", reason="not an administrator",
                                    method=request.method)
    return error_json(403, say(request, NOT_AN_ADMIN))


@routes.get("/admin")
async def admin_page(request: web.Request) -> web.StreamResponse:
    session = current_session(request)
    if session is None:
        raise redirect_to_login()
    refused = await refuse_non_admin(request)
    if isinstance(refused, web.Response):
        return web.Response(status=403, text=f"403: {NOT_AN_ADMIN}.\n")
    return page(request, "admin.html")


def user_admin(request: web.Request, session: WebSession) -> UserAdmin:
    """The user changes of this request, made by ``session``'s administrator from their address."""
    app = request.app
    login = app[LOGIN]
    return UserAdmin(app[SETTINGS].current.config, login.local_users, app[STORE], app[AUDIT], login.totp_secrets,
                     app[WEB_SESSIONS], login.disabled, session.identity.username, str(client_address(request)))


async def json_object(request: web.Request) -> dict[str, Any] | web.Response:
    """The JSON object body (``application/json`` only: no cross-site form sends it), or the error answer."""
    if request.content_type != "application/json":
        return error_json(415, "send a JSON object")
    try:
        body = await request.json()
    except ValueError:
        return error_json(400, "the request body is not valid JSON")
    return body if isinstance(body, dict) else error_json(400, "the request body must be a JSON object")


def text_field(body: dict[str, Any], name: str, required: bool = True) -> str | web.Response:
    value = body.get(name, "")
    if not isinstance(value, str) or len(value) > MAX_TEXT or (required and not value):
        return error_json(400, f"{name} must be a {'non-empty ' if required else ''}string "
                               f"of at most {MAX_TEXT} characters")
    return value


def groups_field(body: dict[str, Any]) -> list[str] | web.Response:
    groups = body.get("groups", [])
    if not isinstance(groups, list) or len(groups) > MAX_BODY_ITEMS or not all(
            isinstance(group, str) and group for group in groups):
        return error_json(400, f"groups must be a list of at most {MAX_BODY_ITEMS} group names")
    return groups


async def _change(request: web.Request, session: WebSession, action: str, name: str,
                  answer: Awaitable[dict[str, Any]]) -> web.Response:
    """Await a change; a refused one (UserAdminError) is audited as a failure and answered 400/404."""
    try:
        result = await answer
    except UserAdminError as error:
        await request.app[AUDIT].record(action, user=session.identity.username, source=client_address(request),
                                        target=name[:255], outcome="failure", reason=str(error))
        status = 404 if str(error).startswith(("no user", "no local user")) else 400
        return error_json(status, str(error))
    request.app[METRICS].admin_actions_total.labels(action=action).inc()
    return web.json_response(result)


def _enrollment(request: web.Request, name: str, secret: str) -> dict[str, str]:
    uri = provisioning_uri(secret, name, request.app[SETTINGS].current.config.auth.totp.issuer)
    return {"user": name, "secret": secret, "uri": uri, "qr": svg_data_uri(uri)}


@routes.get("/api/v1/admin/users")
async def list_users(request: web.Request) -> web.Response:
    session = await refuse_non_admin(request)
    if isinstance(session, web.Response):
        return session
    part = request.query.get("q", "").strip().lower()
    users = await user_admin(request, session).list_users()
    return web.json_response({"users": [user.to_json() for user in users
                                        if part in user.name.lower() or part in (user.display_name or "").lower()]})


@routes.post("/api/v1/admin/users")
async def add_user(request: web.Request) -> web.Response:
    session = await refuse_non_admin(request)
    if isinstance(session, web.Response):
        return session
    body = await json_object(request)
    if isinstance(body, web.Response):
        return body
    name, password, groups = text_field(body, "name"), text_field(body, "password"), groups_field(body)
    for field in (name, password, groups):
        if isinstance(field, web.Response):
            return field
    assert isinstance(name, str) and isinstance(password, str) and isinstance(groups, list)
    display_name = text_field(body, "display_name", required=False)
    if isinstance(display_name, web.Response):
        return display_name
    admin = body.get("admin", False) is True
    admin_of = user_admin(request, session)

    async def add() -> dict[str, str]:
        return _enrollment(request, name, await admin_of.add_local(name, password, groups, admin, display_name))

    return await _change(request, session, "user.add", name, add())


async def _named(request: web.Request) -> tuple[WebSession, str] | web.Response:
    session = await refuse_non_admin(request)
    if isinstance(session, web.Response):
        return session
    return session, request.match_info["name"]


@routes.post("/api/v1/admin/users/{name}/disable")
async def disable_user(request: web.Request) -> web.Response:
    named = await _named(request)
    if isinstance(named, web.Response):
        return named
    session, name = named
    body = await json_object(request) if request.can_read_body else {}
    if isinstance(body, web.Response):
        return body
    reason = text_field(body, "reason", required=False)
    if isinstance(reason, web.Response):
        return reason
    admin_of = user_admin(request, session)

    async def disable() -> dict[str, Any]:
        stored, changed = await admin_of.set_disabled(name, True, reason or None)
        return {"user": stored, "disabled": True, "changed": changed}

    return await _change(request, session, "user.disable", name, disable())


@routes.post("/api/v1/admin/users/{name}/enable")
async def enable_user(request: web.Request) -> web.Response:
    named = await _named(request)
    if isinstance(named, web.Response):
        return named
    session, name = named
    admin_of = user_admin(request, session)

    async def enable() -> dict[str, Any]:
        stored, changed = await admin_of.set_disabled(name, False, None)
        return {"user": stored, "disabled": False, "changed": changed}

    return await _change(request, session, "user.enable", name, enable())


@routes.post("/api/v1/admin/users/{name}/totp-reset")
async def reset_totp(request: web.Request) -> web.Response:
    named = await _named(request)
    if isinstance(named, web.Response):
        return named
    session, name = named
    admin_of = user_admin(request, session)

    async def reset() -> dict[str, str]:
        stored, secret = await admin_of.reset_totp(name)
        return _enrollment(request, stored, secret)

    return await _change(request, session, "user.totp_reset", name, reset())


@routes.post("/api/v1/admin/users/{name}/password")
async def reset_password(request: web.Request) -> web.Response:
    named = await _named(request)
    if isinstance(named, web.Response):
        return named
    session, name = named
    body = await json_object(request)
    if isinstance(body, web.Response):
        return body
    password = text_field(body, "password")
    if isinstance(password, web.Response):
        return password
    admin_of = user_admin(request, session)

    async def reset() -> dict[str, Any]:
        return {"user": name, "web_sessions_ended": await admin_of.set_password(name, password)}

    return await _change(request, session, "user.passwd", name, reset())


@routes.put("/api/v1/admin/users/{name}/groups")
async def set_groups(request: web.Request) -> web.Response:
    named = await _named(request)
    if isinstance(named, web.Response):
        return named
    session, name = named
    body = await json_object(request)
    if isinstance(body, web.Response):
        return body
    groups = groups_field(body)
    if isinstance(groups, web.Response):
        return groups
    admin_of = user_admin(request, session)

    async def change() -> dict[str, Any]:
        return {"user": name, "groups": list(await admin_of.set_groups(name, groups))}

    return await _change(request, session, "user.groups", name, change())


@routes.put("/api/v1/admin/users/{name}/display-name")
async def set_display_name(request: web.Request) -> web.Response:
    named = await _named(request)
    if isinstance(named, web.Response):
        return named
    session, name = named
    body = await json_object(request)
    if isinstance(body, web.Response):
        return body
    display_name = text_field(body, "display_name", required=False)
    if isinstance(display_name, web.Response):
        return display_name
    admin_of = user_admin(request, session)

    async def change() -> dict[str, Any]:
        return {"user": name, "display_name": await admin_of.set_display_name(name, display_name)}

    return await _change(request, session, "user.display_name", name, change())
