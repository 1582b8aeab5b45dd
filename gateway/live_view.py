"""One live viewer: browser WebSocket ⇄ gateway ⇄ a second, shared connection to the operator's target.

The I/O around :class:`~gateway.rfb.viewer.ViewerConnection`, in the shape of
:mod:`gateway.desktop`: the gateway reads the viewer's protocol version, connects to the
target with the shared flag set in its ClientInit (so the operator's connection stays), and
only then completes the viewer's handshake — a target that refuses a shared connection
reaches noVNC as a security failure saying so. Then three tasks run: the viewer's bytes into
the relay (nothing of them is ever written to the target, see the relay), the target's
updates out to the viewer, and the pacer, which writes the update requests the relay decides
on. A watcher ends the view when the operator's session is no longer listed (it ended on
whichever node held it), checked every ``check_interval`` seconds.

A target with masks (``masks:``) is viewed through :class:`~recorder.masked_updates.MaskedUpdates`:
the relay captures each update (it must be built with ``capture_updates=True``), a worker thread
decodes it, paints the masks and encodes what the viewer gets, so the viewer never receives the
masked pixels.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

from aiohttp import WSMsgType, web

from base.metrics import Metrics
from gateway.desktop import TargetEndpoint, Timeouts, connect_desktop
from gateway.reach import JumpHosts
from gateway.rfb.errors import ProtocolViolation, SharingRefused, TargetAuthFailed, TargetUnavailable
from gateway.rfb.handshake import ClientVersionReceived, HandshakeComplete, ServerHandshake
from gateway.rfb.messages import ServerInit
from gateway.rfb.proxy import ProxyFailed, Resized, Side
from gateway.rfb.viewer import (
    CutTextWithheld,
    InputDropped,
    UpdateCaptured,
    UpdateForwarded,
    ViewerConnection,
    ViewerEvent,
)
from gateway.rfb_io import drive
from gateway.session_watch import CloseCode, SessionEnded, close_reason
from gateway.target_stream import TargetStream
from recorder.errors import DecodeError
from recorder.masked_updates import MaskedUpdates

log = logging.getLogger(__name__)

E = TypeVar("E", ClientVersionReceived, HandshakeComplete)

#: The largest WebSocket message a viewer may send: its input is dropped anyway, and noVNC flushes every 10 KiB;
#: a longer one closes the view (1009), which bounds what aiohttp buffers.
MAX_VIEWER_MESSAGE = 64 * 1024


class LiveView:
    """Relay one viewer's view of ``target`` until the viewer leaves, the target closes, or the session ends."""

    def __init__(self, ws: web.WebSocketResponse, target: TargetEndpoint, relay: Callable[[ServerInit], ViewerConnection],
                 metrics: Metrics, still_live: Callable[[], Awaitable[bool]], *, check_interval: float = 2.0,
                 timeouts: Timeouts = Timeouts(), context: dict[str, str] | None = None,
                 jumps: JumpHosts | None = None) -> None:
        """``relay`` builds the view-only relay from the target's ServerInit; ``still_live`` says whether the
        operator's session is still listed."""
        self._ws = ws
        self._target = target
        self._relay = relay
        self._metrics = metrics
        self._still_live = still_live
        self._check_interval = check_interval
        self._timeouts = timeouts
        self._context = context or {}
        self._jumps = jumps
        self._target_stream: TargetStream | None = None
        self._loop = asyncio.get_running_loop()
        self._changed = asyncio.Event()  # the pacer looks again
        self._masked: MaskedUpdates | None = None
        self._captured: list[UpdateCaptured] = []
        #: Called with the loop's time once updates were written to the viewer (the bench measures latency with it).
        self.on_update: Callable[[float], None] | None = None

    async def run(self) -> SessionEnded:
        """Run the view to its end; returns how it ended (the socket is closed)."""
        try:
            ended = await self._run()
        except SessionEnded as exc:
            ended = exc
        except Exception:
            log.exception("live view failed", extra={"ctx": self._context})
            ended = SessionEnded(CloseCode.INTERNAL_ERROR, "internal gateway error; the live view was ended")
        finally:
            if self._target_stream is not None:
                self._target_stream.close()
        await self._ws.close(code=ended.code, message=close_reason(ended.reason))
        return ended

    async def _run(self) -> SessionEnded:
        browser = ServerHandshake()
        browser.initiate()
        await self._handshake(browser, ClientVersionReceived)
        try:
            target_stream, complete = await connect_desktop(self._target, self._jumps, self._timeouts)
        except (TargetUnavailable, TargetAuthFailed, ProtocolViolation) as exc:
            reason = str(exc)
            if isinstance(exc, SharingRefused):
                reason = (f"desktop {self._target.name} refused a second, shared connection, so it cannot be "
                          "viewed live; ask the administrator to allow shared connections on its VNC server")
                self._metrics.live_view_refused_total.labels(reason="sharing_refused").inc()
            else:
                self._metrics.live_view_refused_total.labels(reason="target_unavailable").inc()
            browser.reject(reason)
            await self._send(browser.data_to_send())
            raise SessionEnded(CloseCode.TARGET_UNAVAILABLE, reason) from exc
        self._target_stream = target_stream
        init = complete.server_init
        browser.accept(ServerInit(init.width, init.height, init.pixel_format, self._target.name.encode()))
        from_browser = await self._handshake(browser, HandshakeComplete)
        relay = self._relay(init)
        if self._target.masks:
            self._masked = MaskedUpdates(init, self._target.masks)
        log.info("live view open", extra={"ctx": self._context})
        ended: list[SessionEnded] = []
        try:
            async with asyncio.TaskGroup() as tasks:
                tasks.create_task(self._pump_viewer(relay, from_browser.trailing_data))
                tasks.create_task(self._pump_target(relay, target_stream, complete.trailing_data))
                tasks.create_task(self._pace(relay, target_stream))
                tasks.create_task(self._watch())
        except* SessionEnded as group:
            ended.extend(e for e in group.exceptions if isinstance(e, SessionEnded))
        return ended[0]

    async def _send(self, data: bytes) -> None:
        if data:
            await self._ws.send_bytes(data)

    async def _receive(self) -> bytes:
        msg = await self._ws.receive()
        if msg.type == WSMsgType.BINARY:
            return bytes(msg.data)
        if msg.type in (WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED):
            raise SessionEnded(CloseCode.NORMAL, "the viewer closed the live view")
        if msg.type == WSMsgType.ERROR:
            raise SessionEnded(CloseCode.PROTOCOL_ERROR, f"viewer connection failed: {self._ws.exception()}")
        raise SessionEnded(CloseCode.PROTOCOL_ERROR, "the viewer sent a text frame; RFB is binary")

    async def _handshake(self, handshake: ServerHandshake, until: type[E]) -> E:
        try:
            return await drive(handshake, self._receive, self._send, self._timeouts.handshake, until=until)
        except ProtocolViolation as exc:
            raise SessionEnded(CloseCode.PROTOCOL_ERROR, f"viewer handshake failed: {exc}") from exc
        except TimeoutError as exc:
            raise SessionEnded(CloseCode.PROTOCOL_ERROR, "the viewer did not complete the RFB handshake") from exc

    async def _pump_viewer(self, relay: ViewerConnection, trailing: bytes) -> None:
        data = trailing
        while True:
            relay.receive_viewer_data(data)
            self._apply(relay.events_received())
            self._changed.set()
            data = await self._receive()  # its end raises SessionEnded

    async def _pump_target(self, relay: ViewerConnection, target: TargetStream, trailing: bytes) -> None:
        relay.receive_target_data(trailing)
        while True:
            updates = self._apply(relay.events_received())
            if payload := relay.data_to_send_viewer():
                await self._ws.send_bytes(payload)
            for update in self._take_captured():
                await self._ws.send_bytes(await self._mask(update))
            if updates and self.on_update is not None:
                self.on_update(self._loop.time())
            self._changed.set()
            try:
                data = await target.read()
            except OSError as exc:
                raise SessionEnded(CloseCode.TARGET_CLOSED, f"connection to desktop {self._target.name} failed: {exc}")
            if data:
                relay.receive_target_data(data)
            else:
                relay.receive_eof(Side.TARGET)

    async def _pace(self, relay: ViewerConnection, target: TargetStream) -> None:
        """Write the relay's messages to the target when it says; sleep until it is due or something changed."""
        while True:
            self._changed.clear()
            wait = relay.pace(self._loop.time())
            if payload := relay.data_to_send_target():
                target.write(payload)
                await target.drain()
            if wait is None:
                await self._changed.wait()
            else:
                try:
                    async with asyncio.timeout(wait):
                        await self._changed.wait()
                except TimeoutError:
                    pass

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(self._check_interval)
            if not await self._still_live():
                raise SessionEnded(CloseCode.TERMINATED, "the operator's session has ended")

    def _take_captured(self) -> list[UpdateCaptured]:
        captured, self._captured = self._captured, []
        return captured

    async def _mask(self, update: UpdateCaptured) -> bytes:
        """The viewer's update for a captured one: decoded, masked and encoded in a worker thread."""
        assert self._masked is not None, "the relay captures updates only for a masked desktop"
        try:
            return await asyncio.to_thread(self._masked.update, update.rectangles, update.pixel_format, update.zrle)
        except DecodeError as exc:
            raise SessionEnded(CloseCode.PROTOCOL_ERROR,
                               f"desktop {self._target.name} sent an update the gateway cannot mask: {exc}") from exc

    def _apply(self, events: list[ViewerEvent]) -> int:
        """Count what the relay reports; returns how many whole updates it forwarded. A failure or close ends the view."""
        updates = 0
        for event in events:
            if isinstance(event, UpdateForwarded):
                updates += 1
            elif isinstance(event, UpdateCaptured):
                updates += 1
                self._captured.append(event)
            elif isinstance(event, InputDropped):
                self._metrics.live_view_dropped_input_total.labels(kind=event.kind).inc(event.count)
            elif isinstance(event, CutTextWithheld | Resized):
                continue
            elif isinstance(event, ProxyFailed):
                who = "the viewer" if event.side is Side.BROWSER else f"desktop {self._target.name}"
                raise SessionEnded(CloseCode.PROTOCOL_ERROR, f"{who} broke the protocol: {event.error}")
            else:  # ConnectionClosed, by the target
                raise SessionEnded(CloseCode.TARGET_CLOSED, f"desktop {self._target.name} closed the connection")
        return updates
