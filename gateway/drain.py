"""Graceful drain: how a node stops without cutting its operators off mid-sentence.

On SIGTERM (a rolling upgrade, a Kubernetes pod deleted) :func:`drain` marks the node as
draining: ``/readyz`` answers 503 so the load balancer sends new connections elsewhere, new
desktops are refused with :data:`NODE_DRAINING` (``sessions_refused_total{reason="draining"}``),
and every live operator is told through the notice channel when their session will close
(:class:`~gateway.notices.NodeDraining`). Sessions run on until they end or
``listen.drain_timeout`` passes; those still open then are ended with :data:`DRAIN_ENDED`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from aiohttp import web

from gateway.notices import NodeDraining
from gateway.web.keys import LIVE_SESSIONS, NOTICES

log = logging.getLogger(__name__)

#: What an operator opening a desktop on a draining node reads.
NODE_DRAINING = "this gateway node is restarting; open the desktop again in a moment"
#: Why a session still open at the drain's deadline ends.
DRAIN_ENDED = "the gateway node was restarted for maintenance; reconnect to continue"
POLL_INTERVAL = 0.2


class Drain:
    """Whether this node is draining, and until when (on the wall clock)."""

    def __init__(self) -> None:
        self.deadline: float | None = None

    @property
    def draining(self) -> bool:
        return self.deadline is not None


DRAIN = web.AppKey("drain", Drain)


async def drain(app: web.Application, timeout: float, clock: Callable[[], float] = time.time) -> int:
    """Drain ``app`` for at most ``timeout`` seconds (see the module); returns how many sessions it had to end."""
    registry = app[LIVE_SESSIONS]
    deadline = app[DRAIN].deadline = clock() + timeout
    log.info("draining: new sessions refused", extra={"ctx": {"live_sessions": len(registry), "timeout": timeout}})
    for session in registry:
        app[NOTICES].post_nowait(session.username, NodeDraining(deadline, session.target))
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while len(registry) and loop.time() < end:
        await asyncio.sleep(POLL_INTERVAL)
    remaining = list(registry)
    for session in remaining:
        registry.terminate(session.id, DRAIN_ENDED)
    if remaining:
        log.warning("drain deadline reached: sessions ended", extra={"ctx": {"sessions": len(remaining)}})
    return len(remaining)
