"""The operator's portal: the targets they may open now, and the desktop and terminal pages."""

from __future__ import annotations

from aiohttp import web

from gateway.drain import DRAIN
from gateway.session_watch import idle_warning_lead
from gateway.watch import watch_scope
from gateway.web.keys import CLOCK, SETTINGS
from gateway.web.messages import say
from gateway.web.pages import signed_in_page
from gateway.web.security import client_address, current_session, error_json

routes = web.RouteTableDef()


routes.get("/")(signed_in_page("portal.html"))
routes.get("/desktop/{target}")(signed_in_page("desktop.html"))
routes.get("/terminal/{target}")(signed_in_page("terminal.html", terminal_assets=True))


@routes.get("/api/v1/targets")
async def list_targets(request: web.Request) -> web.Response:
    session = current_session(request)
    if session is None:
        return error_json(401, say(request, "log in first"))
    settings = request.app[SETTINGS].current
    config = settings.config
    source = client_address(request)
    targets = []
    for name in config.targets:
        decision = settings.policies.decide(session.identity, source, name, request.app[CLOCK]())
        if decision.policy is None:
            continue
        idle_timeout = decision.policy.idle_timeout
        targets.append({
            "name": name,
            "protocol": config.targets[name].protocol,
            "idle_timeout": idle_timeout,
            "idle_warning": idle_warning_lead(idle_timeout) if idle_timeout is not None else None,
            "clipboard": decision.policy.clipboard.value,  # off | to-remote | to-local | both
        })
    may_watch = not watch_scope(session.identity, source, settings.policies).nobody
    identity = session.identity
    return web.json_response({"user": identity.username, "display_name": identity.display_name,
                              "targets": targets, "may_watch": may_watch,
                              "admin": identity.admin, "own_password": identity.backend == "local"})


@routes.get("/healthz")
async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


@routes.get("/readyz")
async def readyz(request: web.Request) -> web.Response:
    """200 while this node takes new sessions; 503 while it drains (the load balancer sends them elsewhere)."""
    if request.app[DRAIN].draining:
        return web.json_response({"status": "draining"}, status=503)
    return web.json_response({"status": "ready"})
