"""Request-level security, as middlewares run in this order on every request and WebSocket upgrade:

1. ``security_headers``: CSP without inline script, no framing, ``no-store`` on everything
   but static assets, HSTS under TLS — on errors too.
2. ``network_allow_list``: the source address (see :mod:`auth.netacl`) must be in
   ``network.allow``, before anything else is looked at; refusals are counted and audited.
3. ``web_session``: the session cookie is resolved once; handlers read :func:`current_session`.
4. ``csrf_protection``: a state-changing request (not GET/HEAD/OPTIONS) must not come from
   another site (``Sec-Fetch-Site``, ``Origin``), and when it carries a session or enrollment
   cookie it must also carry that cookie's token in ``X-CSRF-Token``. The login itself has no
   token yet: it is accepted only as ``application/json``, which no cross-site form can send.
"""

from __future__ import annotations

import hmac
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from ipaddress import IPv4Address, IPv6Address

from aiohttp import web
from sqlalchemy.exc import SQLAlchemyError

from auth.websession import WebSession, csrf_token_for
from gateway.web.keys import AUDIT, CONFIG, METRICS, NETACL, WEB_SESSIONS

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

CLIENT_ADDRESS: web.RequestKey[IPv4Address | IPv6Address] = web.RequestKey("client_address")
WEB_SESSION = web.RequestKey("web_session", WebSession)
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
    "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'; object-src 'none'"
)
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
DATABASE_DOWN = "the gateway cannot reach its database; try again in a minute or contact your administrator"
CSRF_HEADER = "X-CSRF-Token"
#: Creates a session, so has no token to show: JSON only, from no other site.
TOKENLESS_PATHS = frozenset({"/api/v1/login"})


def cookie_name(app: web.Application, suffix: str = "") -> str:
    """``__Host-`` prefixed under TLS: the browser then enforces Secure, Path=/ and no Domain."""
    return f"__Host-deskgate{suffix}" if app[CONFIG].tls.enabled else f"deskgate{suffix}"


def enroll_cookie_name(app: web.Application) -> str:
    return cookie_name(app, "-enroll")


def set_cookie(response: web.StreamResponse, app: web.Application, name: str, value: str,
               max_age: int | None = None) -> None:
    """HttpOnly, SameSite=Strict, Path=/, Secure under TLS, no Domain."""
    response.set_cookie(name, value, httponly=True, samesite="Strict", secure=app[CONFIG].tls.enabled, path="/",
                        max_age=max_age)


def client_address(request: web.Request) -> IPv4Address | IPv6Address:
    return request[CLIENT_ADDRESS]


def current_session(request: web.Request) -> WebSession | None:
    """The caller's live web session, or None (no cookie, unknown, ended, or expired)."""
    return request.get(WEB_SESSION)


def own_origin(request: web.Request) -> str:
    return f"{request.scheme}://{request.host}"


def origin_allowed(request: web.Request) -> bool:
    """True when the request carries an Origin and it is the gateway's own."""
    return request.headers.get("Origin") == own_origin(request)


def error_json(status: int, message: str, **headers: str) -> web.Response:
    return web.json_response({"error": message}, status=status, headers=headers)


class DenialAuditor:
    """Audits refused sources, at most once per source and ``interval``: a scan must not flood the log.

    The metric counts every refusal; each audit event says how many were folded into it.
    """

    def __init__(self, interval: float = 60.0, max_sources: int = 10_000,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.interval = interval
        self.max_sources = max_sources
        self.clock = clock
        self._seen: OrderedDict[str, tuple[float, int]] = OrderedDict()  # source -> (last audited, folded since)

    def due(self, source: str) -> int | None:
        """How many refusals the event now due folds in (0 or more), or None when not yet due."""
        now = self.clock()
        last, folded = self._seen.get(source, (None, 0))
        if last is not None and now - last < self.interval:
            self._seen[source] = (last, folded + 1)
            return None
        self._seen[source] = (now, 0)
        self._seen.move_to_end(source)
        while len(self._seen) > self.max_sources:
            self._seen.popitem(last=False)
        return folded


DENIAL_AUDITOR = web.AppKey("denial_auditor", DenialAuditor)


@web.middleware
async def network_allow_list(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Refuse every request, WebSocket upgrades included, from a network not in ``network.allow``."""
    app = request.app
    acl = app[NETACL]
    address = acl.client_address(request.remote, request.headers)
    if address is None or not acl.is_allowed(address):
        app[METRICS].ip_denied_total.inc()
        source = str(address) if address is not None else f"unknown via {request.remote}"
        log.warning("network not allowed", extra={"ctx": {"source": source, "peer": request.remote,
                                                          "path": request.path}})
        folded = app[DENIAL_AUDITOR].due(source)
        if folded is not None:
            try:
                await app[AUDIT].record("network.denied", user=None, source=source, target=request.path,
                                        outcome="denied", reason="source network not in network.allow",
                                        peer=request.remote, folded=folded)
            except SQLAlchemyError as error:  # still refused; the log line above is the record
                log.error("cannot audit a network denial: %s", error)
        return web.Response(
            status=403,
            text=f"Your network ({address or 'unknown'}) is not allowed to use this gateway.\n"
            "Connect from an allowed network, or ask your administrator to add it.\n",
        )
    request[CLIENT_ADDRESS] = address
    return await handler(request)


@web.middleware
async def web_session(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Look the session cookie up once per request (static files need none)."""
    session_id = request.cookies.get(cookie_name(request.app))
    if session_id and not request.path.startswith("/static/"):
        try:
            session = await request.app[WEB_SESSIONS].get(session_id)
        except SQLAlchemyError as error:
            log.error("cannot look a web session up: %s", error)
            return error_json(503, DATABASE_DOWN)
        if session is not None:
            request[WEB_SESSION] = session
    return await handler(request)


@web.middleware
async def csrf_protection(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Refuse cross-site state changes, and those without the token of the cookie they ride on."""
    if request.method in SAFE_METHODS:
        return await handler(request)
    site = request.headers.get("Sec-Fetch-Site")
    origin = request.headers.get("Origin")
    if (site is not None and site not in ("same-origin", "none")) or (origin is not None
                                                                        and origin != own_origin(request)):
        log.warning("cross-site request refused", extra={"ctx": {"origin": origin, "site": site,
                                                                  "path": request.path}})
        return error_json(403, "cross-site request refused")
    if request.path not in TOKENLESS_PATHS:
        session = current_session(request)
        enrollment = request.cookies.get(enroll_cookie_name(request.app))
        expected = session.csrf_token if session is not None else csrf_token_for(enrollment) if enrollment else None
        if expected is not None and not hmac.compare_digest(request.headers.get(CSRF_HEADER, ""), expected):
            log.warning("CSRF token missing or wrong", extra={"ctx": {"path": request.path}})
            return error_json(403, f"missing or wrong {CSRF_HEADER}; reload the page and try again")
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
        headers.setdefault("Cross-Origin-Resource-Policy", "same-origin")
        headers.setdefault("Permissions-Policy", "camera=(), microphone=(), geolocation=(), payment=()")
        if not request.path.startswith("/static/"):
            headers.setdefault("Cache-Control", "no-store")
        if request.app[CONFIG].tls.enabled:
            headers.setdefault("Strict-Transport-Security", "max-age=31536000")
    if isinstance(response, web.HTTPException):
        raise response
    return response
