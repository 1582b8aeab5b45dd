"""``GET /api/v1/notices``: the gateway's messages to the signed-in user's pages, as server-sent events.

One text/event-stream per page (the browser's ``EventSource``):

- ``retry: 3000`` and an ``event: hello`` whose data is ``{"now": <the gateway's clock>, "user"}``:
  the page times countdowns (idle warning) on the gateway's clock, not its own;
- then the user's notices that have not expired, each ``id: N`` / ``event: notice`` / ``data:
  {...}`` (see :meth:`gateway.notices.PostedNotice.to_json`), with ``"replay": true`` on a
  fresh connection (what happened before the page came: it rebuilds who is viewing from
  them), and only the ones after ``Last-Event-ID`` when the browser reconnects;
- then every new notice as it is posted, on any node, and a comment line every
  ``KEEPALIVE`` seconds so that proxies keep the connection open.

The stream ends when the user's sign-in ends (the session watcher), when the user opens more
pages than the board keeps, when a page stops reading (a write waits at most ``WRITE_TIMEOUT``
seconds; the board's buffer per page is bounded too), or at shutdown; the browser reconnects
by itself, and after a sign-out gets 401 and stops.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from aiohttp import web

from gateway.notices import PostedNotice
from gateway.web.keys import NOTICES
from gateway.web.messages import say
from gateway.web.security import current_session, error_json

routes = web.RouteTableDef()

#: Seconds between keep-alive comments on an idle stream.
KEEPALIVE = 15.0
#: How long the browser waits before it reconnects a stream that ended (milliseconds).
RECONNECT_MS = 3000
#: Seconds one write may wait for a page that does not read before its connection is dropped.
WRITE_TIMEOUT = 30.0


def _event(event: str, data: dict[str, Any], event_id: int | None = None) -> bytes:
    lines = ([f"id: {event_id}"] if event_id is not None else []) + [f"event: {event}",
                                                                      f"data: {json.dumps(data)}"]
    return ("\n".join(lines) + "\n\n").encode()


def _notice(notice: PostedNotice, replay: bool) -> bytes:
    return _event("notice", {**notice.to_json(), "replay": replay}, notice.id)


async def _send(response: web.StreamResponse, data: bytes) -> None:
    async with asyncio.timeout(WRITE_TIMEOUT):
        await response.write(data)


def _last_event_id(request: web.Request) -> int | None:
    text = request.headers.get("Last-Event-ID", "")
    return int(text) if text.isdigit() and len(text) <= 18 else None


@routes.get("/api/v1/notices")
async def notice_stream(request: web.Request) -> web.StreamResponse:
    session = current_session(request)
    if session is None:
        return error_json(401, say(request, "log in first"))
    user = session.identity.username
    board = request.app[NOTICES]
    after = _last_event_id(request)
    response = web.StreamResponse(headers={
        "Content-Type": "text/event-stream; charset=utf-8", "Cache-Control": "no-store",
        "X-Content-Type-Options": "nosniff", "X-Accel-Buffering": "no",
    })
    subscription = board.subscribe(user, session.id)  # before the replay: nothing posted meanwhile is lost
    try:
        replay = await board.recent(user, after)
        await response.prepare(request)
        await _send(response, f"retry: {RECONNECT_MS}\n\n".encode()
                    + _event("hello", {"now": board.clock(), "user": user}))
        replayed = {notice.id for notice in replay}
        if replay:
            await _send(response, b"".join(_notice(notice, replay=after is None) for notice in replay))
        while subscription.ended is None:
            notice = await subscription.next(KEEPALIVE)
            if notice is None:
                if subscription.ended is None:
                    await _send(response, b": keepalive\n\n")
            elif notice.id not in replayed:
                await _send(response, _notice(notice, replay=False))
    except ConnectionResetError:  # the page went away
        pass
    except TimeoutError:  # the page stopped reading: drop its connection (the browser reconnects)
        if request.transport is not None:
            request.transport.abort()
    finally:
        board.unsubscribe(subscription)
    return response
