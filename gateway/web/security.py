"""Request-level security: source allow-list, web-session cookie, Origin, response headers."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from ipaddress import IPv4Address, IPv6Address

from aiohttp import web

from auth.websession import WebSession
from gateway.web.keys import CONFIG, METRICS, NETACL, WEB_SESSIONS

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

CLIENT_ADDRESS = web.RequestKey("client_address", IPv4Address | IPv6Address)  # type: ignore[arg-type]
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
    "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'; object-src 'none'"
)


def cookie_name(app: web.Application) -> str:
    """``__Host-`` prefixed under TLS: the browser then enforces Secure, Path=/ and no Domain."""
    return "__Host-deskgate" if app[CONFIG].tls.enabled else "deskgate"


def client_address(request: web.Request) -> IPv4Address | IPv6Address:
    return request[CLIENT_ADDRESS]


def current_session(request: web.Request) -> WebSession | None:
    """The caller's live web session, or None (no cookie, unknown, or expired)."""
    session_id = request.cookies.get(cookie_name(request.app))
    if not session_id:
        return None
    return request.app[WEB_SESSIONS].get(session_id)


def own_origin(request: web.Request) -> str:
    return f"{request.scheme}://{request.host}"


def origin_allowed(request: web.Request) -> bool:
    """True when the request carries an Origin and it is the gateway's own."""
    return request.headers.get("Origin") == own_origin(request)


def error_json(status: int, message: str, **headers: str) -> web.Response:
    return web.json_response({"error": message}, status=status, headers=headers)


@web.middleware
async def network_allow_list(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Refuse every request, WebSocket upgrades included, from a network not in ``network.allow``."""
    acl = request.app[NETACL]
    address = acl.client_address(request.remote, request.headers)
    if address is None or not acl.is_allowed(address):
        request.app[METRICS].ip_denied_total.inc()
        log.warning("network not allowed", extra={"ctx": {"source": address, "peer": request.remote,
                                                          "path": request.path}})
        return web.Response(
            status=403,
            text=f"Your network ({address}) is not allowed to use this gateway.\n"
            "Connect from an allowed network, or ask your administrator to add it.\n",
        )
    request[CLIENT_ADDRESS] = address
    return await handler(request)


@web.middleware
async def security_headers(request: web.Request, handler: Handler) -> web.StreamResponse:
    """CSP without inline script, no framing, no caching of anything but static assets."""
    try:
        response = await handler(request)
    except web.HTTPException as exc:
        response = exc
    if not response.prepared:
        headers = response.headers
        headers.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
        headers.setdefault("X-Content-Type-Options", "nosniff")
        headers.setdefault("X-Frame-Options", "DENY")
        headers.setdefault("Referrer-Policy", "no-referrer")
        headers.setdefault("Cross-Origin-Opener-Policy", "same-origin")
        if not request.path.startswith("/static/"):
            headers.setdefault("Cache-Control", "no-store")
        if request.app[CONFIG].tls.enabled:
            headers.setdefault("Strict-Transport-Security", "max-age=31536000")
    if isinstance(response, web.HTTPException):
        raise response
    return response
