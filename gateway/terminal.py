"""One terminal session: the operator's terminal ⇄ gateway ⇄ an SSH target's shell (asyncssh).

:class:`TerminalSession` runs a session for a person the caller has already authorised
(policy decided, audited, listed): given the target (:class:`SshEndpoint`) and the
operator's side as an :class:`OperatorTerminal` — the browser's WebSocket
(:class:`WebSocketTerminal`) here, an SSH server channel for native clients — it

1. takes the operator's terminal size (the first message; 80×24 if the first is input),
2. opens the session's journal, fail-closed, before any byte reaches the target,
3. connects to the target with the gateway's credentials for it (``key_file`` or
   ``password_file``), checking its host key against ``known_hosts`` (an unknown or
   changed key refuses the session: close code 4014, an audit event, a metric),
4. opens a shell on a PTY of that size, then pumps bytes both ways, journaling the
   target's output, the operator's input as ``record_input`` says (``full``: the bytes; ``off``: nothing;
   ``counts``: only how many characters) and each resize, until either side ends, or the
   watchdog (:func:`~gateway.session_watch.watch_session`) ends it on idleness, maximum
   length, a failed journal or a supervisor's request; the output also goes to the session's
   :class:`~gateway.terminal_tail.TerminalTail`, which supervisors' live views follow.

Backpressure: each pump awaits its write (the operator's socket, the SSH channel's window)
and the journal's buffer before reading more, so the target is never read faster than the
operator drains, and SSH flow control holds the target's output meanwhile; the buffers are
bounded by the read size and the operator's message cap.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Protocol

import asyncssh
from aiohttp import WebSocketError, WSCloseCode, WSMsgType, web

from base.metrics import Metrics
from gateway.audit import AuditLog
from gateway.errors import TargetRefused, TerminalProtocolError
from gateway.journals import SessionJournal, SessionRecordings
from gateway.notices import NoticePoster
from gateway.policy import InputRecording, Policy
from gateway.reach import JumpHosts, SshEndpoint, open_ssh
from gateway.session_watch import CloseCode, SessionEnded, close_reason, watch_session
from gateway.sessions import LiveSession, SessionControl
from gateway.terminal_messages import DEFAULT_SIZE, TerminalInput, TerminalMessage, TerminalResize, parse_control
from gateway.terminal_tail import TerminalTail
from recorder.asciicast import TERMINAL_TYPE
from recorder.errors import RecordingUnavailable
from recorder.records import TerminalSize

log = logging.getLogger(__name__)

#: Bytes of the target's output read (and forwarded to the operator) at a time.
READ_SIZE = 64 * 1024


@dataclass(frozen=True, slots=True)
class TerminalTimeouts:
    """Bounds on a terminal session's waits (seconds)."""

    first_message: float = 15.0  # the operator's terminal size
    connect: float = 15.0  # TCP, SSH handshake and authentication


class OperatorTerminal(Protocol):
    """The operator's side of a terminal session."""

    async def receive(self) -> TerminalMessage:
        """The operator's next input or resize; raises SessionEnded when their side closes or breaks."""
        ...

    async def send(self, data: bytes) -> None:
        """The target's output, for the operator's terminal (returns once it is on its way)."""

    async def close(self, ended: SessionEnded) -> None:
        """Tell the operator how the session ended, and close their side."""


class WebSocketTerminal:
    """The browser's side: the terminal WebSocket (:mod:`gateway.terminal_messages`)."""

    def __init__(self, ws: web.WebSocketResponse, largest_message: int) -> None:
        self._ws = ws
        self._largest_message = largest_message

    async def receive(self) -> TerminalMessage:
        msg = await self._ws.receive()
        if msg.type == WSMsgType.BINARY:
            return TerminalInput(bytes(msg.data))
        if msg.type == WSMsgType.TEXT:
            try:
                return parse_control(msg.data)
            except TerminalProtocolError as exc:
                raise SessionEnded(CloseCode.PROTOCOL_ERROR, f"the browser broke the protocol: {exc}") from exc
        if msg.type in (WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED):
            raise SessionEnded(CloseCode.NORMAL, "the browser closed the session")
        error = self._ws.exception()
        if isinstance(error, WebSocketError) and error.code == WSCloseCode.MESSAGE_TOO_BIG:
            raise SessionEnded(CloseCode.MESSAGE_TOO_BIG,
                               f"the browser sent a WebSocket message over {self._largest_message} bytes")
        raise SessionEnded(CloseCode.PROTOCOL_ERROR, f"browser connection failed: {error}")

    async def send(self, data: bytes) -> None:
        await self._ws.send_bytes(data)

    async def close(self, ended: SessionEnded) -> None:
        await self._ws.close(code=ended.code, message=close_reason(ended.reason))


