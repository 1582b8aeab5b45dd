"""A local TCP port bridged to a desktop session's WebSocket, for native VNC viewers (``deskgate connect``).

:func:`run_bridge` listens on a loopback address. Each viewer that connects gets a new desktop
session (``open_session`` opens the gateway's ``/ws/vnc/{target}``): the viewer's bytes go out
as binary messages, the gateway's binary messages come back as bytes, each side awaiting the
other's drain. One viewer at a time: another that connects while one is active is closed at
once. A viewer leaving closes its session and the bridge waits for the next; the gateway
ending a session (a supervisor, idleness, the session's length, a refusal) ends the bridge,
which returns the gateway's close code and reason.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from ipaddress import ip_address

from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed

log = logging.getLogger(__name__)

#: Bytes of the viewer's stream read (and sent as one message) at a time; below the gateway's message cap.
READ_SIZE = 32 * 1024


@dataclass(frozen=True, slots=True)
class BridgeEnded:
    """How the gateway ended the session: its WebSocket close code and reason."""

    code: int | None
    reason: str


def check_loopback(host: str) -> None:
    """ValueError unless ``host`` is a loopback IP address (other machines must not reach the desktop)."""
    try:
        loopback = ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise ValueError(f"--listen {host}: the bridge listens on a loopback address only (e.g. 127.0.0.1), "
                         "so that no other machine can use your session")


async def run_bridge(host: str, port: int, open_session: Callable[[], Awaitable[ClientConnection]],
                     on_listening: Callable[[str, int], None] = lambda host, port: None) -> BridgeEnded:
    """Bridge viewers on ``host:port`` (loopback) to sessions until the gateway ends one."""
    check_loopback(host)
    ended: asyncio.Future[BridgeEnded] = asyncio.get_running_loop().create_future()
    active = False

    async def viewer_connected(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal active
        if active or ended.done():
            log.warning("a second viewer was refused: one viewer at a time")
            writer.close()
            return
        active = True
        try:
            outcome = await _bridge_one(reader, writer, open_session)
            if outcome is not None and not ended.done():
                ended.set_result(outcome)
        except Exception as exc:  # the gateway refused the WebSocket, TLS failed, …
            if not ended.done():
                ended.set_result(BridgeEnded(None, f"cannot open the session: {exc}"))
        finally:
            active = False
            writer.close()

    server = await asyncio.start_server(viewer_connected, host, port)
    try:
        bound = server.sockets[0].getsockname()
        on_listening(str(bound[0]), int(bound[1]))
        return await ended
    finally:
        server.close()


async def _bridge_one(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                      open_session: Callable[[], Awaitable[ClientConnection]]) -> BridgeEnded | None:
    """Bridge one viewer; the gateway's close when it ended the session, None when the viewer left."""
    ws = await open_session()
    viewer_left = False

    async def viewer_to_gateway() -> None:
        nonlocal viewer_left
        try:
            while data := await reader.read(READ_SIZE):
                await ws.send(data)
        except OSError:
            pass  # the viewer's connection broke: as if it left
        viewer_left = True

    async def gateway_to_viewer() -> None:
        async for message in ws:
            writer.write(message if isinstance(message, bytes) else message.encode())
            await writer.drain()

    tasks = [asyncio.create_task(viewer_to_gateway()), asyncio.create_task(gateway_to_viewer())]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, ConnectionClosed, OSError):
                await task
    if viewer_left:
        await ws.close()
        return None
    with contextlib.suppress(ConnectionClosed, OSError):
        await ws.close()
    return BridgeEnded(ws.close_code, ws.close_reason or "")
