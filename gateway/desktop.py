"""One desktop session: browser WebSocket ⇄ gateway ⇄ VNC target.

The gateway terminates RFB on both sides. It first reads the browser's protocol
version, then connects to the target and runs the client handshake there (with the
target's password, which the browser never sees), and only then completes the
server handshake towards the browser — so a refusal reaches noVNC as a security
failure with a readable reason. After that, one task per direction cuts each stream
into whole messages (:mod:`gateway.rfb.framing`), applies the policy (encodings the
gateway can frame, clipboard direction) and forwards the exact bytes.

Recording, fail-closed: the session's journal is created before the browser's
handshake completes (no journal, no session). Each pump journals what it forwards —
the target's bytes exactly, the browser's after the policy filter (or only counts of
the operator's input where the policy says so) — and a failed journal write ends the
session within one flush interval.

Backpressure: each pump awaits its write (and the journal's buffer) before reading
more, so a browser that stops reading stops the reads from the target; buffers are
bounded by the read size, the framers' limits and the recorder's high-water mark.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from enum import IntEnum
from typing import TypeVar

from aiohttp import WSMsgType, web

from base.metrics import Metrics
from gateway.journals import SessionJournal, SessionRecordings
from gateway.policy import InputRecording, Policy
from gateway.rfb.errors import ProtocolViolation, TargetAuthFailed, TargetUnavailable
from gateway.rfb.framing import (
    ClientMessageFramer,
    ClientMessageReceived,
    DesktopResized,
    ProtocolFailed,
    ServerMessageFramer,
    ServerMessageReceived,
    filter_encodings,
)
from gateway.rfb.handshake import (
    ClientHandshake,
    ClientVersionReceived,
    HandshakeComplete,
    HandshakeFailed,
    ServerHandshake,
)
from gateway.rfb.input_presses import InputPresses
from gateway.rfb.messages import (
    ClientCutText,
    KeyEvent,
    PointerEvent,
    QEMUExtendedKeyEvent,
    ServerCutText,
    ServerInit,
    SetEncodings,
    SetPixelFormat,
)
from gateway.sessions import LiveSession, SessionControl
from recorder.errors import RecordingUnavailable

log = logging.getLogger(__name__)

READ_SIZE = 64 * 1024

E = TypeVar("E")


#: The idle warning comes this long before an idle logout, or after four fifths of a shorter timeout.
IDLE_WARNING_LEAD = 60.0


def idle_warning_lead(idle_timeout: float) -> float:
    """How many seconds before the idle logout the operator is warned (page) and the journal says so."""
    return min(IDLE_WARNING_LEAD, idle_timeout / 5)


class CloseCode(IntEnum):
    """WebSocket close codes the desktop page explains to the operator, each with its outcome label.

    The label names how the session ended in ``sessions_total{outcome}`` and the audit log.
    """

    outcome: str

    def __new__(cls, code: int, outcome: str) -> CloseCode:
        member = int.__new__(cls, code)
        member._value_ = code
        member.outcome = outcome
        return member

    NORMAL = 1000, "closed"
    PROTOCOL_ERROR = 1008, "protocol_error"
    INTERNAL_ERROR = 1011, "error"
    TARGET_UNAVAILABLE = 4004, "target_unavailable"
    TARGET_CLOSED = 4005, "target_closed"
    IDLE_TIMEOUT = 4008, "idle_timeout"
    MAX_SESSION = 4009, "max_session"
    TERMINATED = 4010, "terminated"
    RECORDING_FAILED = 4011, "recording_failed"


@dataclass(frozen=True, slots=True)
class Timeouts:
    """Bounds on every network wait of a desktop session (seconds)."""

    connect: float = 10.0
    handshake: float = 15.0


class SessionEnded(Exception):
    """Raised by a pump to end the session with a close code and a reason for people."""

    def __init__(self, code: CloseCode, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


@dataclass(frozen=True, slots=True)
class TargetEndpoint:
    """Where and how the gateway reaches a VNC target."""

    name: str
    host: str
    port: int
    password: bytes | None


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
        timeouts: Timeouts = Timeouts(),
    ) -> None:
        self._ws = ws
        self._target = target
        self._policy = policy
        self._live = live
        self._metrics = metrics
        self._recordings = recordings
        self._control = control
        self._recorder: SessionJournal | None = None
        self._timeouts = timeouts
        self._loop = asyncio.get_running_loop()
        self._last_input = self._loop.time()
        self._terminated = control.terminated
        self._writer: asyncio.StreamWriter | None = None
        self._to_target = metrics.proxy_bytes_total.labels(protocol="vnc", direction="to_target")
        self._to_client = metrics.proxy_bytes_total.labels(protocol="vnc", direction="to_client")

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
            if self._writer is not None:
                self._writer.close()
        try:
            await self._ws.close(code=ended.code, message=ended.reason.encode()[:120])
        finally:
            if self._recorder is not None:
                await self._recordings.finish(self._live, self._recorder, ended.reason)
        return ended

    async def _run(self) -> SessionEnded:
        browser = ServerHandshake()
        browser.initiate()
        await self._send_to_browser(browser.data_to_send())
        await self._until_event(browser, ClientVersionReceived)

        try:
            reader, writer, server_init, trailing_from_target = await self._connect_target()
        except (TargetUnavailable, TargetAuthFailed, ProtocolViolation) as exc:
            browser.reject(str(exc))
            await self._send_to_browser(browser.data_to_send())
            raise SessionEnded(CloseCode.TARGET_UNAVAILABLE, str(exc)) from exc
        self._writer = writer

        try:
            recorder = self._recorder = await self._recordings.start(self._live, server_init, self._policy)
            self._control.recording_id = recorder.recording_id
        except RecordingUnavailable as exc:
            browser.reject(f"{exc} Tell your administrator.")
            await self._send_to_browser(browser.data_to_send())
            raise SessionEnded(CloseCode.RECORDING_FAILED, str(exc)) from exc

        # The browser sees the target's geometry and pixel format, but the admin's name for it:
        # the server's own desktop name is untrusted text (HTML injection into the page title).
        browser.accept(ServerInit(server_init.width, server_init.height, server_init.pixel_format,
                                  self._target.name.encode()))
        await self._send_to_browser(browser.data_to_send())
        complete = await self._until_event(browser, HandshakeComplete)

        client_framer = ClientMessageFramer()
        server_framer = ServerMessageFramer(server_init.pixel_format, server_init.width, server_init.height)
        log.info("desktop session open", extra={"ctx": self._context()})
        ended: list[SessionEnded] = []
        try:
            async with asyncio.TaskGroup() as tasks:
                tasks.create_task(self._pump_browser_to_target(client_framer, server_framer, writer, recorder,
                                                               complete.trailing_data))
                tasks.create_task(self._pump_target_to_browser(server_framer, reader, recorder,
                                                               trailing_from_target))
                tasks.create_task(self._watchdog(recorder))
        except* SessionEnded as group:
            ended.extend(e for e in group.exceptions if isinstance(e, SessionEnded))
        return ended[0]  # the tasks only ever end by raising SessionEnded

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
            raise SessionEnded(CloseCode.PROTOCOL_ERROR, f"browser connection failed: {self._ws.exception()}")
        raise SessionEnded(CloseCode.PROTOCOL_ERROR, "the browser sent a text frame; RFB is binary")

    async def _until_event(self, handshake: ServerHandshake, kind: type[E]) -> E:
        """Feed browser bytes to the server handshake until it emits ``kind``."""
        async with asyncio.timeout(self._timeouts.handshake):
            while True:
                for event in handshake.events_received():
                    if isinstance(event, HandshakeFailed):
                        raise SessionEnded(CloseCode.PROTOCOL_ERROR, f"browser handshake failed: {event.error}")
                    if isinstance(event, kind):
                        await self._send_to_browser(handshake.data_to_send())
                        return event
                await self._send_to_browser(handshake.data_to_send())
                handshake.receive_data(await self._receive_from_browser())

    async def _connect_target(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter, ServerInit, bytes]:
        target = self._target
        try:
            async with asyncio.timeout(self._timeouts.connect):
                reader, writer = await asyncio.open_connection(target.host, target.port)
        except (OSError, TimeoutError) as exc:
            raise TargetUnavailable(
                f"desktop {target.name} is unreachable ({exc.__class__.__name__}: {exc}); "
                "try again later or tell your administrator"
            ) from exc
        handshake = ClientHandshake(password=target.password)
        try:
            async with asyncio.timeout(self._timeouts.handshake):
                while True:
                    for event in handshake.events_received():
                        if isinstance(event, HandshakeFailed):
                            raise event.error
                        if isinstance(event, HandshakeComplete):
                            writer.write(handshake.data_to_send())
                            return reader, writer, event.server_init, event.trailing_data
                    writer.write(handshake.data_to_send())
                    data = await reader.read(READ_SIZE)
                    if not data:
                        raise TargetUnavailable(f"desktop {target.name} closed the connection during the handshake")
                    handshake.receive_data(data)
        except TimeoutError as exc:
            writer.close()
            raise TargetUnavailable(f"desktop {target.name} did not complete the RFB handshake in time") from exc
        except BaseException:
            writer.close()
            raise

    async def _pump_browser_to_target(
        self,
        framer: ClientMessageFramer,
        server_framer: ServerMessageFramer,
        writer: asyncio.StreamWriter,
        recorder: SessionJournal,
        data: bytes,
    ) -> None:
        clipboard_to_remote = self._policy.clipboard.allows_to_remote
        full_input = self._policy.record_input == InputRecording.FULL
        presses = InputPresses()
        while True:
            framer.receive_data(data)
            forwarded: list[bytes] = []  # to the target, in order
            journaled: list[bytes] = []  # to the journal: all of it, or all but the operator's input
            for event in framer.events_received():
                if isinstance(event, ProtocolFailed):
                    raise SessionEnded(CloseCode.PROTOCOL_ERROR, f"the browser broke the protocol: {event.error}")
                assert isinstance(event, ClientMessageReceived)
                message, raw = event.message, event.raw
                journal = True
                if isinstance(message, (KeyEvent, PointerEvent, QEMUExtendedKeyEvent)):
                    self._last_input = self._loop.time()
                    if not full_input:  # forwarded, but only counted in the journal
                        journal = False
                        keys, clicks = presses.presses(message)
                        recorder.input_counted("keys", keys)
                        recorder.input_counted("clicks", clicks)
                        if isinstance(message, PointerEvent):
                            recorder.input_counted("pointer")
                elif isinstance(message, SetEncodings):
                    allowed = filter_encodings(message.encodings)
                    server_framer.set_encodings(allowed)
                    if allowed != message.encodings:
                        raw = SetEncodings(allowed).encode()
                elif isinstance(message, SetPixelFormat):
                    server_framer.set_pixel_format(message.pixel_format)
                elif isinstance(message, ClientCutText):
                    if not clipboard_to_remote:
                        self._clipboard_blocked(recorder, "to_remote", len(message.text))
                        continue
                    if not full_input:
                        journal = False
                        recorder.input_counted("cut_text")
                forwarded.append(raw)
                if journal:
                    journaled.append(raw)
            if forwarded:
                payload = b"".join(forwarded)
                recorder.client_data(payload if len(journaled) == len(forwarded) else b"".join(journaled))
                writer.write(payload)
                await writer.drain()
                self._to_target.inc(len(payload))
            data = await self._receive_from_browser()

    async def _pump_target_to_browser(
        self, framer: ServerMessageFramer, reader: asyncio.StreamReader, recorder: SessionJournal, data: bytes
    ) -> None:
        clipboard_to_local = self._policy.clipboard.allows_to_local
        while True:
            framer.receive_data(data)
            out: list[bytes] = []
            for event in framer.events_received():
                if isinstance(event, ProtocolFailed):
                    raise SessionEnded(
                        CloseCode.PROTOCOL_ERROR,
                        f"desktop {self._target.name} sent data the gateway cannot forward: {event.error}",
                    )
                if isinstance(event, DesktopResized):
                    recorder.event("resize", width=event.width, height=event.height)
                elif (
                    isinstance(event, ServerMessageReceived)
                    and isinstance(event.message, ServerCutText)
                    and not clipboard_to_local
                ):
                    self._clipboard_blocked(recorder, "to_local", len(event.message.text))
                    continue
                out.append(event.raw)
            if out:
                payload = b"".join(out)
                recorder.server_data(payload)
                await self._ws.send_bytes(payload)
                self._to_client.inc(len(payload))
                await recorder.backpressure()
            try:
                data = await reader.read(READ_SIZE)
            except OSError as exc:
                raise SessionEnded(CloseCode.TARGET_CLOSED, f"connection to desktop {self._target.name} failed: {exc}")
            if not data:
                raise SessionEnded(CloseCode.TARGET_CLOSED, f"desktop {self._target.name} closed the session")

    def _clipboard_blocked(self, recorder: SessionJournal, direction: str, size: int) -> None:
        self._metrics.clipboard_blocked_total.labels(direction=direction).inc()
        recorder.event("clipboard_blocked", direction=direction, length=size)

    async def _watchdog(self, recorder: SessionJournal) -> None:
        """End the session on idle timeout, maximum duration, a recording failure or a termination."""
        policy = self._policy
        started = self._loop.time()
        warned_for: float | None = None  # the last input time an idle warning was journaled for
        while True:
            now = self._loop.time()
            deadlines = []
            if policy.idle_timeout is not None:
                idle_deadline = self._last_input + policy.idle_timeout
                if now >= idle_deadline:
                    self._metrics.idle_logouts_total.inc()
                    raise SessionEnded(CloseCode.IDLE_TIMEOUT,
                                       f"no input for {policy.idle_timeout:.0f} s: session ended for safety")
                warning_at = idle_deadline - idle_warning_lead(policy.idle_timeout)
                if now < warning_at:
                    deadlines.append(warning_at)
                elif warned_for != self._last_input:  # once per idle stretch; the page shows its own countdown
                    warned_for = self._last_input
                    recorder.event("idle_warning", seconds_left=round(idle_deadline - now, 1))
                deadlines.append(idle_deadline)
            if policy.max_session is not None:
                max_deadline = started + policy.max_session
                if now >= max_deadline:
                    raise SessionEnded(CloseCode.MAX_SESSION,
                                       f"maximum session length of {policy.max_session:.0f} s reached")
                deadlines.append(max_deadline)
            wait = min(deadlines) - now if deadlines else None
            done, _ = await asyncio.wait((self._terminated, recorder.failure), timeout=wait,
                                         return_when=asyncio.FIRST_COMPLETED)
            if recorder.failure in done:
                raise SessionEnded(CloseCode.RECORDING_FAILED, str(recorder.failure.result()))
            if self._terminated in done:
                raise SessionEnded(CloseCode.TERMINATED, self._terminated.result())
