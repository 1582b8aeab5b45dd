"""The admin console's read-only views: effective access, targets, and the policies as loaded.

- ``GET /api/v1/admin/access?user=NAME&from=IP`` — for each target, the decision and the
  ``explain`` lines of :meth:`~gateway.policy.PolicySet.explain` for that user (the users
  file's entry, else their latest sign-in) from that address (default: the caller's), plus
  whose work they may watch (:mod:`gateway.watch`).
- ``GET /api/v1/admin/targets`` — each target with its reachability (a TCP connect, at most
  ``PROBE_TIMEOUT`` seconds, ``PROBE_CONCURRENCY`` at once, on the loop) and who is on it now
  (the live-session directory, every node).
- ``GET /api/v1/admin/policies`` — each policy as loaded with where it was written
  (``FILE:LINE``), and the last ``config.reload`` audit event since this gateway started.
"""

from __future__ import annotations

import asyncio
import os
from datetime import UTC, datetime
from ipaddress import ip_address
from typing import Any

from aiohttp import web

from auth.netacl import NetworkACL
from base.times import isoformat_utc
from gateway.config import Target
from gateway.errors import TargetRefused
from gateway.policy import Policy, normalize_source
from gateway.reach import JumpHosts, SshEndpoint, jump_endpoint, open_tcp
from gateway.watch import watch_scope
from gateway.web.admin_routes import refuse_non_admin, user_admin
from gateway.web.keys import AUDIT, JUMP_HOSTS, SESSION_DIRECTORY, SETTINGS, STARTED
from gateway.web.security import client_address, error_json

routes = web.RouteTableDef()

PROBE_TIMEOUT = 1.0
PROBE_CONCURRENCY = 32


@routes.get("/api/v1/admin/access")
async def effective_access(request: web.Request) -> web.Response:
    session = await refuse_non_admin(request)
    if isinstance(session, web.Response):
        return session
    name = request.query.get("user", "").strip()
    if not name:
        return error_json(400, "say whose access to show: ?user=NAME")
    try:
        source = normalize_source(ip_address(request.query.get("from", "").strip() or str(client_address(request))))
    except ValueError:
        return error_json(400, f"{request.query.get('from', '')[:64]!r} is not an IP address")
    admin = user_admin(request, session)
    identity = await admin.identity_of(name)
    if identity is None:
        return error_json(404, f"no user {name[:64]!r} is known here: not in the users file, and never signed in")
    settings = request.app[SETTINGS].current
    config, policies = settings.config, settings.policies
    refusals = []
    local = admin.local_users.get(name) if admin.local_users is not None else None
    if name in await admin.disabled.all() or (local is not None and local.disabled):
        refusals.append(f"account {name} is disabled")
    if not NetworkACL(config.network.allow).is_allowed(source):
        refusals.append(f"source {source} is not in network.allow; it is refused before any policy")
    targets = []
    for target in config.targets:
        decision = policies.decide(identity, source, target)
        targets.append({"target": target, "allowed": decision.allowed and not refusals,
                        "reason": "; ".join(refusals + [decision.reason]),
                        "explain": policies.explain(identity, source, target)})
    return web.json_response({
        "user": identity.username, "source": str(source), "groups": sorted(identity.groups),
        "admin": identity.admin, "backend": identity.backend, "targets": targets,
        "watch": watch_scope(identity, source, policies).describe(),
    })


async def probe(target: Target, timeout: float, via: SshEndpoint | None = None,
                jumps: JumpHosts | None = None) -> str | None:
    """Why ``target`` cannot be reached over TCP (through jump host ``via``) within ``timeout`` seconds;
    None when it answers."""
    try:
        async with asyncio.timeout(timeout):
            stream = await open_tcp(target.name, target.host, target.port, via, jumps)
    except TimeoutError:
        return f"no answer within {timeout:g} s"
    except TargetRefused as refusal:
        return str(refusal)
    except OSError as error:
        return os.strerror(error.errno) if error.errno else str(error)  # "Connection refused", not the call
    stream.close()
    await stream.wait_closed()
    return None


async def probe_all(targets: list[Target], timeout: float = PROBE_TIMEOUT,
                    concurrency: int = PROBE_CONCURRENCY, jumps: JumpHosts | None = None) -> list[str | None]:
    """:func:`probe` each of the config's ``targets`` (through its jump host, if any), at most
    ``concurrency`` at once; results in ``targets``' order."""
    slots = asyncio.Semaphore(concurrency)
    named = {target.name: target for target in targets}

    async def bounded(target: Target) -> str | None:
        async with slots:
            return await probe(target, timeout, jump_endpoint(target, named), jumps)

    return list(await asyncio.gather(*(bounded(target) for target in targets)))


@routes.get("/api/v1/admin/targets")
async def targets_view(request: web.Request) -> web.Response:
    session = await refuse_non_admin(request)
    if isinstance(session, web.Response):
        return session
    targets = list(request.app[SETTINGS].current.config.targets.values())
    problems, entries = await asyncio.gather(probe_all(targets, jumps=request.app[JUMP_HOSTS]), request.app[SESSION_DIRECTORY].list())
    now = request.app[SESSION_DIRECTORY].clock()
    return web.json_response({"targets": [
        {"name": target.name, "protocol": target.protocol, "host": target.host, "port": target.port,
         "reachable": problem is None, "problem": problem,
         "sessions": [entry.to_json(now) for entry in entries if entry.target == target.name]}
        for target, problem in zip(targets, problems, strict=True)]})


def policy_json(policy: Policy) -> dict[str, Any]:
    return {"name": policy.name, "origin": policy.origin, "groups": list(policy.groups),
            "from": [str(network) for network in policy.from_networks], "targets": list(policy.targets),
            "clipboard": str(policy.clipboard), "idle_timeout": policy.idle_timeout,
            "max_session": policy.max_session, "recordings": str(policy.recordings),
            "record_input": str(policy.record_input), "watch": list(policy.watch), "unmask": policy.unmask}


@routes.get("/api/v1/admin/policies")
async def policies_view(request: web.Request) -> web.Response:
    session = await refuse_non_admin(request)
    if isinstance(session, web.Response):
        return session
    settings = request.app[SETTINGS].current
    started = request.app[STARTED]
    reload = await request.app[AUDIT].latest("config.reload", since=datetime.fromtimestamp(started, UTC))
    last_reload = None if reload is None else {
        "time": isoformat_utc(reload.time), "outcome": reload.outcome, "by": reload.user,
        "error": reload.detail.get("error") or reload.reason}
    return web.json_response({"config": str(settings.config.path),
                              "policies": [policy_json(policy) for policy in settings.policies.policies],
                              "last_reload": last_reload})
