"""Watching live sessions: one at a time (``/live/{id}``) or the whole team (``/wall``).

``GET /ws/live/{id}`` is a view-only live view of that session (:mod:`gateway.live_view`):
WebSocket, subprotocol ``binary``, RFB 3.8 security None, opened only from the gateway's own
pages (Origin); of a terminal session, the live tail of its output (:mod:`gateway.terminal_live`;
page ``live_terminal.html``), on the node that holds it. ``?mode=tile`` is a wall tile: one update every 2 s at low JPEG quality (the
config's ``live_view:`` sets both paces, read when a view opens).
``GET /api/v1/sessions/{id}`` says whose session it is (for the page's title), and the pages
``/live/{id}`` and ``/wall`` serve their static files.

Who may view: those whose :class:`~gateway.watch.WatchScope` covers the operator (policy
``watch``, administrators everyone). Page, API and WebSocket refuse everyone else with 403 —
the same answer for a session outside the caller's scope as for one that does not exist, so
that nobody learns of sessions they may not see. Refusals are audited (``session.view``,
outcome ``denied``) and counted (``live_view_refused_total{reason}``).

While a view lasts, the operator knows and it leaves traces: ``session.view`` audited at its
start and end; the directory's viewer count (``viewers`` in ``/api/v1/sessions``) and this
node's ``live_viewers`` gauge; a ``viewing_started`` notice to the operator's page and
``viewing_ended`` when it ends, whatever the end (``finally``); and ``viewed_by`` events
(``by``, ``from``, then ``by``, ``from``, ``to``) in the session's journal — written at once
when this node holds the session, else posted in the directory for the holding node's watcher.
A view that outlasts the session has no end event: its journal is sealed; it lasted to the end.
The operator's notice is posted before the view starts: a view the operator cannot be told of
does not start.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable
from datetime import UTC, datetime
from typing import Any

from aiohttp import web
from sqlalchemy.exc import SQLAlchemyError

from base.times import isoformat_utc
from gateway.config import LiveViewConfig
from gateway.live_view import MAX_VIEWER_MESSAGE, LiveView
from gateway.notices import ViewingEnded, ViewingStarted
from gateway.rfb.messages import ServerInit
from gateway.rfb.viewer import TILE_PACING, Pacing, ViewerConnection
from gateway.session_directory import DirectoryEntry
from gateway.sessions import is_live_session_id
from gateway.terminal_live import MAX_VIEWER_MESSAGE as TERMINAL_VIEWER_MESSAGE
from gateway.terminal_live import TerminalLiveView
from gateway.terminal_tail import TERMINAL_TAILS
from gateway.watch import watch_scope
from gateway.web.keys import AUDIT, JUMP_HOSTS, LIVE_SESSIONS, METRICS, NOTICES, SESSION_DIRECTORY, SETTINGS
from gateway.web.messages import N_, say
from gateway.web.pages import page, redirect_to_login
from gateway.web.security import (
    TERMINAL_CONTENT_SECURITY_POLICY,
    client_address,
    current_session,
    error_json,
    origin_allowed,
)

log = logging.getLogger(__name__)
routes = web.RouteTableDef()

MODES = ("live", "tile")  # the page /live/{id}, and a tile of the wall
#: How often a view checks that the operator's session is still listed (seconds).
SESSION_CHECK_INTERVAL = 2.0

MAY_NOT_VIEW = N_("you may not view this session: it has ended, or its user is not in a group you watch")
TERMINAL_ELSEWHERE = N_("this terminal session runs on gateway node {node}: open its live view there")
MAY_WATCH_NOBODY = N_("you may not view live sessions: no policy lets you watch anyone's work")


async def _viewable(request: web.Request) -> DirectoryEntry | web.Response:
    """The listed session of ``{id}`` when the caller may view it; else the refusal (audited, counted)."""
    session = current_session(request)
    assert session is not None
    source = client_address(request)
    scope = watch_scope(session.identity, source, request.app[SETTINGS].current.policies)
    session_id = request.match_info["id"]
    entry = None
    if scope.nobody:
        reason, why, message = "not_watched", scope.describe(), MAY_WATCH_NOBODY
    else:
        entry = await request.app[SESSION_DIRECTORY].get(session_id) if is_live_session_id(session_id) else None
        if entry is None:
            reason, why, message = "unknown_session", "no such live session", MAY_NOT_VIEW
        elif not scope.covers(entry.groups):
            reason, why, message = "not_watched", f"the user's groups are outside {scope.describe()}", MAY_NOT_VIEW
        else:
            return entry
    return await _refuse(request, reason, why, message, session=session_id[:64],
                         operator=entry.username if entry is not None else None)


async def _refuse(request: web.Request, reason: str, why: str, message: str, **detail: Any) -> web.Response:
    session = current_session(request)
    assert session is not None
    request.app[METRICS].live_view_refused_total.labels(reason=reason).inc()
    await request.app[AUDIT].record("session.view", user=session.identity.username, source=client_address(request),
                                    target=detail.pop("operator", None), outcome="denied", reason=why, **detail)
    return error_json(403, say(request, message))


@routes.get("/api/v1/sessions/{id}")
async def session_details(request: web.Request) -> web.Response:
    if current_session(request) is None:
        return error_json(401, say(request, "log in first"))
    entry = await _viewable(request)
    if isinstance(entry, web.Response):
        return entry
    directory = request.app[SESSION_DIRECTORY]
    return web.json_response(entry.to_json(directory.clock()))


@routes.get("/live/{id}")
async def live_page(request: web.Request) -> web.StreamResponse:
    if current_session(request) is None:
        raise redirect_to_login()
    entry = await _viewable(request)
    if isinstance(entry, web.Response):
        return web.Response(status=403, text=f"403: {MAY_NOT_VIEW}.\n", content_type="text/plain")
    if entry.protocol == "ssh":  # a terminal: xterm.js, which needs the terminal pages' CSP
        response = page(request, "live_terminal.html")
        response.headers["Content-Security-Policy"] = TERMINAL_CONTENT_SECURITY_POLICY
        return response
    return page(request, "live.html")


@routes.get("/ws/live/{id}")
async def live_socket(request: web.Request) -> web.StreamResponse:
    app = request.app
    session = current_session(request)
    if session is None:
        return error_json(401, say(request, "log in first"))
    if not origin_allowed(request):
        return await _refuse(request, "foreign_origin", f"foreign origin {request.headers.get('Origin')!r}",
                             "this WebSocket may only be opened from the gateway's own pages",
                             session=request.match_info["id"][:64])
    mode = request.query.get("mode", "live")
    if mode not in MODES:
        return error_json(400, f"mode must be one of {', '.join(MODES)}")
    pacing = pacing_for(mode, app[SETTINGS].current.config.live_view)
    entry = await _viewable(request)
    if isinstance(entry, web.Response):
        return entry
    if entry.protocol == "ssh":
        return await _terminal_view(request, entry, mode)
    endpoint = app[SETTINGS].current.vnc_endpoints.get(entry.target)
    if endpoint is None:
        return error_json(404, f"desktop {entry.target} is no longer configured on this gateway")
    ws = web.WebSocketResponse(protocols=("binary",), max_msg_size=MAX_VIEWER_MESSAGE + 1, heartbeat=30.0,
                               compress=False)
    if not ws.can_prepare(request).ok:
        return error_json(400, "expected a WebSocket upgrade")

    viewer = session.identity.username
    viewing = Viewing(app, entry, viewer, str(client_address(request)), mode)
    await viewing.start()  # audited, and the operator told, before any byte of the screen is shown
    try:
        await ws.prepare(request)
        context = {"session": entry.id, "viewer": viewer, "user": entry.username, "target": entry.target,
                   "mode": mode}

        def relay(init: ServerInit) -> ViewerConnection:
            return ViewerConnection(init, pacing, desktop_name=endpoint.name.encode(), max_cut_text=MAX_VIEWER_MESSAGE,
                                    capture_updates=bool(endpoint.masks))

        ended = await LiveView(ws, endpoint, relay, app[METRICS], viewing.still_live,
                               check_interval=SESSION_CHECK_INTERVAL, context=context,
                               jumps=app[JUMP_HOSTS]).run()
        viewing.reason = ended.reason
    finally:
        await viewing.end()
    return ws


async def _terminal_view(request: web.Request, entry: DirectoryEntry, mode: str) -> web.StreamResponse:
    """The live view of a terminal session held on this node (:mod:`gateway.terminal_live`), with a view's traces."""
    app = request.app
    tail = app[TERMINAL_TAILS].get(entry.id)
    if tail is None:  # its output is on the node that holds it
        return error_json(409, say(request, TERMINAL_ELSEWHERE, node=entry.node))
    ws = web.WebSocketResponse(max_msg_size=TERMINAL_VIEWER_MESSAGE + 1, heartbeat=30.0, compress=False)
    if not ws.can_prepare(request).ok:
        return error_json(400, "expected a WebSocket upgrade")
    session = current_session(request)
    assert session is not None
    viewing = Viewing(app, entry, session.identity.username, str(client_address(request)), mode)
    await viewing.start()  # audited, and the operator told, before a byte of the output is shown
    try:
        await ws.prepare(request)
        view = TerminalLiveView(ws, tail, app[METRICS], mode, app[SETTINGS].current.config.live_view.tile_interval,
                                viewing.still_live, check_interval=SESSION_CHECK_INTERVAL)
        viewing.reason = (await view.run()).reason
    finally:
        await viewing.end()
    return ws


