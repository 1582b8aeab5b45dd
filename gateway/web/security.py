"""Request-level security, as middlewares run in this order on every request and WebSocket upgrade:

1. ``security_headers``: CSP without inline script, no framing, ``no-store`` on everything
   but static assets, HSTS under TLS — on errors too.
2. ``network_allow_list``: the source address (see :mod:`auth.netacl`) must be in
   ``network.allow``, before anything else is looked at; refusals are counted and audited.
   A direct peer was already judged when its connection was accepted
   (:mod:`gateway.web.listener`, reported by :func:`connection_refusals`); what is left to
   judge here is the address a trusted proxy forwards.
3. ``known_host``: the request must be addressed to a name of the gateway (``Host``, or a
   trusted proxy's forwarded host): an IP address, ``localhost``, the listen host or the
   host of ``listen.public_url``. Any other name is a DNS-rebinding page: 421.
4. ``web_session``: the session cookie is resolved once; handlers read :func:`current_session`.
5. ``csrf_protection``: a state-changing request (not GET/HEAD/OPTIONS) must not come from
   another site (``Sec-Fetch-Site``, ``Origin`` against :func:`own_origin`), and when it carries
   a session or enrollment cookie it must also carry that cookie's token in ``X-CSRF-Token``.
   The login itself has no token yet: it is accepted only as ``application/json``, which no
   cross-site form can send.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import re
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Coroutine
from ipaddress import IPv4Address, IPv6Address
from typing import Any

from aiohttp import hdrs, web
from sqlalchemy.exc import SQLAlchemyError

from auth.netacl import IPAddress, ProxyHeader, is_ip_address
from auth.websession import WebSession, csrf_token_for
from gateway.config import Config, PublicURL
from gateway.web.keys import AUDIT, METRICS, SETTINGS, WEB_SESSIONS
from gateway.web.listener import Refusal, RefusalReporter, in_networks, peer_address, source_of
from gateway.web.messages import N_, say

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

CLIENT_ADDRESS: web.RequestKey[IPv4Address | IPv6Address] = web.RequestKey("client_address")
WEB_SESSION = web.RequestKey("web_session", WebSession)
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
    "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'; object-src 'none'"
)
#: The terminal and player pages: xterm.js and asciinema-player size their character cells in ``<style>``
#: elements they create, and asciinema-player's terminal emulator is WebAssembly, so those pages allow
#: inline styles and compiling WebAssembly from the gateway's own files (never inline script or eval).
TERMINAL_CONTENT_SECURITY_POLICY = CONTENT_SECURITY_POLICY.replace(
    "script-src 'self'; style-src 'self'", "script-src 'self' 'wasm-unsafe-eval'; style-src 'self' 'unsafe-inline'")
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
DATABASE_DOWN = N_("the gateway cannot reach its database; try again in a minute or contact your administrator")
CSRF_HEADER = "X-CSRF-Token"
#: Creates a session, so has no token to show: JSON only, from no other site.
TOKENLESS_PATHS = frozenset({"/api/v1/login"})
#: A Host header: a name or IPv4 address, or an IPv6 address in brackets; then an optional port.
HOST_HEADER = re.compile(r"(?:\[([0-9A-Fa-f:.]+)\]|([^:\[\]/@\s]+))(?::(\d{1,5}))?")


def served_over_tls(app: web.Application) -> bool:
    """True when browsers reach the gateway over TLS: its own (``tls``) or a proxy's (``https`` public URL)."""
    config = app[SETTINGS].current.config
    public = config.listen.public_url
    return config.tls.enabled or (public is not None and public.scheme == "https")


def cookie_name(app: web.Application, suffix: str = "") -> str:
    """``__Host-`` prefixed under TLS: the browser then enforces Secure, Path=/ and no Domain."""
    return f"__Host-deskgate{suffix}" if served_over_tls(app) else f"deskgate{suffix}"


def enroll_cookie_name(app: web.Application) -> str:
    return cookie_name(app, "-enroll")


def set_cookie(response: web.StreamResponse, app: web.Application, name: str, value: str,
               max_age: int | None = None) -> None:
    """HttpOnly, SameSite=Strict, Path=/, Secure under TLS, no Domain."""
    response.set_cookie(name, value, httponly=True, samesite="Strict", secure=served_over_tls(app), path="/",
                        max_age=max_age)


