"""A supervisor's view of a live terminal session: its output, followed from the session's tail, view-only.

``GET /ws/live/{id}`` of a terminal session (protocol ``ssh``) runs a :class:`TerminalLiveView`
instead of the desktops' RFB relay, after the same checks and with the same traces
(:class:`~gateway.web.live_routes.Viewing`: audit, the operator's notice, viewer count, ``viewed_by``
in the journal). It follows the session's :class:`~gateway.terminal_tail.TerminalTail` on this node:

- ``mode=live`` (``/live/{id}``, xterm.js): a text frame ``{"size": [cols, rows]}`` first and at
  every resize, then the recent output and everything after it as binary frames;
- ``mode=tile`` (the wall): every ``tile_interval`` seconds a text frame ``{"lines": [...]}`` with
  the last :data:`TILE_LINES` lines of text (escape sequences dropped).

Whatever the viewer sends is dropped and counted (``live_view_dropped_input_total{kind="terminal"}``):
there is no path from a viewer to the target. The view ends with the session (close code 4010),
when the viewer leaves, or when it cannot keep up (1008).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable

from aiohttp import WSMsgType, web

from base.metrics import Metrics
from gateway.session_watch import CloseCode, SessionEnded, close_reason
from gateway.terminal_tail import TailEnded, TerminalTail
from recorder.records import TerminalSize

log = logging.getLogger(__name__)

#: Lines of text a wall tile shows.
TILE_LINES = 12
#: The largest message a terminal viewer may send (all of it is dropped anyway).
MAX_VIEWER_MESSAGE = 4096


class TerminalLiveView:
    """Send one viewer the output of one live terminal session until either ends (see the module docstring)."""

    def __init__(self, ws: web.WebSocketResponse, tail: TerminalTail, metrics: Metrics, mode: str,
                 tile_interval: float, still_live: Callable[[], Awaitable[bool]], check_interval: float = 2.0) -> None:
        self._ws = ws
        self._tail = tail
        self._metrics = metrics
        self._mode = mode
        self._tile_interval = tile_interval
        self._still_live = still_live
        self._check_interval = check_interval

    async def run(self) -> SessionEnded:
        """Run the view to its end; returns how it ended (the socket is closed)."""
        ended: list[SessionEnded] = []
        try:
            async with asyncio.TaskGroup() as tasks:
                tasks.create_task(self._drop_viewer_input())
                tasks.create_task(self._follow() if self._mode == "live" else self._tiles())
                tasks.create_task(self._watch())
        except* SessionEnded as group:
            ended.extend(e for e in group.exceptions if isinstance(e, SessionEnded))
        except* (ConnectionError, RuntimeError):  # the viewer's socket went away under a send
            ended.append(SessionEnded(CloseCode.NORMAL, "the viewer closed the live view"))
        await self._ws.close(code=ended[0].code, message=close_reason(ended[0].reason))
        return ended[0]

    async def _follow(self) -> None:
        viewer = self._tail.follow()
        try:
            while True:
                item = await viewer.next()
                if isinstance(item, TailEnded):
                    code = CloseCode.TERMINATED if self._tail.ended is item else CloseCode.PROTOCOL_ERROR
                    raise SessionEnded(code, item.reason)
                if isinstance(item, TerminalSize):
                    await self._ws.send_str(json.dumps({"size": [item.cols, item.rows]}))
                else:
                    await self._ws.send_bytes(item)
        finally:
            self._tail.leave(viewer)

    async def _tiles(self) -> None:
        while self._tail.ended is None:
            await self._ws.send_str(json.dumps({"lines": self._tail.last_lines(TILE_LINES)}))
            await asyncio.sleep(self._tile_interval)
        raise SessionEnded(CloseCode.TERMINATED, self._tail.ended.reason)

    async def _drop_viewer_input(self) -> None:
        dropped = self._metrics.live_view_dropped_input_total.labels(kind="terminal")
        while True:
            msg = await self._ws.receive()
            if msg.type in (WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED):
                raise SessionEnded(CloseCode.NORMAL, "the viewer closed the live view")
            if msg.type == WSMsgType.ERROR:
                raise SessionEnded(CloseCode.PROTOCOL_ERROR, f"viewer connection failed: {self._ws.exception()}")
            dropped.inc()

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(self._check_interval)
            if not await self._still_live():
                raise SessionEnded(CloseCode.TERMINATED, "the operator's session has ended")