def _iso(epoch: float) -> str:
    return isoformat_utc(datetime.fromtimestamp(epoch, UTC))


def pacing_for(mode: str, config: LiveViewConfig) -> Pacing:
    """How the gateway paces the target for a viewer in ``mode`` (``live_view:`` in the config)."""
    if mode == "tile":
        return Pacing(config.tile_interval, jpeg_quality=config.tile_quality,
                      compress_level=TILE_PACING.compress_level)
    return Pacing(config.interval)


class Viewing:
    """The traces of one live view: audit, viewer count, gauge, the operator's notices, journal events."""

    def __init__(self, app: web.Application, entry: DirectoryEntry, viewer: str, source: str, mode: str) -> None:
        self.app = app
        self.entry = entry
        self.viewer = viewer
        self.source = source
        self.mode = mode
        self.reason = "the view ended"
        self._started = time.time()
        self._joined = False

    async def start(self) -> None:
        entry, app = self.entry, self.app
        await app[AUDIT].record("session.view", user=self.viewer, source=self.source, target=entry.username,
                                outcome="allowed", reason="start", session=entry.id, desktop=entry.target,
                                node=entry.node, mode=self.mode)
        await app[NOTICES].post(entry.username, ViewingStarted(self.viewer, entry.target))
        app[METRICS].live_viewers.inc()
        self._joined = True
        await self._quietly("count the viewer", app[SESSION_DIRECTORY].viewer_joined(entry.id))
        await self._journal({"by": self.viewer, "from": _iso(self._started), "mode": self.mode})

    async def end(self) -> None:
        """Undo what :meth:`start` did; every step runs, whatever the others do."""
        entry, app = self.entry, self.app
        app[NOTICES].post_nowait(entry.username, ViewingEnded(self.viewer, entry.target))
        if not self._joined:
            return
        app[METRICS].live_viewers.dec()
        ended = time.time()
        await self._journal({"by": self.viewer, "from": _iso(self._started), "to": _iso(ended),
                             "mode": self.mode})
        await self._quietly("uncount the viewer", app[SESSION_DIRECTORY].viewer_left(entry.id))
        await self._quietly("audit the view's end", app[AUDIT].record(
            "session.view", user=self.viewer, source=self.source, target=entry.username, outcome="ended",
            reason=self.reason, session=entry.id, desktop=entry.target, node=entry.node, mode=self.mode,
            duration=round(ended - self._started, 3)))

    async def still_live(self) -> bool:
        """Whether the session is still live: this node's registry when it holds it, else the directory."""
        if self.app[LIVE_SESSIONS].holds(self.entry.id):
            return True
        try:
            return await self.app[SESSION_DIRECTORY].get(self.entry.id) is not None
        except SQLAlchemyError:  # the database is away: keep the view; the next check decides
            return True

    async def _journal(self, fields: dict[str, Any]) -> None:
        """A ``viewed_by`` event in the session's journal, wherever the session is held."""
        if not self.app[LIVE_SESSIONS].journal(self.entry.id, "viewed_by", fields):
            await self._quietly("post a journal event", self.app[SESSION_DIRECTORY].post_event(
                self.entry.id, "viewed_by", fields))

    async def _quietly(self, what: str, step: Awaitable[Any]) -> None:
        try:
            await step
        except SQLAlchemyError as error:
            log.warning(f"live view: cannot {what}: %s", error, extra={"ctx": {"session": self.entry.id,
                                                                               "viewer": self.viewer}})


async def _wall_page(request: web.Request) -> web.StreamResponse:
    session = current_session(request)
    if session is None:
        raise redirect_to_login()
    if watch_scope(session.identity, client_address(request), request.app[SETTINGS].current.policies).nobody:
        return await _refuse(request, "not_watched", "may watch nobody", MAY_WATCH_NOBODY)
    return page(request, "wall.html")


routes.get("/wall")(_wall_page)