def client_address(request: web.Request) -> IPv4Address | IPv6Address:
    return request[CLIENT_ADDRESS]


def current_session(request: web.Request) -> WebSession | None:
    """The caller's live web session, or None (no cookie, unknown, ended, or expired)."""
    return request.get(WEB_SESSION)


def split_host(value: str) -> tuple[str, int | None] | None:
    """A Host header's host (lowercase, no brackets, no trailing dot) and port; None when it is malformed."""
    match = HOST_HEADER.fullmatch(value.strip())
    if match is None:
        return None
    bracketed, plain, port = match.groups()
    if bracketed is not None and not is_ip_address(bracketed):
        return None
    host = (bracketed or plain).lower().rstrip(".")
    return (host, int(port) if port else None) if host else None


def _last_value(request: web.Request, header: str) -> str | None:
    values = [value.strip() for line in request.headers.getall(header, []) for value in line.split(",")]
    return values[-1] if values and values[-1] else None


def requested_authority(request: web.Request) -> tuple[str, str | None]:
    """The scheme and host (``Host``'s value, None when absent) the browser sent the request to.

    From a trusted proxy, what it forwards in ``network.proxy_header``'s family (``Forwarded``
    ``proto=``/``host=``, or ``X-Forwarded-Proto``/``X-Forwarded-Host``), the nearest proxy's entry.
    """
    scheme, host = request.scheme, request.headers.get(hdrs.HOST)
    network = request.app[SETTINGS].current.config.network
    peer = peer_address((request.remote,))
    if peer is not None and in_networks(peer, network.trusted_proxies):
        if network.proxy_header is ProxyHeader.FORWARDED:
            nearest = request.forwarded[-1] if request.forwarded else {}
            proto, forwarded_host = nearest.get("proto"), nearest.get("host")
        else:
            proto, forwarded_host = _last_value(request, "X-Forwarded-Proto"), _last_value(request, "X-Forwarded-Host")
        if proto is not None and proto.lower() in ("http", "https"):
            scheme = proto.lower()
        host = forwarded_host or host
    return scheme, host


def is_own_host(config: Config, host: str) -> bool:
    """True for a name the gateway answers to: an IP address, localhost, the listen host, the public URL's host."""
    name = host.lower().rstrip(".")
    public = config.listen.public_url
    return (name == "localhost" or is_ip_address(name) or name == config.listen.http.host.lower().rstrip(".")
            or (public is not None and name == public.host))


def own_origin(request: web.Request) -> str:
    """The gateway's origin as browsers write it: ``listen.public_url``'s, else the one the request was sent to."""
    public = request.app[SETTINGS].current.config.listen.public_url
    if public is not None:
        return public.origin
    scheme, host = requested_authority(request)
    parsed = split_host(host) if host is not None else None
    if parsed is None:
        return f"{scheme}://{request.host}"
    name, port = parsed
    return PublicURL(scheme, name, port if port is not None else 443 if scheme == "https" else 80).origin


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
#: Audit events of refused connections still being written (kept so they are not lost at shutdown).
PENDING_AUDITS = web.AppKey("pending_audits", set[asyncio.Task[None]])

CONNECTION_REFUSALS = {
    Refusal.NETWORK: "network not allowed",
    Refusal.PER_SOURCE: "too many connections from one source; connection refused",
    Refusal.CAPACITY: "connection limit reached; connection refused",
    Refusal.HEADERS: "request headers too slow; connection cut",
    Refusal.BODY: "request body too slow; connection cut",
}


