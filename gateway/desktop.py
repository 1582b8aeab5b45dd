"""One desktop session: browser WebSocket ⇄ gateway ⇄ VNC target.

The gateway terminates RFB on both sides. It first reads the browser's protocol
version, then connects to the target and runs the client handshake there (with the
target's password, which the browser never sees), and only then completes the
server handshake towards the browser — so a refusal reaches noVNC as a security
failure with a readable reason. After that a sans-I/O
:class:`~gateway.rfb.proxy.ProxyConnection` owns both directions and applies the policy
(encodings the gateway can frame, clipboard direction, how much input is recorded);
this module is its I/O: one task per direction feeds it what one side sends, journals
and counts what it reports and writes what it forwards to the other side, and a
watchdog ends the session on idleness, maximum length, termination or a failed journal.

Recording, fail-closed: the session's journal is created before the browser's
handshake completes (no journal, no session). The journal gets what the proxy says to
journal — the target's bytes exactly, the browser's after the policy (or only counts of
the operator's input where the policy says so) — and a failed journal write ends the
session within one flush interval.

Backpressure: each pump awaits its write and the journal's buffer before reading more,
so a browser that stops reading stops the reads from the target, and a slow recording
disk slows both directions; buffers are bounded by the read size, the browser's
WebSocket message cap, the framers' limits and the recorder's high-water mark.

A session that ends for idleness or its maximum length signs the operator out: the
``before_close`` callback ends the web session that opened it before the browser hears of
the end, so the page's "Reconnect" meets the login page (password and TOTP again).
What counts as input is the proxy's :class:`~gateway.rfb.proxy.InputActivity`: pointer
events that change nothing and key repeats do not.

The operator's page hears from the watchdog through the notice board
(:mod:`gateway.notices`): the idle warning carries the deadline on the gateway's clock. A
session someone ended (:class:`~gateway.sessions.EndRequest`) says who and why in its close
reason and its journal (an ``ended_by`` event).

No browser holds the event loop: its data is handed to the proxy in slices of
``browser_slice`` bytes, with a turn of the loop after each slice's worth of bytes (not after
each of its small messages, which would cost a turn of the loop per key press), so other sessions,
logins and health checks run in between; and the proxy holds the browser to what a person
can produce (:class:`BrowserLimits`): past its message budget the pump stops reading the
browser for as long as the proxy says (the flood waits in the browser's own socket),
excess pointer moves are dropped, and a flood of key or button events ends the session
(:attr:`CloseCode.INPUT_FLOOD`); each is counted.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from aiohttp import WebSocketError, WSCloseCode, WSMsgType, web

from base.metrics import Metrics
from gateway.errors import TargetRefused
from gateway.journals import SessionJournal, SessionRecordings
from gateway.notices import NoticePoster
from gateway.policy import InputRecording, Policy
from gateway.reach import JumpHosts, SshEndpoint, open_tcp
from gateway.rfb.browser_limits import BrowserLimits
from gateway.rfb.errors import InputFlood, ProtocolViolation, TargetAuthFailed, TargetUnavailable
from gateway.rfb.handshake import (
    ClientHandshake,
    ClientVersionReceived,
    HandshakeComplete,
    ServerHandshake,
)
from gateway.rfb.messages import ServerInit
from gateway.rfb.proxy import (
    ClipboardBlocked,
    InputActivity,
    InputCounted,
    JournalData,
    PointerMovesDropped,
    ProxyConnection,
    ProxyEvent,
    ProxyFailed,
    Resized,
    Side,
)
from gateway.rfb_io import drive
from gateway.session_watch import CloseCode, SessionEnded, close_reason, watch_session
from gateway.sessions import LiveSession, SessionControl
from gateway.target_stream import TargetStream
from recorder.errors import RecordingUnavailable
from recorder.input_privacy import KeysCounted, KeystrokeFilter
from recorder.masking import MASKS_EVENT, MaskSet, masks_event_fields

log = logging.getLogger(__name__)

E = TypeVar("E", ClientVersionReceived, HandshakeComplete)


#: How many bytes of a browser's data the proxy handles per turn of the event loop: at most 85
#: PointerEvents (6 bytes each, the smallest message), well under a millisecond of work;
#: noVNC's messages are mostly a few bytes (at most 10 KiB).
BROWSER_SLICE = 512

@dataclass(frozen=True, slots=True)
class Timeouts:
    """Bounds on every network wait of a desktop session (seconds)."""

    connect: float = 10.0
    handshake: float = 15.0


@dataclass(frozen=True, slots=True)
class TargetEndpoint:
    """Where and how the gateway reaches a VNC target."""

    name: str
    host: str
    port: int
    password: bytes | None
    via: SshEndpoint | None = None  # the jump host it is reached through
    masks: tuple[MaskSet, ...] = ()  # regions hidden from supervisors (``masks:``), recorded with each session
    prefer_encoding: int | None = None  # put first in the browser's SetEncodings when listed (None: its order)


async def connect_desktop(target: TargetEndpoint, jumps: JumpHosts | None, timeouts: Timeouts, *,
                          advice: str | None = None) -> tuple[TargetStream, HandshakeComplete]:
    """Reach ``target`` (directly or through its jump host) and run the RFB client handshake on it, shared
    (an operator's session and its live views may hold the desktop together).

    TargetUnavailable when it cannot be reached (``advice`` ends that message) or does not finish the
    handshake in time; the handshake's own errors (a refused password, a refused share) as they come.
    The stream is closed on any failure.
    """
    try:
        async with asyncio.timeout(timeouts.connect):
            stream = await open_tcp(target.name, target.host, target.port, target.via, jumps)
    except TargetRefused as exc:
        raise TargetUnavailable(str(exc)) from exc
    except (OSError, TimeoutError) as exc:
        unreachable = f"desktop {target.name} is unreachable ({exc.__class__.__name__}: {exc})"
        raise TargetUnavailable(f"{unreachable}; {advice}" if advice else unreachable) from exc
    try:
        complete = await drive(ClientHandshake(password=target.password), stream.read, stream.send,
                               timeouts.handshake, until=HandshakeComplete)
    except TimeoutError as exc:
        stream.close()
        raise TargetUnavailable(f"desktop {target.name} did not complete the RFB handshake in time") from exc
    except BaseException:
        stream.close()
        raise
    return stream, complete


#: What must be done as a session ends, before the browser hears of it: free its place on the target (a
#: "Reconnect" must not find it taken) and, when it ended for idleness or its length, end its web sign-in
#: (so that "Reconnect" meets the login page).
BeforeClose = Callable[["SessionEnded"], Awaitable[None]]


class DesktopSession:
    """Proxy one browser WebSocket to one VNC target until either side ends it."""

    def __init__(
        self,
        ws: web.WebSocketResponse,
        target: TargetEndpoint,
        policy: Policy,
        live: LiveSession,
        control: SessionControl,
        metrics: Metrics,
        recordings: SessionRecordings,
        notices: NoticePoster,
        timeouts: Timeouts = Timeouts(),
        browser_limits: BrowserLimits = BrowserLimits(),
        browser_slice: int = BROWSER_SLICE,
        before_close: BeforeClose | None = None,
        jumps: JumpHosts | None = None,
    ) -> None:
        self._ws = ws
        self._before_close = before_close
        self._jumps = jumps
        self._target = target
        self._policy = policy
        self._live = live
        self._metrics = metrics
        self._recordings = recordings
        self._notices = notices
        self._control = control
        self._recorder: SessionJournal | None = None
        self._timeouts = timeouts
        self._browser_limits = browser_limits
        self._browser_slice = browser_slice
        self._moves_dropped = False  # journaled and logged once per session
        self._throttled = False  # logged once per session
        self._loop = asyncio.get_running_loop()
        self._terminated = control.terminated
        self._target_stream: TargetStream | None = None
        self._to_target = metrics.proxy_bytes_total.labels(protocol="vnc", direction="to_target")
        self._to_client = metrics.proxy_bytes_total.labels(protocol="vnc", direction="to_client")
        self._keystrokes: KeystrokeFilter | None = None  # record_input full: keys in masked fields, card numbers

    async def run(self) -> SessionEnded:
        """Run the session to its end; returns how it ended (the socket is closed)."""
        try:
            ended = await self._run()
        except SessionEnded as exc:
            ended = exc
        except Exception:
            log.exception("desktop session failed", extra={"ctx": self._context()})
            ended = SessionEnded(CloseCode.INTERNAL_ERROR, "internal gateway error; the session was ended")
        finally:
            if self._target_stream is not None:
                self._target_stream.close()
        try:
            if self._before_close is not None:
                await self._before_close(ended)
            await self._ws.close(code=ended.code, message=close_reason(ended.reason))
        finally:
            if self._recorder is not None:
                self._control.journal = None  # a viewer leaving now must not write into a sealed journal
                if self._keystrokes is not None:
                    self._journal_client(self._keystrokes.finish(), self._recorder)
                await self._recordings.finish(self._live, self._recorder, ended.reason)
        return ended

    async def _run(self) -> SessionEnded:
        browser = ServerHandshake()
        browser.initiate()
        await self._browser_handshake(browser, ClientVersionReceived)

        try:
            target_stream, from_target = await connect_desktop(
                self._target, self._jumps, self._timeouts, advice="try again later or tell your administrator")
        except (TargetUnavailable, TargetAuthFailed, ProtocolViolation) as exc:
            browser.reject(str(exc))
            await self._send_to_browser(browser.data_to_send())
            raise SessionEnded(CloseCode.TARGET_UNAVAILABLE, str(exc)) from exc
        self._target_stream = target_stream
        server_init = from_target.server_init

        try:
            recorder = self._recorder = await self._recordings.start(self._live, server_init, self._policy)
            self._control.recording_id = recorder.recording_id
            self._control.journal = recorder
        except RecordingUnavailable as exc:
            browser.reject(f"{exc} Tell your administrator.")
            await self._send_to_browser(browser.data_to_send())
            raise SessionEnded(CloseCode.RECORDING_FAILED, str(exc)) from exc

        # The browser sees the target's geometry and pixel format, but the admin's name for it:
        # the server's own desktop name is untrusted text (HTML injection into the page title).
        browser.accept(ServerInit(server_init.width, server_init.height, server_init.pixel_format,
                                  self._target.name.encode()))
        from_browser = await self._browser_handshake(browser, HandshakeComplete)

        policy = self._policy
        self._start_privacy(server_init, recorder)
        proxy = ProxyConnection(
            server_init,
            clipboard_to_remote=policy.clipboard.allows_to_remote,
            clipboard_to_local=policy.clipboard.allows_to_local,
            journal_input=policy.record_input == InputRecording.FULL,  # counts and off journal no input
            browser_limits=self._browser_limits,
            desktop_name=self._target.name.encode(),
            preferred_encoding=self._target.prefer_encoding,
        )
        log.info("desktop session open", extra={"ctx": self._context()})
        ended: list[SessionEnded] = []
        try:
            async with asyncio.TaskGroup() as tasks:
                tasks.create_task(self._pump_browser_to_target(proxy, target_stream, recorder, from_browser.trailing_data))
                tasks.create_task(self._pump_target_to_browser(proxy, target_stream, recorder, from_target.trailing_data))
                tasks.create_task(self._watchdog(recorder))
        except* SessionEnded as group:
            ended.extend(e for e in group.exceptions if isinstance(e, SessionEnded))
        return ended[0]  # the tasks only ever end by raising SessionEnded

    def _start_privacy(self, server_init: ServerInit, recorder: SessionJournal) -> None:
        """Record the target's masks with the session, and filter the keys journaled under ``record_input: full``."""
        masks = self._target.masks
        size = (server_init.width, server_init.height)
        if masks:
            recorder.event(MASKS_EVENT, **masks_event_fields(masks))
            for mask_set in masks:
                if mask_set.desktop != size:
                    log.warning("masks drawn for another desktop size are scaled to this desktop's",
                                extra={"ctx": {**self._context(), "mask_desktop": "%dx%d" % mask_set.desktop,
                                               "desktop": "%dx%d" % size}})
        if self._policy.record_input == InputRecording.FULL:
            regions = [region for mask_set in masks for region in mask_set.regions_for(*size)]
            self._keystrokes = KeystrokeFilter(regions)

    def _journal_client(self, outputs: list[bytes | KeysCounted], recorder: SessionJournal) -> None:
        for output in outputs:
            if isinstance(output, KeysCounted):
                recorder.input_counted("keys", output.count)
                self._metrics.keys_withheld_total.labels(why=output.why).inc(output.count)
            else:
                recorder.client_data(output)

    def _context(self) -> dict[str, str]:
        live = self._live
        return {"session": live.id, "user": live.username, "source": live.source, "target": live.target}

    async def _send_to_browser(self, data: bytes) -> None:
        if data:
            await self._ws.send_bytes(data)

    async def _receive_from_browser(self) -> bytes:
        msg = await self._ws.receive()
        if msg.type == WSMsgType.BINARY:
            return bytes(msg.data)
        if msg.type in (WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED):
            raise SessionEnded(CloseCode.NORMAL, "the browser closed the session")
        if msg.type == WSMsgType.ERROR:
            error = self._ws.exception()
            if isinstance(error, WebSocketError) and error.code == WSCloseCode.MESSAGE_TOO_BIG:
                raise SessionEnded(CloseCode.MESSAGE_TOO_BIG,
                                   f"the browser sent a WebSocket message over {self._browser_limits.largest_message} "
                                   "bytes, longer than any RFB message")
            raise SessionEnded(CloseCode.PROTOCOL_ERROR, f"browser connection failed: {error}")
        raise SessionEnded(CloseCode.PROTOCOL_ERROR, "the browser sent a text frame; RFB is binary")

    async def _browser_handshake(self, handshake: ServerHandshake, until: type[E]) -> E:
        """Run the browser's handshake up to ``until``; its end of stream ends the session at once."""
        try:
            return await drive(handshake, self._receive_from_browser, self._send_to_browser,
                               self._timeouts.handshake, until=until)
        except ProtocolViolation as exc:
            raise SessionEnded(CloseCode.PROTOCOL_ERROR, f"browser handshake failed: {exc}") from exc

    # The pumps share the proxy: each feeds it and takes its events without awaiting in
    # between, so the events one takes are those of the bytes it fed.

    async def _pump_browser_to_target(
        self, proxy: ProxyConnection, target: TargetStream, recorder: SessionJournal, trailing: bytes
    ) -> None:
        step = self._browser_slice
        data = trailing
        unyielded = 0  # browser bytes handled since this pump last gave the loop a turn
        while True:
            for start in range(0, len(data), step):
                piece = data[start : start + step]
                proxy.receive_browser_data(piece, self._loop.time())
                self._apply(proxy.events_received(), recorder)
                if payload := proxy.data_to_send_target():
                    target.write(payload)
                    await target.drain()
                    self._to_target.inc(len(payload))
                    await recorder.backpressure()
                # Neither await above need yield: after every slice's worth of bytes, let the rest of the
                # gateway run (longer if the browser is flooding), but not after every small message.
                unyielded += len(piece)
                pause = self._browser_pause(proxy)
                if pause or unyielded >= step:
                    await asyncio.sleep(pause)
                    unyielded = 0
            data = await self._receive_from_browser()  # its end raises SessionEnded

    async def _pump_target_to_browser(
        self, proxy: ProxyConnection, target: TargetStream, recorder: SessionJournal, trailing: bytes
    ) -> None:
        proxy.receive_target_data(trailing)
        while True:
            self._apply(proxy.events_received(), recorder)
            if payload := proxy.data_to_send_browser():
                await self._ws.send_bytes(payload)
                self._to_client.inc(len(payload))
                await recorder.backpressure()
            try:
                data = await target.read()
            except OSError as exc:
                raise SessionEnded(CloseCode.TARGET_CLOSED, f"connection to desktop {self._target.name} failed: {exc}")
            if data:
                proxy.receive_target_data(data)
            else:
                proxy.receive_eof(Side.TARGET)

    def _apply(self, events: list[ProxyEvent], recorder: SessionJournal) -> None:
        """Journal, count and watch what the proxy reports; its failure or a closed side ends the session."""
        for event in events:
            if isinstance(event, JournalData):
                if event.sender is Side.TARGET:
                    recorder.server_data(event.data)
                elif self._keystrokes is not None:
                    self._journal_client(self._keystrokes.feed(event.messages), recorder)
                else:
                    recorder.client_data(event.data)
            elif isinstance(event, InputActivity):
                self._control.last_input = self._loop.time()
            elif isinstance(event, InputCounted):
                if self._policy.record_input == InputRecording.COUNTS:  # off: not even counted
                    recorder.input_counted(event.kind, event.count)
            elif isinstance(event, ClipboardBlocked):
                self._metrics.clipboard_blocked_total.labels(direction=event.direction).inc()
                recorder.event("clipboard_blocked", direction=event.direction, length=event.length)
            elif isinstance(event, Resized):
                recorder.event("resize", width=event.width, height=event.height)
            elif isinstance(event, PointerMovesDropped):
                self._pointer_moves_dropped(event.count, recorder)
            elif isinstance(event, ProxyFailed):
                if isinstance(event.error, InputFlood):  # counted as sessions_total{outcome="input_flood"}
                    raise SessionEnded(CloseCode.INPUT_FLOOD, f"the browser sent {event.error}; check for a stuck key")
                if event.side is Side.BROWSER:
                    raise SessionEnded(CloseCode.PROTOCOL_ERROR, f"the browser broke the protocol: {event.error}")
                raise SessionEnded(
                    CloseCode.PROTOCOL_ERROR,
                    f"desktop {self._target.name} sent data the gateway cannot forward: {event.error}",
                )
            else:  # ConnectionClosed, by the target: the browser's close raises in _receive_from_browser
                raise SessionEnded(CloseCode.TARGET_CLOSED, f"desktop {self._target.name} closed the session")

    def _browser_pause(self, proxy: ProxyConnection) -> float:
        pause = proxy.browser_pause()
        if pause:
            self._metrics.browser_throttled_seconds_total.inc(pause)
            if not self._throttled:
                self._throttled = True
                log.warning("browser over its message budget: reading paused",
                            extra={"ctx": {**self._context(),
                                           "per_second_limit": str(self._browser_limits.messages_per_second)}})
        return pause

    def _pointer_moves_dropped(self, count: int, recorder: SessionJournal) -> None:
        self._metrics.pointer_moves_dropped_total.inc(count)
        if not self._moves_dropped:  # the first time only: a flood must not flood the journal and the log
            self._moves_dropped = True
            limit = self._browser_limits.pointer_moves_per_second
            recorder.event("pointer_moves_dropped", per_second_limit=limit)
            log.warning("pointer moves over the limit dropped",
                        extra={"ctx": {**self._context(), "per_second_limit": str(limit)}})

    async def _watchdog(self, recorder: SessionJournal) -> None:
        """End the session on idle timeout, maximum duration, a recording failure or a termination."""
        await watch_session(self._policy, self._control, recorder, self._notices, self._metrics)