class TerminalSession:
    """Run one authorised person's terminal session on one SSH target until either side ends it."""

    def __init__(
        self,
        operator: OperatorTerminal,
        target: SshEndpoint,
        policy: Policy,
        control: SessionControl,
        metrics: Metrics,
        recordings: SessionRecordings,
        notices: NoticePoster,
        audit: AuditLog,
        timeouts: TerminalTimeouts = TerminalTimeouts(),
        read_size: int = READ_SIZE,
        jumps: JumpHosts | None = None,
        tail: TerminalTail | None = None,
    ) -> None:
        """``tail``: where live viewers follow the output (:mod:`gateway.terminal_tail`)."""
        self._operator = operator
        self._target = target
        self._policy = policy
        self._control = control
        self._live: LiveSession = control.session
        self._metrics = metrics
        self._recordings = recordings
        self._notices = notices
        self._audit = audit
        self._timeouts = timeouts
        self._read_size = read_size
        self._jumps = jumps
        self._tail = tail
        self._loop = asyncio.get_running_loop()
        self._journal: SessionJournal | None = None
        self._connection: asyncssh.SSHClientConnection | None = None
        self._to_target = metrics.proxy_bytes_total.labels(protocol="ssh", direction="to_target")
        self._to_client = metrics.proxy_bytes_total.labels(protocol="ssh", direction="to_client")

    async def run(self) -> SessionEnded:
        """Run the session to its end; returns how it ended (the operator's side is closed)."""
        try:
            ended = await self._run()
        except SessionEnded as exc:
            ended = exc
        except Exception:
            log.exception("terminal session failed", extra={"ctx": self._context()})
            ended = SessionEnded(CloseCode.INTERNAL_ERROR, "internal gateway error; the session was ended")
        finally:
            if self._connection is not None:
                self._connection.abort()
        try:
            await self._operator.close(ended)
        finally:
            if self._journal is not None:
                await self._recordings.finish(self._live, self._journal, ended.reason)
        return ended

    async def _run(self) -> SessionEnded:
        try:
            async with asyncio.timeout(self._timeouts.first_message):
                first = await self._operator.receive()
        except TimeoutError:
            raise SessionEnded(CloseCode.PROTOCOL_ERROR, "the terminal did not say its size in time") from None
        size = first.size if isinstance(first, TerminalResize) else DEFAULT_SIZE
        if self._tail is not None:
            self._tail.resize(size)
        try:
            journal = self._journal = await self._recordings.start(self._live, size, self._policy)
        except RecordingUnavailable as exc:
            raise SessionEnded(CloseCode.RECORDING_FAILED, f"{exc} Tell your administrator.") from exc
        self._control.recording_id = journal.recording_id
        self._control.journal = journal  # live viewers' viewed_by events
        try:
            process = await self._open_shell(size)
        except TargetRefused as exc:
            journal.event("target_refused", reason=str(exc))
            await self._refused(exc)
            code = CloseCode.HOST_KEY_REFUSED if exc.host_key else CloseCode.TARGET_UNAVAILABLE
            raise SessionEnded(code, str(exc)) from exc
        log.info("terminal session open", extra={"ctx": {**self._context(), "cols": size.cols, "rows": size.rows}})
        pending = first if isinstance(first, TerminalInput) else None
        ended: list[SessionEnded] = []
        try:
            async with asyncio.TaskGroup() as tasks:
                tasks.create_task(self._pump_operator_to_target(process, journal, pending))
                tasks.create_task(self._pump_target_to_operator(process, journal))
                tasks.create_task(watch_session(self._policy, self._control, journal, self._notices, self._metrics))
        except* SessionEnded as group:
            ended.extend(e for e in group.exceptions if isinstance(e, SessionEnded))
        return ended[0]  # the tasks only ever end by raising SessionEnded

    def _context(self) -> dict[str, str]:
        live = self._live
        return {"session": live.id, "user": live.username, "source": live.source, "target": live.target}

    async def _open_shell(self, size: TerminalSize) -> asyncssh.SSHClientProcess[bytes]:
        """Connect (through the target's jump host, if any), authenticate and start a shell on a PTY of
        ``size``; TargetRefused says what failed."""
        target = self._target
        try:
            async with asyncio.timeout(self._timeouts.connect):
                connection = self._connection = await open_ssh(target, self._jumps)
                return await connection.create_process(term_type=TERMINAL_TYPE, term_size=(size.cols, size.rows),
                                                       encoding=None, stderr=asyncssh.STDOUT)
        except (OSError, TimeoutError, asyncssh.Error) as exc:
            detail = exc.reason if isinstance(exc, asyncssh.Error) else f"{exc.__class__.__name__}: {exc}"
            raise TargetRefused(f"{target.name} is unreachable ({detail}); try again later or tell your "
                                "administrator") from exc

    async def _refused(self, refusal: TargetRefused) -> None:
        self._metrics.terminal_target_refusals_total.labels(reason=refusal.reason).inc()
        log.warning("SSH target refused", extra={"ctx": {**self._context(), "reason": refusal.reason,
                                                         "error": str(refusal)}})
        if refusal.host_key:
            live = self._live
            await self._audit.record("session.host_key", user=live.username, source=live.source, target=live.target,
                                     outcome="refused", reason=str(refusal), protocol="ssh", session=live.id)

    async def _pump_operator_to_target(self, process: asyncssh.SSHClientProcess[bytes], journal: SessionJournal,
                                       pending: TerminalInput | None) -> None:
        message: TerminalMessage | None = pending
        full = self._policy.record_input == InputRecording.FULL
        counts = self._policy.record_input == InputRecording.COUNTS
        while True:
            if isinstance(message, TerminalInput) and message.data:
                self._control.last_input = self._loop.time()
                if full:
                    journal.client_data(message.data)
                elif counts:  # how many characters, not which (off: not even that)
                    journal.input_counted("keys", sum(1 for byte in message.data if byte & 0xC0 != 0x80))
                process.stdin.write(message.data)
                try:
                    await process.stdin.drain()
                except (OSError, asyncssh.Error) as exc:
                    raise SessionEnded(CloseCode.TARGET_CLOSED, f"connection to {self._target.name} failed: {exc}")
                self._to_target.inc(len(message.data))
                await journal.backpressure()
            elif isinstance(message, TerminalResize):
                size = message.size
                process.change_terminal_size(size.cols, size.rows)
                journal.event("resize", cols=size.cols, rows=size.rows)
                if self._tail is not None:
                    self._tail.resize(size)
            message = await self._operator.receive()  # its end raises SessionEnded

    async def _pump_target_to_operator(self, process: asyncssh.SSHClientProcess[bytes],
                                       journal: SessionJournal) -> None:
        while True:
            try:
                data = await process.stdout.read(self._read_size)
            except (OSError, asyncssh.Error) as exc:
                raise SessionEnded(CloseCode.TARGET_CLOSED, f"connection to {self._target.name} failed: {exc}")
            if not data:
                status = process.exit_status
                detail = f" (exit status {status})" if status is not None else ""
                raise SessionEnded(CloseCode.TARGET_CLOSED, f"the shell on {self._target.name} ended{detail}")
            journal.server_data(data)
            if self._tail is not None:
                self._tail.feed(data)
            await self._operator.send(data)
            self._to_client.inc(len(data))
            await journal.backpressure()