def connection_refusals(app: web.Application) -> RefusalReporter:
    """What the listeners do with a refused or cut connection: a log line, and for a network an audit event.

    Both at most once per source (IPv6: per /64), reason and minute; the listener's metrics
    count every one, and a refused network also counts in ``ip_denied_total`` as before.
    """

    def report(listener: str, address: IPAddress | None, refusal: Refusal) -> None:
        if refusal is Refusal.NETWORK:
            app[METRICS].ip_denied_total.inc()
        source = str(address) if address is not None else "unknown"
        folded = app[DENIAL_AUDITOR].due(f"{listener} {refusal} {source_of(address) if address else source}")
        if folded is None:
            return
        log.warning(CONNECTION_REFUSALS[refusal], extra={"ctx": {"source": source, "listener": listener,
                                                                  "folded": folded}})
        if refusal is Refusal.NETWORK:
            allow = "network.metrics_allow" if listener == "metrics" else "network.allow"
            _audit_later(app, app[AUDIT].record("network.denied", user=None, source=source,
                                                target=f"{listener} listener", outcome="denied",
                                                reason=f"source network not in {allow}", folded=folded))

    return report


def _audit_later(app: web.Application, record: Coroutine[Any, Any, object]) -> None:
    async def write() -> None:
        try:
            await record
        except SQLAlchemyError as error:  # still refused; the log line is the record
            log.error("cannot audit a refused connection: %s", error)

    task = asyncio.get_running_loop().create_task(write())
    app[PENDING_AUDITS].add(task)
    task.add_done_callback(app[PENDING_AUDITS].discard)


async def finish_pending_audits(app: web.Application) -> None:
    """``app.on_shutdown``: let the audit events of refused connections reach the database."""
    pending: set[asyncio.Task[None]] = app[PENDING_AUDITS]
    if pending:
        await asyncio.wait(pending, timeout=5.0)


@web.middleware
async def network_allow_list(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Refuse every request, WebSocket upgrades included, from a network not in ``network.allow``."""
    app = request.app
    acl = app[SETTINGS].current.netacl
    address = acl.client_address(request.remote, request.headers)
    if address is None or not acl.is_allowed(address):
        app[METRICS].ip_denied_total.inc()
        source = str(address) if address is not None else f"unknown via {request.remote}"
        log.warning("network not allowed", extra={"ctx": {"source": source, "peer": request.remote,
                                                          "path": request.path}})
        folded = app[DENIAL_AUDITOR].due(str(source_of(address)) if address is not None else source)
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
async def known_host(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Refuse a request addressed to a name that is not the gateway's: a DNS-rebinding page (421)."""
    _, host = requested_authority(request)
    if host is None:  # HTTP/1.0 without Host: no browser, so no rebinding page
        return await handler(request)
    parsed = split_host(host)
    if parsed is not None and is_own_host(request.app[SETTINGS].current.config, parsed[0]):
        return await handler(request)
    request.app[METRICS].host_refused_total.inc()
    log.warning("request for another host refused", extra={"ctx": {"host": host, "path": request.path}})
    if parsed is None:
        return web.Response(status=400, text=f"The Host header {host!r} is malformed.\n")
    public = request.app[SETTINGS].current.config.listen.public_url
    where = f"Open it at {public.origin}/." if public is not None else "Open it at its own address."
    return web.Response(status=421, text=f"This gateway does not answer to the name {parsed[0]}. {where}\n"
                        f"Administrators: if {parsed[0]} is this gateway's name, set listen.public_url.\n")


@web.middleware
async def web_session(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Look the session cookie up once per request (static files need none)."""
    session_id = request.cookies.get(cookie_name(request.app))
    if session_id and not request.path.startswith("/static/"):
        try:
            session = await request.app[WEB_SESSIONS].get(session_id)
        except SQLAlchemyError as error:
            log.error("cannot look a web session up: %s", error)
            return error_json(503, say(request, DATABASE_DOWN))
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
        return error_json(403, say(request, "cross-site request refused"))
    if request.path not in TOKENLESS_PATHS:
        session = current_session(request)
        enrollment = request.cookies.get(enroll_cookie_name(request.app))
        expected = session.csrf_token if session is not None else csrf_token_for(enrollment) if enrollment else None
        if expected is not None and not hmac.compare_digest(request.headers.get(CSRF_HEADER, ""), expected):
            log.warning("CSRF token missing or wrong", extra={"ctx": {"path": request.path}})
            return error_json(403, say(request, "missing or wrong {header}; reload the page and try again",
                                                  header=CSRF_HEADER))
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
        if served_over_tls(request.app):
            headers.setdefault("Strict-Transport-Security", "max-age=31536000")
    if isinstance(response, web.HTTPException):
        raise response
    return response
